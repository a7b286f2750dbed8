"""Batching of knowledge-tracing sequences into GRAM's batch contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

# Batch keys the collator emits itself; feature columns cannot take these names.
RESERVED_KEYS = frozenset({"item_index", "item_ref", "labels"})


@dataclass
class KnowledgeTracingCollator:
    """
    Collates learner sequences `{items: [catalog index, ...], responses: [0/1, ...], <feature>: [id, ...]}` into

    - `item_index` (`[U]`): the batch's unique catalog indices, ascending;
    - `item_ref` (`[B, T]`): positions into `item_index`, -1 for padding (right-padded to the longest sequence);
    - `labels` (`[B, T]` float): the responses, 1 = correct, -100 for padding;
    - one `[B, T]` LongTensor per entry of `feature_columns`, under the column's name (the name
      [`KnowledgeTracingHead`]'s `features` use), 0 for padding.

    Other columns of the examples (`user_id`, `timestamps`, ...) are ignored. The examples are validated (shapes, 0/1
    responses, non-negative indices and feature ids), and an error names the example's position in the batch. The
    checks and the padding run on the concatenated batch, not per token.

    Args:
        items_column (`str`, *optional*, defaults to `"items"`): the column of catalog indices.
        responses_column (`str`, *optional*, defaults to `"responses"`): the column of responses (1 = correct).
        max_seq_len (`int`, *optional*): longer sequences raise an error (chunk them in the dataset instead, so that
            no interaction is silently dropped).
        feature_columns (`Sequence[str]`, *optional*, defaults to `()`): per-interaction categorical feature columns
            (integer ids >= 0, 0 = unknown), e.g. `list(data.stats["features"])`.
    """

    items_column: str = "items"
    responses_column: str = "responses"
    max_seq_len: int | None = None
    feature_columns: Sequence[str] = ()

    def __post_init__(self):
        if isinstance(self.feature_columns, str):
            self.feature_columns = (self.feature_columns,)
        self.feature_columns = tuple(self.feature_columns)
        clashes = sorted(set(self.feature_columns) & (RESERVED_KEYS | {self.items_column, self.responses_column}))
        if clashes:
            raise ValueError(f"feature_columns {clashes} clash with the items, responses or the batch keys.")
        if len(set(self.feature_columns)) != len(self.feature_columns):
            raise ValueError(f"feature_columns has duplicates: {list(self.feature_columns)}.")
        if self.max_seq_len is not None and self.max_seq_len < 1:
            raise ValueError(f"max_seq_len must be >= 1, got {self.max_seq_len}.")

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if len(features) == 0:
            raise ValueError("Cannot collate an empty batch.")
        items, responses = [], []
        columns: dict[str, list[torch.Tensor]] = {name: [] for name in self.feature_columns}
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
            for name in self.feature_columns:
                if name not in feature:
                    raise ValueError(f"Example {position} of the batch has no feature column {name!r}.")
                values = torch.as_tensor(feature[name])
                if values.shape != sequence.shape:
                    raise ValueError(
                        f"Example {position}: feature {name!r} has shape {tuple(values.shape)}, the sequence "
                        f"{tuple(sequence.shape)}."
                    )
                if values.is_floating_point() or values.is_complex():
                    raise ValueError(f"Example {position}: feature {name!r} needs integer ids, not {values.dtype}.")
                columns[name].append(values.long())
            items.append(sequence)
            responses.append(answers)

        lengths = torch.tensor([sequence.numel() for sequence in items])
        ends = lengths.cumsum(0)
        flat_items, flat_responses = torch.cat(items), torch.cat(responses)
        self._check(flat_responses, (flat_responses != 0) & (flat_responses != 1), ends, responses, "responses")
        self._check(flat_items, flat_items < 0, ends, items, "catalog indices")
        flat_columns = {name: torch.cat(values) for name, values in columns.items()}
        for name, values in flat_columns.items():
            self._check(values, values < 0, ends, columns[name], f"feature {name!r}")

        item_index, positions = torch.unique(flat_items, return_inverse=True)
        # Row-major positions of the real interactions: boolean-mask assignment fills them in the order of the
        # concatenation, i.e. each row's sequence left-aligned.
        real = torch.arange(int(lengths.max())) < lengths.unsqueeze(1)
        item_ref = torch.full(real.shape, -1, dtype=torch.long)
        item_ref[real] = positions
        labels = torch.full(real.shape, -100.0)
        labels[real] = flat_responses
        batch = {"item_index": item_index, "item_ref": item_ref, "labels": labels}
        for name, values in flat_columns.items():
            padded = torch.zeros(real.shape, dtype=torch.long)
            padded[real] = values
            batch[name] = padded
        return batch

    @staticmethod
    def _check(
        flat: torch.Tensor, invalid: torch.Tensor, ends: torch.Tensor, per_example: list[torch.Tensor], what: str
    ) -> None:
        """Raises naming the first example with an `invalid` entry (positions in the concatenation `flat`)."""
        if not bool(invalid.any()):
            return
        first = int(invalid.nonzero()[0, 0])
        position = int(torch.searchsorted(ends, first, right=True))
        if what == "responses":
            raise ValueError(
                f"Example {position}: responses must be 0 or 1, got {per_example[position].unique().tolist()}."
            )
        raise ValueError(f"Example {position}: {what} must be >= 0, got {int(flat[first])}.")
