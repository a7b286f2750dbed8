"""
The generic knowledge-tracing table: interactions `user_id,item_id,timestamp,correct` and items `item_id,text`, CSV
or Parquet — the canonical form the Duolingo, EdNet and POJ loaders reduce to, and the way in for any other dataset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...data import InteractionData
from ...raw_files import BadLines, iter_csv, read_csv_columns_fast
from .builder import KnowledgeTracingRawBuilder, KnowledgeTracingRawConfig, group_by_user, load_with_builder
from .raw_io import is_parquet, read_parquet_columns, read_text_table
from .split_arguments import KnowledgeTracingSplitArguments

TIMESTAMP_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_TRUE = {"1", "true", "t", "yes", "y", "1.0"}
_FALSE = {"0", "false", "f", "no", "n", "0.0"}
_TRUE_ARRAY = pa.array(sorted(_TRUE))
_FALSE_ARRAY = pa.array(sorted(_FALSE))


def parse_timestamp(value: str, unit_scale: float) -> float:
    """A number in `unit_scale` seconds, or an ISO-8601 date-time (naive ones are read as UTC) -> seconds."""
    try:
        return float(value) * unit_scale
    except ValueError:
        pass
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


@dataclass
class KnowledgeTracingCSVConfig(KnowledgeTracingRawConfig):
    """Reader options of [`KnowledgeTracingCSVBuilder`] (see [`load_kt_csv`])."""

    interactions: str = ""
    items: str = ""
    user_column: str = "user_id"
    item_column: str = "item_id"
    timestamp_column: str = "timestamp"
    correct_column: str = "correct"
    text_column: str = "text"
    feature_columns: tuple[str, ...] = ()
    timestamp_unit: str = "s"


class KnowledgeTracingCSVBuilder(KnowledgeTracingRawBuilder):
    """Reads the generic knowledge-tracing tables (CSV with a header, or Parquet)."""

    BUILDER_CONFIG_CLASS = KnowledgeTracingCSVConfig
    BUILDER_CONFIGS = [KnowledgeTracingCSVConfig(name="interactions"), KnowledgeTracingCSVConfig(name="items")]
    DATASET_NAME = "kt_csv"

    def interaction_features(self) -> dict[str, datasets.Value]:
        # Values are kept as strings and encoded 1..K by the canonical step, whatever their type in the file.
        return {name: datasets.Value("string") for name in self.config.feature_columns}

    def generate_items(self) -> Iterator[dict[str, Any]]:
        texts = read_text_table(self.config.items, self.config.item_column, self.config.text_column)
        for item_id, text in texts.items():
            yield {"item_id": item_id, "text": text}

    def generate_users(self) -> Iterator[pa.Table]:
        config = self.config
        path = config.interactions
        required = [config.user_column, config.item_column, config.timestamp_column, config.correct_column]
        required += list(config.feature_columns)
        scale = TIMESTAMP_UNITS[config.timestamp_unit]
        if is_parquet(path):
            users, columns = self._read_parquet(path, required, scale)
        else:
            # pyarrow reads the table in a fraction of the csv module's time; on any doubt (a parse error, an empty
            # id, a value the line-by-line reader would reject) the csv module reads it again and names the lines.
            read = self._read_csv_fast(path, required, scale)
            users, columns = read if read is not None else self._read_csv(path, required, scale)
        yield group_by_user(users, columns)

    def _read_csv_fast(self, path: str, required: list[str], scale: float) -> tuple[pa.Array, dict[str, Any]] | None:
        """The interactions through pyarrow, read exactly as [`_read_csv`] reads them; `None` when anything is off."""
        config = self.config
        column = read_csv_columns_fast(path, required)
        if column is None:
            return None
        users, items = column[config.user_column], column[config.item_column]
        if pc.any(pc.equal(users, "")).as_py() or pc.any(pc.equal(items, "")).as_py():
            return None
        timestamps = _timestamps_fast(column[config.timestamp_column], scale)
        correct = pc.ascii_lower(column[config.correct_column])
        is_true, is_false = pc.is_in(correct, value_set=_TRUE_ARRAY), pc.is_in(correct, value_set=_FALSE_ARRAY)
        if timestamps is None or not pc.all(pc.or_(is_true, is_false)).as_py():
            return None
        columns = {
            "item_ids": items,
            "timestamps": timestamps,
            "responses": is_true.to_numpy(zero_copy_only=False).astype(np.int8),
            **{name: column[name] for name in config.feature_columns},
        }
        return users, columns

    def _read_csv(self, path: str, required: list[str], scale: float) -> tuple[list[str], dict[str, Any]]:
        config = self.config
        users, item_ids, timestamps, responses = [], [], [], []
        features: dict[str, list[str]] = {name: [] for name in config.feature_columns}
        bad = BadLines()
        for line, row in iter_csv(path, required, bad):
            user, item = row[config.user_column].strip(), row[config.item_column].strip()
            if not user or not item:
                bad.add(path, line, f"empty {config.user_column if not user else config.item_column}")
                continue
            raw_time = row[config.timestamp_column]
            try:
                timestamp = parse_timestamp(raw_time, scale)
            except ValueError:
                bad.add(
                    path,
                    line,
                    f"{config.timestamp_column} {raw_time!r} is neither a number nor an ISO-8601 date-time",
                )
                continue
            correct = row[config.correct_column].strip().lower()
            if correct in _TRUE:
                responses.append(1)
            elif correct in _FALSE:
                responses.append(0)
            else:
                bad.add(path, line, f"{config.correct_column} must be 0 or 1, got {correct!r}")
                continue
            timestamps.append(timestamp)
            users.append(user)
            item_ids.append(item)
            for name in config.feature_columns:
                features[name].append(row[name].strip())
        bad.check()
        columns = {
            "item_ids": item_ids,
            "timestamps": np.asarray(timestamps, dtype=np.float64),
            "responses": np.asarray(responses, dtype=np.int8),
            **features,
        }
        return users, columns

    def _read_parquet(self, path: str, required: list[str], scale: float) -> tuple[pa.ChunkedArray, dict[str, Any]]:
        config = self.config
        table = read_parquet_columns(path, required)
        bad = BadLines()
        for name in (config.user_column, config.item_column, config.timestamp_column, config.correct_column):
            if table[name].null_count:
                rows = np.flatnonzero(table[name].is_null().to_numpy(zero_copy_only=False))
                _add_rows(bad, path, rows, lambda row, name=name: f"{name} is missing")
        bad.check()
        users = table[config.user_column].cast(pa.string())
        items = table[config.item_column].cast(pa.string())
        time_column = table[config.timestamp_column]
        if pa.types.is_timestamp(time_column.type):
            seconds = pc.cast(time_column, pa.timestamp("us", tz=time_column.type.tz)).cast(pa.int64())
            timestamps = seconds.to_numpy().astype(np.float64) * 1e-6
        elif pa.types.is_integer(time_column.type) or pa.types.is_floating(time_column.type):
            timestamps = time_column.to_numpy().astype(np.float64) * scale
        else:
            raw = time_column.cast(pa.string()).to_pylist()
            timestamps = np.empty(len(raw))
            for row, value in enumerate(raw):
                try:
                    timestamps[row] = parse_timestamp(value, scale)
                except ValueError:
                    problem = f"{config.timestamp_column} {value!r} is neither a number nor an ISO-8601 date-time"
                    bad.add(path, None, f"row {row}: {problem}")
        correct = table[config.correct_column]
        if pa.types.is_boolean(correct.type):
            responses = correct.to_numpy(zero_copy_only=False).astype(np.int8)
        else:
            values = correct.cast(pa.float64()).to_numpy()
            wrong = np.flatnonzero(~np.isin(values, (0.0, 1.0)))
            _add_rows(bad, path, wrong, lambda row: f"{config.correct_column} must be 0 or 1, got {values[row]}")
            responses = np.where(np.isin(values, (0.0, 1.0)), values, 0).astype(np.int8)
        bad.check()
        features = {name: pc.fill_null(table[name].cast(pa.string()), "") for name in config.feature_columns}
        return users, {"item_ids": items, "timestamps": timestamps, "responses": responses, **features}


# Naive ISO-8601 date-times that pyarrow reads as `datetime.fromisoformat` does (the csv path reads the rest).
_ISO_DATE_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$"


def _timestamps_fast(values: pa.Array, scale: float) -> np.ndarray | None:
    """
    Stripped timestamps -> seconds, as [`parse_timestamp`] gives them: numbers (times `scale`) or naive ISO-8601
    date-times (UTC); `None` when a value is neither, or both kinds are mixed.
    """
    try:
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False) * scale
    except pa.ArrowException:
        pass
    if not len(values) or not pc.all(pc.match_substring_regex(values, _ISO_DATE_TIME)).as_py():
        return None
    try:
        microseconds = pc.cast(values, pa.timestamp("us")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowException:  # a month 13, ...
        return None
    if np.abs(microseconds).max() >= 2**53:
        return None
    # The exact microseconds over 10**6, rounded once: what `datetime.timestamp()` computes.
    return microseconds.astype(np.float64) / 1e6


def _add_rows(bad: BadLines, path: str, rows: np.ndarray, problem: Callable[[int], str]) -> None:
    """Records bad Parquet rows (0-based; Parquet has no lines) in `bad`: the first few described, all counted."""
    described = ((path, None, f"row {row}: {problem(row)}") for row in rows[: bad.limit].tolist())
    bad.add_many(described, len(rows))


def load_kt_csv(
    interactions: str | os.PathLike,
    items: str | os.PathLike,
    *,
    user_column: str = "user_id",
    item_column: str = "item_id",
    timestamp_column: str = "timestamp",
    correct_column: str = "correct",
    text_column: str = "text",
    feature_columns: Sequence[str] = (),
    timestamp_unit: str = "s",
    split: KnowledgeTracingSplitArguments | None = None,
    cache_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
    **split_options: Any,
) -> InteractionData:
    """
    Loads a knowledge-tracing dataset from the generic tables into gram-hf's canonical form.

    Args:
        interactions (`str` or `os.PathLike`):
            A CSV (with header) or Parquet file (`.parquet`) with one row per interaction: `user_id`, `item_id`,
            `timestamp` (a number in `timestamp_unit`, or an ISO-8601 date-time; naive date-times are UTC) and
            `correct` (1/0, true/false).
        items (`str` or `os.PathLike`):
            A CSV or Parquet file `item_id,text` (or any two columns: id, text). Texts may hold commas, quotes and
            newlines when CSV-quoted.
        user_column, item_column, timestamp_column, correct_column, text_column (`str`, *optional*):
            Column names, when they differ from the defaults.
        feature_columns (`Sequence[str]`, *optional*):
            Interaction columns to keep as categorical features: their values are encoded 1..K in sorted order
            (empty = 0) and their vocabulary sizes recorded in `stats["features"]`.
        timestamp_unit (`str`, *optional*, defaults to `"s"`):
            Unit of numeric timestamps: `"s"`, `"ms"`, `"us"` or `"ns"`. Output timestamps are in seconds.
        split ([`KnowledgeTracingSplitArguments`], *optional*):
            How learners are split and windowed (see [`build_interaction_data`]): windows of `max_seq_len`, the user
            split (paper: 8:2 then 10% of train users for validation), `cold_start_items` removed from train,
            learners with fewer than `min_interactions` dropped, `strict=True` raising on interactions naming items
            absent from `items` (otherwise: dropped, one warning). Default: the defaults.
        split_options:
            The same fields as keyword arguments (`max_seq_len=50`, `cold_start_items=150`, `seed=3` for
            `split_seed`, ...), replacing those of `split`; any other keyword is a `TypeError`.
        cache_dir (`str` or `os.PathLike`, *optional*):
            The `datasets` cache of the parsed tables (default: `HF_DATASETS_CACHE`). The cache key includes the raw
            files' size and modification time, so edited files are re-read.
        rebuild (`bool`, *optional*, defaults to `False`):
            Re-parse even when a cache exists.

    Returns:
        [`~gram_hf.data.InteractionData`]: splits `train`/`validation`/`test` of rows `user_id`, `items`,
        `responses`, `timestamps` (+ features), and items `item_id`, `text`, `cold_start`.
    """
    split = KnowledgeTracingSplitArguments.from_options(split, split_options, caller="load_kt_csv")
    if timestamp_unit not in TIMESTAMP_UNITS:
        raise ValueError(f"timestamp_unit must be one of {sorted(TIMESTAMP_UNITS)}, got {timestamp_unit!r}.")
    options = {
        "interactions": os.path.abspath(interactions),
        "items": os.path.abspath(items),
        "user_column": user_column,
        "item_column": item_column,
        "timestamp_column": timestamp_column,
        "correct_column": correct_column,
        "text_column": text_column,
        "feature_columns": tuple(feature_columns),
        "timestamp_unit": timestamp_unit,
    }
    return load_with_builder(
        KnowledgeTracingCSVBuilder,
        [interactions, items],
        options,
        split,
        cache_dir=cache_dir,
        rebuild=rebuild,
    )


__all__ = ["KnowledgeTracingCSVBuilder", "KnowledgeTracingCSVConfig", "load_kt_csv"]
