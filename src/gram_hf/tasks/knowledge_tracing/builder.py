"""
The base of the knowledge-tracing raw builders, and the path every KT loader takes through it.

A loader is a [`KnowledgeTracingRawBuilder`] subclass that only *reads* a raw format. Its `interactions` config yields
one row per learner in the generic CSV's terms (`user_id`, `item_ids`, `timestamps`, `responses`, optional
per-interaction features); its `items` config yields the item table (`item_id`, `text`, metadata). `datasets` caches
both as Arrow (see [`~gram_hf.builders.RawFilesBuilder`]), so a second load skips the parsing. [`load_with_builder`]
then reduces them with [`~gram_hf.tasks.knowledge_tracing.canonical.build_interaction_data`].
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...builders import RawFilesBuilder, RawFilesConfig, fingerprint_files
from ...data import InteractionData
from ...raw_files import DroppedRows
from . import raw_io
from .canonical import build_interaction_data
from .split_arguments import KnowledgeTracingSplitArguments


@dataclass
class KnowledgeTracingRawConfig(RawFilesConfig):
    """
    Config of a [`KnowledgeTracingRawBuilder`]: `name` is `"interactions"` or `"items"`; `fingerprint` is the raw
    files' [`~gram_hf.builders.fingerprint_files`] (part of the cache key). Subclasses add their reader options.
    """


class KnowledgeTracingRawBuilder(RawFilesBuilder):
    """
    Base of the knowledge-tracing loaders: reads one raw format into the generic CSV's canonical terms.

    Config `interactions` (split `train`, the whole raw data, unsplit): one row per learner with `user_id` (str),
    `item_ids` (list of str), `timestamps` (list of float seconds, any origin), `responses` (list of int8, 1 =
    correct), one list column per entry of [`~KnowledgeTracingRawBuilder.interaction_features`] and, for formats that
    ship their own splits, `splits` (list of int8 codes into `SPLIT_NAMES`). Config `items`: `item_id` (str), `text`
    (str, null when the format has no text for the item) and [`~KnowledgeTracingRawBuilder.item_features`].

    Subclasses implement `generate_users()` and `generate_items()` (yielding dicts) and, if they carry features,
    `interaction_features()` / `feature_vocab_sizes()`. A reader that leaves raw rows out on purpose (POJ's unjudged
    submissions) records each in `self.dropped_rows` ([`~gram_hf.raw_files.DroppedRows`]); the rows read (yielded
    interactions + dropped rows) and the drops are kept beside the cache as the `read` stats, which
    [`load_with_builder`] hands to the canonical step (counts in `stats`, one warning, `strict=True` raises).
    Formats without an item table (Duolingo, where the sentence is the item) set `HAS_ITEM_TABLE = False`; the
    catalog is then the distinct `item_ids`, their text the id.
    """

    BUILDER_CONFIG_CLASS = KnowledgeTracingRawConfig
    BUILDER_CONFIGS = [KnowledgeTracingRawConfig(name="interactions"), KnowledgeTracingRawConfig(name="items")]
    DEFAULT_CONFIG_NAME = "interactions"
    HAS_ITEM_TABLE = True
    HAS_PREDEFINED_SPLITS = False
    DATASET_NAME = "knowledge_tracing"
    # The readers' shared CSV/Parquet code decides what is written as much as the subclass does.
    SOURCE_DEPENDENCIES = (raw_io,)
    READ_STATS_NAME = "read"
    """The stats file of the `interactions` config: `rows_read` and the reader's [`DroppedRows`]."""

    # -- what subclasses describe ------------------------------------------------------------------------------------

    def interaction_features(self) -> dict[str, datasets.Value]:
        """Per-interaction categorical features and their value type (`int32`: ids >= 0; `string`: encoded later)."""
        return {}

    def feature_vocab_sizes(self) -> dict[str, int]:
        """Vocabulary sizes of integer features known from the format (0 = unknown/padding included)."""
        return {}

    def item_features(self) -> dict[str, datasets.features.features.FeatureType]:
        """Item metadata columns beyond `item_id` and `text`."""
        return {}

    def generate_users(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def generate_items(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    # -- datasets plumbing -------------------------------------------------------------------------------------------

    def _info(self) -> datasets.DatasetInfo:
        if self.config.name == "items":
            features = {"item_id": datasets.Value("string"), "text": datasets.Value("string"), **self.item_features()}
        elif self.config.name == "interactions":
            features = {
                "user_id": datasets.Value("string"),
                "item_ids": datasets.List(datasets.Value("string")),
                "timestamps": datasets.List(datasets.Value("float64")),
                "responses": datasets.List(datasets.Value("int8")),
            }
            features.update({name: datasets.List(value) for name, value in self.interaction_features().items()})
            if self.HAS_PREDEFINED_SPLITS:
                features["splits"] = datasets.List(datasets.Value("int8"))
        else:
            raise ValueError(f"Unknown config {self.config.name!r}; use 'interactions' or 'items'.")
        return datasets.DatasetInfo(description=self.__doc__, features=datasets.Features(features))

    def _split_generators(self, dl_manager):
        # The raw data is one unsplit table: splitting by user needs every learner, so it happens after loading.
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN)]

    def _generate_examples(self):
        if self.config.name == "items":
            if not self.HAS_ITEM_TABLE:
                raise ValueError(f"{type(self).__name__} has no item table; the items derive from the interactions.")
            yield from enumerate(self.generate_items())
            return
        self.dropped_rows = DroppedRows()
        rows_read = 0
        for key, row in enumerate(self.generate_users()):
            rows_read += len(row["item_ids"])
            yield key, row
        rows_read += self.dropped_rows.total
        self.write_stats(self.READ_STATS_NAME, {"rows_read": rows_read, **self.dropped_rows.to_dict()})


def group_by_user(
    user_ids: Sequence[str], columns: dict[str, np.ndarray | list], splits: np.ndarray | None = None
) -> Iterator[dict[str, Any]]:
    """
    Rows of a long table grouped into one raw row per learner (first-appearance order of learners, file order within
    a learner), as [`KnowledgeTracingRawBuilder`] yields them.
    """
    # Arrow's dictionary encoding numbers the learners in order of first appearance, without a Python loop.
    encoded = pc.dictionary_encode(pa.array(user_ids, pa.string()))
    user_code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(user_code, kind="stable")
    boundaries = np.flatnonzero(np.diff(user_code[order])) + 1
    arrays = {
        name: np.asarray(values, dtype=object if isinstance(values, list) else None)
        for name, values in columns.items()
    }
    names = encoded.dictionary.to_pylist()
    for chunk in np.split(order, boundaries) if len(order) else []:
        row = {"user_id": names[user_code[chunk[0]]]}
        row.update({name: values[chunk] for name, values in arrays.items()})
        if splits is not None:
            row["splits"] = splits[chunk]
        yield row


def log_time_bucket(seconds: np.ndarray, num_buckets: int) -> np.ndarray:
    """
    Log-scale buckets of durations, 1-based (0 = unknown: NaN or negative): bucket `1 + floor(2 * log2(1 + s))`,
    capped at `num_buckets`. Half-octave steps resolve the common 1 s - 2 min range (buckets 3-15) while keeping the
    vocabulary small, and the cap absorbs the long tail of abandoned sessions.
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    known = np.isfinite(seconds) & (seconds >= 0)
    buckets = np.zeros(seconds.shape, dtype=np.int32)
    buckets[known] = 1 + np.minimum(num_buckets - 1, np.floor(2 * np.log2(1 + seconds[known]))).astype(np.int32)
    return buckets


def load_with_builder(
    builder_cls: type[KnowledgeTracingRawBuilder],
    raw_files: Iterable[str | os.PathLike],
    options: dict[str, Any],
    split: KnowledgeTracingSplitArguments,
    *,
    cache_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
    **canonical_options: Any,
) -> InteractionData:
    """
    The path every KT loader takes: run the builder's `items` and `interactions` configs on `raw_files` with the
    reader `options` (cached) and reduce them with `build_interaction_data` under `split` and the loader's
    `canonical_options` (`split_by`, `missing_text`, ...), with the reader's `read` stats (rows read, rows dropped),
    so that a cached load reports, warns and (`strict=True`) raises as the first one did.
    """
    raw_files = list(raw_files)
    prepare = {"fingerprint": fingerprint_files(raw_files), "cache_dir": cache_dir, "rebuild": rebuild, **options}
    items = None
    if builder_cls.HAS_ITEM_TABLE:
        items = builder_cls.prepare("items", **prepare).as_dataset(split="train")
    builder = builder_cls.prepare("interactions", **prepare)
    try:
        read_stats = builder.read_stats(builder_cls.READ_STATS_NAME)
    except FileNotFoundError:  # a subclass with its own `_generate_examples`: every row it yielded was read
        read_stats = None
    data = build_interaction_data(
        builder.as_dataset(split="train"), items, split=split, feature_vocab_sizes=builder.feature_vocab_sizes(),
        dataset=builder_cls.DATASET_NAME, read_stats=read_stats, **canonical_options,
    )  # fmt: skip
    data.stats["raw_files"] = len(raw_files)
    return data


__all__ = [
    "KnowledgeTracingRawBuilder",
    "KnowledgeTracingRawConfig",
    "group_by_user",
    "load_with_builder",
    "log_time_bucket",
]
