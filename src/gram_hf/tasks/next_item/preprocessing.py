"""
Sequential-recommendation preprocessing shared by the loaders: k-core filtering, per-user chronological sequences and
the leave-one-out split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class PreparedInteractions:
    """
    The output of [`prepare_sequences`].

    Attributes:
        item_keys (`np.ndarray`): the catalog's item keys in catalog order (row `i` is catalog index `i`).
        splits (`dict[str, dict[str, list]]`): `train`, `validation` and `test` as columns `user_id`, `items`
            (catalog indices, chronological) and `timestamps`.
        item_interactions (`np.ndarray`): interactions per catalog item after filtering (all splits).
        train_counts (`np.ndarray`): occurrences of each catalog item in the `train` split.
        stats (`dict`): counts of what was kept (`interactions`, `users`, `items`, ...) and `dropped`: reason ->
            interactions left out (`duplicates`, `filtered_min_interactions`; zero counts left out), so that the
            input's length is `interactions + sum(dropped.values())`.
    """

    item_keys: np.ndarray
    splits: dict[str, dict[str, list]]
    item_interactions: np.ndarray
    train_counts: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


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

    Catalog order is the sorted order of the surviving item keys.

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
    frame = pd.DataFrame(
        {
            "user": np.asarray(users),
            "item": np.asarray(items),
            "timestamp": np.asarray(timestamps, dtype=np.int64),
            "order": np.arange(len(users), dtype=np.int64),
        }
    )
    dropped: dict[str, int] = {}
    stats: dict[str, Any] = {"dropped": dropped}
    frame = frame.sort_values(["timestamp", "order"], kind="stable")
    deduplicated = frame.drop_duplicates(["user", "item"], keep="first")
    if len(frame) > len(deduplicated):
        dropped["duplicates"] = len(frame) - len(deduplicated)
    frame = deduplicated
    rounds = 0
    while True:
        rounds += 1
        item_counts = frame["item"].map(frame["item"].value_counts())
        frame = frame[item_counts.to_numpy() >= min_item_interactions]
        user_counts = frame["user"].map(frame["user"].value_counts())
        keep = user_counts.to_numpy() >= min_user_interactions
        if keep.all():
            break
        frame = frame[keep]
    stats["filter_rounds"] = rounds
    stats["interactions"] = len(frame)
    if len(deduplicated) > len(frame):
        dropped["filtered_min_interactions"] = len(deduplicated) - len(frame)
    if frame.empty:
        raise ValueError(
            f"No interactions are left after keeping items with >= {min_item_interactions} and users with >= "
            f"{min_user_interactions} interactions."
        )
    item_keys = np.sort(frame["item"].unique())
    frame = frame.assign(index=np.searchsorted(item_keys, frame["item"].to_numpy()))
    frame = frame.sort_values(["user", "timestamp", "order"], kind="stable")
    user_values = frame["user"].to_numpy()
    boundaries = np.flatnonzero(user_values[1:] != user_values[:-1]) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(frame)]])
    index_values = frame["index"].to_numpy(dtype=np.int64)
    time_values = frame["timestamp"].to_numpy(dtype=np.int64)
    splits: dict[str, dict[str, list]] = {
        name: {"user_id": [], "items": [], "timestamps": []} for name in ("train", "validation", "test")
    }
    train_counts = np.zeros(len(item_keys), dtype=np.int64)
    short_train = 0
    for start, end in zip(starts.tolist(), ends.tolist()):
        user = str(user_values[start])
        sequence = index_values[start:end]
        times = time_values[start:end]
        for name, stop in (("test", end - start), ("validation", end - start - 1), ("train", end - start - 2)):
            if name == "train":
                if stop < 2:
                    short_train += 1
                    continue
                np.add.at(train_counts, sequence[:stop], 1)
            splits[name]["user_id"].append(user)
            splits[name]["items"].append(sequence[:stop].tolist())
            splits[name]["timestamps"].append(times[:stop].tolist())
    stats.update(
        users=len(starts),
        items=len(item_keys),
        train_sequences=len(splits["train"]["user_id"]),
        train_sequences_too_short=short_train,
        cold_start_items=int((train_counts == 0).sum()),
    )
    item_interactions = np.bincount(index_values, minlength=len(item_keys)).astype(np.int64)
    return PreparedInteractions(item_keys, splits, item_interactions, train_counts, stats)


__all__ = ["PreparedInteractions", "prepare_sequences"]
