"""
News recommendation on MIND with GRAM: a pre-trained language model as the news encoder (additive-attention pooling
over tokens, as in PLM-NR) under an NRMS user model, trained with GRAM.

Your MIND download (`MINDsmall_train/` + `MINDsmall_dev/`, or the MINDlarge folders; the paper's setup: Adam, lr 1e-4
for the CF module and the encoder, warmup, 256 impressions per batch, 4 negatives per click, the 50 most recent clicks
per history, evaluation every epoch with early stopping, patience 10, on validation AUC):

    python recipes/mind.py --data_dir MIND --output_dir outputs/mind-small
    accelerate launch --multi_gpu --num_processes 4 recipes/mind.py --data_dir MIND --variant large --predict_test

Early stopping uses a `--validation_fraction` (default 0.1) of the `*_train` impressions; the reported (`test_*`)
metrics, AUC, MRR, nDCG@5 and nDCG@10, are on `*_dev`, as MIND papers report them (`--validation_fraction 0` makes
`*_dev` the validation split as well). `--predict_test` writes `prediction.txt` and `prediction.zip`, a leaderboard
submission for the labelless `MINDlarge_test`, into the output folder.

Embedded default (no `--data_dir`), the README's main job: a synthetic MIND-small download in MIND's exact format (news
whose titles reveal their topic, users with topic preferences; cached under
`$HF_HOME/gram_hf/synthetic/mind-small-<scale>-<seed>`), the shipped all-MiniLM-L6-v2 encoder, GRAM with one encoder
fit per epoch; evaluates, prints a results table and saves the model and the encoder export. It takes about 70 s
on an idle 2-core CPU (imports, data generation, training, evaluation and export included):

    accelerate launch recipes/mind.py

The embedded default scales down, for the options not given on the command line: `num_train_epochs=2`,
`learning_rate=1e-3` (the CF module needs larger steps in the few steps a small dataset gives),
`per_device_train_batch_size=32`, `per_device_eval_batch_size=64`, `text_fields=title`, `save_total_limit=1`,
`logging_steps=10`; the results table lists the ones applied. The synthetic data: MIND-small's statistics at
`--synthetic_scale 0.01` (500 users, 650 news, 1,570 training and 730 dev impressions).

Options: `--text_fields title,abstract,body` (`body` needs a `news_body.tsv`), `--item_field_max_lengths 24,50`,
`--npratio`, `--max_history`, `--gram_mode e2e|gram|nofinetune|nocontent`, `--gram_interval 1|N|0.5epoch|1epoch`,
LoRA (`--lora_r 8 --lora_alpha 16 --lora_target_modules query,value`), `--push_to_hub --hub_model_id NAME` (the whole
model), `--push_encoder_to_hub REPO` (the encoder export), and every `GramTrainingArguments` / `TrainingArguments`
flag. `--help` lists them all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..tasks.news_recommendation import find_mind_folders, load_mind, write_mind_prediction_from_output
from .arguments import NEWS_TRAINING_DEFAULTS, RecipeArguments, ScriptArguments, split_list
from .command_line import run_command_line
from .pipeline import run_program
from .synthetic_cache import synthetic_mind

if TYPE_CHECKING:
    from ..data import InteractionData

logger = logging.getLogger(__name__)

RECIPE = "mind"
DEFAULTS = {**NEWS_TRAINING_DEFAULTS, "output_dir": f"outputs/{RECIPE}"}
DEMO_DEFAULTS = {
    "synthetic_preset": "small",
    "synthetic_scale": 0.01,
    "text_fields": "title",
    "num_train_epochs": 2,
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "save_total_limit": 1,
    "logging_steps": 10,
}


@dataclass
class DataArguments(ScriptArguments):
    """A MIND download (see `gram_hf.tasks.news_recommendation.load_mind`)."""

    data_dir: str | None = field(
        default=None,
        metadata={"help": "The folder holding MIND<variant>_train / _dev (/ _test), or train/ dev/ test/ folders."},
    )
    variant: str | None = field(default=None, metadata={"help": "small or large, when data_dir holds both."})
    text_fields: str = field(
        default="title,abstract", metadata={"help": "News fields encoded, comma-separated: title, abstract, body."}
    )
    body_file: str | None = field(default=None, metadata={"help": "A NewsID<TAB>body file (for text field body)."})
    npratio: int = field(default=4, metadata={"help": "Negatives sampled per click in training (paper: 4)."})
    max_history: int = field(default=50, metadata={"help": "Most recent clicks kept per history (paper: 50)."})
    validation_fraction: float = field(
        default=0.1,
        metadata={"help": "Share of *_train impressions held out for early stopping; 0: early-stop on *_dev."},
    )
    split_seed: int = field(default=0, metadata={"help": "Seed of negative sampling and the validation carve-out."})
    strict: bool = field(default=False, metadata={"help": "Fail on NewsIDs absent from every news.tsv."})
    predict_test: bool = field(
        default=False, metadata={"help": "Write prediction.txt/.zip for the labelless *_test split (MINDlarge)."}
    )


def load(args: RecipeArguments) -> tuple[InteractionData, str, dict]:
    """
    The MIND download (the given folder, or the embedded default's cached synthetic one), its description and, with
    `--predict_test`, the step that writes the leaderboard submission after training.
    """
    data_args = args.data
    if args.synthetic:
        synthetic = synthetic_mind(
            data_args.synthetic_preset or "small", data_args.synthetic_scale or 0.01, data_args.synthetic_seed,
            data_args.synthetic_dir, data_args.synthetic_structure,
        )  # fmt: skip
        data_dir, variant, source = synthetic.paths["data_dir"], synthetic.options["variant"], synthetic.describe()
    else:
        data_dir, variant, source = data_args.data_dir, data_args.variant, data_args.data_dir
    data = load_mind(
        data_dir,
        text_fields=split_list(data_args.text_fields),
        max_history=data_args.max_history,
        npratio=data_args.npratio,
        seed=data_args.split_seed,
        validation_fraction=data_args.validation_fraction,
        strict=data_args.strict,
        variant=variant,
        body_file=data_args.body_file,
        cache_dir=data_args.dataset_cache_dir,
    )
    if not data_args.predict_test:
        return data, source, {}
    if "test" not in data:
        raise ValueError("--predict_test needs a MIND*_test folder (MINDlarge_test), but the data has none.")
    folders = find_mind_folders(data_dir, variant, data_args.body_file)
    behaviors = folders.behaviors_file("test") if "test" in folders.folders else None

    def after_training(trainer, results):
        """The leaderboard submission for the labelless test split, written by the main process."""
        output = trainer.predict(data["test"], metric_key_prefix="predict")
        if trainer.is_world_process_zero():
            path = write_mind_prediction_from_output(
                output, data["test"], args.training.output_dir, behaviors_file=behaviors
            )
            results["prediction"] = str(path)
            logger.info("Wrote the leaderboard submission %s", path)

    return data, source, {"after_training": after_training}


def main(argv: list[str] | None = None) -> dict:
    """Runs the recipe on `argv` (default: the command line) and returns its results (also in results.json)."""
    return run_program(
        DataArguments, argv, recipe=RECIPE, task="news_recommendation", defaults=DEFAULTS, demo_defaults=DEMO_DEFAULTS,
        uses_synthetic=lambda data: data.data_dir is None, description="MIND", load=load,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
