"""[`GramTrainer`]: a `transformers.Trainer` for item encoders: end-to-end, GRAM, NoFinetune and NoContent."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback
from transformers.optimization import get_scheduler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, has_length, rotate_checkpoints
from transformers.utils import logging

from . import distributed
from .item_table import ItemTable
from .items import ItemCatalog
from .modeling import GramModel
from .training_args import GramTrainingArguments

logger = logging.get_logger(__name__)

GRAM_STATE_NAME = "gram_state.pt"
# Written last into a checkpoint folder, after every process has saved its part: a folder without it was interrupted
# while saving (a killed process) and is never resumed from.
CHECKPOINT_COMPLETE_NAME = "gram_checkpoint_complete.json"
COUNTER_NAMES = (
    "occurrences",
    "unique_items",
    "encoder_items_forward",
    "encoder_items_backward",
    "encoder_tokens_forward",
    "encoder_tokens_backward",
)


def _fraction_ends(fraction: float, steps_per_epoch: int) -> set[int]:
    """The steps of an epoch (1-based) at which windows of `fraction` of an epoch (< 1) end."""
    count = math.ceil(1 / fraction - 1e-9)
    return {min(steps_per_epoch, max(1, round(k * fraction * steps_per_epoch))) for k in range(1, count + 1)} | {
        steps_per_epoch
    }


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


class GramTrainer(Trainer):
    r"""
    A [`~transformers.Trainer`] for [`GramModel`] that trains the content encoder (CE) and the collaborative-filtering
    module (CF, the task head) by `args.gram_mode`:

    - `"e2e"`: every item occurrence in the batch is encoded with gradients (the baseline; padding is never encoded);
    - `"gram"`: each unique item is encoded once and the CF module trains on the item vectors as leaves; the CE is
      fitted to the pseudo-targets `h - item_learning_rate * dL/dh` every `gram_interval` CF steps (1 equals `e2e`);
    - `"nofinetune"`: the CE is frozen, each item is encoded once, only the CF module trains;
    - `"nocontent"`: items are rows of the model's ID table; no CE.

    The Trainer's optimizer and scheduler train the CF module; a second optimizer of the same type (learning rate
    `encoder_learning_rate`) and scheduler train the CE, and both, with GRAM's [`ItemTable`], are saved in checkpoints
    and restored by `resume_from_checkpoint`. Cost counters (`gram/occurrences`, `gram/unique_items`,
    `gram/encoder_items_forward` for no-grad encodes, `gram/encoder_items_backward` for forward+backward encodes, the
    same in tokens, and `gram/r_batch`) are added to the training logs.

    Args:
        model ([`GramModel`]): the model to train.
        args ([`GramTrainingArguments`]): training arguments.
        item_catalog ([`ItemCatalog`], *optional*):
            The items' tokenized text; required unless `gram_mode="nocontent"`. Batches name items by catalog index.
        kwargs: the rest of [`~transformers.Trainer`]'s arguments (`data_collator`, `train_dataset`, `eval_dataset`,
            `processing_class`, `callbacks`, ...).
    """

    def __init__(
        self,
        model: GramModel,
        args: GramTrainingArguments | None = None,
        item_catalog: ItemCatalog | None = None,
        **kwargs: Any,
    ):
        args = args if args is not None else GramTrainingArguments()
        if not isinstance(args, GramTrainingArguments):
            raise TypeError(f"GramTrainer needs GramTrainingArguments, got {type(args).__name__}.")
        if not isinstance(model, GramModel):
            raise TypeError(f"GramTrainer trains a GramModel, got {type(model).__name__}.")
        mode = args.gram_mode
        if mode == "nocontent":
            if model.item_embeddings is None:
                raise ValueError(
                    "gram_mode='nocontent' needs a GramModel with an item-ID table: "
                    "GramModel.for_item_ids(num_items, item_dim, head_type=...)."
                )
        else:
            if model.encoder is None:
                raise ValueError(
                    f"gram_mode={mode!r} needs a GramModel with a content encoder; this one has an item-ID table "
                    "(use gram_mode='nocontent')."
                )
            if item_catalog is None:
                raise ValueError(f"gram_mode={mode!r} needs an item_catalog to take the items' tokens from.")
        if item_catalog is not None and model.item_embeddings is not None:
            if item_catalog.num_items != model.config.num_items:
                raise ValueError(
                    f"The catalog has {item_catalog.num_items} items, the ID table {model.config.num_items} rows."
                )
        if model.encoder is not None and mode == "nofinetune":
            # The encoder is a fixed feature extractor: no gradients, no optimizer. In the other modes the parameters
            # the user froze (or PEFT froze) stay frozen.
            model.encoder.requires_grad_(False)
        super().__init__(model=model, args=args, **kwargs)
        if model.encoder is not None:
            logger.info(model.trainable_encoder_parameters_summary())
        # The head computes a per-batch mean; the Trainer scales it for gradient accumulation.
        self.model_accepts_loss_kwargs = False
        self.item_catalog = item_catalog
        self.encoder_optimizer: torch.optim.Optimizer | None = None
        self.encoder_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.item_table: ItemTable | None = None
        self.gram_counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        # This process's work since the last optimizer step; merged (summed over processes) into `gram_counters` at
        # step boundaries so the counters are global and identical on every process.
        self._pending_counts: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._pending_item_grads: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._update_steps_per_epoch: int | None = None
        self._eval_item_vectors: tuple[torch.Tensor, torch.Tensor] | None = None
        self.add_callback(_CloseWindowAtTrainEnd(self))

    # ------------------------------------------------------------------ setup

    @property
    def gram_model(self) -> GramModel:
        return self.accelerator.unwrap_model(self.model)

    @property
    def _uses_item_table(self) -> bool:
        args = self.args
        if args.gram_mode == "nofinetune":
            return True
        return args.gram_mode == "gram" and (args.gram_interval_steps != 1 or args.gram_recompute)

    def get_train_dataloader(self):
        dataloader = super().get_train_dataloader()
        if not has_length(dataloader):
            if self.args.gram_interval_epochs is not None:
                raise ValueError(
                    f"gram_interval={self.args.gram_interval!r} is a fraction of an epoch, but the training data has "
                    "no length (an IterableDataset); give the interval in steps."
                )
            return dataloader
        # Epoch-fraction windows need the number of optimizer steps per epoch, as the Trainer counts them.
        batches = len(dataloader)
        accumulation = self.args.gradient_accumulation_steps
        self._update_steps_per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)
        return dataloader

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The CF optimizer over the head (and ID table), and the CE optimizer over the content encoder."""
        gram_model = self.gram_model
        if self.optimizer is None:
            cf_module = gram_model.head if gram_model.encoder is not None else gram_model
            super().create_optimizer(cf_module)
        elif gram_model.encoder is not None:
            encoder_params = {id(p) for p in gram_model.encoder.parameters()}
            if any(id(p) in encoder_params for group in self.optimizer.param_groups for p in group["params"]):
                raise ValueError(
                    "The optimizer passed to GramTrainer holds content-encoder parameters; it must hold only the "
                    "CF module's (the encoder gets its own optimizer, with encoder_learning_rate)."
                )
        if self.encoder_optimizer is None and self.args.gram_mode in ("e2e", "gram"):
            self.encoder_optimizer = self._create_encoder_optimizer(gram_model.encoder)
        return self.optimizer

    def _create_encoder_optimizer(self, encoder: nn.Module) -> torch.optim.Optimizer:
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, encoder)
        if {"params", "model", "optimizer_dict"} & set(optimizer_kwargs):
            raise ValueError(f"optim={self.args.optim!r} builds its own parameter groups; GramTrainer cannot use it.")
        decay = set(self.get_decay_parameter_names(encoder))
        named = [(n, p) for n, p in encoder.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if n in decay], "weight_decay": self.args.weight_decay},
            {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
        ]
        return optimizer_cls(groups, **{**optimizer_kwargs, "lr": self.args.encoder_lr})

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        """The CF scheduler, and the CE scheduler, which advances once per window (once per step in `e2e`)."""
        creating = self.lr_scheduler is None
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        if self.encoder_optimizer is not None and (creating or self.encoder_lr_scheduler is None):
            window_ends = [s for s in range(1, num_training_steps + 1) if self._is_window_end(s, num_training_steps)]
            warmup = self.args.get_warmup_steps(num_training_steps)
            self.encoder_lr_scheduler = get_scheduler(
                self.args.lr_scheduler_type,
                optimizer=self.encoder_optimizer,
                num_warmup_steps=sum(1 for s in window_ends if s <= warmup),
                num_training_steps=max(len(window_ends), 1),
                scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
            )
        if self._uses_item_table and self.item_table is None:
            self.item_table = ItemTable(self.item_catalog.num_items, self.gram_model.item_dim, device=self.args.device)
        return scheduler

    def _is_window_end(self, step: int, max_steps: int | None = None) -> bool:
        """Whether the CE is updated after CF optimizer step `step` (1-based)."""
        args = self.args
        if args.gram_mode == "e2e":
            return True
        if step >= (max_steps if max_steps is not None else self.state.max_steps):
            return True
        if args.gram_interval_steps is not None:
            return step % args.gram_interval_steps == 0
        steps_per_epoch = self._update_steps_per_epoch or 1
        fraction = args.gram_interval_epochs
        if fraction >= 1:
            return step % max(1, round(fraction * steps_per_epoch)) == 0
        # Windows shorter than an epoch restart at each epoch and end at the rounded multiples of the fraction, so
        # '0.5epoch' always means two windows per epoch.
        step_in_epoch = (step - 1) % steps_per_epoch + 1
        return step_in_epoch in _fraction_ends(fraction, steps_per_epoch)

    def autocast_smart_context_manager(self, cache_enabled: bool | None = True):
        # The encoder and the head are called directly, not through the prepared model's forward, so the mixed
        # precision accelerate would apply there is applied here.
        return self.accelerator.autocast()

    # --------------------------------------------------------------- training

    def training_step(
        self, model: nn.Module, inputs: dict[str, torch.Tensor | Any], num_items_in_batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One micro-batch of the chosen mode: forward, backward, and at optimizer-step boundaries the CE update."""
        gram_model = self.accelerator.unwrap_model(model)
        gram_model.train()
        inputs = self._prepare_inputs(inputs)
        if "item_index" not in inputs:
            raise KeyError("GramTrainer batches need 'item_index' (the catalog indices of the batch's unique items).")
        item_index = inputs.pop("item_index")
        refs = {key: inputs[key] for key in gram_model.head.item_ref_keys}
        self._pending_counts["occurrences"] += sum(int((ref >= 0).sum()) for ref in refs.values())
        self._pending_counts["unique_items"] += item_index.numel()
        sync_step = self.accelerator.sync_gradients
        mode = self.args.gram_mode

        if mode == "nocontent":
            with self.compute_loss_context_manager():
                loss = gram_model(item_index=item_index, **inputs).loss
            self._check_finite(loss)
            self._backward(loss)
            if sync_step:
                distributed.all_reduce_gradients(gram_model.parameters(), average=True)
        elif mode == "e2e":
            occurrence_index, occurrence_refs = expand_occurrences(item_index, refs)
            with self.compute_loss_context_manager():
                vectors = self._encode(gram_model, occurrence_index, with_grad=True)
                loss = gram_model.head(vectors, **{**inputs, **occurrence_refs}).loss
            self._check_finite(loss)
            self._backward(loss)
            if sync_step:
                distributed.all_reduce_gradients(gram_model.parameters(), average=True)
                self._encoder_optimizer_step()
                self.encoder_lr_scheduler.step()
        elif not self._uses_item_table:
            # Single-step GRAM keeping the encoder graph: back-propagate eta * dL/dh through one forward per item.
            with self.compute_loss_context_manager():
                vectors = self._encode(gram_model, item_index, with_grad=True)
                leaves = vectors.detach().float().requires_grad_()
                loss = gram_model.head(leaves, **inputs).loss
            self._check_finite(loss)
            self._backward(loss)
            vectors.backward((leaves.grad * self.args.item_learning_rate).to(vectors.dtype))
            if sync_step:
                # The encoder gradient is linear in dL/dh, so averaging it over processes equals back-propagating
                # the averaged item gradients.
                distributed.all_reduce_gradients(gram_model.parameters(), average=True)
                self._encoder_optimizer_step()
                self.encoder_lr_scheduler.step()
        else:
            loss = self._item_table_step(gram_model, item_index, inputs, sync_step)
        if sync_step:
            self._merge_counters()
        return loss.detach() / self.current_gradient_accumulation_steps

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Stops training on a NaN/inf loss (on every process at once), before it reaches any parameter."""
        bad = not bool(torch.isfinite(loss.detach()).all())
        if not distributed.any_process(bad, loss.device):
            return
        step = self.state.global_step + 1
        last = _last_complete_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
        where = f"the last complete checkpoint is {last}" if last else "no checkpoint was saved yet"
        raise FloatingPointError(
            f"The training loss is {loss.item() if bad else 'finite here but not on another process'} at optimizer "
            f"step {step} (epoch {self.state.epoch or 0:.2f}); training stopped before the bad gradients were "
            f"applied. {where[0].upper() + where[1:]}; lower the learning rate, check the data or precision, and "
            "resume from it."
        )

    def _merge_counters(self) -> None:
        """Adds every process's pending work to the (global) counters."""
        pending = torch.tensor([self._pending_counts[name] for name in COUNTER_NAMES], dtype=torch.long)
        if distributed.world_size() > 1:
            pending = distributed.all_reduce_sum(pending.to(self.args.device)).cpu()
        for name, value in zip(COUNTER_NAMES, pending.tolist()):
            self.gram_counters[name] += value
        self._pending_counts = dict.fromkeys(COUNTER_NAMES, 0)

    def _backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss / self.current_gradient_accumulation_steps)

    def _item_table_step(
        self, gram_model: GramModel, item_index: torch.Tensor, inputs: dict[str, torch.Tensor], sync_step: bool
    ) -> torch.Tensor:
        table = self.item_table
        train_items = self.args.gram_mode == "gram"
        with self.compute_loss_context_manager():
            # The table is identical on every process, so the union of the processes' stale items is stale everywhere
            # and is encoded once, split over the processes.
            stale = distributed.union(table.stale(item_index))
            if stale.numel():
                self._refresh_item_table(gram_model, stale)
            vectors = table.lookup(item_index).requires_grad_(train_items)
            loss = gram_model.head(vectors, **inputs).loss
        self._check_finite(loss)
        self._backward(loss)
        if sync_step:
            distributed.all_reduce_gradients(gram_model.parameters(), average=True)
        if not train_items:
            return loss
        # Pseudo-target updates wait for the optimizer-step boundary so that every micro-batch of one step reads the
        # same vectors, as one large batch would.
        self._pending_item_grads.append((item_index, vectors.grad))
        if sync_step:
            index = torch.cat([index for index, _ in self._pending_item_grads])
            grads = torch.cat([grad for _, grad in self._pending_item_grads])
            self._pending_item_grads.clear()
            # Every process applies every process's item gradients in rank order, scaled like the averaged CF loss,
            # so the table stays bit-identical everywhere and equals one process with the combined batch.
            scale = self.args.item_learning_rate / distributed.world_size()
            for rank_index, rank_grads in zip(distributed.all_gather_rows(index), distributed.all_gather_rows(grads)):
                table.apply_gradient(rank_index, rank_grads, scale)
            if self._is_window_end(self.state.global_step + 1):
                self._fit_encoder_to_item_table(gram_model)
                table.invalidate()
        return loss

    def _fit_encoder_to_item_table(self, gram_model: GramModel) -> None:
        """Fits the CE to the window's pseudo-targets: minimises 1/2 sum ||h~_i - CE(c_i)||^2 over touched items."""
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
                    self._encoder_optimizer_step()
            if args.encoder_update == "accumulate":
                distributed.all_reduce_gradients(encoder_params, average=False)
                self._encoder_optimizer_step()
        self.encoder_lr_scheduler.step()

    def _encoder_optimizer_step(self) -> None:
        encoder = self.gram_model.encoder
        if self.args.max_grad_norm and self.args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(encoder.parameters(), self.args.max_grad_norm)
        self.encoder_optimizer.step()
        self.encoder_optimizer.zero_grad(set_to_none=True)

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
    def _encode_for_inference(self, gram_model: GramModel, index: torch.Tensor, count: bool, progress: bool = False):
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

    # ------------------------------------------------------------- evaluation

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        """
        The Trainer's evaluation loop, with every item the dataloader needs encoded exactly once beforehand (eval mode,
        no grad, length-sorted batches) instead of once per batch that mentions it. Adds
        `{metric_key_prefix}_encoder_items`, the number of items encoded.
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
        needed = needed_mask.nonzero().squeeze(1)
        vectors = torch.empty(needed.numel(), gram_model.item_dim, dtype=torch.float32, device=self.args.device)
        rows = torch.full((self.item_catalog.num_items,), -1, dtype=torch.long)
        rows[needed] = torch.arange(needed.numel())
        with self.compute_loss_context_manager():
            for batch_index, batch_vectors in self._encode_for_inference(
                gram_model, needed, count=False, progress=True
            ):
                vectors[rows[batch_index].to(vectors.device)] = batch_vectors.float()
        self._eval_item_vectors = (rows.to(self.args.device), vectors)
        try:
            output = super().evaluation_loop(
                dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
            )
        finally:
            self._eval_item_vectors = None
        output.metrics[f"{metric_key_prefix}_encoder_items"] = needed.numel()
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
            if gram_model.encoder is None:
                vectors = gram_model.item_embeddings(item_index)
            else:
                rows, encoded = self._eval_item_vectors
                vectors = encoded[rows[item_index]]
            output = gram_model.head(vectors, **inputs)
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

    def floating_point_ops(self, inputs: dict[str, torch.Tensor | Any]) -> int:
        # Batches hold item indices, not tokens; the encoder's work is in the gram/ counters instead.
        return 0

    # ---------------------------------------------------------------- logging

    def gram_metrics(self) -> dict[str, float]:
        """The cumulative cost counters, with `gram/r_batch` = occurrences / unique items."""
        metrics: dict[str, float] = {f"gram/{name}": value for name, value in self.gram_counters.items()}
        unique = self.gram_counters["unique_items"]
        metrics["gram/r_batch"] = self.gram_counters["occurrences"] / unique if unique else 0.0
        return metrics

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs or "train_loss" in logs:
            logs = {**logs, **self.gram_metrics()}
        super().log(logs, start_time)

    # ------------------------------------------------------------------ export

    def save_encoder(self, output_dir: str | None = None, **kwargs: Any) -> str | None:
        """
        Saves the content encoder as a plain `AutoModel` folder ([`GramModel.save_encoder`]): by default to
        `<output_dir>/encoder`, with the trainer's tokenizer and the catalog's `max_length`. Written by the main
        process only; every process waits for it.
        """
        output_dir = output_dir if output_dir is not None else os.path.join(self.args.output_dir, "encoder")
        kwargs = self._encoder_export_kwargs(kwargs)
        path = self.gram_model.save_encoder(output_dir, **kwargs) if self.is_world_process_zero() else None
        self.accelerator.wait_for_everyone()
        return path

    def push_encoder_to_hub(self, repo_id: str | None = None, **kwargs: Any):
        """
        Uploads the content encoder export ([`GramModel.push_encoder_to_hub`]) to `repo_id` (default:
        `<hub_model_id>-encoder`), with the trainer's Hub token and privacy settings. Main process only.
        """
        if repo_id is None:
            if not self.args.hub_model_id:
                raise ValueError("push_encoder_to_hub needs a repo_id (or --hub_model_id, then '-encoder' is added).")
            repo_id = f"{self.args.hub_model_id}-encoder"
        kwargs = self._encoder_export_kwargs(kwargs)
        kwargs.setdefault("token", self.args.hub_token)
        kwargs.setdefault("private", self.args.hub_private_repo)
        info = self.gram_model.push_encoder_to_hub(repo_id, **kwargs) if self.is_world_process_zero() else None
        self.accelerator.wait_for_everyone()
        return info

    def _encoder_export_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.gram_model.encoder is None:
            raise ValueError("This GramModel has an item-ID table (nocontent), not a content encoder to export.")
        kwargs = dict(kwargs)
        kwargs.setdefault("tokenizer", self.processing_class)  # None: loaded from config.encoder_name_or_path
        if self.item_catalog is not None:
            kwargs.setdefault("max_length", self.item_catalog.max_length)
        return kwargs

    # ---------------------------------------------------------- checkpointing

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if not self.args.should_save:
            return
        state: dict[str, Any] = {"counters": dict(self.gram_counters)}
        if self.encoder_optimizer is not None:
            state["encoder_optimizer"] = self.encoder_optimizer.state_dict()
            state["encoder_lr_scheduler"] = self.encoder_lr_scheduler.state_dict()
        if self.item_table is not None:
            state["item_table"] = {k: v.cpu() for k, v in self.item_table.state_dict().items()}
        path = os.path.join(output_dir, GRAM_STATE_NAME)
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """
        The Trainer's checkpoint, made crash-safe: the folder is marked complete only after every process has written
        its part, older checkpoints are rotated out only after that, and an unmarked folder left by an interrupted
        save is replaced rather than mixed with.
        """
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save and os.path.isdir(folder) and not _is_complete_checkpoint(folder):
            logger.warning(f"Replacing {folder}, left incomplete by an interrupted save.")
            shutil.rmtree(folder)
        self.accelerator.wait_for_everyone()
        save_total_limit = self.args.save_total_limit
        # Rotation must not delete the last complete checkpoint before this one is complete.
        self.args.save_total_limit = None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = save_total_limit
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            marker = os.path.join(folder, CHECKPOINT_COMPLETE_NAME)
            with open(marker + ".tmp", "w") as file:
                json.dump({"global_step": self.state.global_step, "files": sorted(os.listdir(folder))}, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(marker + ".tmp", marker)
            if save_total_limit:
                rotate_checkpoints(
                    output_dir=self._get_output_dir(trial=trial),
                    save_total_limit=save_total_limit,
                    best_model_checkpoint=self.state.best_model_checkpoint,
                    use_mtime=True,
                )
        self.accelerator.wait_for_everyone()

    def train(self, resume_from_checkpoint: str | bool | None = None, trial: Any = None, **kwargs: Any):
        """
        [`~transformers.Trainer.train`], where `resume_from_checkpoint=True` picks the last *complete* checkpoint in
        `output_dir` (skipping, with a warning, one a killed process left half-written) and an explicit path to an
        incomplete checkpoint is refused.
        """
        if resume_from_checkpoint is True:
            resume_from_checkpoint = _last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No complete checkpoint found in output directory ({self.args.output_dir}).")
        elif isinstance(resume_from_checkpoint, str | os.PathLike) and not _is_complete_checkpoint(
            resume_from_checkpoint
        ):
            parent = os.path.dirname(os.path.abspath(resume_from_checkpoint))
            raise ValueError(
                f"{resume_from_checkpoint} is not a complete GramTrainer checkpoint (no {CHECKPOINT_COMPLETE_NAME}): "
                "it was interrupted while saving or written by another trainer. Resume from an earlier checkpoint "
                f"(the last complete one in its folder: {_last_complete_checkpoint(parent)})."
            )
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, GRAM_STATE_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: the checkpoint holds no GRAM state (encoder optimizer, item table), so training "
                "cannot resume exactly from it."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.gram_counters.update(state["counters"])
        if self.encoder_optimizer is not None:
            self.encoder_optimizer.load_state_dict(state["encoder_optimizer"])
            self.encoder_lr_scheduler.load_state_dict(state["encoder_lr_scheduler"])
        if self.item_table is not None:
            self.item_table.load_state_dict(state["item_table"])


def _is_complete_checkpoint(folder: str | os.PathLike) -> bool:
    return os.path.isfile(os.path.join(folder, CHECKPOINT_COMPLETE_NAME))


def _last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The highest-step complete checkpoint in `output_dir`, warning about newer incomplete ones it skips."""
    if not os.path.isdir(output_dir):
        return None
    steps = {}
    for name in os.listdir(output_dir):
        prefix, _, step = name.rpartition("-")
        if prefix == PREFIX_CHECKPOINT_DIR and step.isdigit() and os.path.isdir(os.path.join(output_dir, name)):
            steps[int(step)] = os.path.join(output_dir, name)
    skipped = []
    for step in sorted(steps, reverse=True):
        if _is_complete_checkpoint(steps[step]):
            if skipped:
                logger.warning(f"Skipping incomplete checkpoint(s) {skipped}; resuming from {steps[step]}.")
            return steps[step]
        skipped.append(steps[step])
    return None


class _CloseWindowAtTrainEnd(TrainerCallback):
    """
    Ends an open GRAM window when training stops before the window's last step (early stopping, a callback), so the
    encoder is fitted to the pseudo-targets the CF module already trained against. When the best checkpoint was
    loaded instead, the window belongs to a discarded trajectory and is only dropped.
    """

    def __init__(self, trainer: GramTrainer):
        self.trainer = trainer

    def on_train_end(self, args, state, control, **kwargs):
        trainer = self.trainer
        table = trainer.item_table
        if table is None or trainer.args.gram_mode != "gram" or not bool(table.touched.any()):
            return
        if not (args.load_best_model_at_end and state.best_model_checkpoint is not None):
            trainer._fit_encoder_to_item_table(trainer.gram_model)
            trainer._merge_counters()
        table.invalidate()


__all__ = ["GramTrainer", "expand_occurrences"]
