"""
The knowledge-tracing canonical step: what every KT raw builder yields (one row per learner, an item table; see
[`~gram_hf.tasks.knowledge_tracing.builder.KnowledgeTracingRawBuilder`]) reduced to
[`~gram_hf.data.InteractionData`] the same way for every dataset.

[`build_interaction_data`] runs these steps in order, each a function of its own over an [`Interactions`] table:
[`flatten_learners`], [`match_items`], [`sort_and_filter_learners`], [`encode_features`], [`build_catalog`],
[`split_learners`], [`choose_cold_start_items`], [`remove_cold_start_from_train`], [`window_sequences`] and
[`assemble_stats`]. What the steps leave out is counted in one [`DropCounts`] and named in ONE warning.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets.fingerprint import Hasher

from ...builders import source_hash
from ...data import InteractionData
from ...raw_files import DroppedRows, location, stable_argsort
from .raw_io import examples
from .split_arguments import KnowledgeTracingSplitArguments

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")
"""Split codes of the optional raw `splits` column (0, 1, 2) and the order of the output splits."""

TIMESTAMP_UNIT = "seconds"
MISSING_TEXT_CHOICES = ("error", "drop")
SPLIT_BY_CHOICES = ("user", "predefined")
_RAW_COLUMNS = {"user_id", "item_ids", "timestamps", "responses", "splits"}
_SOURCE = source_hash(sys.modules[__name__])


@dataclass
class DropCounts:
    """
    What the canonical step leaves out, as `InteractionData.stats` reports it.

    Attributes:
        interactions (`dict[str, int]`): reason -> raw interactions in no split (`stats["dropped"]`): the reader's
            own drops (e.g. POJ `unjudged_submissions`, `empty_fields`), `unknown_items` (item id absent from the item
            table), `items_without_text` (`missing_text="drop"`), `short_learners` (learners below
            `min_interactions`).
        items (`dict[str, int]`): `stats["dropped_items"]`: `unknown_ids` (distinct unknown item ids),
            `without_text` (items whose interactions were dropped for lack of text), `unused` (item-table rows no
            kept interaction uses).
        learners (`dict[str, int]`): `stats["dropped_learners"]`: `below_min_interactions`, `without_interactions`
            (every interaction dropped), `only_cold_start_in_train` (train learners whose interactions were all on
            cold-start items).
        warnings (`list[str]`): the parts of the one summary warning.
    """

    interactions: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    learners: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def count(self, table: dict[str, int], reason: str, number: int) -> None:
        """Adds `number` under `reason` of `table` (zero counts are left out of the stats)."""
        if number:
            table[reason] = table.get(reason, 0) + int(number)


@dataclass
class Interactions:
    """
    The canonical step's working table: parallel arrays with one entry per interaction.

    Attributes:
        user (`np.ndarray`): int64 index of the learner (into the sorted learner ids).
        item (`np.ndarray`): int64 row of the item table (-1: an unknown id); a catalog index after [`build_catalog`].
        timestamps (`np.ndarray`): float64 seconds.
        responses (`np.ndarray`): int8, 1 = correct.
        features (`dict`): the raw feature values (Arrow arrays); int32 codes after [`encode_features`].
        splits (`np.ndarray`, *optional*): int8 codes into `SPLIT_NAMES`: the format's own, or [`split_learners`]'.
    """

    user: np.ndarray
    item: np.ndarray
    timestamps: np.ndarray
    responses: np.ndarray
    features: dict[str, pa.Array | np.ndarray]
    splits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.timestamps)

    def take(self, rows: np.ndarray) -> Interactions:
        """The interactions at positions `rows`, in that order."""
        indices = pa.array(rows, pa.int64())
        features = {name: v.take(indices) if isinstance(v, pa.Array) else v[rows] for name, v in self.features.items()}
        splits = None if self.splits is None else self.splits[rows]
        return Interactions(
            self.user[rows], self.item[rows], self.timestamps[rows], self.responses[rows], features, splits
        )


def build_interaction_data(
    users: datasets.Dataset,
    items: datasets.Dataset | None = None,
    *,
    split: KnowledgeTracingSplitArguments | None = None,
    split_by: str = "user",
    missing_text: str = "error",
    feature_vocab_sizes: Mapping[str, int] | None = None,
    dataset: str | None = None,
    missing_text_hint: str = "supply their text, or drop their interactions with missing_text='drop'.",
    read_stats: Mapping[str, Any] | None = None,
    **split_options: Any,
) -> InteractionData:
    """
    Reduces raw per-learner interactions and an item table to gram-hf's knowledge-tracing canonical form.

    Steps, in order:
    0. rows the reader left out on purpose (`read_stats`, e.g. POJ's unjudged submissions) are counted and named in
       the summary warning; `strict=True` raises instead, naming file and line of the first few;
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

    Counts (`stats`): `rows_read` (raw interaction rows the reader read), `dropped` (reason -> raw interactions in no
    split, see [`DropCounts`]; reasons with no drop are left out) with `dropped_examples` (reason -> the first few
    `file:line: problem` of the reader's drops), and `removed_from_train` (`{"cold_start_items": n}`: interactions
    that only `train` lost). They add up: `rows_read == interactions["total"] + sum(dropped.values()) +
    sum(removed_from_train.values())`. Counts of items and learners are in `dropped_items` and `dropped_learners`.

    Split rows: `user_id` (str), `items` (list of int32 catalog indices), `responses` (list of int8, 1 = correct),
    `timestamps` (list of int64 seconds, floored; the origin is the raw format's), and one list of int32 per
    categorical feature (0 = unknown/padding). Integer features keep their values, with vocabulary size
    `max(feature_vocab_sizes[name], max value + 1)`; string features are encoded 1..K in sorted order of their values
    (empty = 0) and their vocabulary is kept in `stats["feature_vocabularies"]`. `stats["features"]` maps each
    feature to its vocabulary size, as embedding layers need it.

    Args:
        users (`datasets.Dataset`): a raw builder's `interactions` rows (see `KnowledgeTracingRawBuilder`).
        items (`datasets.Dataset`, *optional*): its `items` rows; `None` derives the items from the interactions
            (text = id, as for Duolingo sentences).
        split ([`KnowledgeTracingSplitArguments`], *optional*): `max_seq_len`, the learner fractions,
            `cold_start_items`, `split_seed`, `min_interactions` and `strict` (default: their defaults).
        split_by (`str`, *optional*, defaults to `"user"`): `"user"` or `"predefined"`.
        missing_text (`str`, *optional*, defaults to `"error"`): `"error"` or `"drop"` for used items with null text.
        feature_vocab_sizes (`Mapping[str, int]`, *optional*): known vocabulary sizes of integer features.
        dataset (`str`, *optional*): a name recorded in `stats`.
        missing_text_hint (`str`, *optional*): what the missing-text error suggests (a loader names its own options).
        read_stats (`Mapping`, *optional*): what the reader counted: `rows_read` and the
            [`~gram_hf.raw_files.DroppedRows.to_dict`] of the rows it left out (default: every row of `users` read,
            nothing dropped).
        split_options: fields of [`KnowledgeTracingSplitArguments`] as keyword arguments (`max_seq_len=50`,
            `seed=3`, ...), replacing those of `split`.
    """
    split = KnowledgeTracingSplitArguments.from_options(split, split_options, caller="build_interaction_data")
    # What the output is a function of, hashed once: the `datasets` fingerprint of every output table, which
    # `datasets` would otherwise compute by hashing the tables' contents (a pass over every value).
    fingerprint = Hasher.hash(
        [
            _SOURCE, users._fingerprint, None if items is None else items._fingerprint, split, split_by,
            missing_text, dict(feature_vocab_sizes or {}), dataset, missing_text_hint, read_stats,
        ]
    )  # fmt: skip
    if split_by not in SPLIT_BY_CHOICES:
        raise ValueError(f"split_by must be 'user' or 'predefined', got {split_by!r}.")
    if missing_text not in MISSING_TEXT_CHOICES:
        raise ValueError(f"missing_text must be one of {MISSING_TEXT_CHOICES}, got {missing_text!r}.")

    learner_ids, item_ids, interactions = flatten_learners(users, predefined_splits=split_by == "predefined")
    dropped = DropCounts()
    reader_drops = DroppedRows.from_dict(read_stats)
    if reader_drops.total:
        if split.strict:
            raise reader_drops.error()
        for reason, number in reader_drops.counts.items():
            dropped.count(dropped.interactions, reason, number)
        dropped.warnings.append(reader_drops.summary())
    rows_read = int((read_stats or {}).get("rows_read", len(interactions)))
    item_table, interactions.item, keep = match_items(
        item_ids, items, strict=split.strict, missing_text=missing_text, missing_text_hint=missing_text_hint,
        dropped=dropped,
    )  # fmt: skip
    interactions = sort_and_filter_learners(interactions, keep, len(learner_ids), split.min_interactions, dropped)
    if interactions.splits is not None and len(interactions) and not np.isin(interactions.splits, (0, 1, 2)).all():
        raise ValueError("Raw split codes must be 0 (train), 1 (validation) or 2 (test).")
    feature_sizes, vocabularies = encode_features(interactions, feature_vocab_sizes or {})
    catalog_table = build_catalog(interactions, item_table, dropped)
    if interactions.splits is None:
        interactions.splits = split_learners(interactions.user, len(learner_ids), split)
    cold = choose_cold_start_items(catalog_table["item_id"].to_pylist(), split.cold_start_items, split.split_seed)
    interactions, cold_removed = remove_cold_start_from_train(interactions, cold, dropped)
    splits, learners = window_sequences(interactions, learner_ids, split.max_seq_len, fingerprint=fingerprint)
    if dropped.warnings:
        logger.warning("Dropped interactions: %s.", "; ".join(dropped.warnings))
    stats = assemble_stats(
        interactions, splits, learners, cold, cold_removed=cold_removed, dropped=dropped, split=split,
        split_by=split_by, feature_sizes=feature_sizes, vocabularies=vocabularies, dataset=dataset,
    )  # fmt: skip
    stats["rows_read"] = rows_read
    stats["dropped_examples"] = {
        reason: [f"{location(path, line)}: {problem}" for path, line, problem in rows]
        for reason, rows in reader_drops.examples.items()
    }
    items_out = catalog_table.append_column("cold_start", pa.array(cold, pa.bool_()))
    items_dataset = datasets.Dataset(
        datasets.table.InMemoryTable(items_out), fingerprint=Hasher.hash([fingerprint, "items"])
    )
    return InteractionData(splits=datasets.DatasetDict(splits), items=items_dataset, stats=stats)


def flatten_learners(users: datasets.Dataset, predefined_splits: bool) -> tuple[np.ndarray, pa.Array, Interactions]:
    """
    One row per learner -> one entry per interaction. Returns the sorted learner ids, the item id (str) of every
    interaction, and the [`Interactions`] (their `item` rows still -1, see [`match_items`]). Checks that every list
    of a row has the same length, responses are 0/1 and timestamps finite. With `predefined_splits`, the raw `splits`
    column becomes `Interactions.splits`.
    """
    table = users.with_format("arrow")[:] if len(users) else users.data.table
    feature_names = [name for name in users.column_names if name not in _RAW_COLUMNS]
    if predefined_splits and "splits" not in users.column_names:
        raise ValueError("split_by='predefined' needs a raw 'splits' column; this format has no predefined splits.")
    item_ids, lengths = _list_column(table, "item_ids")
    columns = {"timestamps": None, "responses": None, **dict.fromkeys(feature_names)}
    if predefined_splits:
        columns["splits"] = None
    for name in columns:
        values, column_lengths = _list_column(table, name)
        if not np.array_equal(column_lengths, lengths):
            row = int(np.flatnonzero(column_lengths != lengths)[0])
            raise ValueError(f"Raw row {row}: '{name}' and 'item_ids' differ in length.")
        columns[name] = values
    user_ids = np.asarray(table["user_id"].to_pylist(), dtype=object)
    learner_ids, user_inverse = np.unique(user_ids.astype(str), return_inverse=True)
    timestamps = columns["timestamps"].to_numpy(zero_copy_only=False).astype(np.float64)
    responses = columns["responses"].to_numpy(zero_copy_only=False).astype(np.int8)
    if len(timestamps) and not np.isin(responses, (0, 1)).all():
        raise ValueError(f"Responses must be 0 or 1, found {sorted(set(np.unique(responses).tolist()) - {0, 1})}.")
    if len(timestamps) and not np.isfinite(timestamps).all():
        raise ValueError("Timestamps must be finite numbers.")
    interactions = Interactions(
        user=np.repeat(user_inverse.astype(np.int64), lengths),
        item=np.full(len(timestamps), -1, dtype=np.int64),
        timestamps=timestamps,
        responses=responses,
        features={name: columns[name] for name in feature_names},
        splits=columns["splits"].to_numpy(zero_copy_only=False).astype(np.int8) if predefined_splits else None,
    )
    return learner_ids, item_ids, interactions


def match_items(
    item_ids: pa.Array,
    items: datasets.Dataset | None,
    *,
    strict: bool,
    missing_text: str,
    missing_text_hint: str,
    dropped: DropCounts,
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """
    The item table (`items`, or the distinct `item_ids` as their own text), the row of every interaction's item in it
    (-1: unknown) and the mask of interactions to keep. Unknown ids are dropped (`strict=True` raises); so are items
    without text when `missing_text="drop"` (`"error"` raises, ending with `missing_text_hint`). What is dropped is
    counted in `dropped`, with a part of the summary warning.
    """
    total = len(item_ids)
    if items is None:
        item_id_array = pc.unique(item_ids) if total else pa.array([], pa.string())
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
            raise ValueError(f"The item table repeats {len(repeated)} item ids, e.g. {examples(repeated)}.")
    item_row = pc.index_in(item_ids, value_set=item_id_array) if total else pa.array([], pa.int32())
    known = item_row.is_valid().to_numpy(zero_copy_only=False)
    item_row = pc.fill_null(item_row, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    num_unknown = int(total - known.sum())
    if num_unknown:
        unknown_ids = pc.unique(item_ids.filter(pa.array(~known))).to_pylist()
        message = (
            f"{num_unknown} of {total} interactions name {len(unknown_ids)} item ids absent from the item table "
            f"(e.g. {examples(unknown_ids)})"
        )
        if strict:
            raise ValueError(message + ".")
        dropped.warnings.append(message)
        dropped.count(dropped.interactions, "unknown_items", num_unknown)
        dropped.count(dropped.items, "unknown_ids", len(unknown_ids))
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
                f"(e.g. {examples(missing_ids)})"
            )
            if missing_text == "error":
                raise ValueError(message + "; " + missing_text_hint)
            dropped.warnings.append(message)
            dropped.count(dropped.interactions, "items_without_text", int(no_text.sum()))
            dropped.count(dropped.items, "without_text", len(missing_ids))
            keep &= ~no_text
    return item_table, item_row, keep


def sort_and_filter_learners(
    interactions: Interactions, keep: np.ndarray, num_learners: int, min_interactions: int, dropped: DropCounts
) -> Interactions:
    """
    The kept interactions grouped by learner, each learner's in time order — stably, so ties keep file order (EdNet
    bundles share a timestamp) — without the learners that have fewer than `min_interactions` (counted in `dropped`).
    """
    order = _learner_time_order(interactions.user, interactions.timestamps, np.flatnonzero(keep))
    counts = np.bincount(interactions.user[order], minlength=num_learners)
    short_users = (counts > 0) & (counts < min_interactions)
    if short_users.any():
        dropped.count(dropped.learners, "below_min_interactions", int(short_users.sum()))
        dropped.count(dropped.interactions, "short_learners", int(counts[short_users].sum()))
        order = order[~short_users[interactions.user[order]]]
    dropped.count(dropped.learners, "without_interactions", int((counts == 0).sum()))
    return interactions.take(order)


def encode_features(
    interactions: Interactions, feature_vocab_sizes: Mapping[str, int]
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """
    Replaces the raw feature values by int32 codes (0 = unknown) and returns the vocabulary size of every feature and
    the vocabulary of the string ones. Integer features keep their values (size: `max(feature_vocab_sizes[name], max
    value + 1)`); string features are encoded 1..K in sorted order (empty = 0).
    """
    sizes: dict[str, int] = {}
    vocabularies: dict[str, list[str]] = {}
    for name, values in interactions.features.items():
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            strings = pc.fill_null(values, "")
            vocabulary = sorted(value for value in pc.unique(strings).to_pylist() if value != "")
            codes = pc.fill_null(pc.index_in(strings, value_set=pa.array(vocabulary, pa.string())), -1)
            interactions.features[name] = codes.to_numpy(zero_copy_only=False).astype(np.int32) + 1
            vocabularies[name] = vocabulary
            sizes[name] = len(vocabulary) + 1
        else:
            array = pc.fill_null(values, 0).to_numpy(zero_copy_only=False).astype(np.int64)
            if len(array) and array.min() < 0:
                raise ValueError(f"Feature {name!r} has negative values; 0 is reserved for unknown, ids start at 1.")
            observed = int(array.max()) + 1 if len(array) else 1
            sizes[name] = max(feature_vocab_sizes.get(name, 0), observed)
            interactions.features[name] = array.astype(np.int32)
    return sizes, vocabularies


def build_catalog(interactions: Interactions, item_table: pa.Table, dropped: DropCounts) -> pa.Table:
    """
    The catalog: the item-table rows that occur, in item-table order (row `i` = catalog index `i`). Turns
    `interactions.item` into catalog indices and counts the unused items in `dropped`.
    """
    used_rows = np.flatnonzero(np.bincount(interactions.item, minlength=item_table.num_rows))
    catalog_of_row = np.full(item_table.num_rows, -1, dtype=np.int64)
    catalog_of_row[used_rows] = np.arange(len(used_rows))
    interactions.item = catalog_of_row[interactions.item].astype(np.int32)
    dropped.count(dropped.items, "unused", int(item_table.num_rows - len(used_rows)))
    return item_table.take(pa.array(used_rows, pa.int64()))


def split_learners(user: np.ndarray, num_learners: int, split: KnowledgeTracingSplitArguments) -> np.ndarray:
    """
    The split code of every interaction, by learner: a permutation seeded by `split.split_seed` puts
    `round(test_fraction * n)` of the `n` learners that have interactions in `test`, then `round(validation_fraction
    * rest)` in `validation`, the others in `train`.
    """
    present_users, _ = _unique_counts(user)
    permutation = np.random.default_rng(split.split_seed).permutation(len(present_users))
    num_test = int(round(split.test_fraction * len(present_users)))
    num_validation = int(round(split.validation_fraction * (len(present_users) - num_test)))
    user_split = np.zeros(num_learners, dtype=np.int8)
    user_split[present_users[permutation[:num_test]]] = 2
    user_split[present_users[permutation[num_test : num_test + num_validation]]] = 1
    return user_split[user]


def choose_cold_start_items(catalog_ids: list[str], cold_start_items: int | Sequence[str], seed: int) -> np.ndarray:
    """
    The cold-start flag of every catalog item: `cold_start_items` random items (0: none) or the listed item ids.

    Raises:
        `ValueError`: a count that is not smaller than the catalog, or listed ids that do not occur.
    """
    num_items = len(catalog_ids)
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
        return cold
    index_of = {item_id: i for i, item_id in enumerate(catalog_ids)}
    requested = [str(item_id) for item_id in cold_start_items]
    unknown = [item_id for item_id in requested if item_id not in index_of]
    if unknown:
        raise ValueError(
            f"{len(unknown)} cold_start_items do not occur in the interactions, e.g. {examples(unknown)}."
        )
    cold[[index_of[item_id] for item_id in requested]] = True
    return cold


def remove_cold_start_from_train(
    interactions: Interactions, cold: np.ndarray, dropped: DropCounts
) -> tuple[Interactions, int]:
    """
    Removes the cold-start items' interactions from `train` only (validation and test keep them, to measure
    cold-start AUC). Returns the interactions left and how many were removed; train learners left without any are
    counted in `dropped`.
    """
    removed = (interactions.splits == 0) & _cold_interactions(interactions, cold)
    cold_removed = int(removed.sum())
    if cold_removed:
        before, _ = _unique_counts(interactions.user[interactions.splits == 0])
        interactions = interactions.take(np.flatnonzero(~removed))
        after, _ = _unique_counts(interactions.user[interactions.splits == 0])
        dropped.count(dropped.learners, "only_cold_start_in_train", int(len(before) - len(after)))
    return interactions, cold_removed


def window_sequences(
    interactions: Interactions, learner_ids: np.ndarray, max_seq_len: int, *, fingerprint: str | None = None
) -> tuple[dict[str, datasets.Dataset], dict[str, int]]:
    """
    The output splits, in `SPLIT_NAMES` order: every learner's interactions (already grouped and in time order) cut
    into consecutive windows of at most `max_seq_len`, one row each; and the number of learners in each split.
    `fingerprint` (of what the interactions derive from) gives each split its `datasets` fingerprint; without it,
    `datasets` hashes the split's contents.
    """
    features = datasets.Features(
        {
            "user_id": datasets.Value("string"),
            "items": datasets.List(datasets.Value("int32")),
            "responses": datasets.List(datasets.Value("int8")),
            "timestamps": datasets.List(datasets.Value("int64")),
            **{name: datasets.List(datasets.Value("int32")) for name in interactions.features},
        }
    )
    int_timestamps = np.floor(interactions.timestamps).astype(np.int64)
    splits, learners = {}, {}
    for code, split_name in enumerate(SPLIT_NAMES):
        mask = interactions.splits == code
        split_users, user_lengths = _unique_counts(interactions.user[mask])
        # Row r of the split covers interactions [offsets[r], offsets[r + 1]) of the masked, learner-grouped arrays.
        num_chunks = (user_lengths + max_seq_len - 1) // max_seq_len
        user_starts = np.concatenate([[0], np.cumsum(user_lengths)[:-1]]).astype(np.int64)
        chunk_user = np.repeat(np.arange(len(split_users)), num_chunks)
        chunk_rank = np.arange(int(num_chunks.sum())) - np.repeat(np.cumsum(num_chunks) - num_chunks, num_chunks)
        offsets = pa.array(np.append(user_starts[chunk_user] + chunk_rank * max_seq_len, mask.sum()), pa.int32())

        def lists(values: np.ndarray, arrow_type: pa.DataType, offsets=offsets) -> pa.ListArray:
            return pa.ListArray.from_arrays(offsets, pa.array(values, arrow_type))

        arrays = {
            "user_id": pa.array(learner_ids[split_users[chunk_user]].tolist(), pa.string()),
            "items": lists(interactions.item[mask], pa.int32()),
            "responses": lists(interactions.responses[mask], pa.int8()),
            "timestamps": lists(int_timestamps[mask], pa.int64()),
            **{name: lists(values[mask], pa.int32()) for name, values in interactions.features.items()},
        }
        split_table = pa.Table.from_arrays(list(arrays.values()), schema=features.arrow_schema)
        splits[split_name] = datasets.Dataset(
            datasets.table.InMemoryTable(split_table),
            info=datasets.DatasetInfo(features=features),
            fingerprint=None if fingerprint is None else Hasher.hash([fingerprint, split_name]),
        )
        learners[split_name] = len(split_users)
    return splits, learners


def assemble_stats(
    interactions: Interactions,
    splits: Mapping[str, datasets.Dataset],
    learners: Mapping[str, int],
    cold: np.ndarray,
    *,
    cold_removed: int,
    dropped: DropCounts,
    split: KnowledgeTracingSplitArguments,
    split_by: str,
    feature_sizes: dict[str, int],
    vocabularies: dict[str, list[str]],
    dataset: str | None,
) -> dict[str, Any]:
    """`InteractionData.stats` of the canonical form: counts per split, items, what was dropped, the options used."""
    cold_interaction = _cold_interactions(interactions, cold)
    per_split = {name: interactions.splits == code for code, name in enumerate(SPLIT_NAMES)}
    interaction_counts = {name: int(mask.sum()) for name, mask in per_split.items()}
    num_items = len(cold)
    stats = {
        "dataset": dataset,
        "users": {**learners, "total": int(sum(learners.values()))},
        "items": {
            "total": num_items,
            "cold_start": int(cold.sum()),
            "in_train": int(np.count_nonzero(np.bincount(interactions.item[per_split["train"]], minlength=num_items))),
        },
        "interactions": {**interaction_counts, "total": int(sum(interaction_counts.values()))},
        "sequences": {name: len(rows) for name, rows in splits.items()},
        "cold_start_interactions": {
            "removed_from_train": cold_removed,
            **{name: int(cold_interaction[per_split[name]].sum()) for name in SPLIT_NAMES[1:]},
        },
        "dropped": dropped.interactions,
        "removed_from_train": {"cold_start_items": cold_removed} if cold_removed else {},
        "dropped_items": dropped.items,
        "dropped_learners": dropped.learners,
        "features": feature_sizes,
        "timestamp_unit": TIMESTAMP_UNIT,
        "max_seq_len": split.max_seq_len,
        "split": {
            "by": split_by,
            "seed": split.split_seed,
            "test_fraction": split.test_fraction,
            "validation_fraction": split.validation_fraction,
        },
        "mean_interactions_per_item": (float(len(interactions)) / num_items) if num_items else None,
    }
    if vocabularies:
        stats["feature_vocabularies"] = vocabularies
    return stats


def _cold_interactions(interactions: Interactions, cold: np.ndarray) -> np.ndarray:
    """Whether each interaction is on a cold-start item."""
    return cold[interactions.item] if len(interactions) else np.zeros(0, dtype=bool)


def _unique_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(values, return_counts=True)`, in one pass when `values` is sorted (the learner-grouped arrays)."""
    if len(values) > 1 and not (values[1:] >= values[:-1]).all():
        return np.unique(values, return_counts=True)
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]])) if len(values) else np.zeros(0, int)
    return values[starts], np.diff(np.append(starts, len(values)))


def _learner_time_order(user: np.ndarray, timestamps: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """
    `rows` ordered by learner, then timestamp, then position (a stable sort by time, then by learner). In one pass
    when every learner's rows are one run already in time order (EdNet's user files, SLAM's files): the runs are
    only put in learner order.
    """
    user, timestamps = user[rows], timestamps[rows]
    size = len(rows)
    if size == 0:
        return rows
    starts = np.flatnonzero(np.concatenate([[True], user[1:] != user[:-1]]))
    run_user = user[starts]
    within_run = np.ones(size - 1, dtype=bool)
    within_run[starts[1:] - 1] = False
    if len(np.unique(run_user)) == len(run_user) and (timestamps[1:] >= timestamps[:-1])[within_run].all():
        lengths = np.diff(np.append(starts, size))
        run_order = np.argsort(run_user)
        sorted_lengths = lengths[run_order]
        # Position i of the output is row (i - first output position of its run) + the run's start.
        shift = starts[run_order] - (np.cumsum(sorted_lengths) - sorted_lengths)
        return rows[np.arange(size) + np.repeat(shift, sorted_lengths)]
    return rows[stable_argsort(timestamps, user)]


def _list_column(table: pa.Table, name: str) -> tuple[pa.Array, np.ndarray]:
    """Flattened values and per-row lengths of a list column (null lists count as empty)."""
    column = table[name].combine_chunks() if table.num_rows else pa.array([], table.schema.field(name).type)
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(column)
    return values, lengths


__all__ = [
    "MISSING_TEXT_CHOICES",
    "SPLIT_NAMES",
    "DropCounts",
    "Interactions",
    "assemble_stats",
    "build_catalog",
    "build_interaction_data",
    "choose_cold_start_items",
    "encode_features",
    "flatten_learners",
    "match_items",
    "remove_cold_start_from_train",
    "sort_and_filter_learners",
    "split_learners",
    "window_sequences",
]
