"""
The gram-hf programs and what they share, reachable from the installed package (as trl's `trl.scripts`).

Programs, each `main(argv)`: `mind`, `toeic`, `duolingo`, `poj`, `knowledge_tracing` (generic CSV) and `next_item`.
Run one as `gram-hf <program> [options]`, `python -m gram_hf.scripts.<program>` or, on several processes or GPUs,
`accelerate launch [--multi_gpu --num_processes N] -m gram_hf.scripts.<program>`; the repository's `recipes/*.py` are
the same programs.

Shared pieces: [`arguments`] (argument dataclasses, paper defaults, [`parse_recipe_args`]), [`synthetic_cache`] (the
embedded default's synthetic raw files), [`pipeline`] (model, trainer, train/evaluate for any registered task:
[`run_task`]) and [`report`] (export, `results.json`, the results table).
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
from .pipeline import build_model, load_tokenizer, make_trainer, run_program, run_task, train_and_evaluate
from .report import RESULTS_NAME, export_and_report, format_results_table
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
    "build_model",
    "cached_synthetic_dataset",
    "export_and_report",
    "format_results_table",
    "knowledge_tracing_data",
    "load_tokenizer",
    "make_trainer",
    "parse_recipe_args",
    "run_program",
    "run_task",
    "split_list",
    "synthetic_knowledge_tracing",
    "synthetic_mind",
    "synthetic_movielens",
    "synthetic_root",
    "train_and_evaluate",
]
