"""
The arguments of the gram-hf programs (in the manner of trl's `ScriptArguments` / `ModelConfig`): the options every
program shares, the model's, the knowledge-tracing ones, the paper's training defaults, and [`parse_recipe_args`],
which parses `(data arguments, ModelArguments, GramTrainingArguments)` and applies the embedded default's demo settings
to the options not given on the command line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from transformers import HfArgumentParser
from transformers.utils import logging as hf_logging

from ..adapters import LoraArguments
from ..checkpointing import complete_checkpoints, resolve_resume_checkpoint
from ..modeling import default_encoder_path
from ..tasks.knowledge_tracing.split_arguments import KnowledgeTracingSplitArguments
from ..training_args import GramTrainingArguments
from .command_line import UsageError, check_argument_values, raise_usage_errors

if TYPE_CHECKING:
    from ..data import InteractionData

logger = logging.getLogger(__name__)

# The GRAM paper's training setup (Yang et al., NAACL 2022, and PLM-NR for news): Adam with lr 1e-4 for both the CF
# module and the content encoder, a linear warmup, evaluation every epoch with early stopping (patience 10) on
# validation AUC, GRAM with one encoder fit per epoch.
PAPER_TRAINING_DEFAULTS: dict[str, Any] = {
    "gram_mode": "gram",
    "gram_interval": "1epoch",
    "learning_rate": 1e-4,
    "encoder_learning_rate": 1e-4,
    "optim": "adamw_torch",
    "weight_decay": 0.0,
    "lr_scheduler_type": "constant_with_warmup",
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 2,
    "load_best_model_at_end": True,
    "metric_for_best_model": "auc",
    "greater_is_better": True,
    "logging_steps": 50,
}
KNOWLEDGE_TRACING_TRAINING_DEFAULTS: dict[str, Any] = {
    **PAPER_TRAINING_DEFAULTS,
    "per_device_train_batch_size": 32,  # learners (windows of max_seq_len interactions)
    "per_device_eval_batch_size": 128,
    "num_train_epochs": 100,  # a cap: early stopping ends training
    "warmup_steps": 0.01,  # one epoch of the 100
}
# What the knowledge-tracing recipes' embedded defaults shrink (only for options not given on the command line): a
# few minutes on a CPU. Each recipe adds its synthetic preset and scale.
KNOWLEDGE_TRACING_DEMO_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 3,
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 16,
    "item_max_length": 32,
    "head_config": '{"hidden_size": 128, "num_layers": 1}',
    "save_total_limit": 1,
    "logging_steps": 20,
}
NEWS_TRAINING_DEFAULTS: dict[str, Any] = {
    **PAPER_TRAINING_DEFAULTS,
    "per_device_train_batch_size": 256,  # impressions (a click and npratio negatives each)
    "per_device_eval_batch_size": 256,
    "num_train_epochs": 5,
    "warmup_steps": 0.05,  # a quarter of the first epoch
}


def split_list(value: str | Sequence[str] | None) -> list[str]:
    """`"a, b,c"` -> `["a", "b", "c"]`; `None` or `""` -> `[]`; a sequence is taken as it is."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


@dataclass
class ScriptArguments:
    """
    Arguments every recipe shares: the embedded default's synthetic data, early stopping and the encoder export.
    Recipes subclass it with their dataset's arguments.
    """

    synthetic_preset: str | None = field(
        default=None,
        metadata={"help": "Embedded default only: the synthetic generator's preset (default: the recipe's)."},
    )
    synthetic_scale: float | None = field(
        default=None,
        metadata={"help": "Embedded default only: the size of the synthetic data, a factor on the preset's counts."},
    )
    synthetic_seed: int = field(default=0, metadata={"help": "Embedded default only: seed of the synthetic data."})
    synthetic_structure: str = field(
        default="planted",
        metadata={
            "help": "Embedded default only: planted (the item text carries the signal) or realistic (skewed "
            "popularity, collaborative structure the text explains only in part, shared and generic texts).",
            "choices": ["planted", "realistic"],
        },
    )
    synthetic_dir: str | None = field(
        default=None,
        metadata={"help": "Where synthetic data is cached; default: $HF_HOME/gram_hf/synthetic."},
    )
    dataset_cache_dir: str | None = field(
        default=None,
        metadata={"help": "The `datasets` cache of the parsed raw files (default: HF_DATASETS_CACHE)."},
    )
    early_stopping_patience: int = field(
        default=10,
        metadata={"help": "Stop after this many evaluations without a better validation AUC; 0 disables it."},
    )
    save_encoder: bool = field(
        default=True,
        metadata={"help": "Export the fine-tuned content encoder as a plain `AutoModel` folder after training."},
    )
    encoder_output_dir: str | None = field(
        default=None, metadata={"help": "Where to export the encoder; default: <output_dir>/encoder."}
    )
    encoder_adapter_only: bool = field(
        default=False,
        metadata={"help": "With LoRA: export only the adapter (PEFT format) instead of the merged backbone."},
    )
    push_encoder_to_hub: str | None = field(
        default=None,
        metadata={"help": "Also upload the encoder export to this Hub model repository (e.g. user/my-encoder)."},
    )


@dataclass
class KnowledgeTracingArguments(KnowledgeTracingSplitArguments, ScriptArguments):
    """
    The options of every knowledge-tracing recipe: the loaders' split options (the fields of
    [`~gram_hf.tasks.knowledge_tracing.KnowledgeTracingSplitArguments`]: `--max_seq_len`, `--test_fraction`,
    `--validation_fraction`, `--cold_start_items`, `--split_seed`, `--min_interactions`, `--strict`) and the head's
    features. With the embedded default, `--cold_start_items` defaults to the synthetic preset's count, scaled.
    """

    features: str | None = field(
        default=None,
        metadata={"help": "Comma-separated interaction features fed to the KT head (embedded, added to its input)."},
    )
    current_features: str | None = field(
        default=None,
        metadata={
            "help": "Those of --features known before the learner answers (e.g. the question's part); the others "
            "enter one step later, with the response."
        },
    )

    def canonical_kwargs(self, cold_start_items: int | Sequence[str] | None = None) -> dict[str, Any]:
        """
        The loaders' keyword arguments: `split` (these split options; `cold_start_items` replaces --cold_start_items)
        and `cache_dir`.
        """
        replaced = {} if cold_start_items is None else {"cold_start_items": cold_start_items}
        split = KnowledgeTracingSplitArguments.from_options(self, replaced, caller="canonical_kwargs")
        return {"split": split, "cache_dir": self.dataset_cache_dir}

    def task_options(self, data: InteractionData) -> dict[str, Any]:
        """
        [`run_task`]'s options for the knowledge-tracing task on `data`: the head's `--features` (checked against
        the dataset's, with their vocabulary sizes) and the collator's `max_seq_len`.
        """
        features = split_list(self.features)
        current = split_list(self.current_features)
        available = data.stats.get("features", {})
        unknown = [name for name in features if name not in available]
        if unknown:
            raise UsageError(f"--features {unknown} are not features of this dataset; it has {sorted(available)}.")
        not_fed = [name for name in current if name not in features]
        if not_fed:
            raise UsageError(f"--current_features {not_fed} must also be among --features {features}.")
        head_config: dict[str, Any] = {}
        if features:
            head_config = {"features": {name: int(available[name]) for name in features}, "current_features": current}
        return {"head_config": head_config, "collator_options": {"max_seq_len": self.max_seq_len}}


@dataclass
class ModelArguments(LoraArguments):
    """
    The [`GramModel`]: content encoder (backbone, pooling, projection, optional LoRA), item text lengths and head
    options. `--item_encoder id` (the same as `--gram_mode nocontent`) replaces the encoder with an item-ID table of
    `item_dim` (default: the encoder's hidden size); `--item_encoder content+id` adds a learned ID row to each item's
    content vector (hybrid), switched off for the data's cold-start items.
    """

    item_encoder: str = field(
        default="content",
        metadata={
            "help": "content: item vectors from the text encoder; id: an item-ID table (ID-only baseline, the same "
            "as --gram_mode nocontent); content+id: content vector + a learned ID row (hybrid; cold-start items keep "
            "content only).",
            "choices": ["content", "id", "content+id"],
        },
    )
    item_id_dropout: float = field(
        default=0.0,
        metadata={
            "help": "--item_encoder content+id: probability that an item's ID part is switched off in a training "
            "step, so the model also learns to rank by content alone, as it must for cold-start items."
        },
    )

    encoder_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Hub id or folder of the encoder backbone; default: the shipped all-MiniLM-L6-v2."},
    )
    pooling: str | None = field(
        default=None,
        metadata={"help": "mean | cls | attention; default: the task's (mean for KT, attention for news)."},
    )
    item_dim: int | None = field(
        default=None, metadata={"help": "Item vector size; a projection is added when it differs from the encoder's."}
    )
    attention_pooling_dim: int = field(default=200, metadata={"help": "Query size of attention pooling."})
    item_max_length: int | None = field(
        default=None,
        metadata={"help": "Item text is truncated to this many tokens, special tokens included (single-text items)."},
    )
    item_field_max_lengths: str | None = field(
        default=None,
        metadata={
            "help": "Multi-field items (news): tokens per field, comma-separated in the order of the text fields "
            "(default: 24 title, 50 abstract, 400 body)."
        },
    )
    head_dropout: float | None = field(default=None, metadata={"help": "Dropout of the task head (head default)."})
    head_config: str | None = field(
        default=None,
        metadata={
            "help": "Further head options as JSON, e.g. '{\"num_layers\": 1}' (KT: hidden_size, num_layers; news: "
            "num_attention_heads, query_dim)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.item_max_length is not None and self.item_max_length < 2:
            raise ValueError(f"item_max_length must be >= 2, got {self.item_max_length}.")
        self.head_kwargs()  # fail at parse time on malformed JSON

    @property
    def encoder_path(self) -> str:
        return self.encoder_name_or_path or default_encoder_path()

    def head_kwargs(self) -> dict[str, Any]:
        """The head options given on the command line."""
        kwargs: dict[str, Any] = {}
        if self.head_config:
            try:
                kwargs = json.loads(self.head_config)
            except json.JSONDecodeError as err:
                raise ValueError(f"--head_config is not valid JSON: {err}.") from None
            if not isinstance(kwargs, dict):
                raise ValueError(f"--head_config must be a JSON object, got {self.head_config!r}.")
        if self.head_dropout is not None:
            kwargs["dropout"] = self.head_dropout
        return kwargs


CHECKPOINT_OPTIONS = frozenset({"save_strategy", "save_steps", "save_total_limit", "resume_from_checkpoint"})
"""Options that ask for checkpoints. Without any of them the embedded default removes its checkpoints after training
(they hold the optimizers' state, only needed to resume; the model and the encoder export stay); with one it keeps
every checkpoint (up to `--save_total_limit` when given: the best and the latest always stay)."""


@dataclass
class RecipeArguments:
    """
    What [`parse_recipe_args`] returns.

    Attributes:
        data: the recipe's data arguments (a [`ScriptArguments`] subclass).
        model ([`ModelArguments`]), training ([`GramTrainingArguments`]).
        synthetic (`bool`): no data was given: the embedded default runs on synthetic data.
        demo_settings (`dict`): the demo defaults applied (those the command line did not set); empty for real data.
        explicit (`frozenset[str]`): the options given on the command line (field names).
        start_time (`float`): `time.perf_counter()` when the arguments were parsed.
        implied_settings (`dict`): settings that follow from the options given (e.g. evaluation at the steps of
            `--save_steps`, so that the best checkpoint can be restored), logged and in the results.
        keep_checkpoints (`bool`): whether the checkpoints stay after training; `False` for the embedded default
            unless a checkpoint option ([`CHECKPOINT_OPTIONS`]) was given.
    """

    data: Any
    model: ModelArguments
    training: GramTrainingArguments
    synthetic: bool
    demo_settings: dict[str, Any]
    explicit: frozenset[str]
    start_time: float
    implied_settings: dict[str, Any] = field(default_factory=dict)
    keep_checkpoints: bool = True

    def given(self, name: str) -> bool:
        """Whether the option `name` was given on the command line."""
        return name in self.explicit


def _explicit_destinations(parser: HfArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the options present in `argv` (`--x`, `--x=v`, `--no_x`, dashes or underscores)."""
    options = {}
    for action in parser._actions:
        for option in action.option_strings:
            options[option] = action.dest
    explicit = set()
    for token in argv:
        if token.startswith("--"):
            name = token.split("=", 1)[0]
            if name in options:
                explicit.add(options[name])
            elif name.replace("-", "_") in options:
                explicit.add(options[name.replace("-", "_")])
    return explicit


def _strategy(value: Any) -> str:
    return str(getattr(value, "value", value))


def _steps(value: float) -> float | int:
    """A step count as given: `20.0` (TrainingArguments' float field) is `20`, a ratio stays a float."""
    return int(value) if float(value).is_integer() else value


def _is_multiple(save_steps: float, eval_steps: float) -> bool:
    """Whether saves fall on evaluations (TrainingArguments' rule for `load_best_model_at_end`)."""
    if save_steps >= 1 and eval_steps >= 1:
        return save_steps % eval_steps == 0
    scale = 1_000_000  # ratios of the training steps, compared in integers as TrainingArguments does
    return round(save_steps * scale) % max(round(eval_steps * scale), 1) == 0


def _follow_checkpoint_options(parser: HfArgumentParser, argv: Sequence[str], explicit: set[str]) -> dict[str, Any]:
    """
    Makes the save and evaluation schedules the command line names work together, as parser defaults (so that what
    is given always wins), and returns what it set:

    - `--save_steps N` alone means `--save_strategy steps` (the programs save per epoch by default), as `--eval_steps`
      means `--eval_strategy steps`;
    - `load_best_model_at_end` (on by default) needs evaluations where checkpoints are saved: when only one of the two
      schedules is given, the other follows it;
    - `--save_strategy no` (no checkpoints) or `--eval_strategy no` (no evaluations) leave no best checkpoint to
      restore: `load_best_model_at_end` is switched off unless given.

    When both schedules are given and disagree, TrainingArguments' error stands.
    """
    implied: dict[str, Any] = {}
    for kind in ("save", "eval"):
        if f"{kind}_steps" in explicit and f"{kind}_strategy" not in explicit:
            implied[f"{kind}_strategy"] = "steps"
    parser.set_defaults(**implied)
    values = vars(parser.parse_known_args(list(argv))[0])
    if not values["load_best_model_at_end"]:
        return implied
    save, evaluate = _strategy(values["save_strategy"]), _strategy(values["eval_strategy"])
    save_steps, eval_steps = _steps(values["save_steps"]), _steps(values["eval_steps"] or values["logging_steps"])
    save_given = bool({"save_strategy", "save_steps"} & explicit)
    eval_given = bool({"eval_strategy", "eval_steps"} & explicit)
    if save == "best" or (save == evaluate and (save != "steps" or _is_multiple(save_steps, eval_steps))):
        return implied
    if "no" in (save, evaluate) and "load_best_model_at_end" not in explicit:
        implied["load_best_model_at_end"] = False
    elif save_given and not eval_given:
        implied["eval_strategy"] = save
        if save == "steps":
            implied["eval_steps"] = save_steps
    elif eval_given and not save_given:
        implied["save_strategy"] = evaluate
        if evaluate == "steps":
            implied["save_steps"] = eval_steps
    parser.set_defaults(**implied)
    return implied


def _check_resume(training_args: GramTrainingArguments, synthetic: bool) -> None:
    """
    `--resume_from_checkpoint PATH|True`, checked before any loading: the checkpoint must be there and complete.
    `True` (or `last`) becomes the last complete checkpoint of `--output_dir`.
    """
    resume = training_args.resume_from_checkpoint
    if resume is None or str(resume).strip().lower() in ("", "false", "none"):
        training_args.resume_from_checkpoint = None
        return
    wanted = True if str(resume).strip().lower() in ("true", "last") else str(resume)
    try:
        training_args.resume_from_checkpoint = str(resolve_resume_checkpoint(wanted, training_args.output_dir))
    except (OSError, ValueError) as error:
        hint = ""
        folder = training_args.output_dir if wanted is True else os.path.dirname(os.path.normpath(wanted)) or "."
        if synthetic and not complete_checkpoints(folder):
            hint = (
                " The embedded default removes its checkpoints after training unless a checkpoint option is given "
                "(--save_strategy, --save_steps, --save_total_limit)."
            )
        raise UsageError(f"--resume_from_checkpoint {resume}: {error}{hint}") from error


def _reconcile_item_encoder(
    model_args: ModelArguments, training_args: GramTrainingArguments, explicit: frozenset[str] | set[str]
) -> None:
    """
    `--item_encoder id` and `--gram_mode nocontent` are one choice (an item-ID table, trained only by `nocontent`):
    either implies the other; any other pairing is a [`UsageError`].
    """
    if model_args.item_encoder == "id":
        if "gram_mode" in explicit and training_args.gram_mode != "nocontent":
            raise UsageError(
                f"--item_encoder id trains an item-ID table; it cannot run --gram_mode {training_args.gram_mode} "
                "(drop one of them)."
            )
        training_args.gram_mode = "nocontent"
    elif training_args.gram_mode == "nocontent":
        if "item_encoder" in explicit:
            raise UsageError(
                f"--gram_mode nocontent trains an item-ID table, not --item_encoder {model_args.item_encoder} "
                "(drop one of them)."
            )
        model_args.item_encoder = "id"


def _reconcile_item_learning_rate(
    model_args: ModelArguments, training_args: GramTrainingArguments, explicit: frozenset[str] | set[str]
) -> None:
    """
    A program's `item_learning_rate` default below 1.0 (next-item's) is for hybrid item vectors under GRAM windows
    longer than one step: the ID part carries what the text does not say, so the cached content vectors need only move
    as far as the encoder can follow. Content-only vectors must carry the collaborative signal themselves, and
    Single-step GRAM is exactly E2E only at 1.0: both keep 1.0 unless `--item_learning_rate` is given.
    """
    if "item_learning_rate" in explicit or training_args.item_learning_rate == 1.0:
        return
    single_step = training_args.gram_mode == "gram" and not training_args.gram_is_multi_step
    if single_step or model_args.item_encoder != "content+id":
        reason = "Single-step GRAM (--gram_interval 1), exactly E2E" if single_step else "content-only item vectors"
        logger.info(
            f"item_learning_rate=1.0 for {reason} (the program's default {training_args.item_learning_rate:g} is for "
            "hybrid vectors under longer windows); give --item_learning_rate to choose otherwise."
        )
        training_args.item_learning_rate = 1.0


def parse_recipe_args(
    data_class: type[ScriptArguments],
    argv: Sequence[str] | None = None,
    *,
    defaults: Mapping[str, Any],
    demo_defaults: Mapping[str, Any],
    uses_synthetic: Callable[[Any], bool],
) -> RecipeArguments:
    """
    Parses `(data_class, ModelArguments, GramTrainingArguments)` from `argv` (default: `sys.argv[1:]`) and checks
    everything that can be checked before data and weights load: the values (see
    [`~gram_hf.scripts.command_line.check_argument_values`]), the flags' consistency and the checkpoint to resume
    from. Nothing is written.

    `defaults` (any field of the three) replace the dataclasses' defaults: the paper's settings for real data. When
    `uses_synthetic(data_args)` says no data was given, `demo_defaults` are applied on top, again only to the options
    not on the command line, so `--num_train_epochs 10` still wins over the demo's epochs; given a checkpoint option
    ([`CHECKPOINT_OPTIONS`]), the demo keeps every checkpoint. Save and evaluation schedules follow each other where
    only one is given (see [`RecipeArguments.implied_settings`]).

    Raises:
        [`~gram_hf.scripts.command_line.UsageError`] (a `ValueError`): a command line that cannot run, in one line.
    """
    start_time = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = raise_usage_errors(HfArgumentParser((data_class, ModelArguments, GramTrainingArguments)))
    parser.set_defaults(**defaults)
    if not _has_accelerator():
        # On a machine without an accelerator the run is on the CPU anyway, but TrainingArguments needs `use_cpu` to
        # accept `--bf16` there, and to set up the gloo process group for several processes (`accelerate launch
        # --multi_gpu --num_processes N` on a CPU).
        parser.set_defaults(use_cpu=True)
    synthetic = False
    demo_settings: dict[str, Any] = {}
    implied: dict[str, Any] = {}
    explicit = _explicit_destinations(parser, argv)
    try:
        if not {"-h", "--help"} & set(argv):
            # First the data arguments alone, to learn whether the embedded default runs (and TrainingArguments,
            # which sets up devices, is built once).
            data_fields = {f.name for f in fields(data_class)}
            probe = raise_usage_errors(HfArgumentParser(data_class, allow_abbrev=False))
            probe.set_defaults(**{k: v for k, v in defaults.items() if k in data_fields})
            probe_args, _ = probe.parse_known_args(argv)
            probe_data = data_class(**{k: v for k, v in vars(probe_args).items() if k in data_fields})
            synthetic = bool(uses_synthetic(probe_data))
            if synthetic:
                demo_settings = {key: value for key, value in demo_defaults.items() if key not in explicit}
                if CHECKPOINT_OPTIONS & explicit and "save_total_limit" not in explicit:
                    demo_settings["save_total_limit"] = None  # the checkpoints asked for are all kept
                parser.set_defaults(**demo_settings)
            implied = _follow_checkpoint_options(parser, argv, explicit)
        data_args, model_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except UsageError:
        raise
    except ValueError as error:  # a dataclass's own validation, or HfArgumentParser's unused arguments
        raise UsageError(str(error)) from error
    check_argument_values({**vars(data_args), **vars(model_args), **vars(training_args)})
    _reconcile_item_encoder(model_args, training_args, explicit)
    _reconcile_item_learning_rate(model_args, training_args, explicit)
    _check_resume(training_args, synthetic)
    setup_logging(training_args)
    if implied:
        settings = ", ".join(f"{key}={value}" for key, value in implied.items())
        logger.info(
            f"Set to go with the checkpoint options given: {settings} (the best checkpoint is restored at the end "
            "only if evaluations fall on saves); give these options to choose otherwise."
        )
    return RecipeArguments(
        data_args, model_args, training_args, synthetic, demo_settings, frozenset(explicit), start_time,
        implied_settings=implied, keep_checkpoints=not synthetic or bool(CHECKPOINT_OPTIONS & explicit),
    )  # fmt: skip


def _has_accelerator() -> bool:
    import torch

    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def setup_logging(training_args: GramTrainingArguments) -> None:
    """Python and transformers logging at the process's log level (warnings only on non-main processes)."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    # The Trainer's dataloaders ask for pinned memory, which a CPU-only machine cannot give; torch warns every epoch.
    warnings.filterwarnings("ignore", message=".*'pin_memory' argument is set as true but no accelerator.*")
    level = training_args.get_process_log_level()
    # gram-hf's own notices (the synthetic data being generated, where a resumed run starts, the settings the
    # checkpoint options imply) show on the main process unless a log level was asked for.
    passive = training_args.should_log and str(training_args.log_level) == "passive"
    logging.getLogger("gram_hf").setLevel(min(level, logging.INFO) if passive else level)
    hf_logging.set_verbosity(level)


__all__ = [
    "CHECKPOINT_OPTIONS",
    "KNOWLEDGE_TRACING_DEMO_DEFAULTS",
    "KNOWLEDGE_TRACING_TRAINING_DEFAULTS",
    "NEWS_TRAINING_DEFAULTS",
    "PAPER_TRAINING_DEFAULTS",
    "KnowledgeTracingArguments",
    "ModelArguments",
    "RecipeArguments",
    "ScriptArguments",
    "parse_recipe_args",
    "setup_logging",
    "split_list",
]
