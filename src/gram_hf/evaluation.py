"""
[`GramEvaluationMixin`]: [`GramTrainer`]'s `evaluate` / `predict`, with every needed item encoded once beforehand.

Batches name items by catalog index and share items with each other (a question answered by many learners, a news
article in many impressions), so encoding per batch would repeat work. The evaluation loop first encodes each item the
dataloader needs exactly once with the current encoder, then runs the head batch by batch on those vectors. The vectors
are kept until the encoder changes, so evaluations between two encoder updates (inside a long GRAM window, validation
then test with the same weights) encode nothing again.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from .items import ItemCatalog
    from .modeling import GramModel
    from .training_args import GramTrainingArguments


class EncodedCatalog:
    """
    The catalog's item vectors under one state of the content encoder: a row per catalog item, filled as evaluations
    need them, and emptied when the encoder's weights (or the catalog) change.

    The state is every encoder parameter's and buffer's identity and version counter: optimizer steps (plain,
    foreach or fused) and `load_state_dict` change tensors in place, which bumps their version, and a replaced tensor
    is another object. Tensors and catalog are held by weak reference, so a replaced one is neither kept alive nor
    mistaken for its successor.

    Args:
        num_items (`int`): Items in the catalog.
        dim (`int`): Size of an item vector.
        device (`torch.device`): Where the vectors live (the head's device).
    """

    def __init__(self, num_items: int, dim: int, device: torch.device | str):
        self.vectors = torch.zeros(num_items, dim, dtype=torch.float32, device=device)
        self.known = torch.zeros(num_items, dtype=torch.bool)
        self._catalog: weakref.ref | None = None
        self._tensors: list[tuple[weakref.ref, int]] = []

    def missing(self, index: torch.Tensor, encoder: nn.Module, item_catalog: ItemCatalog) -> torch.Tensor:
        """The items at `index` (catalog indices) without a vector from `encoder` as it is now."""
        tensors = list(itertools.chain(encoder.parameters(), encoder.buffers()))
        same = (
            self._catalog is not None
            and self._catalog() is item_catalog
            and len(tensors) == len(self._tensors)
            and all(ref() is t and version == t._version for (ref, version), t in zip(self._tensors, tensors))
        )
        if not same:
            self.known.zero_()
            self._catalog = weakref.ref(item_catalog)
            self._tensors = [(weakref.ref(t), t._version) for t in tensors]
        return index[~self.known[index]]

    def store(self, index: torch.Tensor, vectors: torch.Tensor) -> None:
        """Keeps `vectors` as the items at `index`."""
        self.vectors[index.to(self.vectors.device)] = vectors.float()
        self.known[index.cpu()] = True


class GramEvaluationMixin:
    """
    Evaluation for [`GramTrainer`], placed before `transformers.Trainer` in its bases; the trainer provides the
    attributes annotated below and the encoding of [`ItemEncodingMixin`].
    """

    args: GramTrainingArguments
    item_catalog: ItemCatalog | None
    gram_model: GramModel
    # The catalog's vectors under the encoder's current state; None until the first evaluation with an encoder.
    _encoded_catalog: EncodedCatalog | None
    data_collator: Callable
    eval_data_collator: Callable | None

    def get_eval_dataloader(self, eval_dataset=None):
        """The Trainer's evaluation dataloader, batched by `eval_data_collator` when one is set."""
        with self._evaluation_collator():
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        """The Trainer's prediction dataloader, batched by `eval_data_collator` when one is set."""
        with self._evaluation_collator():
            return super().get_test_dataloader(test_dataset)

    @contextlib.contextmanager
    def _evaluation_collator(self) -> Iterator[None]:
        # The Trainer builds every dataloader from `self.data_collator`; a DataLoader keeps the collator it got.
        if self.eval_data_collator is None:
            yield
            return
        training_collator, self.data_collator = self.data_collator, self.eval_data_collator
        try:
            yield
        finally:
            self.data_collator = training_collator

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        """
        The Trainer's evaluation loop, with every item the dataloader needs encoded exactly once beforehand (eval mode,
        no grad, length-sorted batches) instead of once per batch that mentions it; items encoded by an earlier
        evaluation with the same encoder weights are not encoded again. Adds `{metric_key_prefix}_encoder_items`, the
        number of items this evaluation encoded.
        """
        gram_model = self.gram_model
        if gram_model.encoder is None:
            return super().evaluation_loop(
                dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
            )
        # A mask over the catalog rather than a concatenation of every batch's items: full-catalog heads put the whole
        # catalog in each batch.
        needed_mask = torch.zeros(self.item_catalog.num_items, dtype=torch.bool)
        for batch in dataloader:
            needed_mask[batch["item_index"].reshape(-1).cpu()] = True
        catalog = self._encoded_catalog
        if catalog is None or catalog.vectors.shape != (self.item_catalog.num_items, gram_model.item_dim):
            catalog = EncodedCatalog(self.item_catalog.num_items, gram_model.item_dim, self.args.device)
            self._encoded_catalog = catalog
        missing = catalog.missing(needed_mask.nonzero().squeeze(1), gram_model.encoder, self.item_catalog)
        with self.compute_loss_context_manager():
            for batch_index, batch_vectors in self._encode_for_inference(
                gram_model, missing, count=False, progress=True
            ):
                catalog.store(batch_index, batch_vectors)
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        output.metrics[f"{metric_key_prefix}_encoder_items"] = missing.numel()
        return output

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """
        Loss, predictions and labels of one batch, with the item vectors `evaluation_loop` encoded for it.

        The predictions are the head's scores; when the head names a `scored_ref_key`, they are the pair `(scores,
        scored_items)` where `scored_items` holds the catalog index of every scored position (-100 for padding), so
        `compute_metrics` can split metrics by item (e.g. cold-start AUC).
        """
        gram_model = self.accelerator.unwrap_model(model)
        inputs = self._prepare_inputs(inputs)
        item_index = inputs.pop("item_index")
        with torch.no_grad(), self.compute_loss_context_manager():
            content = None
            if gram_model.encoder is not None:
                content = self._encoded_catalog.vectors[item_index]
            output = gram_model.head(gram_model.item_vectors(item_index, content), **inputs)
        loss = output.loss.detach() if output.loss is not None else None
        if prediction_loss_only:
            return loss, None, None
        scores = output.scores.detach()
        ref_key = getattr(gram_model.head, "scored_ref_key", None)
        if ref_key is not None and ref_key in inputs:
            ref = inputs[ref_key]
            scored_items = torch.where(ref >= 0, item_index[ref.clamp(min=0)], torch.full_like(ref, -100))
            return loss, (scores, scored_items), inputs.get("labels")
        return loss, scores, inputs.get("labels")


__all__ = ["EncodedCatalog", "GramEvaluationMixin"]
