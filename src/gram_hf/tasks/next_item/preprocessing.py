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

from ...raw_files import stable_argsort


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
    users: np.ndarray,
    items: np.ndarray,
    timestamps: np.ndarray,
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
        users, items, timestamps (`np.ndarray`): one entry per interaction, in input order.
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
    timestamps = np.asarray(timestamps, dtype=np.int64)
    user_code, user_keys, user_rank = _codes(users)
    item_code, item_keys_all, _ = _codes(items)
    dropped: dict[str, int] = {}
    stats: dict[str, Any] = {"dropped": dropped}
    # Users in sorted key order, each in time order, ties in input order (one sort: the order of the output, which
    # the filters below keep); a repeated (user, item) pair keeps its first occurrence in time.
    rows = stable_argsort(timestamps, user_rank[user_code])
    # The three columns in that order, filtered together below.
    user_code, item_code, timestamps = user_code[rows], item_code[rows], timestamps[rows]
    # First occurrences of each (user, item) pair: numpy's unique sorts stably for them (faster than hashing here).
    _, first = np.unique(user_code.astype(np.int64) * max(len(item_keys_all), 1) + item_code, return_index=True)
    kept = np.zeros(len(user_code), dtype=bool)
    kept[first] = True
    if not kept.all():
        dropped["duplicates"] = int((~kept).sum())
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
    time_values = timestamps
    row_user = user_code
    starts = np.flatnonzero(np.concatenate([[True], row_user[1:] != row_user[:-1]]))
    lengths = np.diff(np.append(starts, len(row_user)))
    # How many of its user's rows come after each row: the last (test target) has 0, the validation target 1.
    after = np.repeat(starts + lengths, lengths) - np.arange(len(row_user)) - 1
    long_enough = np.repeat(lengths >= 4, lengths)  # a train sequence needs two items
    user_ids = pa.array(np.asarray(user_keys)[row_user[starts]]).cast(pa.string())
    tables = {}
    for name, drop_last in (("train", 2), ("validation", 1), ("test", 0)):
        kept_length = lengths - drop_last
        users_kept = kept_length >= 2 if name == "train" else np.ones(len(starts), dtype=bool)
        in_split = after >= drop_last
        if name == "train":
            in_split &= long_enough
        offsets = np.concatenate([[0], np.cumsum(kept_length[users_kept])])
        tables[name] = pa.table(
            {
                "user_id": user_ids.filter(pa.array(users_kept)),
                "items": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(index_values[in_split])),
                "timestamps": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(time_values[in_split])),
            }
        )
        if name == "train":
            train_counts = np.bincount(index_values[in_split], minlength=len(item_keys)).astype(np.int64)
            short_train = int((~users_kept).sum())
    stats.update(
        users=len(starts),
        items=len(item_keys),
        train_sequences=tables["train"].num_rows,
        train_sequences_too_short=short_train,
        cold_start_items=int((train_counts == 0).sum()),
    )
    item_interactions = np.bincount(index_values, minlength=len(item_keys)).astype(np.int64)
    return PreparedInteractions(item_keys, tables, item_interactions, train_counts, stats)


def _codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    `(code of each entry, distinct keys, rank of each distinct key in sorted order)`, codes and ranks int32 (less
    memory to go through than int64; 2**31 users or items are far off). Integer keys of a compact range (MovieLens
    ids) are their own codes; others are hashed (pandas' factorize), and only the distinct keys sorted.
    """
    keys = np.asarray(keys)
    if keys.dtype.kind in "iu" and len(keys):
        low, high = int(keys.min()), int(keys.max())
        if high - low <= 4 * len(keys):
            values = np.arange(low, high + 1, dtype=keys.dtype)
            return (keys - low).astype(np.int32), values, np.arange(len(values), dtype=np.int32)
    codes, distinct = pd.factorize(keys)
    distinct = np.asarray(distinct)
    rank = np.empty(len(distinct), dtype=np.int32)
    rank[np.argsort(distinct, kind="stable")] = np.arange(len(distinct))
    return codes.astype(np.int32), distinct, rank


__all__ = ["PreparedInteractions", "prepare_sequences"]
