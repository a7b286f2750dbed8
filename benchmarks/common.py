"""
Shared harness of the gram-hf benchmarks (`speed.py`, `quality.py`, `scaling.py`).

It builds the same data, encoder and trainer for every training mode, runs each mode in its own subprocess (so that
the resident-memory high-water mark is that mode's), measures wall time, peak memory and the trainer's cost counters,
and writes JSON, markdown tables and PNG charts with the exact command, library versions and hardware.

Data are the synthetic raw datasets of gram-hf (`write_synthetic_duolingo` / `_ednet` / `_poj`, `make_synthetic_mind`)
read back by the real loaders (`load_duolingo`, `load_ednet`, `load_poj`, `load_mind`): raw files are written once per
data specification into `--workdir` and the loaders' `datasets` cache is reused by every mode.

Run a single mode by hand (what the parent scripts do):

    python benchmarks/common.py worker --config run.json --output result.json
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
RESULTS_DIR = BENCHMARKS_DIR / "results"

# Training modes compared by the benchmarks: name -> (gram_mode, gram_interval).
MODES: dict[str, tuple[str, str]] = {
    "e2e": ("e2e", "1"),
    "gram-1s": ("gram", "1"),
    "gram-3s": ("gram", "3"),
    "gram-10s": ("gram", "10"),
    "gram-30s": ("gram", "30"),
    "gram-0.25e": ("gram", "0.25epoch"),
    "gram-0.5e": ("gram", "0.5epoch"),
    "gram-1e": ("gram", "1epoch"),
    "gram-auto": ("gram", "auto"),
    "nofinetune": ("nofinetune", "1"),
    "nocontent": ("nocontent", "1"),
}
MODE_LABELS = {
    "e2e": "E2E",
    "gram-1s": "GRAM 1S",
    "gram-3s": "GRAM 3S",
    "gram-10s": "GRAM 10S",
    "gram-30s": "GRAM 30S",
    "gram-0.25e": "GRAM 0.25E",
    "gram-0.5e": "GRAM 0.5E",
    "gram-1e": "GRAM 1E",
    "gram-auto": "GRAM auto",
    "nofinetune": "NoFinetune",
    "nocontent": "NoContent",
}
# The modes a benchmark runs when none are named: the paper's table (the intervals between are for the interval study).
DEFAULT_MODES = ("e2e", "gram-1s", "gram-10s", "gram-0.5e", "gram-1e", "nofinetune", "nocontent")
# Fixed GRAM intervals, shortest first: the front the adaptive interval (`gram-auto`) is compared with.
FIXED_INTERVAL_MODES = ("gram-1s", "gram-3s", "gram-10s", "gram-30s", "gram-0.25e", "gram-0.5e", "gram-1e")

# Content encoders. Speed does not depend on weight values, so the TinyBERT-shaped encoder (the paper's 6 layers,
# hidden 768) is randomly initialised from a config; every encoder uses the shipped MiniLM tokenizer (BERT uncased
# vocabulary, 30,522 word pieces).
ENCODERS: dict[str, str] = {
    "minilm": "all-MiniLM-L6-v2, pre-trained (6 layers, hidden 384, 22.7M parameters)",
    "minilm-l2": "the first 2 layers of pre-trained all-MiniLM-L6-v2 (hidden 384)",
    "tinybert-shape": "BERT of TinyBERT-6L's shape (6 layers, hidden 768, 12 heads, FFN 3072), random init",
    "tiny-random": "tiny random BERT (2 layers, hidden 32; harness tests only)",
}
NO_GRAD_COST = 1.0 / 3.0
"""Cost of a no-grad encoder forward relative to a forward+backward, used for the counted-ideal speed-up."""


# ----------------------------------------------------------------------------------------------------------- data


@dataclass
class DataSpec:
    """
    A synthetic dataset: which raw format, preset and scale, read back by the real loader.

    Args:
        dataset (`str`): `"duolingo"`, `"ednet"`, `"poj"` (knowledge tracing), `"mind"` (news recommendation) or
            `"movielens"` (next-item recommendation: `make_synthetic_movielens` read by `load_movielens`).
        preset (`str`): a knowledge-tracing preset (`en_es`, `fr_en`, `poj`, `toeic`), a MIND preset (`small`) or,
            for MovieLens, a name only (`ml`; the sizes are in `movielens_overrides`).
        scale (`float`): the generators' `scale` (MovieLens: none; its sizes are `movielens_overrides`).
        seed (`int`): generator and split seed.
        item_max_length (`int`): item text is truncated to this many word pieces (news: the title budget).
        max_seq_len (`int`): knowledge tracing: learner sequences are chunked to this length by the loader.
        preset_overrides (`dict`): knowledge tracing: `KTPreset` fields replaced (custom sizes, text length).
        mind_overrides (`dict`): news: keyword arguments of `make_synthetic_mind` (counts, history length, ...).
        structure (`str`): the generators' `structure` (`gram_hf.tasks.synthetic_structure`): `"planted"` (the text
            says it all; the files written before the option existed) or `"realistic"` (weak text, latent
            collaborative structure, Zipf popularity).
        movielens_overrides (`dict`): next-item: keyword arguments of `make_synthetic_movielens` (`num_users`,
            `num_items`, ...).
        split_overrides (`dict`): the loader's split options replaced: knowledge tracing `validation_fraction` and
            `test_fraction` (shares of learners), news `validation_fraction` (share of `*_train` impressions, 0.1 by
            default); next-item splits leave one out and take none.
    """

    dataset: str = "duolingo"
    preset: str = "en_es"
    scale: float = 1.0
    seed: int = 0
    item_max_length: int = 128
    max_seq_len: int = 100
    preset_overrides: dict[str, Any] = field(default_factory=dict)
    mind_overrides: dict[str, Any] = field(default_factory=dict)
    structure: str = "planted"
    movielens_overrides: dict[str, Any] = field(default_factory=dict)
    split_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """The short name in result file names: `kt`, `news` or `next_item`."""
        return {"mind": "news", "movielens": "next_item"}.get(self.dataset, "kt")

    @property
    def task_name(self) -> str:
        """The registered task (`gram_hf.get_task`) of this dataset."""
        return {"mind": "news_recommendation", "movielens": "next_item"}.get(self.dataset, "knowledge_tracing")

    def key(self) -> str:
        """A folder name unique to this specification (the loaders' cache ignores file contents)."""
        fields = dataclasses.asdict(self)
        # Fields added later are left out at their defaults, so earlier specifications keep their folders.
        for name, default in (("structure", "planted"), ("movielens_overrides", {}), ("split_overrides", {})):
            if fields[name] == default:
                del fields[name]
        digest = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.dataset}-{self.preset}-s{self.scale:g}-{digest}"

    def describe(self) -> str:
        extra = ""
        overrides = {**self.preset_overrides, **self.mind_overrides, **self.movielens_overrides}
        if overrides:
            extra = " " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
        structure = "" if self.structure == "planted" else f", {self.structure} structure"
        split = "".join(f", {k}={v}" for k, v in sorted(self.split_overrides.items()))
        return f"synthetic {self.dataset} preset {self.preset} scale {self.scale:g}{extra}{structure}{split}"


def _kt_preset(spec: DataSpec):
    from gram_hf.tasks.knowledge_tracing import PRESETS

    preset = PRESETS[spec.preset]
    if spec.preset_overrides:
        preset = dataclasses.replace(preset, **spec.preset_overrides)
    return preset


def prepare_data(spec: DataSpec, workdir: str | os.PathLike) -> Path:
    """
    Writes the raw files of `spec` (once) and loads them once so that the loader's `datasets` cache is filled; returns
    the folder. A `meta.json` there records the loader's arguments and the dataset's statistics.
    """
    import datasets

    datasets.disable_progress_bars()
    folder = Path(workdir) / spec.key()
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw"
    start = time.perf_counter()
    meta: dict[str, Any] = {"spec": dataclasses.asdict(spec)}
    # The planted structure is the generators' default; passing it changes no byte of their files.
    structure = {"structure": spec.structure}
    if spec.dataset == "mind":
        from gram_hf.tasks.news_recommendation import make_synthetic_mind

        make_synthetic_mind(raw, spec.preset, spec.scale, seed=spec.seed, **spec.mind_overrides, **structure)
        meta["loader"] = {}
    elif spec.dataset == "movielens":
        from gram_hf.tasks.next_item import make_synthetic_movielens

        truth = make_synthetic_movielens(raw, seed=spec.seed, **spec.movielens_overrides, **structure)
        meta["loader"] = {}
        meta["generated"] = {"users": truth.num_users, "interactions": truth.num_interactions}
    else:
        from gram_hf.tasks.knowledge_tracing import (
            write_synthetic_duolingo,
            write_synthetic_ednet,
            write_synthetic_poj,
        )

        writer = {"duolingo": write_synthetic_duolingo, "ednet": write_synthetic_ednet, "poj": write_synthetic_poj}
        truth = writer[spec.dataset](raw, _kt_preset(spec), spec.scale, spec.seed, **structure)
        meta["loader"] = {"files": truth.files, "cold_start_items": truth.cold_start_items}
        meta["generated"] = {"users": truth.num_users, "interactions": truth.num_interactions}
    meta["generate_seconds"] = time.perf_counter() - start
    (folder / "meta.tmp").write_text(json.dumps(meta, default=str))
    data = load_data(spec, workdir, meta=meta)
    meta["stats"] = json.loads(json.dumps(data.stats, default=str))
    meta_path.write_text(json.dumps(meta, indent=2, default=str))
    (folder / "meta.tmp").unlink()
    return folder


def load_data(spec: DataSpec, workdir: str | os.PathLike, meta: dict[str, Any] | None = None):
    """The [`InteractionData`] of `spec` through the real loader (served from its cache after `prepare_data`)."""
    import datasets

    datasets.disable_progress_bars()
    folder = Path(workdir) / spec.key()
    if meta is None:
        meta = json.loads((folder / "meta.json").read_text())
    cache = folder / "cache"
    if spec.dataset == "mind":
        from gram_hf.tasks.news_recommendation import load_mind

        split = {"validation_fraction": 0.1, **spec.split_overrides}
        return load_mind(folder / "raw", text_fields=("title",), seed=spec.seed, cache_dir=cache, **split)
    if spec.dataset == "movielens":
        from gram_hf.tasks.next_item import load_movielens

        if spec.split_overrides:
            raise ValueError(f"MovieLens splits leave one out; split_overrides {spec.split_overrides} do not apply.")
        return load_movielens(folder / "raw", cache_dir=str(cache))
    files = meta["loader"]["files"]
    common = {
        "cache_dir": cache,
        "cold_start_items": meta["loader"]["cold_start_items"],
        "max_seq_len": spec.max_seq_len,
        "seed": spec.seed,
        **spec.split_overrides,
    }
    if spec.dataset == "duolingo":
        from gram_hf.tasks.knowledge_tracing import load_duolingo

        return load_duolingo(folder / "raw", files["track"], **common)
    if spec.dataset == "ednet":
        from gram_hf.tasks.knowledge_tracing import load_ednet

        return load_ednet(files["kt1_dir"], files["questions_csv"], files["item_text"], **common)
    if spec.dataset == "poj":
        from gram_hf.tasks.knowledge_tracing import load_poj

        return load_poj(files["log_csv"], files["problem_text"], **common)
    raise ValueError(f"Unknown dataset {spec.dataset!r}; choose duolingo, ednet, poj, mind or movielens.")


def data_summary(data, spec: DataSpec) -> dict[str, Any]:
    """Interactions, items and users of the loaded data, with R_dataset = interactions / items."""
    stats = data.stats
    if spec.task == "kt":
        interactions = stats["interactions"]["total"] + stats["cold_start_interactions"]["removed_from_train"]
        train = stats["interactions"]["train"]
        summary = {
            "users": stats["users"]["total"],
            "items": data.num_items,
            "cold_start_items": stats["items"].get("cold_start", 0),
            "interactions": interactions,
            "train_interactions": train,
            "train_sequences": len(data["train"]),
        }
    elif spec.task == "next_item":
        train = sum(len(items) for items in data["train"]["items"])
        summary = {
            "users": stats["users"],
            "items": data.num_items,
            "cold_start_items": stats["cold_start_items"],
            "interactions": stats["interactions"],
            "train_interactions": train,
            "train_sequences": len(data["train"]),
        }
    else:
        train = sum(len(h) + len(c) for h, c in zip(data["train"]["history"], data["train"]["candidates"]))
        summary = {
            "users": len(set().union(*(data[split]["user_id"] for split in data.splits))),
            "items": data.num_items,
            "train_examples": len(data["train"]),
            "validation_impressions": len(data["validation"]),
            "train_item_references": train,
            "interactions": train,
            "train_interactions": train,
        }
    summary["r_dataset"] = summary["interactions"] / max(summary["items"], 1)
    return summary


# ---------------------------------------------------------------------------------------------------- model, trainer


def tokenizer_path() -> str:
    from gram_hf import default_encoder_path

    return default_encoder_path()


def encoder_config(encoder: str, dropout: bool = True):
    """The `BertConfig` of a randomly initialised encoder (`tinybert-shape`, `tiny-random`)."""
    from transformers import BertConfig

    drop = {} if dropout else {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    if encoder == "tinybert-shape":
        return BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=6, num_attention_heads=12,
                          intermediate_size=3072, max_position_embeddings=512, **drop)  # fmt: skip
    if encoder == "tiny-random":
        return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=512, **drop)  # fmt: skip
    raise ValueError(f"{encoder!r} is not a config-built encoder.")


ITEM_ENCODERS: dict[str, str] = {"id": "ID", "content": "Content", "content+id": "Hybrid"}
"""Item representations (`GramConfig.item_encoder`) -> the label the quality tables give them. `id` is trained only by
the `nocontent` mode (an item-ID table); `content+id` adds a learned ID row to the content vector."""


def build_model(
    encoder: str,
    mode: str,
    task: str,
    num_items: int,
    seed: int = 0,
    encoder_dropout: bool = True,
    head_dropout: float = 0.1,
    item_encoder: str = "content",
    item_dim: int | None = None,
    head_config: dict[str, Any] | None = None,
    cold_start_items: Sequence[bool] | None = None,
    item_id_dropout: float = 0.0,
):
    """
    The [`GramModel`] of a benchmark run for the registered `task`, with the task's head and pooling. The head (and a
    random encoder) is initialised from `seed`, so every mode starts from the same weights; `nocontent` gets an
    item-ID table (`item_encoder='id'`) of `item_dim` (default: the encoder's width) instead of the encoder.

    Args:
        item_encoder (`str`, *optional*, defaults to `"content"`): `"content"` or `"content+id"` (hybrid: a learned
            ID row added to each content vector; the rows of `cold_start_items` stay off); `nocontent` is `"id"`
            whatever is passed (`"content"` or `"id"`).
        item_dim (`int`, *optional*): item vector size; a projection from the encoder's width when it differs.
        head_config (`dict`, *optional*): head options beside the dropout (e.g. SASRec's `loss_type`).
        cold_start_items (`Sequence[bool]`, *optional*): a mask over the catalog of the items never in training.
        item_id_dropout (`float`, *optional*, defaults to 0.0): hybrid only: the share of ID rows switched off at each
            training step (`GramConfig.item_id_dropout`).
    """
    import torch

    from gram_hf import GramConfig, GramModel, get_task

    if encoder not in ENCODERS:
        raise ValueError(f"Unknown encoder {encoder!r}; choose from {sorted(ENCODERS)}.")
    allowed = ("content", "id") if mode == "nocontent" else ("content", "content+id")
    if item_encoder not in allowed:
        raise ValueError(f"Mode {mode!r} takes item_encoder in {allowed} (only nocontent trains 'id'), got "
                         f"{item_encoder!r}.")  # fmt: skip
    registered = get_task(task)
    head_type, pooling = registered.name, registered.default_pooling
    head_config = {**(head_config or {}), "dropout": head_dropout}
    hybrid = {"item_encoder": item_encoder, "num_items": num_items if item_encoder == "content+id" else 0}
    if item_id_dropout:
        hybrid["item_id_dropout"] = item_id_dropout
    torch.manual_seed(seed)
    if encoder.startswith("minilm"):
        kwargs: dict[str, Any] = {}
        if encoder == "minilm-l2":
            kwargs["num_hidden_layers"] = 2
        if not encoder_dropout:
            kwargs.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        hidden = 384
        if mode == "nocontent":
            return GramModel.for_item_ids(num_items, item_dim or hidden, head_type=head_type, head_config=head_config)
        model = GramModel.from_encoder_pretrained(tokenizer_path(), head_type=head_type, head_config=head_config,
                                                  pooling=pooling, item_dim=item_dim, **hybrid, **kwargs)  # fmt: skip
    else:
        config = encoder_config(encoder, encoder_dropout)
        if mode == "nocontent":
            return GramModel.for_item_ids(num_items, item_dim or config.hidden_size, head_type=head_type,
                                          head_config=head_config)  # fmt: skip
        model = GramModel(GramConfig(encoder=config, head_type=head_type, head_config=head_config, pooling=pooling,
                                     item_dim=item_dim, **hybrid))  # fmt: skip
    if item_encoder == "content+id" and cold_start_items is not None:
        model.set_cold_start_items(torch.as_tensor(list(cold_start_items), dtype=torch.bool))
    return model


def cold_start_mask(data, spec: DataSpec) -> list[bool]:
    """
    The items no training example references, as a mask over the catalog: the loaders' `cold_start` column (knowledge
    tracing's held-out items, next-item's items never in `train`) or, for news (whose loader has no such column), the
    news in no training history or candidate list. A hybrid model keeps their ID rows off; the quality metrics split
    warm from cold-start items by it.
    """
    if "cold_start" in data.items.column_names:
        return [bool(flag) for flag in data.items["cold_start"]]
    seen = [False] * data.num_items
    for column in ("history", "candidates"):
        for row in data["train"][column]:
            for item in row:
                seen[item] = True
    return [not flag for flag in seen]


def build_catalog(data, spec: DataSpec, tokenizer):
    """The task's catalog, every text field truncated to the specification's `item_max_length`."""
    from gram_hf import get_task

    return get_task(spec.task_name).build_catalog(data, tokenizer, max_length=spec.item_max_length)


def build_collator(data, spec: DataSpec, model, mode: str = "train"):
    from gram_hf import get_task

    return get_task(spec.task_name).make_collator(data, model.head, mode)


def build_metrics(data, spec: DataSpec):
    from gram_hf import get_task

    return get_task(spec.task_name).metrics(data)


# ----------------------------------------------------------------------------------------------------- measuring


class PeakRSSSampler:
    """Samples the process's resident set size in a background thread; `peak` is the highest sample (bytes)."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self._process = psutil.Process()
        self.interval = interval
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def max_rss_bytes() -> int:
    """The process's RSS high-water mark (`getrusage(RUSAGE_SELF).ru_maxrss`, KiB on Linux, bytes on macOS)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value if sys.platform == "darwin" else value * 1024)


class PhaseTimer:
    """
    Wall time of GRAM's phases, by wrapping the trainer's methods on the instance: `encoder_fit` (fitting the encoder
    to pseudo-targets at window ends), `encoder_nograd` (lazy no-grad encodes of stale items) and
    `encoder_grad_forward`
    (encoder forwards with gradients outside fits: E2E and Single-step GRAM; their backward runs with the CF's).
    """

    def __init__(self, trainer, cuda: bool = False):
        self.seconds: dict[str, float] = {"encoder_fit": 0.0, "encoder_nograd": 0.0, "encoder_grad_forward": 0.0}
        # Token slots of those gradient forwards: each is one batch padded to its longest item, so E2E with larger
        # micro-batches computes more padding per real token (the counters count real tokens only).
        self.padded_tokens = 0
        self.cuda = cuda
        self._in_fit = False
        self._wrap(trainer, "_fit_encoder_to_item_table", "encoder_fit", fit=True)
        self._wrap(trainer, "_refresh_item_table", "encoder_nograd")
        original_encode = trainer._encode
        lengths = trainer.item_catalog.lengths

        def encode(gram_model, index, with_grad, count=True):
            if not with_grad or self._in_fit:
                return original_encode(gram_model, index, with_grad, count)
            if index.numel():
                self.padded_tokens += index.numel() * int(lengths[index.cpu()].max())
            start = self._now()
            try:
                return original_encode(gram_model, index, with_grad, count)
            finally:
                self.seconds["encoder_grad_forward"] += self._now() - start

        trainer._encode = encode

    def _now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def _wrap(self, trainer, name: str, phase: str, fit: bool = False) -> None:
        original = getattr(trainer, name)

        def wrapped(*args, **kwargs):
            start = self._now()
            self._in_fit = fit
            try:
                return original(*args, **kwargs)
            finally:
                self._in_fit = False
                self.seconds[phase] += self._now() - start

        setattr(trainer, name, wrapped)

    def snapshot(self) -> dict[str, float]:
        return dict(self.seconds)

    def padded_snapshot(self) -> dict[str, float]:
        return {"encoder_grad_forward_padded_tokens": self.padded_tokens}


def _counters(trainer) -> dict[str, int]:
    return dict(trainer.gram_counters)


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0) for key in after}


def make_training_args(config: dict[str, Any], output_dir: str, **overrides: Any):
    """`GramTrainingArguments` of a run: the mode, batch sizes, device, precision and quiet logging."""
    from gram_hf import GramTrainingArguments

    gram_mode, interval = MODES[config["mode"]]
    accumulation = int(config.get("gradient_accumulation_steps", 1))
    if config["batch_size"] % accumulation:
        raise ValueError(f"batch_size {config['batch_size']} is not a multiple of the accumulation {accumulation}.")
    settings = {
        "output_dir": output_dir,
        "gram_mode": gram_mode,
        "gram_interval": interval,
        # A CF batch of `batch_size` examples per optimizer step, in `accumulation` micro-batches (E2E's memory).
        "per_device_train_batch_size": config["batch_size"] // accumulation,
        "gradient_accumulation_steps": accumulation,
        "per_device_eval_batch_size": config.get("eval_batch_size", 64),
        "learning_rate": config.get("learning_rate", 1e-3),
        "encoder_learning_rate": config.get("encoder_learning_rate", 1e-4),
        "item_id_learning_rate": config.get("item_id_learning_rate"),
        "item_learning_rate": config.get("item_learning_rate", 1.0),
        "encoder_batch_size": config.get("encoder_batch_size", 32),
        "encoder_eval_batch_size": config.get("encoder_eval_batch_size", 256),
        # GRAM's encoder fit: one optimizer step per window ('accumulate', the library default) or per mini-batch.
        "encoder_update": config.get("encoder_update", "accumulate"),
        "encoder_epochs": int(config.get("encoder_epochs", 1)),
        **({"gram_auto_drift": config["gram_auto_drift"]} if config.get("gram_auto_drift") is not None else {}),
        "num_train_epochs": config.get("epochs", 1),
        "lr_scheduler_type": "constant",
        "save_strategy": "no",
        "eval_strategy": "no",
        "logging_strategy": "no",
        "disable_tqdm": True,
        "report_to": "none",
        "dataloader_num_workers": 0,
        "seed": config.get("seed", 0),
        "use_cpu": config.get("device", "cpu") == "cpu",
        "bf16": bool(config.get("bf16", False)),
    }
    settings.update(overrides)
    return GramTrainingArguments(**settings)


def _setup(config: dict[str, Any]):
    """Data, catalog, model and collator of a worker run."""
    import torch
    from transformers import AutoTokenizer, set_seed

    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    spec = DataSpec(**config["data"])
    data = load_data(spec, config["workdir"])
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    catalog = build_catalog(data, spec, tokenizer)
    set_seed(config.get("seed", 0))
    item_encoder = config.get("item_encoder", "content")
    model = build_model(
        config["encoder"],
        config["mode"],
        spec.task_name,
        catalog.num_items,
        seed=config.get("seed", 0),
        encoder_dropout=config.get("encoder_dropout", True),
        head_dropout=config.get("head_dropout", 0.1),
        item_encoder=item_encoder,
        item_dim=config.get("item_dim"),
        head_config=config.get("head_config"),
        cold_start_items=cold_start_mask(data, spec) if item_encoder == "content+id" else None,
        item_id_dropout=config.get("item_id_dropout", 0.0),
    )
    return spec, data, catalog, model


def run_speed_worker(config: dict[str, Any]) -> dict[str, Any]:
    """
    Trains one mode for a full epoch or for `warmup_steps + measure_steps` optimizer steps (slow modes), and returns
    its timings, counters and memory. See `speed.py` for the fields.
    """
    import torch
    from transformers import TrainerCallback

    from gram_hf import GramTrainer

    load_before = os.getloadavg()
    spec, data, catalog, model = _setup(config)
    cuda = config.get("device", "cpu").startswith("cuda")
    full_epoch = bool(config.get("full_epoch", False))
    gram_mode, interval = MODES[config["mode"]]
    window = int(interval) if gram_mode == "gram" and interval.isdigit() else 1
    if interval == "auto":
        full_epoch = True  # adaptive windows: no steady state to extrapolate from a few steps
    # Slow modes are timed over whole windows after one warm-up window (steady state: no first-step allocations, and
    # every measured window includes its encoder fit).
    warmup = max(int(config.get("warmup_steps", 1)), 0)
    warmup = math.ceil(warmup / window) * window
    measure = max(math.ceil(int(config.get("measure_steps", 3)) / window) * window, window)
    budget = float(config.get("measure_seconds", float("inf")))
    accumulation = int(config.get("gradient_accumulation_steps", 1))
    micro_batches = math.ceil(len(data["train"]) / (config["batch_size"] // accumulation))
    steps_per_epoch = micro_batches // accumulation + int(micro_batches % accumulation > 0)
    if not full_epoch and warmup + measure >= steps_per_epoch:
        full_epoch = True

    with tempfile.TemporaryDirectory() as output_dir:
        args = make_training_args(config, output_dir)
        collator = build_collator(data, spec, model)
        trainer = GramTrainer(model=model, args=args, item_catalog=catalog, data_collator=collator,
                              train_dataset=data["train"])  # fmt: skip
        phases = PhaseTimer(trainer, cuda=cuda)
        record: dict[str, Any] = {"step_times": []}

        def now() -> float:
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter()

        class StepTimer(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                record["begin"] = now()
                record["counters_begin"] = _counters(trainer)
                record["phases_begin"] = phases.snapshot()
                record["padded_begin"] = phases.padded_snapshot()

            def on_step_end(self, args, state, control, **kwargs):
                record["step_times"].append(now())
                step = state.global_step
                if full_epoch:
                    return
                if step == warmup:
                    record["counters_begin"] = _counters(trainer)
                    record["phases_begin"] = phases.snapshot()
                    record["padded_begin"] = phases.padded_snapshot()
                measured = step - warmup
                if measured <= 0 or measured % window:
                    return
                start = record["step_times"][warmup - 1] if warmup else record["begin"]
                if measured >= measure or record["step_times"][-1] - start >= budget:
                    record["counters_end"] = _counters(trainer)
                    record["phases_end"] = phases.snapshot()
                    record["padded_end"] = phases.padded_snapshot()
                    record["measured_steps"] = measured
                    control.should_training_stop = True

        trainer.add_callback(StepTimer())
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        import psutil

        rss_before = psutil.Process().memory_info().rss
        maxrss_before = max_rss_bytes()
        with PeakRSSSampler() as sampler:
            trainer.train()
        times = record["step_times"]
        if full_epoch:
            start, end = record["begin"], times[-1]
            measured_steps = len(times)
            counters = _delta(_counters(trainer), record["counters_begin"])
            phase_seconds = _delta(phases.snapshot(), record["phases_begin"])
            padded = _delta(phases.padded_snapshot(), record["padded_begin"])
            measurement = f"full epoch ({measured_steps} steps)"
        else:
            start = times[warmup - 1] if warmup else record["begin"]
            measured_steps = record["measured_steps"]
            end = times[warmup + measured_steps - 1]
            counters = _delta(record["counters_end"], record["counters_begin"])
            phase_seconds = _delta(record["phases_end"], record["phases_begin"])
            padded = _delta(record["padded_end"], record["padded_begin"])
            measurement = f"extrapolated from {measured_steps} steps (after {warmup} warm-up)"
        seconds = end - start
        factor = steps_per_epoch / measured_steps
        epoch_seconds = seconds * factor
        first_step = times[0] - record["begin"] if times else float("nan")
        result = {
            "mode": config["mode"],
            "label": MODE_LABELS[config["mode"]],
            "gram_mode": gram_mode,
            "gram_interval": interval,
            "full_epoch": full_epoch,
            "measurement": measurement,
            "steps_per_epoch": steps_per_epoch,
            "measured_steps": measured_steps,
            "warmup_steps": 0 if full_epoch else warmup,
            "measured_seconds": seconds,
            "seconds_per_step": seconds / measured_steps,
            "first_step_seconds": first_step,
            "step_seconds": [b - a for a, b in zip([record["begin"], *times[:-1]], times)],
            "catalog_items": catalog.num_items,
            "epoch_seconds": epoch_seconds,
            "counters_measured": counters,
            "counters_per_epoch": {k: v * factor for k, v in counters.items()},
            "r_batch": counters["occurrences"] / counters["unique_items"] if counters["unique_items"] else 0.0,
            "phase_seconds_measured": phase_seconds,
            "phase_seconds_per_epoch": {k: v * factor for k, v in phase_seconds.items()},
            # Token slots (real + padding) of the gradient forwards outside encoder fits (E2E, GRAM 1S), measured.
            "encoder_grad_forward_padded_tokens_measured": padded["encoder_grad_forward_padded_tokens"],
            "interactions_per_second": counters["occurrences"] / seconds if seconds > 0 else float("nan"),
            "memory": {
                "rss_before_train_bytes": rss_before,
                "peak_rss_during_train_bytes": sampler.peak,
                "train_rss_increase_bytes": sampler.peak - rss_before,
                "process_max_rss_bytes": max_rss_bytes(),
                "process_max_rss_before_train_bytes": maxrss_before,
            },
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "torch_threads": torch.get_num_threads(),
            "gradient_accumulation_steps": accumulation,
            # The effective CF batch of an optimizer step and the examples per forward (they differ only with
            # accumulation), so that E2E's configurations can be told apart without the parent's config.
            "batch_size": config["batch_size"],
            "micro_batch_size": config["batch_size"] // accumulation,
        }
        if cuda:
            result["memory"]["cuda_max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
        return result


class WarmColdMetrics:
    """
    The task's `compute_metrics` plus the same metrics on warm and on cold-start items apart, for the quality tables
    (no library metric gives all of them):

    - knowledge tracing: `warm_auc` and `warm_accuracy` over the interactions with items that trained (the task's
      metric already gives `cold_start_auc`);
    - news: `warm_auc` and `cold_auc`, the per-impression AUC among an impression's warm (resp. cold-start) candidates
      only, averaged over the impressions with a click and a non-click there (`warm_impressions`, `cold_impressions`);
    - next-item: `warm_ndcg@k` and `warm_hr@k` over the users whose held-out item trained (`warm_users`; the task's
      metric already gives `cold_ndcg@k`, `cold_hr@k` over the others).

    Args:
        task (`str`): the registered task name.
        base (`Callable`): the task's `compute_metrics` (`get_task(task).metrics(data)`).
        cold_start (`Sequence[bool]`): the cold-start items as a mask over the catalog ([`cold_start_mask`]).
        train_popularity (`Sequence[int]`, *optional*): next-item: the items' `train_count`.
    """

    def __init__(self, task: str, base: Callable, cold_start: Sequence[bool], train_popularity=None):
        import numpy as np

        self.task, self.base = task, base
        self.cold = np.asarray(cold_start, dtype=bool)
        self.train_popularity = train_popularity

    def __call__(self, eval_prediction) -> dict[str, float]:
        import numpy as np

        from gram_hf.metrics.compute import padding_mask, split_predictions, to_numpy

        result = dict(self.base(eval_prediction))
        if self.task == "knowledge_tracing":
            from gram_hf.tasks.knowledge_tracing import KnowledgeTracingMetrics

            # The task's metric restricted to a set of items, given the complement as the "cold-start" set.
            warm = KnowledgeTracingMetrics(cold_start_items=~self.cold)(eval_prediction)
            result["warm_auc"] = warm.get("cold_start_auc", math.nan)
            result["warm_accuracy"] = warm.get("cold_start_accuracy", math.nan)
        elif self.task == "news_recommendation":
            from gram_hf.metrics.news_recommendation.news_recommendation import impression_ranking_metrics

            scores, items = split_predictions(eval_prediction.predictions)
            labels = to_numpy(eval_prediction.label_ids)
            real = padding_mask(scores, labels, items)
            cold = np.zeros_like(real)
            cold[real] = self.cold[items[real].astype(np.int64)]
            for name, keep in (("warm", real & ~cold), ("cold", real & cold)):
                part = impression_ranking_metrics(scores[keep], labels[keep], keep.sum(axis=1), k_values=(10,))
                result[f"{name}_auc"] = part["auc"]
                result[f"{name}_impressions"] = part["num_impressions"] - part["num_skipped"]
        elif self.task == "next_item":
            from gram_hf.tasks.next_item import NextItemMetrics

            scores, targets = split_predictions(eval_prediction.predictions)
            if targets is None:
                targets = to_numpy(eval_prediction.label_ids)
            keep = targets >= 0  # rows the Trainer padded when gathering batches
            scores, targets = scores[keep], targets[keep]
            warm = ~self.cold[targets]
            metrics = NextItemMetrics(self.train_popularity, cold_start=False)
            k = metrics.k
            if warm.any():
                part = metrics.compute(scores[warm, 1 : 1 + k], targets[warm])
                result[f"warm_ndcg@{k}"], result[f"warm_hr@{k}"] = part[f"ndcg@{k}"], part[f"hr@{k}"]
            result["warm_users"] = int(warm.sum())
        return result


def quality_metrics(data, spec: DataSpec) -> WarmColdMetrics:
    """The quality benchmark's `compute_metrics` for `data`: the task's metrics with warm and cold-start apart."""
    popularity = data.items["train_count"] if spec.task_name == "next_item" else None
    return WarmColdMetrics(spec.task_name, build_metrics(data, spec), cold_start_mask(data, spec), popularity)


def run_quality_worker(config: dict[str, Any]) -> dict[str, Any]:
    """
    Trains one mode until the validation metric (`config["metric"]`, default: the task's `metric_for_best_model`:
    AUC, or NDCG@10 for next-item) has not improved for `patience` evaluations (one per epoch) or `max_epochs`,
    evaluating validation and test after every epoch; returns the curve, the training loss logged `loss_logs_per_epoch`
    times per epoch, and the test metrics at the best validation epoch. `item_encoder` (`content`, `content+id`)
    chooses the item representation (`nocontent` is the ID one).
    """
    from transformers import TrainerCallback

    from gram_hf import GramTrainer, get_task

    spec, data, catalog, model = _setup(config)
    patience = int(config.get("patience", 2))
    metric = config.get("metric") or get_task(spec.task_name).metric_for_best_model
    steps_per_epoch = math.ceil(len(data["train"]) / config["batch_size"])
    loss_every = max(1, steps_per_epoch // max(1, int(config.get("loss_logs_per_epoch", 4))))
    curve: list[dict[str, Any]] = []
    loss_curve: list[dict[str, float]] = []
    clock = {"eval": 0.0}
    with tempfile.TemporaryDirectory() as output_dir:
        args = make_training_args(config, output_dir, eval_strategy="epoch", num_train_epochs=config["max_epochs"],
                                  logging_strategy="steps", logging_steps=loss_every)  # fmt: skip
        trainer = GramTrainer(
            model=model,
            args=args,
            item_catalog=catalog,
            data_collator=build_collator(data, spec, model),
            eval_data_collator=build_collator(data, spec, model, "eval"),
            train_dataset=data["train"],
            eval_dataset={"validation": data["validation"], "test": data[config.get("test_split", "test")]},
            compute_metrics=quality_metrics(data, spec),
        )
        original_evaluate = trainer.evaluate

        def timed_evaluate(*args, **kwargs):
            # With a dict of eval datasets the Trainer's evaluate re-enters itself per split: time the outer call only.
            clock["depth"] = clock.get("depth", 0) + 1
            outer = clock["depth"] == 1
            start = time.perf_counter()
            if outer:
                clock["eval_start"] = start
            # Validation as in the programs' training loop: in the task's validation context (next-item: ranked by
            # the model's scores, without the new-release share that the test ranking mixes in).
            validating = kwargs.get("metric_key_prefix") == "eval_validation"
            try:
                with get_task(model.config.head_type).validating(model) if validating else nullcontext():
                    return original_evaluate(*args, **kwargs)
            finally:
                clock["depth"] -= 1
                if outer:
                    clock["eval"] += time.perf_counter() - start

        trainer.evaluate = timed_evaluate

        class Curve(TrainerCallback):
            best = -math.inf
            bad = 0

            def on_train_begin(self, args, state, control, **kwargs):
                clock["begin"] = time.perf_counter()

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    loss_curve.append({"epoch": state.epoch, "step": state.global_step, "loss": logs["loss"]})

            def on_evaluate(self, args, state, control, metrics=None, **kwargs):
                metrics = metrics or {}
                if f"eval_validation_{metric}" in metrics:
                    # Training time so far: up to this evaluation, minus the earlier evaluations.
                    train_seconds = clock["eval_start"] - clock["begin"] - clock["eval"]
                    curve.append({"epoch": state.epoch, "step": state.global_step, "train_seconds": train_seconds,
                                  "validation": _strip(metrics, "eval_validation_")})  # fmt: skip
                    value = metrics[f"eval_validation_{metric}"]
                    if value > self.best + 1e-6:
                        self.best, self.bad = value, 0
                    else:
                        self.bad += 1
                        if self.bad >= patience:
                            control.should_training_stop = True
                elif f"eval_test_{metric}" in metrics and curve:
                    curve[-1]["test"] = _strip(metrics, "eval_test_")

        trainer.add_callback(Curve())
        drift_trace: list[list[float]] = []
        if args.gram_interval_is_auto:
            decide = trainer._is_window_end

            def traced_window_end(step, max_steps=None):
                ends = decide(step, max_steps)
                drift = trainer.item_table.drift_components()
                drift_trace.append([step, drift["systematic"], int(ends), drift["total"], drift["noise"]])
                return ends

            trainer._is_window_end = traced_window_end
        start = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - start - clock["eval"]
    # The first epoch of the best validation value (a NaN never wins).
    best = max(curve, key=lambda point: _finite_or(point["validation"].get(metric), -math.inf))
    return {
        "mode": config["mode"],
        "label": MODE_LABELS[config["mode"]],
        "item_encoder": "id" if config["mode"] == "nocontent" else config.get("item_encoder", "content"),
        "seed": config.get("seed", 0),
        "metric": metric,
        "epochs_run": len(curve),
        "best_epoch": best["epoch"],
        "train_seconds_total": total,
        "train_seconds_to_best": best["train_seconds"],
        "seconds_per_epoch": total / max(len(curve), 1),
        "validation_at_best": best["validation"],
        "test_at_best": best.get("test", {}),
        "curve": curve,
        "loss_curve": loss_curve,
        "counters": dict(trainer.gram_counters),
        "windows": trainer.gram_window_log.state_dict(),
        # gram-auto, per CF step: [step, the criterion's (systematic) drift of the open window after the step's
        # pseudo-target update, 1 if the window ended, the total drift, the drift a random walk would reach].
        "drift_trace": drift_trace,
        "max_rss_bytes": max_rss_bytes(),
    }


def _finite_or(value: float | None, default: float) -> float:
    return value if value is not None and math.isfinite(value) else default


def _strip(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix) and isinstance(v, (int, float))}


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "speed": run_speed_worker,
    "quality": run_quality_worker,
}


def run_in_subprocess(
    kind: str, config: dict[str, Any], log_dir: str | os.PathLike | None = None, log_name: str | None = None
) -> dict[str, Any]:
    """
    Runs `WORKERS[kind](config)` in a fresh Python process (its own memory high-water mark) and returns its result.
    The worker's output goes to `<log_dir>/<kind>-<log_name>.log` when `log_dir` is given (`log_name` defaults to the
    mode; several runs of one mode, like E2E's accumulation sweep, need their own); a failure raises with the log's
    tail.
    """
    with tempfile.TemporaryDirectory() as tmp:
        config_path, output_path = Path(tmp) / "config.json", Path(tmp) / "result.json"
        config_path.write_text(json.dumps(config))
        command = [sys.executable, str(Path(__file__).resolve()), "worker", "--kind", kind,
                   "--config", str(config_path), "--output", str(output_path)]  # fmt: skip
        log_name = log_name or config["mode"]
        log_path = Path(log_dir) / f"{kind}-{log_name}.log" if log_dir else Path(tmp) / "worker.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "src"),
                                                                          os.environ.get("PYTHONPATH")]))}  # fmt: skip
        with open(log_path, "w") as log:
            process = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if process.returncode != 0:
            tail = log_path.read_text()[-4000:]
            raise RuntimeError(f"Benchmark worker {kind}/{log_name} failed (exit {process.returncode}):\n{tail}")
        return json.loads(output_path.read_text())


# --------------------------------------------------------------------------------------------------- environment


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_tag(device: str) -> str:
    """`cpu-<cpu model>` or `cuda-<gpu name>`, lower-case, for the results folder."""
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(torch.device(device))
        base = "cuda-" + name
    else:
        base = "cpu-" + cpu_model()
    cleaned = "".join(c.lower() if c.isalnum() else "-" for c in base.replace("(R)", "").replace("(TM)", ""))
    return "-".join(part for part in cleaned.split("-") if part)[:40]


def environment_info(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """Versions, hardware and the exact command, for the results JSON."""
    import datasets
    import torch
    import transformers

    import gram_hf

    info: dict[str, Any] = {
        # The script as `benchmarks/<name>.py` wherever it was run from (a copy of the folder runs the same code).
        "command": " ".join(
            shlex.quote(arg) for arg in ["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]
        ),
        "cwd": os.getcwd(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            "gram_hf": getattr(gram_hf, "__version__", "unknown"),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "datasets": datasets.__version__,
        },
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        # the measuring subprocesses' setting (--threads), not this parent process's
        "torch_threads": threads or torch.get_num_threads(),
        "device": device,
        "load_average": os.getloadavg(),
    }
    try:
        import psutil

        info["memory_total_bytes"] = psutil.virtual_memory().total
    except ImportError:  # pragma: no cover
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=10)  # fmt: skip
        info["git_commit"] = commit.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def hardware_line(env: dict[str, Any]) -> str:
    if env.get("gpu"):
        return f"{env['gpu']} (CUDA {env.get('cuda')}), torch {env['versions']['torch']}"
    memory = env.get("memory_total_bytes", 0) / 2**30
    return (
        f"{env['cpu']}, {env['cpu_count']} cores ({env['torch_threads']} torch thread(s) per run), "
        f"{memory:.0f} GiB RAM, torch {env['versions']['torch']}"
    )


# -------------------------------------------------------------------------------------------------------- output


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def fmt_bytes(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def fmt_count(value: float) -> str:
    return f"{value:,.0f}"


def pyplot():
    """matplotlib's pyplot with a file-only backend (install the `bench` extra for matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every benchmark script shares."""
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda' (or 'cuda:N'). Default: cpu.")
    parser.add_argument("--bf16", action="store_true", help="Train in bf16 mixed precision (GPU; CPU autocast).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per run (default: torch's).")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "gram_hf_bench"),
                        help="Raw synthetic data and the loaders' caches (reused between runs).")  # fmt: skip
    parser.add_argument("--output-dir", default=None,
                        help="Results folder (default: benchmarks/results/<device tag>).")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="Seed of the data, the initial weights and the order.")


def results_dir(args: argparse.Namespace) -> Path:
    return Path(args.output_dir) if args.output_dir else RESULTS_DIR / device_tag(args.device)


# ------------------------------------------------------------------------------------------ E2E's configurations


def e2e_accumulation(result: dict[str, Any]) -> int:
    """Micro-batches per optimizer step of a speed result (1 in results written before the field existed)."""
    return int(result.get("gradient_accumulation_steps", 1))


def e2e_micro_batch(result: dict[str, Any], batch_size: int | None) -> int | None:
    """Examples per forward of a speed result (older results only have the CF batch and the accumulation)."""
    if "micro_batch_size" in result:
        return int(result["micro_batch_size"])
    return batch_size // e2e_accumulation(result) if batch_size else None


def e2e_reference_and_best(
    results: Sequence[dict[str, Any]],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """
    E2E's reference and fastest configurations among the E2E results of one speed run. The reference has the fewest
    micro-batches per step (by default the CF batch whole, as E2E was always measured here); the best has the shortest
    epoch and is `None` when only one configuration ran (the best was not searched). A tie goes to the reference.
    """
    runs = sorted((r for r in results if r["mode"] == "e2e"), key=e2e_accumulation)
    if not runs:
        return None, None
    best = min(runs, key=lambda r: r["epoch_seconds"]) if len(runs) > 1 else None
    return runs[0], best


# --------------------------------------------------------------------------------------------------- PERFORMANCE.md


def _load_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _judged_speedup(result: dict[str, Any], reference_name: str) -> tuple[float, str]:
    """The speed-up a target is judged on (vs E2E best where it was searched) and the other one, in words."""
    if "speedup_vs_e2e_best" in result:
        return result["speedup_vs_e2e_best"], f" (vs {reference_name}: {result['speedup_vs_e2e']:.2f}x)"
    return result["speedup_vs_e2e"], ""


def target_lines(folder: Path) -> list[str]:
    """
    The issue's measured targets, checked against the results in `folder` (met / missed and by how much). Where E2E's
    fastest micro-batch was searched, the speed and memory targets are judged against that E2E (the honest baseline
    on the same hardware) and the figure against E2E with the CF batch whole is given beside it.
    """
    lines = []
    for path in sorted(folder.glob("speed_*.json")):
        payload = _load_json(path)
        # E2E may have several rows (one per micro-batch); the targets are about the other modes.
        results = {r["mode"]: r for r in payload["results"] if r["mode"] != "e2e"}
        where = f"{payload['data_description']}, encoder {payload['config']['encoder']}"
        batch = payload["config"].get("batch_size")
        reference, best = e2e_reference_and_best(payload["results"])
        against, reference_name, best_name = "", "E2E", "E2E best"
        if reference is not None:
            reference_name = f"E2E at micro-batch {e2e_micro_batch(reference, batch)}"
            if best is None:
                lines.append(f"E2E's fastest micro-batch was not searched: speed-ups are vs {reference_name} only "
                             f"({where}).")  # fmt: skip
            else:
                best_name = f"E2E best (micro-batch {e2e_micro_batch(best, batch)})"
                against = f" vs {best_name}"
                lines.append(
                    f"{best_name} is {reference['epoch_seconds'] / best['epoch_seconds']:.2f}x faster than "
                    f"{reference_name} (same effective batch {batch}, same encoder work); the speed and memory "
                    f"targets below are judged against it ({where})."
                )

        single = results.get("gram-1s")
        if single and "speedup_vs_e2e" in single:
            value, other = _judged_speedup(single, reference_name)
            ratio = value / single["r_batch"]
            lines.append(
                f"GRAM 1S speed-up{against} {value:.2f}x{other} vs counted ideal R_batch {single['r_batch']:.2f} "
                f"= {ratio:.2f} of ideal (target >= 0.8): {'met' if ratio >= 0.8 else 'missed'} ({where})."
            )
        epoch = results.get("gram-1e")
        if epoch and "speedup_vs_e2e" in epoch:
            target = {"en_es": 20, "toeic": 100}.get(payload["data_spec"]["preset"])
            scale = payload["data_spec"]["scale"]
            if target and payload["config"]["encoder"] == "minilm":
                value, other = _judged_speedup(epoch, reference_name)
                verdict = "met" if value >= target else f"missed by {target / value:.1f}x"
                extra = ""
                key = "encoder_only_speedup_vs_e2e_best" if against else "encoder_only_speedup_vs_e2e"
                if key in epoch:
                    extra = f"; encoder part alone {epoch[key]:.0f}x"
                lines.append(f"GRAM 1E speed-up{against} {value:.1f}x{other} (target >= {target}x at the paper's "
                             f"scale; measured at scale {scale:g}): {verdict}{extra} ({where}).")  # fmt: skip
            memory = epoch.get("memory_ratio_vs_e2e", {})
            best_memory = epoch.get("memory_ratio_vs_e2e_best", {})
            key = "cuda_max_memory_allocated" if "cuda_max_memory_allocated" in memory else "train_rss_increase"
            if key in best_memory:
                lines.append(
                    f"GRAM 1E peak memory ({key.replace('_', ' ')}) = {100 * best_memory[key]:.0f}% of {best_name} "
                    f"({100 * memory[key]:.0f}% of {reference_name}) (target <= 35%): "
                    f"{'met' if best_memory[key] <= 0.35 else 'missed'} ({where})."
                )
            elif key in memory:
                lines.append(
                    f"GRAM 1E peak memory ({key.replace('_', ' ')}) = {100 * memory[key]:.0f}% of E2E "
                    f"(target <= 35%): {'met' if memory[key] <= 0.35 else 'missed'} ({where})."
                )
        for result in payload["results"]:
            check = result.get("accounting", {})
            if check.get("ok") is False:
                lines.append(f"Counter check FAILED for {result['label']} ({check['rule']}) ({where}).")
    for task in ("kt", "news", "next_item"):
        payload = _load_json(folder / f"quality_{task}.json")
        if payload:
            lines += [f"{line} (quality, {task})" for line in payload.get("verdicts", [])]
    return lines


def _display_path(path: Path) -> Path:
    """`path` relative to the repository (as the committed PERFORMANCE.md has it); absolute outside it (tests)."""
    return path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path


def _unsearched_e2e_note(payload: dict[str, Any] | None) -> str | None:
    """
    For a speed result written before E2E's micro-batch sweep (no `e2e_sweep` field; its markdown cannot say so): a
    line saying that its speed-ups are against one E2E configuration. Newer results say it in their own markdown.
    """
    if not payload or "e2e_sweep" in payload:
        return None
    reference, _ = e2e_reference_and_best(payload["results"])
    if reference is None:
        return None
    micro = e2e_micro_batch(reference, payload["config"].get("batch_size"))
    return (
        f"*E2E's fastest micro-batch was not searched for this result: its speed-ups are against E2E at micro-batch "
        f"{micro} only (rerun `speed.py`, whose E2E accumulation sweep is on by default, for the speed-up vs E2E at "
        "its fastest).*"
    )


def write_performance(folders: Sequence[Path], output: Path) -> Path:
    """
    `PERFORMANCE.md`: the committed results of `folders` as one markdown section (tables, plots, targets), with the
    machine, encoder and data of every number, for the README's "Performance" section.
    """
    parts = [
        "## Performance",
        "",
        "Generated by `python benchmarks/common.py report` from the JSON results under `benchmarks/results/`; every "
        "table names its machine, encoder and data. Wall-clock numbers are ratios within one run on one machine "
        "(docs/design.md section 5); on a shared CPU they are noisy (load averages are in the JSON). Rows marked "
        '"extrapolated from N steps" time N optimizer steps after a warm-up and scale to an epoch; the others ran a '
        "full epoch. The encoder-work counters (items and tokens through the encoder) do not depend on the machine.",
        "",
    ]
    for folder in folders:
        env = None
        for path in sorted(folder.glob("*.json")):
            env = (_load_json(path) or {}).get("environment") or env
        if env is None:
            continue
        parts += [f"### Results on {hardware_line(env)} (`{_display_path(folder)}`)", ""]
        targets = target_lines(folder)
        if targets:
            parts += ["Targets of issue 7, as measured:", "", *[f"- {line}" for line in targets], ""]
        quality = ["quality_kt", "quality_news", "quality_next_item"]
        intervals = [p.stem for p in sorted(folder.glob("interval_*.md"))]
        others = ["scaling", "dataset_loading", "next_item_memory", "inference", "device_check"]
        for stem in [p.stem for p in sorted(folder.glob("speed_*.md"))] + quality + intervals + others:
            md = folder / f"{stem}.md"
            if not md.is_file():
                continue
            text = md.read_text().replace("\n### ", "\n#### ")
            if text.startswith("#"):  # the report's own title, whatever its level, becomes a subsection
                text = "#### " + text.split(" ", 1)[1]
            parts += [text.rstrip(), ""]
            note = _unsearched_e2e_note(_load_json(folder / f"{stem}.json")) if stem.startswith("speed_") else None
            if note:
                parts += [note, ""]
            png = folder / f"{stem}.png"
            if png.is_file():
                parts += [f"![{stem}]({_display_path(png)})", ""]
    output.write_text("\n".join(parts))
    return output


def _worker_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Runs one benchmark mode (used by the benchmark scripts).")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="Run one mode from a JSON config and write its JSON result.")
    worker.add_argument("--kind", choices=sorted(WORKERS), default="speed", help="Which measurement to run.")
    worker.add_argument("--config", required=True, help="JSON file with the run's configuration.")
    worker.add_argument("--output", required=True, help="Where to write the JSON result.")
    report = sub.add_parser("report", help="Write benchmarks/results/PERFORMANCE.md from the committed results.")
    report.add_argument(
        "--folders",
        nargs="*",
        default=None,
        help="Result folders to include (default: every benchmarks/results/cpu-*/cuda-* folder).",
    )
    report.add_argument("--output", default=str(RESULTS_DIR / "PERFORMANCE.md"), help="The markdown file to write.")
    args = parser.parse_args(argv)
    if args.command == "report":
        folders = [Path(f).resolve() for f in args.folders] if args.folders else sorted(
            p for p in RESULTS_DIR.glob("*-*") if p.is_dir())  # fmt: skip
        print(write_performance(folders, Path(args.output)))
        return
    config = json.loads(Path(args.config).read_text())
    result = WORKERS[args.kind](config)
    write_json(args.output, result)


if __name__ == "__main__":
    _worker_main()
