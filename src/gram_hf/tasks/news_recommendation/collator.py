"""Batching of news impressions (click histories and candidates) into GRAM's batch contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import torch


def _padded_refs(positions: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Scatters the flat `positions` of rows of `lengths` into a `[rows, width]` tensor, -1 for padding."""
    rows = torch.repeat_interleave(torch.arange(lengths.numel()), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    columns = torch.arange(positions.numel()) - torch.repeat_interleave(starts, lengths)
    refs = torch.full((lengths.numel(), width), -1, dtype=torch.long)
    refs[rows, columns] = positions
    return refs


@dataclass
class NewsRecommendationCollator:
    """
    Collates news examples `{history: [catalog index, ...], candidates: [catalog index, ...], labels: [1/0, ...]}`
    (the rows of [`load_mind`]'s splits) into

    - `item_index` (`[U]`): the unique catalog indices of the batch's histories and candidates, ascending;
    - `history_ref` (`[B, H]`): positions into `item_index` of each history (oldest first), -1 for padding;
    - `candidate_ref` (`[B, C]`): positions into `item_index` of each candidate in its original order, -1 padding;
    - `labels` (`[B, C]` float): 1 = clicked, 0 = not clicked, -1 = unknown (a labelless test split), -100 padding.

    Training rows (one click plus `npratio` negatives, the click at a seeded random position) and whole evaluation
    impressions collate the same way; the head derives its cross-entropy targets from `labels`, not from positions.
    Everything is computed with tensor operations over the whole batch (no per-item Python loops).

    Args:
        history_column (`str`, *optional*, defaults to `"history"`): the column of clicked news (catalog indices).
        candidates_column (`str`, *optional*, defaults to `"candidates"`): the column of candidate news.
        labels_column (`str`, *optional*, defaults to `"labels"`): the column of click labels.
        max_history (`int`, *optional*): keep only the most recent `max_history` clicks of each history.
        min_history_width (`int`, *optional*, defaults to 1): `history_ref` is at least this wide, so a batch whose
            histories are all empty still has a (fully padded) history axis.
    """

    history_column: str = "history"
    candidates_column: str = "candidates"
    labels_column: str = "labels"
    max_history: int | None = None
    min_history_width: int = 1

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("Cannot collate an empty batch.")
        histories, candidates, labels = [], [], []
        for position, feature in enumerate(features):
            history = list(feature[self.history_column])
            if self.max_history is not None:
                history = history[len(history) - self.max_history :] if self.max_history > 0 else []
            shown = list(feature[self.candidates_column])
            clicks = list(feature[self.labels_column])
            if not shown:
                raise ValueError(f"Example {position} of the batch has no candidates.")
            if len(clicks) != len(shown):
                raise ValueError(
                    f"Example {position} of the batch has {len(shown)} candidates but {len(clicks)} labels."
                )
            histories.append(history)
            candidates.append(shown)
            labels.append(clicks)
        history_lengths = torch.tensor([len(history) for history in histories], dtype=torch.long)
        candidate_lengths = torch.tensor([len(shown) for shown in candidates], dtype=torch.long)
        flat_history = torch.tensor(list(chain.from_iterable(histories)), dtype=torch.long)
        flat_candidates = torch.tensor(list(chain.from_iterable(candidates)), dtype=torch.long)
        flat_labels = torch.tensor(list(chain.from_iterable(labels)), dtype=torch.float32)
        if bool((flat_history < 0).any()) or bool((flat_candidates < 0).any()):
            raise ValueError("Catalog indices must be >= 0.")
        if bool(((flat_labels != 0) & (flat_labels != 1) & (flat_labels != -1)).any()):
            raise ValueError(f"Labels must be 1, 0 or -1 (unknown), got {flat_labels.unique().tolist()}.")

        item_index, positions = torch.unique(torch.cat([flat_history, flat_candidates]), return_inverse=True)
        history_positions, candidate_positions = positions.split([flat_history.numel(), flat_candidates.numel()])
        history_width = max(int(history_lengths.max()), self.min_history_width)
        candidate_width = int(candidate_lengths.max())
        history_ref = _padded_refs(history_positions, history_lengths, history_width)
        candidate_ref = _padded_refs(candidate_positions, candidate_lengths, candidate_width)
        padded_labels = torch.full(candidate_ref.shape, -100.0)
        padded_labels[candidate_ref >= 0] = flat_labels
        return {
            "item_index": item_index,
            "history_ref": history_ref,
            "candidate_ref": candidate_ref,
            "labels": padded_labels,
        }


__all__ = ["NewsRecommendationCollator"]
