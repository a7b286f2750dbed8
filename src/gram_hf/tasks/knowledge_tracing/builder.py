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
from ...raw_files import DroppedRows, stable_argsort
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

    Subclasses implement `generate_users()` (yielding Arrow tables of learner rows, written in bulk: see
    [`group_by_user`]) and `generate_items()` (yielding dicts) and, if they carry features, `interaction_features()` /
    `feature_vocab_sizes()`. A reader that leaves raw rows out on purpose (POJ's unjudged submissions) records each
    in `self.dropped_rows` ([`~gram_hf.raw_files.DroppedRows`]); the rows read (yielded interactions + dropped rows)
    and the drops are kept beside the cache as the `read` stats, which
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

    def generate_users(self) -> Iterator[pa.Table]:
        """
        Tables of learner rows with the `interactions` columns (see the class), e.g. from [`group_by_user`]; written
        as they are, in bulk.
        """
        raise NotImplementedError

    def generate_items(self) -> Iterator[dict[str, Any]]:
        """The item rows (`item_id`, `text`, [`~KnowledgeTracingRawBuilder.item_features`]), one dict each."""
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
        # The item table: thousands of rows, written through the base's row path.
        if not self.HAS_ITEM_TABLE:
            raise ValueError(f"{type(self).__name__} has no item table; the items derive from the interactions.")
        yield from enumerate(self.generate_items())

    def _generate_tables(self):
        if self.config.name == "items":
            yield from super()._generate_tables()
            return
        self.dropped_rows = DroppedRows()
        rows_read = 0
        for key, table in enumerate(self.generate_users()):
            rows_read += len(pc.list_flatten(table["item_ids"]))
            yield key, table
        rows_read += self.dropped_rows.total
        self.write_stats(self.READ_STATS_NAME, {"rows_read": rows_read, **self.dropped_rows.to_dict()})


def group_by_user(
    user_ids: pa.Array | pa.ChunkedArray | Sequence[str],
    columns: dict[str, pa.Array | pa.ChunkedArray | np.ndarray | list],
    splits: np.ndarray | None = None,
) -> pa.Table:
    """
    A long table (one entry per interaction in every column) grouped into one learner row per learner, as
    [`KnowledgeTracingRawBuilder.generate_users`] yields them: learners in order of first appearance, each learner's
    interactions in file order, every column (and `splits`, when given) a list column. All in Arrow: no Python
    object per interaction.
    """
    users = _arrow(user_ids, pa.string())
    # Arrow's dictionary encoding numbers the learners in order of first appearance.
    encoded = pc.dictionary_encode(users)
    user_code = encoded.indices.to_numpy(zero_copy_only=False)
    order = pa.array(stable_argsort(user_code))
    counts = np.bincount(user_code, minlength=len(encoded.dictionary))
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32())
    if splits is not None:
        columns = {**columns, "splits": np.asarray(splits, dtype=np.int8)}
    arrays = {"user_id": encoded.dictionary}
    for name, values in columns.items():
        arrays[name] = pa.ListArray.from_arrays(offsets, _arrow(values).take(order))
    return pa.table(arrays)


def _arrow(values: pa.Array | pa.ChunkedArray | np.ndarray | list, arrow_type: pa.DataType | None = None) -> pa.Array:
    """`values` as one Arrow array (of `arrow_type` when given)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    elif not isinstance(values, pa.Array):
        values = pa.array(values, arrow_type)
    return values if arrow_type is None or values.type == arrow_type else values.cast(arrow_type)


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
    except FileNotFoundError:  # a subclass with its own `_generate_tables`: every row it wrote was read
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
