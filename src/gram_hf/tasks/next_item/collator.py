"""Batching of item sequences into GRAM's batch contract, for full-catalog and sampled next-item losses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .head import DEFAULT_NUM_NEGATIVES, FULL_CATALOG_LOSSES, LOSS_TYPES, SAMPLED_LOSSES, check_negative_sharing
from .slicing import SLICE_START_COLUMN

if TYPE_CHECKING:
    from .head import SASRecHead

COLLATOR_MODES = ("train", "eval")


@dataclass
class NextItemCollator:
    r"""
    Collates user sequences `{items: [catalog index, ...]}` (chronological) into next-item batches.

    **Training** (`mode="train"`): inputs are `items[:-1]`, targets `items[1:]`, both truncated to the last
    `max_length` positions and right-padded. A row with a `loss_start` column (the slices of [`sequence_slices`])
    trains only its targets from that position on: the ones before are context, trained in an earlier slice.
    - Full-catalog losses (`"ce"`, `"cce"`): `item_index = arange(num_items)` (the whole catalog), `input_ref`
      (`[B, T]`), `catalog_ref = arange(num_items)` (the output layer, a reference key so that `e2e` encodes the
      catalog once more as the output layer and `gram` gives every catalog vector its pseudo-target) and `labels`
      (`[B, T]`, the next item as a column of `catalog_ref`, i.e. its catalog index; -100 for padding).
    - Sampled losses (`"bce"`, `"ce_sampled"`, `"cce_sampled"`): `item_index` = the unique items of inputs, targets
      and negatives, `input_ref` and `target_ref` (`[B, T]`) and `negative_ref` (`[B, T, K]`): `K = num_negatives`
      items drawn uniformly from the catalog per position; a negative equal to the position's target (an accidental
      hit, detected by catalog index) is removed (-1), so it is neither encoded nor scored. With `negative_sharing`
      `"sequence"`, `negative_ref` is one set of `K` items per sequence (`[B, K]`) that every position of it scores;
      with `"batch"`, one set (`[K]`) for every position of the batch. `negative_mask` (`[B, T, K]`) is then False
      where a shared negative is the position's target (or the position is padding): the negative logits are one
      product with `K` vectors per sequence (per batch) instead of `B x T x K` gathered ones.

    **Evaluation** (`mode="eval"`, any loss): the last item is held out. `item_index = catalog_ref =
    arange(num_items)`, `input_ref` (`items[:-1]`, last `max_length`), `labels` and `target_ref` (`[B]`, the held-out
    item's catalog index) and, with `exclude_seen`, `seen_ref` (`[B, H]`, the whole history, not truncated) so that
    seen items are not recommended. Because the catalog is in catalog order, the head's top-`k` columns are catalog
    indices. With a training catalog (below), evaluation batches also hold `cold_ref` (`[C]`), the catalog indices
    outside it: the cold-start items, among which the head also ranks a cold-start target.

    **Training catalog** (`training_items`): the items a training batch may score, i.e. the output layer and the
    negatives; by default the whole catalog. The task passes the items that occur in the train split: an item first
    seen after training (a new release, a cold-start item) did not exist for the model then, and scoring it as a
    negative at every step would teach a content model that texts like its text are never the next item, which is
    what its cold-start recommendations must not learn. `item_index` then holds the training catalog (plus any input
    outside it), `catalog_ref` the training catalog's positions and `labels` a target's column in it.

    Negatives are drawn from `generator` when given, else from torch's global generator, which the Trainer seeds and
    which `DataLoader` workers re-seed per worker (a generator object would be copied into every worker).

    Args:
        num_items (`int`): catalog size.
        loss_type (`str`, *optional*, defaults to `"cce"`): the head's `loss_type`, which decides the training layout.
        num_negatives (`int`, *optional*): negatives per position for the sampled losses (defaults as the head's).
        max_length (`int`, *optional*, defaults to 200): inputs keep their last `max_length` items.
        mode (`str`, *optional*, defaults to `"train"`): `"train"` or `"eval"`.
        exclude_seen (`bool`, *optional*, defaults to `True`): evaluation excludes the history from the ranking.
        items_column (`str`, *optional*, defaults to `"items"`): the column of catalog indices.
        loss_start_column (`str`, *optional*, defaults to `"loss_start"`): the column, when rows have it, of the
            number of leading targets that are context only.
        generator (`torch.Generator`, *optional*): source of the negatives.
        negative_sharing (`str`, *optional*, defaults to `"position"`): the softmax losses (`ce_sampled`,
            `cce_sampled`) draw `num_negatives` items per `"position"`, one set per `"sequence"`, or one set for the
            whole `"batch"`.
        training_items (`Sequence[int]` or `torch.LongTensor`, *optional*): the catalog indices training batches
            score (sorted, unique); defaults to the whole catalog. Evaluation batches rank the whole catalog and
            name the items outside these as the cold-start items (`cold_ref`).
    """

    num_items: int
    loss_type: str = "cce"
    num_negatives: int | None = None
    max_length: int = 200
    mode: str = "train"
    exclude_seen: bool = True
    items_column: str = "items"
    loss_start_column: str = SLICE_START_COLUMN
    generator: torch.Generator | None = None
    training_items: Sequence[int] | torch.LongTensor | None = None
    negative_sharing: str = "position"

    def __post_init__(self):
        if self.num_items < 1:
            raise ValueError(f"num_items must be positive, got {self.num_items}.")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}.")
        if self.mode not in COLLATOR_MODES:
            raise ValueError(f"mode must be one of {COLLATOR_MODES}, got {self.mode!r}.")
        if self.max_length < 1:
            raise ValueError(f"max_length must be positive, got {self.max_length}.")
        self._training_columns = None
        self._cold_items = None
        if self.training_items is not None:
            items = torch.as_tensor(self.training_items, dtype=torch.long)
            if items.ndim != 1 or not items.numel():
                raise ValueError("training_items must be a non-empty 1-D list of catalog indices.")
            if int(items.min()) < 0 or int(items.max()) >= self.num_items or not bool((items[1:] > items[:-1]).all()):
                raise ValueError(f"training_items must be sorted, unique catalog indices in [0, {self.num_items}).")
            if items.numel() < self.num_items:
                self.training_items = items
                # Catalog index -> column of the training catalog (-1 outside it), with a padding slot for -1.
                columns = torch.full((self.num_items + 1,), -1, dtype=torch.long)
                columns[items] = torch.arange(items.numel())
                self._training_columns = columns
                self._cold_items = (columns[:-1] < 0).nonzero().squeeze(1)
            else:
                self.training_items = None
        if self.loss_type in SAMPLED_LOSSES:
            if self.num_negatives is None:
                self.num_negatives = DEFAULT_NUM_NEGATIVES[self.loss_type]
            if self.num_negatives < 1:
                raise ValueError(f"num_negatives must be positive, got {self.num_negatives}.")
        check_negative_sharing(self.loss_type, self.negative_sharing)

    @classmethod
    def from_head(cls, head: SASRecHead, num_items: int, mode: str = "train", **kwargs: Any) -> NextItemCollator:
        """A collator matching `head`'s loss type, number of negatives and maximum length."""
        settings = {"loss_type": head.loss_type, "num_negatives": head.num_negatives, "max_length": head.max_length,
                    "negative_sharing": head.negative_sharing}  # fmt: skip
        return cls(num_items=num_items, mode=mode, **{**settings, **kwargs})

    def _sequences(self, features: Sequence[dict[str, Any]], minimum: int) -> list[torch.LongTensor]:
        sequences = []
        for position, feature in enumerate(features):
            sequence = torch.as_tensor(feature[self.items_column], dtype=torch.long)
            if sequence.ndim != 1:
                raise ValueError(f"Example {position} of the batch: '{self.items_column}' must be a 1-D sequence.")
            if sequence.numel() < minimum:
                raise ValueError(
                    f"Example {position} of the batch has {sequence.numel()} items; {self.mode} needs at least "
                    f"{minimum} (an input and a next item)."
                )
            if sequence.numel() and (int(sequence.min()) < 0 or int(sequence.max()) >= self.num_items):
                raise ValueError(f"Example {position}: catalog indices must lie in [0, {self.num_items}).")
            sequences.append(sequence)
        return sequences

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if self.mode == "eval":
            return self._eval_batch(self._sequences(features, 1))
        sequences = self._sequences(features, 2)
        inputs = [sequence[:-1][-self.max_length :] for sequence in sequences]
        targets = [self._trained_targets(sequence, feature) for sequence, feature in zip(sequences, features)]
        input_items = _pad(inputs, -1)
        target_items = _pad(targets, -1)
        target_columns = None if self._training_columns is None else self._training_target_columns(target_items)
        if self.loss_type in FULL_CATALOG_LOSSES:
            return self._full_catalog_batch(input_items, target_items, target_columns)
        valid = target_items >= 0
        # A set per position, per sequence (the leading axis) or for the batch: the leading axes of the targets.
        axes = {"position": 2, "sequence": 1, "batch": 0}[self.negative_sharing]
        shape = (*target_items.shape[:axes], self.num_negatives)
        if self.training_items is None:
            negatives = torch.randint(0, self.num_items, shape, generator=self.generator)
        else:
            negatives = self.training_items[
                torch.randint(0, self.training_items.numel(), shape, generator=self.generator)
            ]
        shared = negatives.unsqueeze(-2) if self.negative_sharing == "sequence" else negatives
        keep = valid.unsqueeze(-1) & (shared != target_items.unsqueeze(-1))
        if self.negative_sharing == "position":
            negatives = negatives.masked_fill(~keep, -1)
        # The batch's unique items by marking them (-1, padding, marks the last slot, cleared after): linear in the
        # references, where sorting them (torch.unique) took most of a batch's time at 128 x 50 x 256 negatives.
        present = torch.zeros(self.num_items + 1, dtype=torch.bool)
        for references in (input_items, target_items, negatives):
            present[references.flatten()] = True
        present[-1] = False
        item_index = present.nonzero().squeeze(1)
        lookup = self._positions(item_index)
        batch = {
            "item_index": item_index,
            "input_ref": lookup[input_items],
            "target_ref": lookup[target_items],
            "negative_ref": lookup[negatives],
        }
        if self.negative_sharing != "position":
            batch["negative_mask"] = keep
        return batch

    def _positions(self, item_index: torch.LongTensor) -> torch.LongTensor:
        """Catalog index -> position in `item_index` (-1 elsewhere), with a last slot so that -1 (padding) stays -1."""
        lookup = torch.full((self.num_items + 1,), -1, dtype=torch.long)
        lookup[item_index] = torch.arange(item_index.numel())
        return lookup

    def _full_catalog_batch(
        self, input_items: torch.LongTensor, target_items: torch.LongTensor, target_columns: torch.LongTensor | None
    ) -> dict:
        labels = target_items.masked_fill(target_items < 0, -100)
        if self.training_items is None:
            catalog = torch.arange(self.num_items)
            return {"item_index": catalog, "input_ref": input_items, "catalog_ref": catalog.clone(), "labels": labels}
        catalog = self.training_items
        outside = input_items[(input_items >= 0) & (self._training_columns[input_items] < 0)]
        item_index = torch.unique(torch.cat([catalog, outside])) if outside.numel() else catalog
        lookup = self._positions(item_index)
        return {
            "item_index": item_index,
            "input_ref": lookup[input_items],
            "catalog_ref": lookup[catalog],
            "labels": torch.where(target_items >= 0, target_columns, labels),
        }

    def _training_target_columns(self, target_items: torch.LongTensor) -> torch.LongTensor:
        """The targets' columns in the training catalog; a target outside it is an error."""
        columns = self._training_columns[target_items]
        outside = (target_items >= 0) & (columns < 0)
        if bool(outside.any()):
            item = int(target_items[outside][0])
            raise ValueError(
                f"Catalog index {item} is a training target but not in training_items (the items a training batch "
                "scores): training_items must hold every item of the training rows' targets."
            )
        return columns

    def _trained_targets(self, sequence: torch.LongTensor, feature: dict[str, Any]) -> torch.LongTensor:
        """`sequence[1:]`'s last `max_length` targets, the context-only ones (before `loss_start`) set to -1."""
        targets = sequence[1:]
        loss_start = int(feature.get(self.loss_start_column) or 0)
        if loss_start:
            if not 0 <= loss_start < targets.numel():
                raise ValueError(
                    f"{self.loss_start_column}={loss_start} leaves no target in a sequence of {sequence.numel()} "
                    "items."
                )
            targets = targets.clone()
            targets[:loss_start] = -1
        return targets[-self.max_length :]

    def _eval_batch(self, sequences: list[torch.LongTensor]) -> dict[str, torch.Tensor]:
        catalog = torch.arange(self.num_items)
        histories = [sequence[:-1] for sequence in sequences]
        held_out = torch.stack([sequence[-1] for sequence in sequences])
        batch = {
            "item_index": catalog,
            "input_ref": _pad([history[-self.max_length :] for history in histories], -1),
            "catalog_ref": catalog.clone(),
            "labels": held_out,
            "target_ref": held_out.clone(),
        }
        if self.exclude_seen:
            batch["seen_ref"] = _pad(histories, -1)
        if self._cold_items is not None:
            batch["cold_ref"] = self._cold_items.clone()
        return batch


def _pad(sequences: list[torch.LongTensor], value: int) -> torch.LongTensor:
    """Right-pads 1-D sequences to the longest (at least 1 column)."""
    width = max([1, *(sequence.numel() for sequence in sequences)])
    out = torch.full((len(sequences), width), value, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        out[row, : sequence.numel()] = sequence
    return out


__all__ = ["NextItemCollator"]
