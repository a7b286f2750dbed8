"""
The gram-hf programs and what they share, reachable from the installed package (as trl's `trl.scripts`).

Programs, each `main(argv)`: `mind`, `toeic`, `duolingo`, `poj`, `knowledge_tracing` (generic CSV) and `next_item`.
Run one as `gram-hf <program> [options]`, `python -m gram_hf.scripts.<program>` or, on several processes or GPUs,
`accelerate launch [--multi_gpu --num_processes N] -m gram_hf.scripts.<program>`; the repository's `recipes/*.py` are
the same programs.

Shared pieces: [`arguments`] (argument dataclasses, paper defaults, [`parse_recipe_args`]), [`synthetic_cache`] (the
embedded default's synthetic raw files), [`pipeline`] (model, trainer, train/evaluate for any registered task:
[`run_task`]), [`report`] (export, `results.json`, the results table) and [`command_line`] (one-line errors, exit
statuses, the argument value checks).

Every program checks its arguments before it loads data or weights or writes anything, and fails in one line: exit
status 2 for the command line (a bad value, flags that contradict each other, a missing checkpoint), 1 for the data;
`--debug` (or `GRAM_HF_DEBUG=1`) shows the traceback. `--save_steps N` alone saves and evaluates every N steps (the
evaluation follows the saves so that the best checkpoint can be restored); `--resume_from_checkpoint
<output_dir>/checkpoint-N` (or `True`: the last complete one) resumes. The embedded default removes its checkpoints
after training (the model and the encoder export stay) unless a checkpoint option is given.
"""

from .arguments import (
    KNOWLEDGE_TRACING_DEMO_DEFAULTS,
    KNOWLEDGE_TRACING_TRAINING_DEFAULTS,
    NEWS_TRAINING_DEFAULTS,
    PAPER_TRAINING_DEFAULTS,
    KnowledgeTracingArguments,
    ModelArguments,
    RecipeArguments,
    ScriptArguments,
    parse_recipe_args,
    split_list,
)
from .command_line import UsageError, run_command_line
from .pipeline import build_model, load_tokenizer, make_trainer, run_program, run_task, train_and_evaluate
from .report import RESULTS_NAME, data_summary, export_and_report, format_results_table
from .synthetic_cache import (
    SyntheticDataset,
    cached_synthetic_dataset,
    knowledge_tracing_data,
    synthetic_knowledge_tracing,
    synthetic_mind,
    synthetic_movielens,
    synthetic_root,
)

PROGRAMS = ("mind", "toeic", "duolingo", "poj", "knowledge_tracing", "next_item")
"""The programs of `gram-hf <program>`, each the module `gram_hf.scripts.<program>`."""

__all__ = [
    "KNOWLEDGE_TRACING_DEMO_DEFAULTS",
    "KNOWLEDGE_TRACING_TRAINING_DEFAULTS",
    "NEWS_TRAINING_DEFAULTS",
    "PAPER_TRAINING_DEFAULTS",
    "PROGRAMS",
    "RESULTS_NAME",
    "KnowledgeTracingArguments",
    "ModelArguments",
    "RecipeArguments",
    "ScriptArguments",
    "SyntheticDataset",
    "UsageError",
    "build_model",
    "cached_synthetic_dataset",
    "data_summary",
    "export_and_report",
    "format_results_table",
    "knowledge_tracing_data",
    "load_tokenizer",
    "make_trainer",
    "parse_recipe_args",
    "run_program",
    "run_command_line",
    "run_task",
    "split_list",
    "synthetic_knowledge_tracing",
    "synthetic_mind",
    "synthetic_movielens",
    "synthetic_root",
    "train_and_evaluate",
]
