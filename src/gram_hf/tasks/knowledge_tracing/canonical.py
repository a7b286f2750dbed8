"""
The knowledge-tracing canonical form every KT loader reduces to, and the one code path that builds it.

A loader is a `datasets.GeneratorBasedBuilder` subclass of [`KnowledgeTracingRawBuilder`] that only *reads* a raw
format. Its `interactions` config yields one row per learner in the generic CSV's terms (`user_id`, `item_ids`,
`timestamps`, `responses`, optional per-interaction features); its `items` config yields the item table (`item_id`,
`text`, metadata). `datasets` caches both as Arrow, keyed on a fingerprint of the raw files, so a second load skips
the parsing. [`build_interaction_data`] then turns them into [`~gram_hf.data.InteractionData`] the same way for
every dataset: catalog indices, stable time order, user-level split, cold-start items, windows of `max_seq_len`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import inspect
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...data import InteractionData

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")
"""Split codes of the optional raw `splits` column (0, 1, 2) and the order of the output splits."""

TIMESTAMP_UNIT = "seconds"
FORMAT_VERSION = 1
"""Bumped when what a builder writes changes, so caches written by an older gram-hf are not reused."""

MISSING_TEXT_CHOICES = ("error", "drop")


# ---------------------------------------------------------------------------------------------------------------------
# Raw-file helpers shared by the builders
# ---------------------------------------------------------------------------------------------------------------------


def check_files_exist(paths: Iterable[str | os.PathLike]) -> None:
    """Raises `FileNotFoundError` naming the first path that does not exist."""
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such file or directory: {os.fspath(path)!r}")


def fingerprint_files(paths: Iterable[str | os.PathLike], **options: Any) -> str:
    """
    A cache key for raw files: their absolute path, size and modification time (ns), plus the reader options.

    `datasets` keys a builder's cache on its config only, never on file contents, so gram-hf passes this fingerprint
    as a config field: an edited, replaced, added or removed raw file gives a new key and a fresh parse instead of a
    stale cache. Stats are cheap (no content is read), which matters for EdNet's ~800k user files.
    """
    digest = hashlib.sha256()
    entries = []
    for path in paths:
        stat = os.stat(path)
        entries.append((os.path.abspath(path), stat.st_size, stat.st_mtime_ns))
    for entry in sorted(entries):
        digest.update(repr(entry).encode())
    digest.update(json.dumps(options, sort_keys=True, default=repr).encode())
    return digest.hexdigest()[:32]


def _source_hash(*objects: Any) -> str:
    """Hash of the source files defining `objects`: a new reader version invalidates caches it wrote."""
    digest = hashlib.sha256(str(FORMAT_VERSION).encode())
    for obj in objects:
        try:
            source_file = inspect.getsourcefile(obj)
        except TypeError:
            source_file = None
        if source_file and os.path.exists(source_file):
            digest.update(Path(source_file).read_bytes())
    return digest.hexdigest()[:16]


def iter_csv(path: str | os.PathLike, required_columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """
    Yields `(line number, row)` of a comma-separated file with a header, with proper CSV quoting (commas, quotes and
    newlines inside quoted fields). Raises `FileNotFoundError` naming a missing file and `ValueError` naming file and
    line for a missing column, a row with the wrong number of fields or undecodable bytes.
    """
    path = os.fspath(path)
    check_files_exist([path])
    # utf-8-sig: files saved by spreadsheet programs start with a byte-order mark that would glue onto the first name.
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise ValueError(
                    f"{path}: the file is empty; expected a header with columns {list(required_columns)}."
                )
            header = [name.strip() for name in header]
            missing = [column for column in required_columns if column not in header]
            if missing:
                raise ValueError(f"{path}:1: the header {header} lacks the column(s) {missing}.")
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise ValueError(
                        f"{path}:{reader.line_num}: expected {len(header)} fields ({','.join(header)}), got "
                        f"{len(row)}: {_excerpt(row)} (quote fields that contain commas)."
                    )
                yield reader.line_num, dict(zip(header, row))
        except csv.Error as err:
            raise ValueError(f"{path}:{reader.line_num}: malformed CSV: {err}.") from None
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not valid UTF-8 ({err}).") from None


def _excerpt(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_parquet(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith((".parquet", ".pq"))


def read_parquet_columns(path: str | os.PathLike, required_columns: Sequence[str]) -> pa.Table:
    """A parquet file as an Arrow table, with a `ValueError` naming the file and the missing columns."""
    import pyarrow.parquet as pq

    path = os.fspath(path)
    check_files_exist([path])
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"{path}: not a readable parquet file ({err}).") from None
    missing = [column for column in required_columns if column not in table.column_names]
    if missing:
        raise ValueError(f"{path}: the columns {table.column_names} lack {missing}.")
    return table


def read_text_table(
    source: str | os.PathLike | Mapping[str, str],
    id_column: str,
    text_column: str = "text",
    what: str = "item",
) -> dict[str, str]:
    """
    Item texts `{item_id: text}` from a CSV or Parquet file with columns `id_column,text_column` (or exactly two
    columns, taken as id then text), or from a mapping. A repeated id is a `ValueError` naming file and line.
    """
    if isinstance(source, Mapping):
        return {str(key): "" if value is None else str(value) for key, value in source.items()}
    path = os.fspath(source)
    check_files_exist([path])
    texts: dict[str, str] = {}
    if is_parquet(path):
        table = read_parquet_columns(path, [])
        names = (id_column, text_column) if {id_column, text_column} <= set(table.column_names) else None
        if names is None and table.num_columns == 2:
            names = tuple(table.column_names)
        if names is None:
            raise ValueError(f"{path}: expected columns {id_column!r} and {text_column!r}, got {table.column_names}.")
        ids = table[names[0]].cast(pa.string()).to_pylist()
        values = table[names[1]].cast(pa.string()).to_pylist()
        for row, (item_id, text) in enumerate(zip(ids, values)):
            if item_id is None or item_id == "":
                raise ValueError(f"{path}: row {row}: empty {what} id.")
            if item_id in texts:
                raise ValueError(f"{path}: row {row}: {what} id {item_id!r} appears twice.")
            texts[item_id] = "" if text is None else text
        return texts
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None) or []
    header = [name.strip() for name in header]
    if {id_column, text_column} <= set(header):
        names = (id_column, text_column)
    elif len(header) == 2:
        names = (header[0], header[1])
    else:
        raise ValueError(f"{path}:1: expected columns {id_column!r} and {text_column!r} in the header, got {header}.")
    for line, row in iter_csv(path, names):
        item_id = row[names[0]].strip()
        if not item_id:
            raise ValueError(f"{path}:{line}: empty {what} id.")
        if item_id in texts:
            raise ValueError(f"{path}:{line}: {what} id {item_id!r} appears twice.")
        texts[item_id] = row[names[1]]
    return texts


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


# ---------------------------------------------------------------------------------------------------------------------
# The raw builder
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class KnowledgeTracingRawConfig(datasets.BuilderConfig):
    """
    Config of a [`KnowledgeTracingRawBuilder`]: `name` is `"interactions"` or `"items"`; `fingerprint` is the raw
    files' [`fingerprint_files`] (part of the cache key). Subclasses add their reader options as fields.
    """

    fingerprint: str = ""


class KnowledgeTracingRawBuilder(datasets.GeneratorBasedBuilder):
    """
    Base of the knowledge-tracing loaders: reads one raw format into the generic CSV's canonical terms.

    Config `interactions` (split `train`, the whole raw data, unsplit): one row per learner with `user_id` (str),
    `item_ids` (list of str), `timestamps` (list of float seconds, any origin), `responses` (list of int8, 1 =
    correct), one list column per entry of [`~KnowledgeTracingRawBuilder.interaction_features`] and, for formats that
    ship their own splits, `splits` (list of int8 codes into `SPLIT_NAMES`). Config `items`: `item_id` (str), `text`
    (str, null when the format has no text for the item) and [`~KnowledgeTracingRawBuilder.item_features`].

    Subclasses implement `generate_users()` and `generate_items()` (yielding dicts) and, if they carry features,
    `interaction_features()` / `feature_vocab_sizes()`. Formats without an item table (Duolingo, where the sentence
    is the item) set `HAS_ITEM_TABLE = False`; the catalog is then the distinct `item_ids`, their text the id.
    """

    BUILDER_CONFIG_CLASS = KnowledgeTracingRawConfig
    BUILDER_CONFIGS = [KnowledgeTracingRawConfig(name="interactions"), KnowledgeTracingRawConfig(name="items")]
    DEFAULT_CONFIG_NAME = "interactions"
    HAS_ITEM_TABLE = True
    HAS_PREDEFINED_SPLITS = False
    DATASET_NAME = "knowledge_tracing"

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
            rows = self.generate_items()
        else:
            rows = self.generate_users()
        yield from enumerate(rows)


def prepare_raw(
    builder_cls: type[KnowledgeTracingRawBuilder],
    config_name: str,
    options: dict[str, Any],
    fingerprint: str,
    cache_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
) -> tuple[KnowledgeTracingRawBuilder, datasets.Dataset]:
    """
    Runs a raw builder (`download_and_prepare`, cached) and returns it with its `train` split.

    `datasets` wraps errors raised while generating in `DatasetGenerationError`; the reader's own `ValueError` /
    `FileNotFoundError` (file, line, what is wrong) is re-raised as it is, since that is the message users need.
    """
    builder = builder_cls(
        cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
        config_name=config_name,
        dataset_name=f"gram_hf_{builder_cls.DATASET_NAME}",
        hash=_source_hash(builder_cls, KnowledgeTracingRawBuilder),
        fingerprint=fingerprint,
        **options,
    )
    download_mode = datasets.DownloadMode.FORCE_REDOWNLOAD if rebuild else None
    try:
        builder.download_and_prepare(download_mode=download_mode)
    except datasets.exceptions.DatasetGenerationError as err:
        cause = err.__cause__
        if isinstance(cause, (ValueError, FileNotFoundError)):
            raise cause.with_traceback(None) from None
        raise
    return builder, builder.as_dataset(split="train")


def load_with_builder(
    builder_cls: type[KnowledgeTracingRawBuilder],
    raw_files: Iterable[str | os.PathLike],
    options: dict[str, Any],
    *,
    cache_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
    **canonical_kwargs: Any,
) -> InteractionData:
    """
    The path every KT loader takes: fingerprint the raw files, run the builder's `items` and `interactions` configs
    (cached) and reduce them with [`build_interaction_data`].
    """
    raw_files = list(raw_files)
    check_files_exist(raw_files)
    fingerprint = fingerprint_files(raw_files, **options)
    items = None
    if builder_cls.HAS_ITEM_TABLE:
        _, items = prepare_raw(builder_cls, "items", options, fingerprint, cache_dir, rebuild)
    builder, users = prepare_raw(builder_cls, "interactions", options, fingerprint, cache_dir, rebuild)
    data = build_interaction_data(
        users, items, feature_vocab_sizes=builder.feature_vocab_sizes(), dataset=builder_cls.DATASET_NAME,
        **canonical_kwargs,
    )  # fmt: skip
    data.stats["raw_files"] = len(raw_files)
    return data


# ---------------------------------------------------------------------------------------------------------------------
# The canonical step
# ---------------------------------------------------------------------------------------------------------------------


def _list_column(table: pa.Table, name: str) -> tuple[pa.Array, np.ndarray]:
    """Flattened values and per-row lengths of a list column (null lists count as empty)."""
    column = table[name].combine_chunks() if table.num_rows else pa.array([], table.schema.field(name).type)
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(column)
    return values, lengths


def _examples(values: Iterable[Any], limit: int = 5) -> str:
    shown = [_excerpt(value, 60) for value in list(values)[:limit]]
    return ", ".join(shown)


def build_interaction_data(
    users: datasets.Dataset,
    items: datasets.Dataset | None = None,
    *,
    max_seq_len: int = 100,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    cold_start_items: int | Sequence[str] = 200,
    seed: int = 0,
    min_interactions: int = 1,
    split_by: str = "user",
    strict: bool = False,
    missing_text: str = "error",
    feature_vocab_sizes: Mapping[str, int] | None = None,
    dataset: str | None = None,
    missing_text_hint: str = "supply their text, or drop their interactions with missing_text='drop'.",
) -> InteractionData:
    """
    Reduces raw per-learner interactions and an item table to gram-hf's knowledge-tracing canonical form.

    Steps, in order:
    1. item ids become catalog indices; interactions naming an id absent from `items` are dropped with ONE summary
       warning giving counts and examples (`strict=True` raises instead); so are interactions on items whose text is
       null when `missing_text="drop"` (`"error"`, the default, raises naming how many such items are used);
    2. each learner's interactions are sorted by timestamp, stably (ties keep file order, e.g. EdNet bundles);
       learners with fewer than `min_interactions` are dropped (counted);
    3. the catalog keeps the items that occur, in item-table order (row `i` = catalog index `i`);
    4. learners are split (`split_by="user"`): a seeded permutation puts `round(test_fraction * n)` of them in `test`,
       then `round(validation_fraction * rest)` in `validation`, the others in `train` — the GRAM paper's 8:2
       train:test with 10% of the training learners for validation. `split_by="predefined"` uses the raw `splits`
       column instead (e.g. Duolingo's own train/dev/test files);
    5. cold-start items — `cold_start_items` random items among those that occur (seeded, independent of the user
       split), or an explicit list of item ids — lose all their interactions in `train`, and only there: validation
       and test keep them so that cold-start AUC can be measured on both (validation tracks generalisation to unseen
       items while tuning, test reports it). Train learners left without interactions are dropped (counted). Items
       carry the flag as `cold_start`;
    6. every learner's sequence is cut into consecutive windows of at most `max_seq_len` interactions (rows), so an
       epoch covers every interaction and no collator needs to truncate.

    Split rows: `user_id` (str), `items` (list of int32 catalog indices), `responses` (list of int8, 1 = correct),
    `timestamps` (list of int64 seconds, floored; the origin is the raw format's), and one list of int32 per
    categorical feature (0 = unknown/padding). Integer features keep their values, with vocabulary size
    `max(feature_vocab_sizes[name], max value + 1)`; string features are encoded 1..K in sorted order of their values
    (empty = 0) and their vocabulary is kept in `stats["feature_vocabularies"]`. `stats["features"]` maps each
    feature to its vocabulary size, as embedding layers need it.

    Args:
        users (`datasets.Dataset`): a raw builder's `interactions` rows (see [`KnowledgeTracingRawBuilder`]).
        items (`datasets.Dataset`, *optional*): its `items` rows; `None` derives the items from the interactions
            (text = id, as for Duolingo sentences).
        max_seq_len (`int`, *optional*, defaults to 100): the window length.
        test_fraction, validation_fraction (`float`, *optional*, default to 0.2 and 0.1): learner fractions.
        cold_start_items (`int` or `Sequence[str]`, *optional*, defaults to 200): how many items to hold out of
            training, or which (item ids). 0 disables it.
        seed (`int`, *optional*, defaults to 0): seeds the user split and the cold-start choice.
        min_interactions (`int`, *optional*, defaults to 1): learners with fewer interactions are dropped.
        split_by (`str`, *optional*, defaults to `"user"`): `"user"` or `"predefined"`.
        strict (`bool`, *optional*, defaults to `False`): raise on interactions naming unknown items.
        missing_text (`str`, *optional*, defaults to `"error"`): `"error"` or `"drop"` for used items with null text.
        feature_vocab_sizes (`Mapping[str, int]`, *optional*): known vocabulary sizes of integer features.
        dataset (`str`, *optional*): a name recorded in `stats`.
        missing_text_hint (`str`, *optional*): what the missing-text error suggests (a loader names its own options).
    """
    if max_seq_len < 1:
        raise ValueError(f"max_seq_len must be >= 1, got {max_seq_len}.")
    if not 0.0 <= test_fraction < 1.0 or not 0.0 <= validation_fraction < 1.0:
        raise ValueError(
            f"test_fraction and validation_fraction must be in [0, 1), got {test_fraction} and {validation_fraction}."
        )
    if split_by not in ("user", "predefined"):
        raise ValueError(f"split_by must be 'user' or 'predefined', got {split_by!r}.")
    if missing_text not in MISSING_TEXT_CHOICES:
        raise ValueError(f"missing_text must be one of {MISSING_TEXT_CHOICES}, got {missing_text!r}.")
    if min_interactions < 1:
        raise ValueError(f"min_interactions must be >= 1, got {min_interactions}.")
    feature_vocab_sizes = dict(feature_vocab_sizes or {})

    table = users.with_format("arrow")[:] if len(users) else users.data.table
    reserved = {"user_id", "item_ids", "timestamps", "responses", "splits"}
    feature_names = [name for name in users.column_names if name not in reserved]
    if split_by == "predefined" and "splits" not in users.column_names:
        raise ValueError("split_by='predefined' needs a raw 'splits' column; this format has no predefined splits.")

    # -- flatten -----------------------------------------------------------------------------------------------------
    item_values, lengths = _list_column(table, "item_ids")
    columns = {"timestamps": None, "responses": None, **dict.fromkeys(feature_names)}
    if split_by == "predefined":
        columns["splits"] = None
    for name in columns:
        values, column_lengths = _list_column(table, name)
        if not np.array_equal(column_lengths, lengths):
            row = int(np.flatnonzero(column_lengths != lengths)[0])
            raise ValueError(f"Raw row {row}: '{name}' and 'item_ids' differ in length.")
        columns[name] = values
    user_ids = np.asarray(table["user_id"].to_pylist(), dtype=object)
    unique_users, user_inverse = np.unique(user_ids.astype(str), return_inverse=True)
    user_index = np.repeat(user_inverse.astype(np.int64), lengths)
    timestamps = columns["timestamps"].to_numpy(zero_copy_only=False).astype(np.float64)
    responses = columns["responses"].to_numpy(zero_copy_only=False).astype(np.int8)
    total = len(timestamps)
    if total and not np.isin(responses, (0, 1)).all():
        raise ValueError(f"Responses must be 0 or 1, found {sorted(set(np.unique(responses).tolist()) - {0, 1})}.")
    if total and not np.isfinite(timestamps).all():
        raise ValueError("Timestamps must be finite numbers.")
    dropped: dict[str, int] = {}

    # -- items -------------------------------------------------------------------------------------------------------
    if items is None:
        item_id_array = pc.unique(item_values) if total else pa.array([], pa.string())
        item_table = pa.table({"item_id": item_id_array, "text": item_id_array})
    else:
        item_table = items.with_format("arrow")[:] if len(items) else items.data.table
        item_table = item_table.replace_schema_metadata(None)
        item_id_array = item_table["item_id"].combine_chunks()
        if item_id_array.null_count:
            raise ValueError("The item table has rows without an item_id.")
        if pc.count_distinct(item_id_array).as_py() != len(item_id_array):
            counts = pc.value_counts(item_id_array)
            repeated = [entry["values"].as_py() for entry in counts if entry["counts"].as_py() > 1]
            raise ValueError(f"The item table repeats {len(repeated)} item ids, e.g. {_examples(repeated)}.")
    item_row = pc.index_in(item_values, value_set=item_id_array) if total else pa.array([], pa.int32())
    known = item_row.is_valid().to_numpy(zero_copy_only=False)
    item_row = pc.fill_null(item_row, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    warnings_text = []
    num_unknown = int(total - known.sum())
    if num_unknown:
        unknown_ids = pc.unique(item_values.filter(pa.array(~known))).to_pylist()
        message = (
            f"{num_unknown} of {total} interactions name {len(unknown_ids)} item ids absent from the item table "
            f"(e.g. {_examples(unknown_ids)})"
        )
        if strict:
            raise ValueError(message + ".")
        warnings_text.append(message)
        dropped["unknown_item_interactions"] = num_unknown
        dropped["unknown_item_ids"] = len(unknown_ids)
    texts_null = item_table["text"].combine_chunks().is_null().to_numpy(zero_copy_only=False)
    keep = known.copy()
    if texts_null.any():
        no_text = np.zeros(total, dtype=bool)
        no_text[known] = texts_null[item_row[known]]
        if no_text.any():
            missing_rows = np.unique(item_row[no_text])
            missing_ids = item_id_array.take(pa.array(missing_rows)).to_pylist()
            message = (
                f"{len(missing_ids)} items used by {int(no_text.sum())} interactions have no text "
                f"(e.g. {_examples(missing_ids)})"
            )
            if missing_text == "error":
                raise ValueError(message + "; " + missing_text_hint)
            warnings_text.append(message)
            dropped["missing_text_interactions"] = int(no_text.sum())
            dropped["missing_text_items"] = len(missing_ids)
            keep &= ~no_text
    if warnings_text:
        logger.warning("Dropped interactions: %s.", "; ".join(warnings_text))

    # -- sort by (user, time), stably, and drop short learners -------------------------------------------------------
    order = np.flatnonzero(keep)
    order = order[np.argsort(timestamps[order], kind="stable")]
    order = order[np.argsort(user_index[order], kind="stable")]
    counts = np.bincount(user_index[order], minlength=len(unique_users))
    short_users = (counts > 0) & (counts < min_interactions)
    if short_users.any():
        dropped["users_below_min_interactions"] = int(short_users.sum())
        dropped["interactions_of_short_users"] = int(counts[short_users].sum())
        order = order[~short_users[user_index[order]]]
    dropped["users_without_interactions"] = int((counts == 0).sum())
    user_index, item_row, timestamps, responses = (
        user_index[order], item_row[order], timestamps[order], responses[order],
    )  # fmt: skip
    kept_values = {name: columns[name].take(pa.array(order)) for name in feature_names}
    split_codes = None
    if split_by == "predefined":
        split_codes = columns["splits"].to_numpy(zero_copy_only=False).astype(np.int8)[order]
        if len(split_codes) and not np.isin(split_codes, (0, 1, 2)).all():
            raise ValueError("Raw split codes must be 0 (train), 1 (validation) or 2 (test).")

    # -- features ----------------------------------------------------------------------------------------------------
    feature_arrays: dict[str, np.ndarray] = {}
    feature_sizes: dict[str, int] = {}
    vocabularies: dict[str, list[str]] = {}
    for name in feature_names:
        values = kept_values[name]
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            strings = pc.fill_null(values, "")
            vocabulary = sorted(value for value in pc.unique(strings).to_pylist() if value != "")
            codes = pc.fill_null(pc.index_in(strings, value_set=pa.array(vocabulary, pa.string())), -1)
            feature_arrays[name] = codes.to_numpy(zero_copy_only=False).astype(np.int32) + 1
            vocabularies[name] = vocabulary
            feature_sizes[name] = len(vocabulary) + 1
        else:
            array = pc.fill_null(values, 0).to_numpy(zero_copy_only=False).astype(np.int64)
            if len(array) and array.min() < 0:
                raise ValueError(f"Feature {name!r} has negative values; 0 is reserved for unknown, ids start at 1.")
            observed = int(array.max()) + 1 if len(array) else 1
            feature_sizes[name] = max(feature_vocab_sizes.get(name, 0), observed)
            feature_arrays[name] = array.astype(np.int32)

    # -- catalog -----------------------------------------------------------------------------------------------------
    used_rows = np.unique(item_row)
    catalog_of_row = np.full(len(item_id_array), -1, dtype=np.int64)
    catalog_of_row[used_rows] = np.arange(len(used_rows))
    catalog = catalog_of_row[item_row].astype(np.int32)
    dropped["unused_items"] = int(len(item_id_array) - len(used_rows))
    catalog_table = item_table.take(pa.array(used_rows, pa.int64()))
    catalog_ids = catalog_table["item_id"].to_pylist()
    num_items = len(catalog_ids)

    # -- user split --------------------------------------------------------------------------------------------------
    present_users = np.unique(user_index)
    if split_codes is None:
        permutation = np.random.default_rng(seed).permutation(len(present_users))
        num_test = int(round(test_fraction * len(present_users)))
        num_validation = int(round(validation_fraction * (len(present_users) - num_test)))
        user_split = np.zeros(len(unique_users), dtype=np.int8)
        user_split[present_users[permutation[:num_test]]] = 2
        user_split[present_users[permutation[num_test : num_test + num_validation]]] = 1
        split_codes = user_split[user_index]

    # -- cold-start items --------------------------------------------------------------------------------------------
    cold = np.zeros(num_items, dtype=bool)
    if isinstance(cold_start_items, (int, np.integer)) and not isinstance(cold_start_items, bool):
        count = int(cold_start_items)
        if count < 0 or (count and count >= num_items):
            raise ValueError(
                f"cold_start_items={count} must be >= 0 and smaller than the {num_items} items that occur; pass a "
                "smaller count (0 disables cold start) or an explicit list of item ids."
            )
        if count:
            # A generator of its own, so that changing the count leaves the user split as it is.
            cold[np.random.default_rng([seed, 1]).choice(num_items, size=count, replace=False)] = True
    else:
        index_of = {item_id: i for i, item_id in enumerate(catalog_ids)}
        requested = [str(item_id) for item_id in cold_start_items]
        unknown = [item_id for item_id in requested if item_id not in index_of]
        if unknown:
            raise ValueError(
                f"{len(unknown)} cold_start_items do not occur in the interactions, e.g. {_examples(unknown)}."
            )
        cold[[index_of[item_id] for item_id in requested]] = True
    cold_interaction = cold[catalog] if len(catalog) else np.zeros(0, dtype=bool)
    removed = (split_codes == 0) & cold_interaction
    cold_removed = int(removed.sum())
    if cold_removed:
        before = np.unique(user_index[split_codes == 0])
        keep_rows = ~removed
        user_index, catalog, timestamps, responses, split_codes, cold_interaction = (
            user_index[keep_rows], catalog[keep_rows], timestamps[keep_rows], responses[keep_rows],
            split_codes[keep_rows], cold_interaction[keep_rows],
        )  # fmt: skip
        feature_arrays = {name: values[keep_rows] for name, values in feature_arrays.items()}
        after = np.unique(user_index[split_codes == 0])
        dropped["train_users_only_on_cold_start_items"] = int(len(before) - len(after))

    # -- windows -----------------------------------------------------------------------------------------------------
    features = datasets.Features(
        {
            "user_id": datasets.Value("string"),
            "items": datasets.List(datasets.Value("int32")),
            "responses": datasets.List(datasets.Value("int8")),
            "timestamps": datasets.List(datasets.Value("int64")),
            **{name: datasets.List(datasets.Value("int32")) for name in feature_names},
        }
    )
    int_timestamps = np.floor(timestamps).astype(np.int64)
    splits = {}
    stats_users, stats_interactions, stats_rows, stats_cold = {}, {}, {}, {}
    for code, split_name in enumerate(SPLIT_NAMES):
        mask = split_codes == code
        split_users, user_lengths = np.unique(user_index[mask], return_counts=True)
        num_chunks = (user_lengths + max_seq_len - 1) // max_seq_len
        user_starts = np.concatenate([[0], np.cumsum(user_lengths)[:-1]]).astype(np.int64)
        chunk_user = np.repeat(np.arange(len(split_users)), num_chunks)
        chunk_rank = np.arange(int(num_chunks.sum())) - np.repeat(np.cumsum(num_chunks) - num_chunks, num_chunks)
        offsets = pa.array(np.append(user_starts[chunk_user] + chunk_rank * max_seq_len, mask.sum()), pa.int32())

        def lists(values: np.ndarray, arrow_type: pa.DataType, offsets=offsets) -> pa.ListArray:
            return pa.ListArray.from_arrays(offsets, pa.array(values, arrow_type))

        arrays = {
            "user_id": pa.array(unique_users[split_users[chunk_user]].tolist(), pa.string()),
            "items": lists(catalog[mask], pa.int32()),
            "responses": lists(responses[mask], pa.int8()),
            "timestamps": lists(int_timestamps[mask], pa.int64()),
            **{name: lists(feature_arrays[name][mask], pa.int32()) for name in feature_names},
        }
        split_table = pa.Table.from_arrays(list(arrays.values()), schema=features.arrow_schema)
        splits[split_name] = datasets.Dataset(
            datasets.table.InMemoryTable(split_table), info=datasets.DatasetInfo(features=features)
        )
        stats_users[split_name] = len(split_users)
        stats_interactions[split_name] = int(mask.sum())
        stats_rows[split_name] = len(splits[split_name])
        stats_cold[split_name] = int(cold_interaction[mask].sum())

    items_out = catalog_table.append_column("cold_start", pa.array(cold, pa.bool_()))
    items_dataset = datasets.Dataset(datasets.table.InMemoryTable(items_out))
    stats = {
        "dataset": dataset,
        "users": {**stats_users, "total": int(sum(stats_users.values()))},
        "items": {
            "total": num_items,
            "cold_start": int(cold.sum()),
            "in_train": int(len(np.unique(catalog[split_codes == 0]))),
        },
        "interactions": {**stats_interactions, "total": int(sum(stats_interactions.values()))},
        "sequences": stats_rows,
        "cold_start_interactions": {"removed_from_train": cold_removed, **{k: stats_cold[k] for k in SPLIT_NAMES[1:]}},
        "dropped": dropped,
        "features": feature_sizes,
        "timestamp_unit": TIMESTAMP_UNIT,
        "max_seq_len": max_seq_len,
        "split": {
            "by": split_by,
            "seed": seed,
            "test_fraction": test_fraction,
            "validation_fraction": validation_fraction,
        },
        "mean_interactions_per_item": (float(len(catalog)) / num_items) if num_items else None,
    }
    if vocabularies:
        stats["feature_vocabularies"] = vocabularies
    return InteractionData(splits=datasets.DatasetDict(splits), items=items_dataset, stats=stats)


# ---------------------------------------------------------------------------------------------------------------------
# Shared pieces of the dataset_scripts/prepare_*.py programs
# ---------------------------------------------------------------------------------------------------------------------


def add_canonical_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the canonical-step and output options every `prepare_<dataset>.py` shares."""
    group = parser.add_argument_group("canonical form")
    group.add_argument("--max_seq_len", type=int, default=100, help="Window length of the split rows.")
    group.add_argument("--test_fraction", type=float, default=0.2, help="Learners in test (paper: 0.2).")
    group.add_argument(
        "--validation_fraction", type=float, default=0.1, help="Share of the remaining learners in validation."
    )
    group.add_argument(
        "--cold_start_items",
        default="200",
        help="How many random items to hold out of train (0: none), or a comma-separated list of item ids.",
    )
    group.add_argument("--seed", type=int, default=0, help="Seed of the user split and the cold-start choice.")
    group.add_argument("--min_interactions", type=int, default=1, help="Drop learners with fewer interactions.")
    group.add_argument("--strict", action="store_true", help="Fail on interactions naming unknown items.")
    group.add_argument("--cache_dir", default=None, help="datasets cache of the parsed raw files.")
    output = parser.add_argument_group("output")
    output.add_argument("--output_dir", required=True, help="The Hub-ready folder to write.")
    output.add_argument("--overwrite", action="store_true", help="Replace a non-empty output_dir.")
    output.add_argument("--push_to_hub", metavar="REPO_ID", default=None, help="Also upload to this dataset repo.")
    output.add_argument("--private", action="store_true", help="Create the Hub repository as private.")
    return parser


def canonical_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The loader keyword arguments of [`add_canonical_arguments`]'s options."""
    cold: int | list[str]
    cold_text = str(args.cold_start_items).strip()
    cold = int(cold_text) if cold_text.lstrip("-").isdigit() else [item for item in cold_text.split(",") if item]
    return {
        "max_seq_len": args.max_seq_len,
        "test_fraction": args.test_fraction,
        "validation_fraction": args.validation_fraction,
        "cold_start_items": cold,
        "seed": args.seed,
        "min_interactions": args.min_interactions,
        "strict": args.strict,
        "cache_dir": args.cache_dir,
    }


def dataset_card(data: InteractionData, title: str, description: str, source: str, citation: str = "") -> str:
    """The Markdown body of a knowledge-tracing dataset card: provenance, schema, processing and statistics."""
    stats = data.stats
    features = ", ".join(f"`{name}` ({size} values, 0 = unknown)" for name, size in stats.get("features", {}).items())
    lines = [
        f"# {title}",
        "",
        description.strip(),
        "",
        f"Source: {source.strip()}",
        "",
        "Prepared with gram-hf (`dataset_scripts/`) for knowledge tracing with GRAM (Yang et al., NAACL 2022).",
        "",
        "## Configs",
        "",
        "- `interactions` (default): splits `train`, `validation`, `test`, split by learner "
        f"(test {stats['split']['test_fraction']}, then validation {stats['split']['validation_fraction']} of the "
        f"rest, seed {stats['split']['seed']}; split by `{stats['split']['by']}`). One row per window of at most "
        f"{stats['max_seq_len']} consecutive interactions of a learner: `user_id`, `items` (row indices into the "
        "`items` config), `responses` (1 = correct), `timestamps` (seconds)"
        + (f", and {features}." if features else "."),
        "- `items`: one row per item, row `i` = index `i`: `item_id`, `text`, `cold_start` (items whose interactions "
        "were removed from `train` and kept in `validation`/`test`, to measure cold-start performance) and metadata.",
        "",
        "## Statistics",
        "",
        "| split | learners | interactions | rows |",
        "| --- | --- | --- | --- |",
    ]
    for name in SPLIT_NAMES:
        lines.append(
            f"| {name} | {stats['users'][name]} | {stats['interactions'][name]} | {stats['sequences'][name]} |"
        )
    lines += [
        "",
        f"Items: {stats['items']['total']} ({stats['items']['cold_start']} cold-start). Cold-start interactions "
        f"removed from train: {stats['cold_start_interactions']['removed_from_train']}. Dropped: "
        + (", ".join(f"{key} {value}" for key, value in stats["dropped"].items() if value) or "nothing")
        + ".",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'splits = load_dataset("REPO_OR_FOLDER")',
        'items = load_dataset("REPO_OR_FOLDER", "items", split="train")',
        '# or, with the feature vocabulary sizes: gram_hf.data.InteractionData.from_hub("REPO_OR_FOLDER")',
        "```",
    ]
    if citation:
        lines += ["", "## Citation", "", "```bibtex", citation.strip(), "```"]
    return "\n".join(lines)


def write_prepared(
    data: InteractionData, args: argparse.Namespace, card_text: str, pretty_name: str, license: str | None = None
) -> Path:
    """Writes `args.output_dir` (and uploads it with `--push_to_hub`); returns the folder."""
    save = {"pretty_name": pretty_name, "license": license, "tags": ["knowledge-tracing"], "overwrite": args.overwrite}
    if args.push_to_hub:
        data.push_to_hub(args.push_to_hub, card_text, private=args.private or None, folder=args.output_dir, **save)
    else:
        data.save_to_hub_folder(args.output_dir, card_text, **save)
    logger.info("Wrote %s: %s", args.output_dir, json.dumps(data.stats["interactions"]))
    return Path(args.output_dir)


__all__ = [
    "SPLIT_NAMES",
    "KnowledgeTracingRawBuilder",
    "add_canonical_arguments",
    "canonical_kwargs",
    "dataset_card",
    "write_prepared",
    "KnowledgeTracingRawConfig",
    "build_interaction_data",
    "check_files_exist",
    "fingerprint_files",
    "iter_csv",
    "load_with_builder",
    "log_time_bucket",
    "prepare_raw",
    "read_text_table",
]
