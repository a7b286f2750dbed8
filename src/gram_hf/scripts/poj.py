"""
Knowledge tracing on POJ (Peking Online Judge submissions) with GRAM: the problem statement encoded by a pre-trained
language model, the response 1 for an `Accepted` submission.

Your data: `poj_log.csv` (as circulated with pyKT: `User,Problem,Result,...,Submit Time`) and a `problem_id,text` table
of problem statements (`--problem_text`; the log has none). The paper's setup (Adam, lr 1e-4 for the CF module and the
encoder, warmup, 32 learners per batch, windows of 100 interactions, evaluation every epoch with early stopping,
patience 10, on validation AUC):

    python recipes/poj.py --log_csv poj_log.csv --problem_text problem_text.csv --output_dir outputs/poj
    accelerate launch --multi_gpu --num_processes 4 recipes/poj.py --log_csv ... --problem_text ...

Embedded default (no data arguments): a synthetic `poj_log.csv` and statement table in the real format (cached under
`$HF_HOME/gram_hf/synthetic/poj-poj-<scale>-<seed>`), the shipped all-MiniLM-L6-v2 encoder, GRAM with one encoder fit
per epoch; evaluates (AUC, accuracy, cold-start AUC), prints a results table and saves the model and the encoder
export:

    python recipes/poj.py

The embedded default scales down, for the options not given on the command line: `num_train_epochs=3`,
`learning_rate=1e-3` (the CF module needs larger steps in the few steps a small dataset gives),
`per_device_train_batch_size=16`, `item_max_length=32` (statements are truncated), a smaller LSTM head
(`head_config={"hidden_size": 128, "num_layers": 1}`; the paper's is 2 layers of the item size, slow on a CPU),
`save_total_limit=1`, `logging_steps=20`, and the cold-start count of the synthetic preset (scaled); the results table
lists the ones applied. The synthetic data: POJ's statistics at `--synthetic_scale 0.01` (221 learners, 260 problems,
9,000 submissions).

Options: `--cold_start_items N|id,id`, split fractions, `--gram_mode e2e|gram|nofinetune|nocontent`,
`--gram_interval 1|N|0.5epoch|1epoch`, LoRA (`--lora_r 8 --lora_alpha 16 --lora_target_modules query,value`),
`--push_to_hub --hub_model_id NAME` (the whole model), `--push_encoder_to_hub REPO` (the encoder export), and every
`GramTrainingArguments` / `TrainingArguments` flag. `--help` lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..tasks.knowledge_tracing import load_poj
from .arguments import (
    KNOWLEDGE_TRACING_DEMO_DEFAULTS,
    KNOWLEDGE_TRACING_TRAINING_DEFAULTS,
    KnowledgeTracingArguments,
    RecipeArguments,
)
from .command_line import run_command_line
from .pipeline import run_program
from .synthetic_cache import knowledge_tracing_data

if TYPE_CHECKING:
    from ..data import InteractionData

RECIPE = "poj"
DEFAULTS = {**KNOWLEDGE_TRACING_TRAINING_DEFAULTS, "output_dir": f"outputs/{RECIPE}", "item_max_length": 256}
DEMO_DEFAULTS = {
    **KNOWLEDGE_TRACING_DEMO_DEFAULTS,
    "synthetic_preset": "poj",
    "synthetic_scale": 0.01,
}


@dataclass
class DataArguments(KnowledgeTracingArguments):
    """The POJ submission log and problem statements (see `gram_hf.tasks.knowledge_tracing.load_poj`)."""

    log_csv: str | None = field(default=None, metadata={"help": "poj_log.csv (User, Problem, Result, Submit Time)."})
    problem_text: str | None = field(default=None, metadata={"help": "CSV/Parquet problem_id,text of statements."})
    text_id_column: str = field(default="problem_id", metadata={"help": "Id column of --problem_text."})
    text_column: str = field(default="text", metadata={"help": "Text column of --problem_text."})

    def __post_init__(self):
        if (self.log_csv is None) != (self.problem_text is None):
            raise ValueError("Pass both --log_csv and --problem_text (or neither, for the embedded default).")


def load(args: RecipeArguments) -> tuple[InteractionData, str, dict]:
    """The dataset (the given files, or the embedded default's cached synthetic ones), its description and the task
    options (`--features`, `max_seq_len`)."""
    data_args = args.data
    synthetic, canonical = knowledge_tracing_data(args, "poj", "poj", 0.01)
    if synthetic is not None:
        log_csv, problem_text = synthetic.paths["log_csv"], synthetic.paths["problem_text"]
        source = synthetic.describe()
    else:
        log_csv, problem_text, source = data_args.log_csv, data_args.problem_text, data_args.log_csv
    data = load_poj(
        log_csv,
        problem_text,
        text_id_column=data_args.text_id_column,
        text_column=data_args.text_column,
        **canonical,
    )
    return data, source, data_args.task_options(data)


def main(argv: list[str] | None = None) -> dict:
    """Runs the recipe on `argv` (default: the command line) and returns its results (also in results.json)."""
    return run_program(
        DataArguments, argv, recipe=RECIPE, task="knowledge_tracing", defaults=DEFAULTS, demo_defaults=DEMO_DEFAULTS,
        uses_synthetic=lambda data: data.log_csv is None, description="POJ", load=load,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
