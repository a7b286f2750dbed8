"""
The shared pieces of the programs in `recipes/` (in the manner of trl's `ScriptArguments` / `ModelConfig`): argument
dataclasses, the embedded default's synthetic data cache, building the [`GramModel`], and the one train / evaluate /
export / report path every recipe takes.

A recipe is a thin program:

```python
args = parse_recipe_args(DataArguments, argv, defaults=..., demo_defaults=..., uses_synthetic=...)
with args.training.main_process_first(desc="loading data"):
    data, source = load_my_dataset(args.data)  # real files, or the cached synthetic ones
results = run_knowledge_tracing(data, args, recipe="toeic", source=source)
```

**Embedded default.** Without data arguments a recipe generates its dataset's synthetic raw files (the real format,
read by the real loader) once, caches them under `$HF_HOME/gram_hf/synthetic/<dataset>-<preset>-<scale>-<seed>`, and
trains on them with the shipped all-MiniLM-L6-v2 encoder. The recipe's *demo defaults* (fewer epochs, a larger learning
rate for the few steps a small dataset has, ...) then replace the paper's defaults, but only for the settings not given
on the command line; the results table lists the ones applied.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import EarlyStoppingCallback, HfArgumentParser, set_seed
from transformers.utils import logging as hf_logging

from .adapters import LoraArguments
from .modeling import GramModel, default_encoder_path
from .trainer import GramTrainer
from .training_args import GramTrainingArguments

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

    from .data import InteractionData
    from .items import ItemCatalog

logger = logging.getLogger(__name__)

RESULTS_NAME = "results.json"
SYNTHETIC_MANIFEST_NAME = "gram_hf_synthetic.json"

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


# ---------------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------------


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
class KnowledgeTracingArguments(ScriptArguments):
    """The canonical-form options of every knowledge-tracing loader (see `build_interaction_data`), and features."""

    max_seq_len: int = field(
        default=100, metadata={"help": "Learner sequences are cut into windows of this many interactions (paper 100)."}
    )
    test_fraction: float = field(default=0.2, metadata={"help": "Share of learners in test (paper: 0.2)."})
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of the remaining learners in validation (early stopping)."}
    )
    cold_start_items: str | None = field(
        default=None,
        metadata={
            "help": "Items held out of train to measure cold-start AUC: a count or a comma-separated list of item "
            "ids. Default: 200 (the embedded default: the preset's count, scaled)."
        },
    )
    split_seed: int = field(default=0, metadata={"help": "Seed of the learner split and the cold-start choice."})
    min_interactions: int = field(default=1, metadata={"help": "Learners with fewer interactions are dropped."})
    strict: bool = field(default=False, metadata={"help": "Fail on interactions naming unknown items."})
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
        Keyword arguments of the loaders' canonical step; `cold_start_items` replaces --cold_start_items (whose own
        default is 200).
        """
        cold: int | list[str]
        text = (self.cold_start_items or "").strip()
        if cold_start_items is not None:
            cold = cold_start_items if isinstance(cold_start_items, int) else list(cold_start_items)
        elif not text:
            cold = 200
        elif text.lstrip("-").isdigit():
            cold = int(text)
        else:
            cold = split_list(text)
        return {
            "max_seq_len": self.max_seq_len,
            "test_fraction": self.test_fraction,
            "validation_fraction": self.validation_fraction,
            "cold_start_items": cold,
            "seed": self.split_seed,
            "min_interactions": self.min_interactions,
            "strict": self.strict,
            "cache_dir": self.dataset_cache_dir,
        }


@dataclass
class ModelArguments(LoraArguments):
    """
    The [`GramModel`]: content encoder (backbone, pooling, projection, optional LoRA), item text lengths and head
    options. With `--gram_mode nocontent` an item-ID table of `item_dim` (default: the encoder's hidden size) replaces
    the encoder.
    """

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
    """

    data: Any
    model: ModelArguments
    training: GramTrainingArguments
    synthetic: bool
    demo_settings: dict[str, Any]
    explicit: frozenset[str]
    start_time: float

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


def parse_recipe_args(
    data_class: type[ScriptArguments],
    argv: Sequence[str] | None = None,
    *,
    defaults: Mapping[str, Any],
    demo_defaults: Mapping[str, Any],
    uses_synthetic: Callable[[Any], bool],
) -> RecipeArguments:
    """
    Parses `(data_class, ModelArguments, GramTrainingArguments)` from `argv` (default: `sys.argv[1:]`).

    `defaults` (any field of the three) replace the dataclasses' defaults: the paper's settings for real data. When
    `uses_synthetic(data_args)` says no data was given, `demo_defaults` are applied on top, again only to the options
    not on the command line, so `--num_train_epochs 10` still wins over the demo's epochs.
    """
    start_time = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((data_class, ModelArguments, GramTrainingArguments))
    parser.set_defaults(**defaults)
    if not _has_accelerator():
        # On a machine without an accelerator the run is on the CPU anyway, but TrainingArguments needs `use_cpu` to
        # accept `--bf16` there, and to set up the gloo process group for several processes (`accelerate launch
        # --multi_gpu --num_processes N` on a CPU).
        parser.set_defaults(use_cpu=True)
    synthetic = False
    demo_settings: dict[str, Any] = {}
    explicit = _explicit_destinations(parser, argv)
    if not {"-h", "--help"} & set(argv):
        # First the data arguments alone, to learn whether the embedded default runs (and TrainingArguments, which
        # sets up devices, is built once).
        data_fields = {f.name for f in fields(data_class)}
        probe = HfArgumentParser(data_class, allow_abbrev=False)
        probe.set_defaults(**{k: v for k, v in defaults.items() if k in data_fields})
        probe_args, _ = probe.parse_known_args(argv)
        probe_data = data_class(**{k: v for k, v in vars(probe_args).items() if k in data_fields})
        synthetic = bool(uses_synthetic(probe_data))
        if synthetic:
            demo_settings = {key: value for key, value in demo_defaults.items() if key not in explicit}
            parser.set_defaults(**demo_settings)
    data_args, model_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    setup_logging(training_args)
    return RecipeArguments(
        data_args, model_args, training_args, synthetic, demo_settings, frozenset(explicit), start_time
    )


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
    logging.getLogger("gram_hf").setLevel(level)
    hf_logging.set_verbosity(level)


# ---------------------------------------------------------------------------------------------------------------------
# Synthetic data of the embedded default
# ---------------------------------------------------------------------------------------------------------------------


def synthetic_root(synthetic_dir: str | os.PathLike | None = None) -> Path:
    """Where synthetic datasets are cached: `synthetic_dir`, or `$HF_HOME/gram_hf/synthetic`."""
    if synthetic_dir is not None:
        return Path(synthetic_dir).expanduser()
    from huggingface_hub import constants

    hf_home = os.environ.get("HF_HOME") or constants.HF_HOME
    return Path(hf_home).expanduser() / "gram_hf" / "synthetic"


@dataclass
class SyntheticDataset:
    """
    A cached synthetic raw dataset.

    Attributes:
        folder (`Path`): its cache folder.
        name, preset (`str`), scale (`float`), seed (`int`): what was generated.
        paths (`dict[str, str]`): the raw files/folders to give the loader (absolute).
        options (`dict`): other loader arguments (e.g. the Duolingo track).
        info (`dict`): the generator's counts (users, items, interactions, cold-start items, ...).
        created (`bool`): generated by this call (False: reused from the cache).
    """

    folder: Path
    name: str
    preset: str
    scale: float
    seed: int
    paths: dict[str, str]
    options: dict[str, Any]
    info: dict[str, Any]
    created: bool = False

    def describe(self) -> str:
        return f"synthetic {self.name} (preset {self.preset}, scale {self.scale:g}, seed {self.seed}) in {self.folder}"


def _generator_version(generate: Callable) -> str:
    """A hash of the generator's source file: a changed generator invalidates the cached data."""
    try:
        source = Path(inspect.getsourcefile(generate)).read_bytes()
    except (TypeError, OSError):
        source = repr(generate).encode()
    return hashlib.sha256(source).hexdigest()[:16]


def cached_synthetic_dataset(
    name: str,
    preset: str,
    scale: float,
    seed: int,
    generate: Callable[[Path], tuple[dict[str, str], dict[str, Any], dict[str, Any]]],
    *,
    synthetic_dir: str | os.PathLike | None = None,
    version_of: Callable | None = None,
) -> SyntheticDataset:
    """
    The synthetic dataset `<name>-<preset>-<scale>-<seed>` in the cache, generated on first use.

    `generate(folder)` writes the raw files into `folder` and returns `(paths, options, info)`: paths (absolute, under
    `folder`) the loader reads, other loader options, and counts. It writes into a private staging folder that is
    renamed into place when complete, so concurrent runs and interrupted ones never see half-written data; a cache
    written by another version of the generator (`version_of`, default `generate`) is regenerated.
    """
    root = synthetic_root(synthetic_dir)
    folder = root / f"{name}-{preset}-{scale:g}-{seed}"
    version = _generator_version(version_of or generate)
    manifest_path = folder / SYNTHETIC_MANIFEST_NAME
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("generator_version") == version:
            return _from_manifest(folder, manifest, created=False)
        logger.info("Regenerating %s: it was written by another version of the generator.", folder)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{folder.name}.tmp-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        logger.info("Generating synthetic %s data (preset %s, scale %g, seed %d) ...", name, preset, scale, seed)
        paths, options, info = generate(staging)
        manifest = {
            "name": name,
            "preset": preset,
            "scale": scale,
            "seed": seed,
            "generator_version": version,
            "paths": {key: os.path.relpath(path, staging) for key, path in paths.items()},
            "options": options,
            "info": info,
        }
        (staging / SYNTHETIC_MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(staging, folder)
        except OSError:
            # Another run put the same dataset in place first: use that one.
            shutil.rmtree(staging, ignore_errors=True)
            return cached_synthetic_dataset(
                name, preset, scale, seed, generate, synthetic_dir=synthetic_dir, version_of=version_of
            )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _from_manifest(folder, manifest, created=True)


def _from_manifest(folder: Path, manifest: dict[str, Any], created: bool) -> SyntheticDataset:
    return SyntheticDataset(
        folder=folder,
        name=manifest["name"],
        preset=manifest["preset"],
        scale=float(manifest["scale"]),
        seed=int(manifest["seed"]),
        paths={key: str(folder / relative) for key, relative in manifest["paths"].items()},
        options=manifest["options"],
        info=manifest["info"],
        created=created,
    )


_KT_WRITERS = {
    "duolingo": "write_synthetic_duolingo",
    "ednet": "write_synthetic_ednet",
    "poj": "write_synthetic_poj",
    "kt_csv": "write_synthetic_kt_csv",
}


def synthetic_knowledge_tracing(
    name: str, preset: str, scale: float, seed: int = 0, synthetic_dir: str | os.PathLike | None = None
) -> SyntheticDataset:
    """
    Cached synthetic knowledge-tracing raw files (`name`: `duolingo`, `ednet`, `poj` or `kt_csv`), written by the
    generators of `gram_hf.tasks.knowledge_tracing.raw_synthetic` in the real formats.
    """
    from .tasks.knowledge_tracing import raw_synthetic

    if name not in _KT_WRITERS:
        raise ValueError(f"Unknown synthetic knowledge-tracing dataset {name!r}; choose from {sorted(_KT_WRITERS)}.")
    writer = getattr(raw_synthetic, _KT_WRITERS[name])

    def generate(folder: Path):
        truth = writer(folder, preset=preset, scale=scale, seed=seed)
        paths, options = {}, {}
        for key, value in truth.files.items():
            if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_relative_to(folder):
                paths[key] = value
            else:
                options[key] = value
        info = {
            "users": truth.num_users,
            "items": len(truth.item_ids),
            "interactions": truth.num_interactions,
            "cold_start_items": truth.cold_start_items,
            "correct_rate": round(truth.correct_rate, 4),
        }
        return paths, options, info

    return cached_synthetic_dataset(
        name, preset, scale, seed, generate, synthetic_dir=synthetic_dir, version_of=raw_synthetic.write_synthetic_poj
    )


def knowledge_tracing_data(
    args: RecipeArguments, name: str, default_preset: str, default_scale: float
) -> tuple[SyntheticDataset | None, dict[str, Any]]:
    """
    For a knowledge-tracing recipe: the cached synthetic raw files when the embedded default runs (else `None`), and
    the loader's canonical keyword arguments. The synthetic data brings its own cold-start count (the preset's,
    scaled), used unless `--cold_start_items` is on the command line.
    """
    data_args = args.data
    if not args.synthetic:
        return None, data_args.canonical_kwargs()
    synthetic = synthetic_knowledge_tracing(
        name,
        data_args.synthetic_preset or default_preset,
        data_args.synthetic_scale or default_scale,
        data_args.synthetic_seed,
        data_args.synthetic_dir,
    )
    cold_start = None if args.given("cold_start_items") else int(synthetic.info["cold_start_items"])
    return synthetic, data_args.canonical_kwargs(cold_start)


def synthetic_mind(
    preset: str, scale: float, seed: int = 0, synthetic_dir: str | os.PathLike | None = None
) -> SyntheticDataset:
    """A cached synthetic MIND download (`MIND<preset>_train/_dev` and, for `large`, `_test`) in MIND's raw format."""
    from .tasks.news_recommendation import synthetic

    def generate(folder: Path):
        truth = synthetic.make_synthetic_mind(folder, preset, scale, seed=seed)
        info = {
            "users": len(truth.user_ids),
            "news": len(truth.news_ids),
            **{f"{role}_impressions": split.num_impressions for role, split in truth.splits.items()},
        }
        return {"data_dir": str(folder)}, {"variant": truth.variant}, info

    return cached_synthetic_dataset(
        "mind", preset, scale, seed, generate, synthetic_dir=synthetic_dir, version_of=synthetic.make_synthetic_mind
    )


# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------


def build_model(
    model_args: ModelArguments,
    training_args: GramTrainingArguments,
    *,
    head_type: str,
    head_config: Mapping[str, Any] | None = None,
    num_items: int,
    default_pooling: str = "mean",
) -> GramModel:
    """
    The recipe's [`GramModel`]: the content encoder from `model_args.encoder_name_or_path` (default: the shipped
    MiniLM) with the task's pooling and an optional LoRA adapter (`--lora_r`), or, for `--gram_mode nocontent`, an
    item-ID table of `num_items` rows; the head `head_type` with `head_config` and the command line's head options.
    """
    head_config = {**(head_config or {}), **model_args.head_kwargs()}
    set_seed(training_args.seed)  # the new weights (head, pooling, projection, adapter) start the same everywhere
    if training_args.gram_mode == "nocontent":
        if model_args.lora_r is not None:
            raise ValueError("--lora_r adapts the content encoder; gram_mode='nocontent' has none.")
        item_dim = model_args.item_dim
        if item_dim is None:
            from transformers import AutoConfig

            item_dim = AutoConfig.from_pretrained(model_args.encoder_path).hidden_size
        return GramModel.for_item_ids(num_items, item_dim, head_type=head_type, head_config=head_config)
    return GramModel.from_encoder_pretrained(
        model_args.encoder_path,
        head_type=head_type,
        head_config=head_config,
        pooling=model_args.pooling or default_pooling,
        item_dim=model_args.item_dim,
        attention_pooling_dim=model_args.attention_pooling_dim,
        lora_config=model_args.to_lora_config(),
    )


def load_tokenizer(model_args: ModelArguments) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_args.encoder_path)


# ---------------------------------------------------------------------------------------------------------------------
# Train, evaluate, export, report
# ---------------------------------------------------------------------------------------------------------------------


def make_trainer(
    args: RecipeArguments,
    *,
    model: GramModel,
    catalog: ItemCatalog | None,
    tokenizer: PreTrainedTokenizerBase | None,
    collator: Callable,
    compute_metrics: Callable,
    train_dataset: datasets.Dataset,
    eval_dataset: datasets.Dataset | None,
) -> GramTrainer:
    """A [`GramTrainer`] with early stopping on the validation metric (`--early_stopping_patience`, 0 = off)."""
    training_args = args.training
    if tokenizer is not None and tokenizer.pad_token_id is not None:
        # Saves the Trainer from "aligning" the config with the tokenizer (and warning about it).
        model.config.pad_token_id = tokenizer.pad_token_id
    callbacks = []
    patience = args.data.early_stopping_patience
    if patience > 0 and eval_dataset is not None and training_args.eval_strategy != "no":
        if not training_args.metric_for_best_model:
            raise ValueError("Early stopping needs --metric_for_best_model (e.g. auc).")
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    return GramTrainer(
        model=model,
        args=training_args,
        item_catalog=catalog,
        data_collator=collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=callbacks,
    )


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN/inf become None, numpy scalars Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def train_and_evaluate(
    trainer: GramTrainer,
    args: RecipeArguments,
    *,
    test_dataset: datasets.Dataset,
    test_split: str,
    recipe: str,
    source: str,
) -> dict[str, Any]:
    """
    Trains (resuming from `--resume_from_checkpoint` when given), evaluates on `test_dataset` with metric prefix
    `test` (the best checkpoint's model when `load_best_model_at_end`), and gathers the results: metrics, wall time and
    GRAM's cost counters. Every process returns the same results.
    """
    training_args = args.training
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "last"):
        resume = True  # the last complete checkpoint in output_dir
    start = time.perf_counter()
    train_output = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - start
    # Early stopping watches validation metrics; the final evaluation is not one of them.
    trainer.remove_callback(EarlyStoppingCallback)
    test_metrics = trainer.evaluate(test_dataset, metric_key_prefix="test")
    counters = trainer.gram_metrics()
    results = {
        "recipe": recipe,
        "data": source,
        "synthetic": args.synthetic,
        "demo_settings": dict(args.demo_settings),
        "gram_mode": training_args.gram_mode,
        "gram_interval": training_args.gram_interval,
        "encoder": None if trainer.gram_model.encoder is None else args.model.encoder_path,
        "test_split": test_split,
        "test_metrics": test_metrics,
        "best_validation": {
            "metric": training_args.metric_for_best_model,
            "value": trainer.state.best_metric,
            "checkpoint": trainer.state.best_model_checkpoint,
        },
        "train_metrics": train_output.metrics,
        "epochs": trainer.state.epoch,
        "steps": trainer.state.global_step,
        "train_seconds": train_seconds,
        "gram_counters": counters,
        "world_size": training_args.world_size,
    }
    return results


def export_and_report(trainer: GramTrainer, args: RecipeArguments, results: dict[str, Any]) -> dict[str, Any]:
    """
    Saves the model (`trainer.save_model`, the whole [`GramModel`]), exports the encoder (`--save_encoder`, on by
    default), pushes to the Hub when asked (`--push_to_hub`, `--push_encoder_to_hub REPO`), then writes
    `<output_dir>/results.json` and prints the results table (main process only).
    """
    training_args, data_args = args.training, args.data
    trainer.save_model()
    if trainer.is_world_process_zero():
        trainer.save_state()
    encoder_path = None
    has_encoder = trainer.gram_model.encoder is not None
    if has_encoder and data_args.save_encoder:
        encoder_path = trainer.save_encoder(data_args.encoder_output_dir, adapter_only=data_args.encoder_adapter_only)
    if has_encoder and data_args.push_encoder_to_hub:
        trainer.push_encoder_to_hub(data_args.push_encoder_to_hub, adapter_only=data_args.encoder_adapter_only)
    if training_args.push_to_hub:
        encoder = args.model.encoder_name_or_path  # a Hub id or folder the user named (None: the shipped MiniLM)
        trainer.push_to_hub(finetuned_from=encoder, tags=["gram-hf", results["recipe"]])
    results = {
        **results,
        "model_dir": os.path.abspath(training_args.output_dir),
        "encoder_export": encoder_path,
        "total_seconds": time.perf_counter() - args.start_time,
    }
    results = _clean(results)
    if trainer.is_world_process_zero():
        path = Path(training_args.output_dir) / RESULTS_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(results, indent=2), encoding="utf-8")
        os.replace(temporary, path)
        print("\n" + format_results_table(results) + "\n", flush=True)
    trainer.accelerator.wait_for_everyone()
    return results


_METRIC_NAMES = {
    "auc": "AUC",
    "cold_start_auc": "cold-start AUC",
    "accuracy": "accuracy",
    "cold_start_accuracy": "cold-start accuracy",
    "mrr": "MRR",
    "ndcg@5": "nDCG@5",
    "ndcg@10": "nDCG@10",
    "loss": "loss",
}


def format_results_table(results: Mapping[str, Any]) -> str:
    """The short results table a recipe prints: data, mode, metrics, wall time and encoder work vs E2E."""
    rows: list[tuple[str, str]] = [("recipe", str(results["recipe"])), ("data", str(results["data"]))]
    if results.get("dataset"):
        rows.append(("dataset", str(results["dataset"])))
    demo = {k: v for k, v in (results.get("demo_settings") or {}).items() if not k.startswith("synthetic_")}
    if demo:
        settings = ", ".join(f"{key}={value}" for key, value in demo.items())
        rows.append(("demo settings (not given on the command line)", settings))
    mode = results["gram_mode"]
    rows.append(("mode", f"{mode} (interval {results['gram_interval']})" if mode == "gram" else mode))
    if results.get("encoder"):
        rows.append(("content encoder", str(results["encoder"])))
    epochs = results.get("epochs") or 0
    rows.append(("trained", f"{results['steps']} steps, {epochs:.2f} epochs, {results['world_size']} process(es)"))
    best = results.get("best_validation") or {}
    if best.get("value") is not None:
        rows.append((f"best validation {best['metric']}", f"{best['value']:.4f}"))
    metrics = results["test_metrics"]
    split = results["test_split"]
    for key, name in _METRIC_NAMES.items():
        value = metrics.get(f"test_{key}")
        if f"test_{key}" in metrics:
            rows.append((f"{split} {name}", "n/a (one class only)" if value is None else f"{value:.4f}"))
    rows.append(("training wall time", f"{results['train_seconds']:.1f} s (total {results['total_seconds']:.1f} s)"))
    counters = results["gram_counters"]
    occurrences = int(counters["gram/occurrences"])
    backward = int(counters["gram/encoder_items_backward"])
    rows.append(("item occurrences (E2E: one encoder fwd+bwd each)", f"{occurrences:,}"))
    rows.append(("encoder items, no-grad forward", f"{int(counters['gram/encoder_items_forward']):,}"))
    saving = f" ({occurrences / backward:.1f}x fewer than E2E)" if 0 < backward < occurrences else ""
    rows.append(("encoder items, forward+backward", f"{backward:,}{saving}"))
    rows.append(("R_batch (occurrences / unique items per batch)", f"{counters['gram/r_batch']:.2f}"))
    rows.append(("model (trainer.save_model)", str(results["model_dir"])))
    export = results.get("encoder_export") or ("not saved" if results.get("encoder") else "none (item-ID table)")
    rows.append(("encoder export (AutoModel)", str(export)))
    width = max(len(name) for name, _ in rows)
    title = f" gram-hf {results['recipe']} results "
    rule = "=" * min(119, width + 2 + max(len(value) for _, value in rows))
    lines = [title.center(len(rule), "="), *(f"{name.ljust(width)}  {value}" for name, value in rows), rule]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------------------------


def run_knowledge_tracing(data: InteractionData, args: RecipeArguments, *, recipe: str, source: str) -> dict:
    """
    Knowledge tracing on a loaded dataset: the LSTM head over item vectors (with `--features`), early stopping on
    validation AUC, final AUC, accuracy and cold-start AUC on `test`, export and report. Returns the results.
    """
    from .metrics import KnowledgeTracingMetrics
    from .tasks.knowledge_tracing import KnowledgeTracingCollator

    data_args, model_args, training_args = args.data, args.model, args.training
    features = split_list(data_args.features)
    current = split_list(data_args.current_features)
    available = data.stats.get("features", {})
    unknown = [name for name in features if name not in available]
    if unknown:
        raise ValueError(f"--features {unknown} are not features of this dataset; it has {sorted(available)}.")
    not_fed = [name for name in current if name not in features]
    if not_fed:
        raise ValueError(f"--current_features {not_fed} must also be among --features {features}.")
    head_config: dict[str, Any] = {}
    if features:
        head_config = {"features": {name: int(available[name]) for name in features}, "current_features": current}
    model = build_model(
        model_args, training_args, head_type="knowledge_tracing", head_config=head_config, num_items=data.num_items
    )
    tokenizer = catalog = None
    if model.encoder is not None:
        tokenizer = load_tokenizer(model_args)
        with training_args.main_process_first(desc="tokenizing items"):
            catalog = data.catalog(tokenizer, max_length=model_args.item_max_length or 128)
    trainer = make_trainer(
        args,
        model=model,
        catalog=catalog,
        tokenizer=tokenizer,
        collator=KnowledgeTracingCollator(max_seq_len=data_args.max_seq_len, feature_columns=features),
        compute_metrics=KnowledgeTracingMetrics(cold_start_items=data.items["cold_start"]),
        train_dataset=data["train"],
        eval_dataset=_non_empty(data, "validation", training_args),
    )
    results = train_and_evaluate(trainer, args, test_dataset=data["test"], test_split="test", recipe=recipe,
                                 source=source)  # fmt: skip
    stats = data.stats
    results["dataset"] = (
        f"{stats['users']['total']:,} learners, {stats['interactions']['total']:,} interactions, "
        f"{stats['items']['total']:,} items ({stats['items']['cold_start']:,} cold-start)"
    )
    return export_and_report(trainer, args, results)


def run_news_recommendation(
    data: InteractionData,
    args: RecipeArguments,
    *,
    recipe: str,
    source: str,
    predict_test: bool = False,
    test_behaviors_file: str | os.PathLike | None = None,
) -> dict:
    """
    News recommendation on a loaded MIND dataset: the NRMS head over news vectors (attention pooling by default),
    early stopping on validation AUC, final AUC, MRR and nDCG@5/10 on `dev` (MIND's labelled evaluation split), and,
    with `predict_test`, a leaderboard submission (`prediction.txt`, `prediction.zip` in the output folder) for the
    labelless `test` split. Returns the results.
    """
    from .metrics import NewsRecommendationMetrics
    from .tasks.news_recommendation import (
        NEWS_DEFAULT_POOLING,
        NewsRecommendationCollator,
        build_news_catalog,
        write_mind_prediction_from_output,
    )

    model_args, training_args = args.model, args.training
    if "dev" in data:
        eval_split, test_split = "validation", "dev"
    else:
        eval_split, test_split = "validation", "validation"
        logger.warning(
            "The validation split is MIND's dev split, which is also reported: pass --validation_fraction > 0 to "
            "early-stop on impressions held out of train instead."
        )
    if predict_test and "test" not in data:
        raise ValueError("--predict_test needs a MIND*_test folder (MINDlarge_test), but the data has none.")
    model = build_model(
        model_args,
        training_args,
        head_type="news_recommendation",
        num_items=data.num_items,
        default_pooling=NEWS_DEFAULT_POOLING,
    )
    tokenizer = catalog = None
    if model.encoder is not None:
        tokenizer = load_tokenizer(model_args)
        lengths = [int(n) for n in split_list(model_args.item_field_max_lengths)] or None
        with training_args.main_process_first(desc="tokenizing news"):
            catalog = build_news_catalog(data, tokenizer, max_lengths=lengths)
    trainer = make_trainer(
        args,
        model=model,
        catalog=catalog,
        tokenizer=tokenizer,
        collator=NewsRecommendationCollator(max_history=data.stats.get("max_history")),
        compute_metrics=NewsRecommendationMetrics(),
        train_dataset=data["train"],
        eval_dataset=_non_empty(data, eval_split, training_args),
    )
    results = train_and_evaluate(trainer, args, test_dataset=data[test_split], test_split=test_split,
                                 recipe=recipe, source=source)  # fmt: skip
    if predict_test:
        output = trainer.predict(data["test"], metric_key_prefix="predict")
        if trainer.is_world_process_zero():
            path = write_mind_prediction_from_output(
                output, data["test"], training_args.output_dir, behaviors_file=test_behaviors_file
            )
            results["prediction"] = str(path)
            logger.info("Wrote the leaderboard submission %s", path)
    sizes = ", ".join(f"{name} {len(data[name]):,}" for name in data.splits)
    results["dataset"] = f"{data.num_items:,} news; rows: {sizes} (train: one click each, others: impressions)"
    return export_and_report(trainer, args, results)


def _non_empty(data: InteractionData, split: str, training_args: GramTrainingArguments) -> datasets.Dataset | None:
    """The evaluation split, or `None` (with a warning) when it is empty and no evaluation is asked for."""
    if split in data and len(data[split]):
        return data[split]
    if training_args.eval_strategy != "no":
        raise ValueError(
            f"The {split} split is empty, but evaluation (and early stopping) needs it: use more data or a larger "
            "--validation_fraction, or train without it (--eval_strategy no --save_strategy no "
            "--load_best_model_at_end false)."
        )
    logger.warning("No %s split: training runs without evaluation or early stopping.", split)
    return None


__all__ = [
    "KNOWLEDGE_TRACING_DEMO_DEFAULTS",
    "KNOWLEDGE_TRACING_TRAINING_DEFAULTS",
    "NEWS_TRAINING_DEFAULTS",
    "PAPER_TRAINING_DEFAULTS",
    "KnowledgeTracingArguments",
    "ModelArguments",
    "RecipeArguments",
    "ScriptArguments",
    "SyntheticDataset",
    "build_model",
    "cached_synthetic_dataset",
    "knowledge_tracing_data",
    "export_and_report",
    "format_results_table",
    "load_tokenizer",
    "make_trainer",
    "parse_recipe_args",
    "run_knowledge_tracing",
    "run_news_recommendation",
    "split_list",
    "synthetic_knowledge_tracing",
    "synthetic_mind",
    "synthetic_root",
    "train_and_evaluate",
]
