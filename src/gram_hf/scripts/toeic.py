"""
Knowledge tracing on EdNet-KT1 ("TOEIC", the GRAM paper's largest dataset) with GRAM: the question text encoded by a
pre-trained language model, the question's part and the learner's elapsed time fed to the KT head as features (the
part as a *current* feature, known before the answer; the elapsed time one step later, with the response).

EdNet-KT1 has no question text: supply a `question_id,text` table (`--item_text`); `--missing_text` says what to do
with answered questions it lacks (`error`, `drop`, or `part_and_tags`: text built from their part and tags). The
paper's setup (Adam, lr 1e-4 for the CF module and the encoder, warmup, 32 learners per batch, windows of 100
interactions, evaluation every epoch with early stopping, patience 10, on validation AUC, 684 cold-start questions):

    python recipes/toeic.py --kt1_dir EdNet/KT1 --questions_csv EdNet/contents/questions.csv \\
        --item_text question_text.csv --output_dir outputs/toeic
    accelerate launch --multi_gpu --num_processes 4 recipes/toeic.py --kt1_dir ... --questions_csv ... --item_text ...

Embedded default (no data arguments): synthetic EdNet-KT1 files in the real layout (`KT1/u*.csv`,
`contents/questions.csv`, a question-text table; cached under `$HF_HOME/gram_hf/synthetic/ednet-toeic-<scale>-<seed>`),
the shipped all-MiniLM-L6-v2 encoder, GRAM with one encoder fit per epoch; evaluates (AUC, accuracy, cold-start AUC),
prints a results table and saves the model and the encoder export:

    python recipes/toeic.py

The embedded default scales down, for the options not given on the command line: `num_train_epochs=3`,
`learning_rate=1e-3` (the CF module needs larger steps in the few steps a small dataset gives),
`per_device_train_batch_size=16`, `item_max_length=32`, a smaller LSTM head (`head_config={"hidden_size": 128,
"num_layers": 1}`; the paper's is 2 layers of the item size, slow on a CPU), `save_total_limit=1`, `logging_steps=20`,
and the cold-start count of the synthetic preset (scaled); the results table lists the ones applied. The synthetic
data: EdNet-KT1's statistics at `--synthetic_scale 0.0002` (248 learners, 145 questions, 18,900 interactions).

Options: `--features part,elapsed_time` / `--current_features part` (pass `--features ""` for none),
`--cold_start_items N|id,id`, split fractions, `--gram_mode e2e|gram|nofinetune|nocontent`,
`--gram_interval 1|N|0.5epoch|1epoch`, LoRA (`--lora_r 8 --lora_alpha 16 --lora_target_modules query,value`),
`--push_to_hub --hub_model_id NAME` (the whole model), `--push_encoder_to_hub REPO` (the encoder export), and every
`GramTrainingArguments` / `TrainingArguments` flag. `--help` lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..tasks.knowledge_tracing import load_ednet
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

RECIPE = "toeic"
DEFAULTS = {
    **KNOWLEDGE_TRACING_TRAINING_DEFAULTS,
    "output_dir": f"outputs/{RECIPE}",
    "item_max_length": 256,
    "features": "part,elapsed_time",
    "current_features": "part",
    "cold_start_items": "684",
}
DEMO_DEFAULTS = {
    **KNOWLEDGE_TRACING_DEMO_DEFAULTS,
    "synthetic_preset": "toeic",
    "synthetic_scale": 0.0002,
}
DATA_OPTIONS = ("kt1_dir", "questions_csv", "item_text")


@dataclass
class DataArguments(KnowledgeTracingArguments):
    """EdNet-KT1 files (see `gram_hf.tasks.knowledge_tracing.load_ednet`)."""

    kt1_dir: str | None = field(default=None, metadata={"help": "The KT1/ folder of u{N}.csv learner files."})
    questions_csv: str | None = field(default=None, metadata={"help": "EdNet's contents/questions.csv."})
    item_text: str | None = field(
        default=None, metadata={"help": "CSV/Parquet question_id,text with the question texts EdNet lacks."}
    )
    missing_text: str = field(
        default="error",
        metadata={
            "help": "Answered questions absent from --item_text: error, drop (their interactions) or part_and_tags "
            "(text built from part and tags).",
            "choices": ["error", "drop", "part_and_tags"],
        },
    )
    time_buckets: int = field(default=24, metadata={"help": "Log-scale buckets of the elapsed_time feature."})

    def __post_init__(self):
        given = [name for name in DATA_OPTIONS if getattr(self, name) is not None]
        if given and len(given) != len(DATA_OPTIONS):
            missing = [f"--{name}" for name in DATA_OPTIONS if name not in given]
            raise ValueError(f"EdNet-KT1 needs --kt1_dir, --questions_csv and --item_text; missing {missing}.")


def load(args: RecipeArguments) -> tuple[InteractionData, str, dict]:
    """The dataset (the given files, or the embedded default's cached synthetic ones), its description and the task
    options (`--features`, `max_seq_len`)."""
    data_args = args.data
    synthetic, canonical = knowledge_tracing_data(args, "ednet", "toeic", 0.0002)
    files = synthetic.paths if synthetic is not None else {name: getattr(data_args, name) for name in DATA_OPTIONS}
    source = synthetic.describe() if synthetic is not None else files["kt1_dir"]
    data = load_ednet(
        files["kt1_dir"],
        files["questions_csv"],
        files["item_text"],
        missing_text=data_args.missing_text,
        time_buckets=data_args.time_buckets,
        **canonical,
    )
    return data, source, data_args.task_options(data)


def main(argv: list[str] | None = None) -> dict:
    """Runs the recipe on `argv` (default: the command line) and returns its results (also in results.json)."""
    return run_program(
        DataArguments, argv, recipe=RECIPE, task="knowledge_tracing", defaults=DEFAULTS, demo_defaults=DEMO_DEFAULTS,
        uses_synthetic=lambda data: data.kt1_dir is None, description="EdNet-KT1", load=load,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
