"""
Knowledge tracing on Duolingo SLAM 2018 with GRAM, in the GRAM paper's view: one interaction per exercise, the item is
the exercise's sentence (encoded by a pre-trained language model), the response is 1 when every token is right.

Your SLAM files (`{track}.slam.{date}.{train,dev,test}` and the `.key` files; tracks `en_es` (Spanish, default),
`fr_en` (French), `es_en`). The paper's setup: learners re-split 8:2 train:test with 10% of train for validation,
Adam, lr 1e-4 for the CF module and the encoder, warmup, 32 learners per batch, windows of 100 interactions,
evaluation every epoch with early stopping, patience 10, on validation AUC:

    python recipes/duolingo.py --data_dir data_en_es --track en_es --output_dir outputs/duolingo-en_es
    accelerate launch --multi_gpu --num_processes 4 recipes/duolingo.py --data_dir data_fr_en --track fr_en

Embedded default (no `--data_dir`): synthetic SLAM files in the real format (cached under
`$HF_HOME/gram_hf/synthetic/duolingo-<track>-<scale>-<seed>`), the shipped all-MiniLM-L6-v2 encoder, GRAM with one
encoder fit per epoch; evaluates (AUC, accuracy, cold-start AUC), prints a results table and saves the model and the
encoder export:

    python recipes/duolingo.py

The embedded default scales down, for the options not given on the command line: `num_train_epochs=3`,
`learning_rate=1e-3` (the CF module needs larger steps in the few steps a small dataset gives),
`per_device_train_batch_size=16`, `item_max_length=32`, a smaller LSTM head (`head_config={"hidden_size": 128,
"num_layers": 1}`; the paper's is 2 layers of the item size, slow on a CPU), `save_total_limit=1`, `logging_steps=20`,
and the cold-start count of the synthetic preset (scaled); the results table lists the ones applied. The synthetic
data: Duolingo Spanish's statistics at `--synthetic_scale 0.02` (53 learners, 650 sentences, 5,600 interactions).

Options: `--split_by slam` (the release's own time split instead of the learner split), `--include_prompt`,
`--features format,client,session,elapsed_time` with `--current_features format,client,session`,
`--cold_start_items N|id,id`, split fractions, `--gram_mode e2e|gram|nofinetune|nocontent`,
`--gram_interval 1|N|0.5epoch|1epoch`, LoRA (`--lora_r 8 --lora_alpha 16 --lora_target_modules query,value`),
`--push_to_hub --hub_model_id NAME` (the whole model), `--push_encoder_to_hub REPO` (the encoder export), and every
`GramTrainingArguments` / `TrainingArguments` flag. `--help` lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..tasks.knowledge_tracing import PRESETS, load_duolingo
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

RECIPE = "duolingo"
DEFAULTS = {**KNOWLEDGE_TRACING_TRAINING_DEFAULTS, "output_dir": f"outputs/{RECIPE}", "item_max_length": 64}
DEMO_DEFAULTS = {
    **KNOWLEDGE_TRACING_DEMO_DEFAULTS,
    "synthetic_scale": 0.02,
}


@dataclass
class DataArguments(KnowledgeTracingArguments):
    """Duolingo SLAM 2018 files (see `gram_hf.tasks.knowledge_tracing.load_duolingo`)."""

    data_dir: str | None = field(
        default=None, metadata={"help": "Folder of {track}.slam.{date}.{train,dev,test} and their .key files."}
    )
    track: str = field(default="en_es", metadata={"help": "en_es (Spanish), fr_en (French) or es_en."})
    date: str | None = field(default=None, metadata={"help": "Release date (20171218, 20190204); default: newest."})
    split_by: str = field(
        default="user",
        metadata={
            "help": "user: learners re-split 8:2 (the paper's); slam: the release's own train/dev/test split by time.",
            "choices": ["user", "slam"],
        },
    )
    include_prompt: bool = field(default=False, metadata={"help": "Prepend the L1 prompt to each sentence."})
    time_buckets: int = field(default=24, metadata={"help": "Log-scale buckets of the elapsed_time feature."})


def load(args: RecipeArguments) -> tuple[InteractionData, str, dict]:
    """The dataset (the given files, or the embedded default's cached synthetic ones), its description and the task
    options (`--features`, `max_seq_len`)."""
    data_args = args.data
    preset = data_args.track if data_args.track in PRESETS else "en_es"
    synthetic, canonical = knowledge_tracing_data(args, "duolingo", preset, 0.02)
    if synthetic is not None:
        data_dir, track, source = synthetic.paths["data_dir"], synthetic.options["track"], synthetic.describe()
    else:
        data_dir, track, source = data_args.data_dir, data_args.track, data_args.data_dir
    data = load_duolingo(
        data_dir,
        track,
        date=data_args.date,
        split_by=data_args.split_by,
        include_prompt=data_args.include_prompt,
        time_buckets=data_args.time_buckets,
        **canonical,
    )
    return data, source, data_args.task_options(data)


def main(argv: list[str] | None = None) -> dict:
    """Runs the recipe on `argv` (default: the command line) and returns its results (also in results.json)."""
    return run_program(
        DataArguments, argv, recipe=RECIPE, task="knowledge_tracing", defaults=DEFAULTS, demo_defaults=DEMO_DEFAULTS,
        uses_synthetic=lambda data: data.data_dir is None, description="Duolingo SLAM", load=load,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
