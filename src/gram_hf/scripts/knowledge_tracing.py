"""
Knowledge tracing with GRAM on any dataset in the generic tables: interactions `user_id,item_id,timestamp,correct` and
items `item_id,text` (CSV with a header, or Parquet), read by `gram_hf.tasks.knowledge_tracing.load_kt_csv`.

Your data (the paper's setup: Adam, lr 1e-4 for the CF module and the encoder, warmup, 32 learners per batch, windows
of 100 interactions, evaluation every epoch with early stopping, patience 10, on validation AUC):

    python recipes/knowledge_tracing.py --interactions interactions.csv --items items.csv --output_dir outputs/my-kt
    accelerate launch --multi_gpu --num_processes 2 recipes/knowledge_tracing.py --interactions ... --items ...

Embedded default (no `--interactions`/`--items`): synthetic learners and items in the generic format (cached under
`$HF_HOME/gram_hf/synthetic/kt_csv-en_es-<scale>-<seed>`), the shipped all-MiniLM-L6-v2 encoder, GRAM with one encoder
fit per epoch; evaluates, prints a results table and saves the model and the encoder export:

    python recipes/knowledge_tracing.py

The embedded default scales down, for the options not given on the command line: `num_train_epochs=3`,
`learning_rate=1e-3` (the CF module needs larger steps in the few steps a small dataset gives),
`per_device_train_batch_size=16`, `item_max_length=32`, a smaller LSTM head (`head_config={"hidden_size": 128,
"num_layers": 1}`; the paper's is 2 layers of the item size, slow on a CPU), `save_total_limit=1`, `logging_steps=20`,
and the cold-start count of the synthetic preset (scaled); the results table lists the ones applied. The synthetic
data: Duolingo-Spanish-like statistics at `--synthetic_scale 0.02` (53 learners, 650 items, 5,600 interactions).

Options: `--features a,b` (interaction columns fed to the head as categorical features), `--current_features a`
(those known before the answer), `--cold_start_items N|id,id`, split fractions, `--gram_mode e2e|gram|nofinetune|
nocontent`, `--gram_interval 1|N|0.5epoch|1epoch`, LoRA (`--lora_r 8 --lora_alpha 16 --lora_target_modules
query,value`), `--push_to_hub --hub_model_id NAME` (the whole model), `--push_encoder_to_hub REPO` (the encoder
export), and every `GramTrainingArguments` / `TrainingArguments` flag. `--help` lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..tasks.knowledge_tracing import load_kt_csv
from .arguments import (
    KNOWLEDGE_TRACING_DEMO_DEFAULTS,
    KNOWLEDGE_TRACING_TRAINING_DEFAULTS,
    KnowledgeTracingArguments,
    RecipeArguments,
    split_list,
)
from .command_line import run_command_line
from .pipeline import run_program
from .synthetic_cache import knowledge_tracing_data

if TYPE_CHECKING:
    from ..data import InteractionData

RECIPE = "knowledge_tracing"
DEFAULTS = {**KNOWLEDGE_TRACING_TRAINING_DEFAULTS, "output_dir": f"outputs/{RECIPE}", "item_max_length": 128}
DEMO_DEFAULTS = {
    **KNOWLEDGE_TRACING_DEMO_DEFAULTS,
    "synthetic_preset": "en_es",
    "synthetic_scale": 0.02,
}


@dataclass
class DataArguments(KnowledgeTracingArguments):
    """The generic knowledge-tracing tables (see `load_kt_csv`)."""

    interactions: str | None = field(
        default=None, metadata={"help": "CSV/Parquet of interactions user_id,item_id,timestamp,correct."}
    )
    items: str | None = field(default=None, metadata={"help": "CSV/Parquet of items item_id,text."})
    user_column: str = field(default="user_id", metadata={"help": "Column of learner ids."})
    item_column: str = field(default="item_id", metadata={"help": "Column of item ids (both tables)."})
    timestamp_column: str = field(default="timestamp", metadata={"help": "Column of timestamps."})
    correct_column: str = field(default="correct", metadata={"help": "Column of responses (1/0, true/false)."})
    text_column: str = field(default="text", metadata={"help": "Column of item text."})
    timestamp_unit: str = field(default="s", metadata={"help": "Unit of numeric timestamps: s, ms, us or ns."})

    def __post_init__(self):
        if (self.interactions is None) != (self.items is None):
            raise ValueError("Pass both --interactions and --items (or neither, for the embedded default).")


def load(args: RecipeArguments) -> tuple[InteractionData, str, dict]:
    """The dataset (the given files, or the embedded default's cached synthetic ones), its description and the task
    options (`--features`, `max_seq_len`)."""
    data_args = args.data
    synthetic, canonical = knowledge_tracing_data(args, "kt_csv", "en_es", 0.02)
    if synthetic is not None:
        interactions, items = synthetic.paths["interactions"], synthetic.paths["items"]
        source = synthetic.describe()
    else:
        interactions, items = data_args.interactions, data_args.items
        source = f"{interactions} + {items}"
    data = load_kt_csv(
        interactions,
        items,
        user_column=data_args.user_column,
        item_column=data_args.item_column,
        timestamp_column=data_args.timestamp_column,
        correct_column=data_args.correct_column,
        text_column=data_args.text_column,
        feature_columns=split_list(data_args.features),
        timestamp_unit=data_args.timestamp_unit,
        **canonical,
    )
    return data, source, data_args.task_options(data)


def main(argv: list[str] | None = None) -> dict:
    """Runs the recipe on `argv` (default: the command line) and returns its results (also in results.json)."""
    return run_program(
        DataArguments, argv, recipe=RECIPE, task="knowledge_tracing", defaults=DEFAULTS, demo_defaults=DEMO_DEFAULTS,
        uses_synthetic=lambda data: data.interactions is None, description="data", load=load,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
