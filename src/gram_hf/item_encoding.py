"""
[`ItemEncodingMixin`]: how [`GramTrainer`] runs the content encoder (CE) on catalog items.

Encoding with and without gradients (counted for the cost counters), filling GRAM's [`ItemTable`] with the items a
batch needs, and fitting the CE to the window's pseudo-targets. Each has a multi-process form that keeps the item
table identical on every process and equal to one process with the combined batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from . import distributed

if TYPE_CHECKING:
    from transformers import TrainerState

    from .item_table import ItemTable
    from .items import ItemCatalog
    from .modeling import GramModel
    from .training_args import GramTrainingArguments


class ItemEncodingMixin:
    """
    The CE side of [`GramTrainer`]. The trainer provides the attributes annotated below; `_pending_counts` receives
    this process's encoder work until the trainer merges it into the global counters at a step boundary.
    """

    args: GramTrainingArguments
    state: TrainerState
    item_catalog: ItemCatalog | None
    item_table: ItemTable | None
    encoder_optimizer: torch.optim.Optimizer | None
    encoder_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None
    _pending_counts: dict[str, int]

    def _encode(self, gram_model: GramModel, index: torch.Tensor, with_grad: bool, count: bool = True) -> torch.Tensor:
        """
        Encodes the items at `index` in one batch (with the CE graph when `with_grad`); `count` adds the work to the
        training counters.
        """
        tokens = self.item_catalog.batch(index)
        if count:
            kind = "backward" if with_grad else "forward"
            self._pending_counts[f"encoder_items_{kind}"] += index.numel()
            self._pending_counts[f"encoder_tokens_{kind}"] += int(tokens["attention_mask"].sum())
        tokens = {k: v.to(self.args.device) for k, v in tokens.items()}
        return gram_model.encode_items(**tokens)

    @torch.no_grad()
    def _encode_for_inference(
        self, gram_model: GramModel, index: torch.Tensor, count: bool, progress: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """
        Yields `(batch_index, vectors)` over the unique items at `index`: eval mode, no grad, length-sorted batches of
        `encoder_eval_batch_size`. `count` adds the work to the training counters.
        """
        if index.numel() == 0:
            return
        encoder = gram_model.encoder
        was_training = encoder.training
        encoder.eval()
        batches = self.item_catalog.length_sorted_batches(index, self.args.encoder_eval_batch_size)
        if progress:
            batches = tqdm(batches, desc=f"Encoding {len(index):,} items", disable=self.args.disable_tqdm, leave=False)
        try:
            for batch_index in batches:
                yield batch_index, self._encode(gram_model, batch_index, with_grad=False, count=count)
        finally:
            encoder.train(was_training)

    def _refresh_item_table(self, gram_model: GramModel, index: torch.Tensor) -> None:
        """
        Encodes the unique items at `index` into the ItemTable. With several processes each encodes a share (dealt
        from the length-sorted order, so shares cost alike) and every process stores every share, so the table stays
        identical everywhere.
        """
        table = self.item_table
        if distributed.world_size() == 1:
            for batch_index, vectors in self._encode_for_inference(gram_model, index, count=True):
                table.fill(batch_index.to(table.device), vectors)
            return
        local_index = distributed.shard(index[torch.argsort(self.item_catalog.lengths[index.cpu()], stable=True)])
        local_vectors = torch.empty(0, table.dim, dtype=torch.float32, device=table.device)
        parts_index, parts_vectors = [], []
        for batch_index, vectors in self._encode_for_inference(gram_model, local_index, count=True):
            parts_index.append(batch_index.to(table.device))
            parts_vectors.append(vectors.float())
        if parts_index:
            local_index = torch.cat(parts_index)
            local_vectors = torch.cat(parts_vectors)
        local_index = local_index.to(table.device)
        for rank_index, rank_vectors in zip(
            distributed.all_gather_rows(local_index), distributed.all_gather_rows(local_vectors)
        ):
            if rank_index.numel():
                table.fill(rank_index, rank_vectors)

    def _fit_encoder_to_item_table(self, gram_model: GramModel, step: int) -> None:
        """
        Fits the CE to the window's pseudo-targets: minimises 1/2 sum ||h~_i - CE(c_i)||^2 over touched items. `step`
        is the optimizer step that ends the window.
        """
        table, args = self.item_table, self.args
        index = table.touched_indices().cpu()
        # Mini-batch order is seeded by the step, so a resumed run fits exactly as an uninterrupted one.
        generator = torch.Generator().manual_seed(args.seed + self.state.global_step)
        encoder_params = list(gram_model.encoder.parameters())
        for _ in range(args.encoder_epochs):
            batches = self.item_catalog.length_sorted_batches(index, args.encoder_batch_size)
            if args.encoder_update == "per_batch":
                batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
            for batch_index in batches:
                # Each process fits its share of every mini-batch and the summed gradients equal one process fitting
                # the whole mini-batch; every process runs the same number of steps, whatever its share.
                local_index = distributed.shard(batch_index)
                if local_index.numel():
                    with self.compute_loss_context_manager():
                        predictions = self._encode(gram_model, local_index, with_grad=True)
                    targets = table.vectors[local_index.to(table.device)]
                    loss = 0.5 * (predictions.float() - targets).pow(2).sum()
                    loss.backward()
                if args.encoder_update == "per_batch":
                    distributed.all_reduce_gradients(encoder_params, average=False)
                    self._encoder_optimizer_step(gram_model)
            if args.encoder_update == "accumulate":
                distributed.all_reduce_gradients(encoder_params, average=False)
                self._encoder_optimizer_step(gram_model)
        self._close_window(step)

    def _encoder_optimizer_step(self, gram_model: GramModel) -> None:
        """One CE optimizer step on the gradients the CE holds (clipped to `max_grad_norm`); then zeroes them."""
        if self.args.max_grad_norm and self.args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(gram_model.encoder.parameters(), self.args.max_grad_norm)
        self.encoder_optimizer.step()
        self.encoder_optimizer.zero_grad(set_to_none=True)


__all__ = ["ItemEncodingMixin"]
