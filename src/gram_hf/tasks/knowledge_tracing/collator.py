"""Batching of knowledge-tracing sequences into GRAM's batch contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class KnowledgeTracingCollator:
    """
    Collates learner sequences `{items: [catalog index, ...], responses: [0/1, ...]}` into

    - `item_index` (`[U]`): the batch's unique catalog indices, ascending;
    - `item_ref` (`[B, T]`): positions into `item_index`, -1 for padding (right-padded to the longest sequence);
    - `labels` (`[B, T]` float): the responses, 1 = correct, -100 for padding.

    Args:
        items_column (`str`, *optional*, defaults to `"items"`): the column of catalog indices.
        responses_column (`str`, *optional*, defaults to `"responses"`): the column of responses (1 = correct).
        max_seq_len (`int`, *optional*): longer sequences raise an error (chunk them in the dataset instead, so that
            no interaction is silently dropped).
    """

    items_column: str = "items"
    responses_column: str = "responses"
    max_seq_len: int | None = None

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        items, responses = [], []
        for position, feature in enumerate(features):
            sequence = torch.as_tensor(feature[self.items_column], dtype=torch.long)
            answers = torch.as_tensor(feature[self.responses_column], dtype=torch.float32)
            if sequence.ndim != 1 or sequence.shape != answers.shape:
                raise ValueError(
                    f"Example {position} of the batch: '{self.items_column}' and '{self.responses_column}' must be "
                    f"1-D and of equal length, got shapes {tuple(sequence.shape)} and {tuple(answers.shape)}."
                )
            if sequence.numel() == 0:
                raise ValueError(f"Example {position} of the batch has an empty sequence.")
            if self.max_seq_len is not None and sequence.numel() > self.max_seq_len:
                raise ValueError(
                    f"Example {position} has {sequence.numel()} interactions, more than max_seq_len="
                    f"{self.max_seq_len}; chunk sequences when building the dataset."
                )
            if bool(((answers != 0) & (answers != 1)).any()):
                raise ValueError(f"Example {position}: responses must be 0 or 1, got {answers.unique().tolist()}.")
            if bool((sequence < 0).any()):
                raise ValueError(f"Example {position}: catalog indices must be >= 0.")
            items.append(sequence)
            responses.append(answers)
        lengths = [sequence.numel() for sequence in items]
        item_index, positions = torch.unique(torch.cat(items), return_inverse=True)
        item_ref = torch.full((len(items), max(lengths)), -1, dtype=torch.long)
        labels = torch.full((len(items), max(lengths)), -100.0)
        for row, (row_positions, answers) in enumerate(zip(positions.split(lengths), responses)):
            item_ref[row, : row_positions.numel()] = row_positions
            labels[row, : answers.numel()] = answers
        return {"item_index": item_index, "item_ref": item_ref, "labels": labels}
