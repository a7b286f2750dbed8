"""
[`TrainingModesMixin`]: one training micro-batch of [`GramTrainer`] per `gram_mode`, sharing one backward tail.

Each mode computes its loss its own way (item vectors from an item-ID table, from the CE per occurrence or per unique
item, or from GRAM's [`ItemTable`]) and then hands it to [`TrainingModesMixin._backward_and_reduce`], the only place
where the loss is checked for NaN/inf, scaled for gradient accumulation, back-propagated and averaged over processes;
what a mode does after an optimizer-step boundary (a CE step, pseudo-target updates, a CE fit) follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch

from . import checkpointing, distributed

if TYPE_CHECKING:
    from accelerate import Accelerator
    from transformers import TrainerState

    from .item_table import ItemTable
    from .modeling import GramModel
    from .training_args import GramTrainingArguments
    from .windows import GramWindowLog

# What one training micro-batch of a mode does: `(gram_model, item_index, inputs) -> loss`.
ModeStep = Callable[["GramModel", torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]


def expand_occurrences(
    item_index: torch.LongTensor, item_refs: Mapping[str, torch.Tensor]
) -> tuple[torch.LongTensor, dict[str, torch.Tensor]]:
    """
    Turns a batch's unique items into one row per occurrence, for end-to-end training.

    Args:
        item_index (`torch.LongTensor` of shape `(U,)`): catalog indices of the batch's unique items.
        item_refs: the head's item-reference tensors, positions into `item_index`, -1 for padding.

    Returns:
        `(occurrence_index, new_refs)`: the catalog index of every non-padding reference (in the order of the keys and
        then row-major), and reference tensors of the same shapes pointing at those rows (padding stays -1).
    """
    occurrence_index = []
    new_refs = {}
    offset = 0
    for key, ref in item_refs.items():
        mask = ref >= 0
        count = int(mask.sum())
        new_ref = torch.full_like(ref, -1)
        new_ref[mask] = torch.arange(offset, offset + count, device=ref.device, dtype=ref.dtype)
        occurrence_index.append(item_index[ref[mask]])
        new_refs[key] = new_ref
        offset += count
    if not occurrence_index:
        return item_index.new_zeros(0), new_refs
    return torch.cat(occurrence_index), new_refs


class _ScaleGradient(torch.autograd.Function):
    """The identity forward; multiplies the gradient flowing back by `scale`."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


class TrainingModesMixin:
    """
    The per-mode training steps of [`GramTrainer`]; the trainer calls `self._mode_step()(gram_model, item_index,
    inputs)` once per micro-batch and provides the attributes annotated below and the encoding of
    [`ItemEncodingMixin`].
    """

    args: GramTrainingArguments
    state: TrainerState
    accelerator: Accelerator
    item_table: ItemTable | None
    encoder_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None
    current_gradient_accumulation_steps: int
    # This micro-batch's share of its optimizer step's loss (set by the trainer's `training_step`).
    _micro_batch_weight: torch.Tensor | float
    _uses_item_table: bool
    # (item_index, dL/dh) of this optimizer step's micro-batches, applied to the ItemTable at the step boundary.
    _pending_item_grads: list[tuple[torch.Tensor, torch.Tensor]]
    gram_window_log: GramWindowLog

    def _mode_step(self) -> ModeStep:
        """The training step of `args.gram_mode` (and, for `gram`, of its window length)."""
        mode = self.args.gram_mode
        if mode == "nocontent":
            return self._item_id_step
        if mode == "nofinetune":
            return self._frozen_encoder_step
        if mode == "e2e":
            return self._e2e_step
        return self._gram_window_step if self._uses_item_table else self._gram_single_step

    def _backward_and_reduce(self, gram_model: GramModel, loss: torch.Tensor) -> bool:
        """
        The end of every mode's micro-batch: stops on a NaN/inf loss, back-propagates the loss scaled for gradient
        accumulation, and at an optimizer-step boundary averages the gradients over processes. Returns whether this
        micro-batch ended an optimizer step.

        Every mode calls the unwrapped model's modules, never the DDP-wrapped forward, so DDP's reducer never runs and
        micro-batches accumulate locally (as under `no_sync`); this one all-reduce per optimizer step replaces it, for
        the CF module and, where the mode back-propagated through it, the CE.
        """
        self._check_finite(loss)
        self.accelerator.backward(loss * self._micro_batch_weight)
        if not self.accelerator.sync_gradients:
            return False
        distributed.all_reduce_gradients(gram_model.parameters(), average=True)
        return True

    def _item_id_step(
        self, gram_model: GramModel, item_index: torch.Tensor, inputs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """
        `nocontent` trains a model with `item_encoder='id'` (an item-ID table): item vectors are rows of
        `item_id_table`, which the Trainer's optimizer trains with the head.
        """
        with self.compute_loss_context_manager():
            loss = gram_model(item_index=item_index, **inputs).loss
        self._backward_and_reduce(gram_model, loss)
        return loss

    def _e2e_step(
        self, gram_model: GramModel, item_index: torch.Tensor, inputs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """`e2e`: every non-padding occurrence is encoded with gradients; the loss back-propagates through the CE."""
        refs = {key: inputs[key] for key in gram_model.head.item_ref_keys}
        occurrence_index, occurrence_refs = expand_occurrences(item_index, refs)
        return self._encoder_backprop_step(gram_model, occurrence_index, {**inputs, **occurrence_refs})

    def _gram_single_step(
        self, gram_model: GramModel, item_index: torch.Tensor, inputs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """
        Single-step GRAM keeping the encoder graph: each unique item is encoded once, and `eta * dL/dh` (the sum over
        the item's occurrences) back-propagates through that one forward. With `eta = 1` this is `e2e`'s gradient.
        """
        return self._encoder_backprop_step(
            gram_model, item_index, inputs, item_grad_scale=self.args.item_learning_rate
        )

    def _encoder_backprop_step(
        self,
        gram_model: GramModel,
        index: torch.Tensor,
        inputs: dict[str, torch.Tensor],
        item_grad_scale: float | None = None,
    ) -> torch.Tensor:
        """
        Encodes the items at `index` with gradients, runs the head on them and back-propagates through both; the CE
        steps at every optimizer-step boundary. With `item_grad_scale` (Single-step GRAM) the head reads the vectors
        in fp32, and the gradient reaching the CE is `item_grad_scale * dL/dh`, the pseudo-targets' gradient. The CE
        gradient is linear in dL/dh, so averaging it over processes equals back-propagating the averaged item
        gradients.
        """
        with self.compute_loss_context_manager():
            vectors = self._encode(gram_model, index, with_grad=True)
            if item_grad_scale is not None:
                vectors = _ScaleGradient.apply(vectors.float(), item_grad_scale)
            # A hybrid's ID part is added after the scaling: it is a CF parameter and gets dL/dh itself.
            loss = gram_model.head(gram_model.item_vectors(index, vectors), **inputs).loss
        if self._backward_and_reduce(gram_model, loss):
            self._encoder_optimizer_step(gram_model)
            self.encoder_lr_scheduler.step()
            if self.args.gram_mode == "gram":  # Single-step GRAM: every step is a window
                self.gram_window_log.close(self.state.global_step + 1)
        return loss

    def _cached_item_loss(
        self, gram_model: GramModel, item_index: torch.Tensor, inputs: dict[str, torch.Tensor], trainable: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        The head's loss on the ItemTable's vectors for `item_index` (encoding the stale ones first), and those vectors
        (leaves with gradients when `trainable`).
        """
        table = self.item_table
        with self.compute_loss_context_manager():
            # The table is identical on every process, so the union of the processes' stale items is stale everywhere
            # and is encoded once, split over the processes.
            stale = distributed.union(table.stale(item_index))
            if stale.numel():
                self._refresh_item_table(gram_model, stale)
            vectors = table.lookup(item_index).requires_grad_(trainable)
            # The table holds content vectors only: a hybrid's ID part trains with the CF module, and the leaf's
            # gradient (the pseudo-targets' dL/dh) is the same with or without it.
            loss = gram_model.head(gram_model.item_vectors(item_index, vectors), **inputs).loss
        return loss, vectors

    def _frozen_encoder_step(
        self, gram_model: GramModel, item_index: torch.Tensor, inputs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """`nofinetune`: the CF module trains on vectors the frozen CE encoded once (kept in the ItemTable)."""
        loss, _ = self._cached_item_loss(gram_model, item_index, inputs, trainable=False)
        self._backward_and_reduce(gram_model, loss)
        return loss

    def _gram_window_step(
        self, gram_model: GramModel, item_index: torch.Tensor, inputs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """
        GRAM with the ItemTable (windows longer than a step, or recomputation): the CF module trains on the cached
        vectors as leaves, their gradients update the vectors into pseudo-targets at each optimizer step, and the CE is
        fitted to the pseudo-targets when the step ends a window.
        """
        loss, vectors = self._cached_item_loss(gram_model, item_index, inputs, trainable=True)
        sync_step = self._backward_and_reduce(gram_model, loss)
        # Pseudo-target updates wait for the optimizer-step boundary so that every micro-batch of one step reads the
        # same vectors, as one large batch would.
        self._pending_item_grads.append((item_index, vectors.grad))
        if not sync_step:
            return loss
        table = self.item_table
        index = torch.cat([index for index, _ in self._pending_item_grads])
        grads = torch.cat([grad for _, grad in self._pending_item_grads])
        self._pending_item_grads.clear()
        # Every process applies every process's item gradients in rank order, scaled like the averaged CF loss, so the
        # table stays bit-identical everywhere and equals one process with the combined batch.
        scale = self.args.item_learning_rate / distributed.world_size()
        parts = list(zip(distributed.all_gather_rows(index), distributed.all_gather_rows(grads)))
        table.apply_gradients(parts, scale)
        step = self.state.global_step + 1
        if self._is_window_end(step):
            self._fit_encoder_to_item_table(gram_model, step)
            table.invalidate()
        return loss

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Stops training on a NaN/inf loss (on every process at once), before it reaches any parameter."""
        bad = not bool(torch.isfinite(loss.detach()).all())
        if not distributed.any_process(bad, loss.device):
            return
        step = self.state.global_step + 1
        last = checkpointing.last_complete_checkpoint(self.args.output_dir)
        where = f"the last complete checkpoint is {last}" if last else "no checkpoint was saved yet"
        raise FloatingPointError(
            f"The training loss is {loss.item() if bad else 'finite here but not on another process'} at optimizer "
            f"step {step} (epoch {self.state.epoch or 0:.2f}); training stopped before the bad gradients were "
            f"applied. {where[0].upper() + where[1:]}; lower the learning rate, check the data or precision, and "
            "resume from it."
        )


__all__ = ["ModeStep", "TrainingModesMixin", "expand_occurrences"]
