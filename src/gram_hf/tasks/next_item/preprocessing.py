"""
Sequential-recommendation preprocessing shared by the loaders: k-core filtering, per-user chronological sequences and
the leave-one-out split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ...raw_files import in_order, stable_argsort


@dataclass
class PreparedInteractions:
    """
    The output of [`prepare_sequences`].

    Attributes:
        item_keys (`np.ndarray`): the catalog's item keys in catalog order (row `i` is catalog index `i`).
        tables (`dict[str, pa.Table]`): `train`, `validation` and `test` as Arrow tables of `user_id` (string),
            `items` (catalog indices, chronological) and `timestamps` (lists of int64), built in bulk.
        item_interactions (`np.ndarray`): interactions per catalog item after filtering (all splits).
        train_counts (`np.ndarray`): occurrences of each catalog item in the `train` split.
        stats (`dict`): counts of what was kept (`interactions`, `users`, `items`, ...) and `dropped`: reason ->
            interactions left out (`duplicates`, `filtered_min_interactions`; zero counts left out), so that the
            input's length is `interactions + sum(dropped.values())`.
    """

    item_keys: np.ndarray
    tables: dict[str, pa.Table]
    item_interactions: np.ndarray
    train_counts: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def splits(self) -> dict[str, dict[str, list]]:
        """The `tables` as Python lists: `{split: {"user_id": [...], "items": [[...]], "timestamps": [[...]]}}`."""
        return {name: table.to_pydict() for name, table in self.tables.items()}


def prepare_sequences(
    users: np.ndarray | pa.Array | pa.ChunkedArray,
    items: np.ndarray | pa.Array | pa.ChunkedArray,
    timestamps: np.ndarray | pa.Array | pa.ChunkedArray,
    *,
    min_item_interactions: int = 5,
    min_user_interactions: int = 3,
) -> PreparedInteractions:
    """
    Turns raw interactions into chronological per-user sequences split leave-one-out.

    1. Repeated (user, item) pairs keep their first occurrence (a next-item target is then never in its own history).
    2. Items with fewer than `min_item_interactions` and users with fewer than `min_user_interactions` interactions are
       dropped, repeatedly until both bounds hold (dropping users can push items below their bound and back).
    3. Each user's interactions are ordered by timestamp, ties by their order in the input (stable).
    4. Leave-one-out: `test` holds the whole sequence (the last item is the target), `validation` all but the last
       (its last item is the target) and `train` all but the last two; a train sequence needs two items to give a
       training pair, so shorter ones are left out of `train` (their users stay in validation and test).

    Catalog order is the sorted order of the surviving item keys; users come in sorted order of their keys. All in
    numpy and Arrow: no Python object per interaction.

    Args:
        users, items, timestamps (`np.ndarray` or `pyarrow.Array`): one entry per interaction, in input order
            (Arrow string keys are dictionary-encoded by Arrow, without a Python object per entry).
        min_item_interactions (`int`, *optional*, defaults to 5): the item core.
        min_user_interactions (`int`, *optional*, defaults to 3): the user core; at least 3, which leave-one-out needs.
    """
    if min_user_interactions < 3:
        raise ValueError(
            f"min_user_interactions must be at least 3 (one training item, one validation and one test target), "
            f"got {min_user_interactions}."
        )
    if min_item_interactions < 1:
        raise ValueError(f"min_item_interactions must be positive, got {min_item_interactions}.")
    if isinstance(timestamps, (pa.Array, pa.ChunkedArray)):
        timestamps = timestamps.to_numpy()
    timestamps = np.asarray(timestamps, dtype=np.int64)
    user_code, user_keys, user_rank = _codes(users)
    item_code, item_keys_all, _ = _codes(items)
    dropped: dict[str, int] = {}
    stats: dict[str, Any] = {"dropped": dropped}
    # Users in sorted key order, each in time order, ties in input order (one sort: the order of the output, which
    # the filters below keep). Integer ids are ranked as their codes (no gather); sorted files keep their order.
    user_order = user_code if (user_rank == np.arange(len(user_rank))).all() else user_rank[user_code]
    if not in_order(timestamps, user_order):
        rows = stable_argsort(timestamps, user_order)
        # The three columns in that order, filtered together below.
        user_code, item_code, timestamps = user_code[rows], item_code[rows], timestamps[rows]
    repeated = _repeated_pairs(user_code, item_code)
    if repeated.any():
        dropped["duplicates"] = int(repeated.sum())
        kept = ~repeated
        user_code, item_code, timestamps = user_code[kept], item_code[kept], timestamps[kept]
    deduplicated = len(user_code)
    rounds = 0
    while True:
        rounds += 1
        item_counts = np.bincount(item_code, minlength=len(item_keys_all))
        kept = item_counts[item_code] >= min_item_interactions
        if not kept.all():
            user_code, item_code, timestamps = user_code[kept], item_code[kept], timestamps[kept]
        user_counts = np.bincount(user_code, minlength=len(user_keys))
        kept = user_counts[user_code] >= min_user_interactions
        if kept.all():
            break
        user_code, item_code, timestamps = user_code[kept], item_code[kept], timestamps[kept]
    stats["filter_rounds"] = rounds
    stats["interactions"] = len(user_code)
    if deduplicated > len(user_code):
        dropped["filtered_min_interactions"] = deduplicated - len(user_code)
    if not len(user_code):
        raise ValueError(
            f"No interactions are left after keeping items with >= {min_item_interactions} and users with >= "
            f"{min_user_interactions} interactions."
        )
    # The catalog: surviving items in sorted key order.
    present_items = np.flatnonzero(np.bincount(item_code, minlength=len(item_keys_all)))
    item_order = np.argsort(np.asarray(item_keys_all)[present_items], kind="stable")
    item_keys = np.asarray(item_keys_all)[present_items][item_order]
    catalog_index = np.full(len(item_keys_all), -1, dtype=np.int64)  # int64: the lists' type
    catalog_index[present_items[item_order]] = np.arange(len(present_items))
    index_values = catalog_index[item_code]
    starts = np.flatnonzero(np.concatenate([[True], user_code[1:] != user_code[:-1]]))
    ends = np.append(starts[1:], len(user_code))
    lengths = ends - starts
    user_ids = pa.array(np.asarray(user_keys)[user_code[starts]]).cast(pa.string())
    # Rows of each split, as masks over the test rows (every row): validation drops each user's last row, train the
    # last two, and the users left with fewer than two (a train sequence needs two items; users have >= 3 rows).
    in_validation = np.ones(len(user_code), dtype=bool)
    in_validation[ends - 1] = False
    in_train = in_validation.copy()
    in_train[ends - 2] = False
    short = lengths < 4
    in_train[starts[short]] = False  # a user of 3 rows has 1 left
    tables = {}
    for name, drop_last, mask in (("train", 2, in_train), ("validation", 1, in_validation), ("test", 0, None)):
        users_kept = ~short if name == "train" else np.ones(len(starts), dtype=bool)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths[users_kept] - drop_last)]), pa.int32())
        values = index_values if mask is None else index_values[mask]
        times = timestamps if mask is None else timestamps[mask]
        tables[name] = pa.table(
            {
                "user_id": user_ids.filter(pa.array(users_kept)),
                "items": pa.ListArray.from_arrays(offsets, pa.array(values)),
                "timestamps": pa.ListArray.from_arrays(offsets, pa.array(times)),
            }
        )
        if name == "train":
            train_counts = np.bincount(values, minlength=len(item_keys)).astype(np.int64)
            short_train = int(short.sum())
    stats.update(
        users=len(starts),
        items=len(item_keys),
        train_sequences=tables["train"].num_rows,
        train_sequences_too_short=short_train,
        cold_start_items=int((train_counts == 0).sum()),
    )
    item_interactions = np.bincount(index_values, minlength=len(item_keys)).astype(np.int64)
    return PreparedInteractions(item_keys, tables, item_interactions, train_counts, stats)


def _repeated_pairs(user_code: np.ndarray, item_code: np.ndarray) -> np.ndarray:
    """
    Which rows repeat an earlier row's (user, item) pair: sorted stably by item (radix passes over the codes, no
    comparison sort), a pair's rows are adjacent, the first one first.
    """
    by_item = stable_argsort(item_code)
    item_sorted, user_sorted = item_code[by_item], user_code[by_item]
    repeated = np.zeros(len(user_code), dtype=bool)
    repeated[by_item[1:]] = (item_sorted[1:] == item_sorted[:-1]) & (user_sorted[1:] == user_sorted[:-1])
    return repeated


def _codes(keys: np.ndarray | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    `(code of each entry, distinct keys, rank of each distinct key in sorted order)`, codes and ranks int32 (less
    memory to go through than int64; 2**31 users or items are far off). Integer keys of a compact range (MovieLens
    ids) are numbered in their order without hashing; others are hashed (Arrow's dictionary encoding for Arrow
    strings, as the readers give them, else pandas' factorize), and only the distinct keys sorted.
    """
    if isinstance(keys, (pa.Array, pa.ChunkedArray)):
        if not pa.types.is_string(keys.type) and not pa.types.is_large_string(keys.type):
            return _codes(keys.to_numpy())
        encoded = pc.dictionary_encode(keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys)
        codes = encoded.indices.to_numpy().astype(np.int32, copy=False)
        distinct = encoded.dictionary.to_numpy(zero_copy_only=False)
        return codes, distinct, _ranks(distinct)
    keys = np.asarray(keys)
    if keys.dtype.kind in "iu" and len(keys):
        low, high = int(keys.min()), int(keys.max())
        if high - low <= 4 * len(keys):
            # Offsets, renumbered over the values present: dense codes, so that sorting by them takes one radix pass
            # where the catalog has fewer than 65536 items (MovieLens' ids are sparse).
            offsets = (keys - keys.dtype.type(low)).astype(np.int32)
            present = np.bincount(offsets) > 0
            if present.all():
                return offsets, np.arange(low, high + 1, dtype=keys.dtype), np.arange(len(present), dtype=np.int32)
            renumber = np.cumsum(present, dtype=np.int32) - 1
            values = (np.flatnonzero(present) + low).astype(keys.dtype)
            return renumber[offsets], values, np.arange(len(values), dtype=np.int32)
    codes, distinct = pd.factorize(keys)
    distinct = np.asarray(distinct)
    return codes.astype(np.int32), distinct, _ranks(distinct)


def _ranks(distinct: np.ndarray) -> np.ndarray:
    """The rank of each distinct key in sorted order (Python's order: code points for strings), int32."""
    rank = np.empty(len(distinct), dtype=np.int32)
    rank[np.argsort(distinct, kind="stable")] = np.arange(len(distinct))
    return rank


__all__ = ["PreparedInteractions", "prepare_sequences"]
