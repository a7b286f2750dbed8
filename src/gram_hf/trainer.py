"""[`GramTrainer`]: a `transformers.Trainer` for item encoders: end-to-end, GRAM, NoFinetune and NoContent."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.optimization import get_scheduler
from transformers.trainer_utils import has_length
from transformers.utils import logging

from . import checkpointing, distributed, export, inference
from .evaluation import EncodedCatalog, GramEvaluationMixin
from .item_encoding import ItemEncodingMixin
from .item_table import ItemTable
from .items import ItemCatalog
from .modeling import GramModel
from .training_args import GramTrainingArguments
from .training_modes import TrainingModesMixin, expand_occurrences  # the latter re-exported: it lived here
from .windows import GramWindowLog

if TYPE_CHECKING:
    from .windows import GramWindowSchedule

logger = logging.get_logger(__name__)

COUNTER_NAMES = (
    "occurrences",
    "unique_items",
    "encoder_items_forward",
    "encoder_items_backward",
    "encoder_tokens_forward",
    "encoder_tokens_backward",
)


class GramTrainer(GramEvaluationMixin, TrainingModesMixin, ItemEncodingMixin, Trainer):
    r"""
    A [`~transformers.Trainer`] for [`GramModel`] that trains the content encoder (CE) and the collaborative-filtering
    module (CF, the task head) by `args.gram_mode`:

    - `"e2e"`: every item occurrence in the batch is encoded with gradients (the baseline; padding is never encoded);
    - `"gram"`: each unique item is encoded once and the CF module trains on the item vectors as leaves; the CE is
      fitted to the pseudo-targets `h - item_learning_rate * dL/dh` every `gram_interval` CF steps (1 equals `e2e`);
    - `"nofinetune"`: the CE is frozen, each item is encoded once, only the CF module trains;
    - `"nocontent"`: trains a model with `item_encoder='id'` (an item-ID table, [`GramModel.for_item_ids`]): items
      are rows of `model.item_id_table`, trained with the head; no CE.

    The Trainer's optimizer and scheduler train the CF module; a second optimizer of the same type (learning rate
    `encoder_learning_rate`) and scheduler train the CE, and both, with GRAM's [`ItemTable`], are saved in checkpoints
    and restored by `resume_from_checkpoint`. Cost counters (`gram/occurrences`, `gram/unique_items`,
    `gram/encoder_items_forward` for no-grad encodes, `gram/encoder_items_backward` for forward+backward encodes, the
    same in tokens, and `gram/r_batch`) are added to the training logs.

    The training step of each mode is in [`TrainingModesMixin`], encoding and the encoder fits in
    [`ItemEncodingMixin`], evaluation in [`GramEvaluationMixin`], the window schedule in [`GramWindowSchedule`] and
    the crash-safe checkpoint files in `gram_hf.checkpointing`.

    Args:
        model ([`GramModel`]): the model to train.
        args ([`GramTrainingArguments`]): training arguments.
        item_catalog ([`ItemCatalog`], *optional*):
            The items' tokenized text; required unless `gram_mode="nocontent"` (which trains a model with
            `item_encoder='id'`, an item-ID table). Batches name items by catalog index.
        eval_data_collator (`Callable`, *optional*):
            The collator of `evaluate` / `predict` batches when they differ from training batches (next-item ranks each
            user's held-out item over the whole catalog); defaults to `data_collator`.
        kwargs: the rest of [`~transformers.Trainer`]'s arguments (`data_collator`, `train_dataset`, `eval_dataset`,
            `processing_class`, `callbacks`, ...).
    """

    def __init__(
        self,
        model: GramModel,
        args: GramTrainingArguments | None = None,
        item_catalog: ItemCatalog | None = None,
        eval_data_collator: Callable | None = None,
        **kwargs: Any,
    ):
        args = args if args is not None else GramTrainingArguments()
        if not isinstance(args, GramTrainingArguments):
            raise TypeError(f"GramTrainer needs GramTrainingArguments, got {type(args).__name__}.")
        if not isinstance(model, GramModel):
            raise TypeError(f"GramTrainer trains a GramModel, got {type(model).__name__}.")
        mode = args.gram_mode
        if mode == "nocontent":
            if model.encoder is not None:
                raise ValueError(
                    "gram_mode='nocontent' trains a model with item_encoder='id' (an item-ID table); this GramModel "
                    "has a content encoder. Build one with GramModel.for_item_ids(num_items, item_dim, head_type=...)."
                )
        else:
            if model.encoder is None:
                raise ValueError(
                    f"gram_mode={mode!r} needs a GramModel with a content encoder; this one has item_encoder='id' (an "
                    "item-ID table), which only gram_mode='nocontent' trains."
                )
            if item_catalog is None:
                raise ValueError(f"gram_mode={mode!r} needs an item_catalog to take the items' tokens from.")
        if item_catalog is not None and model.item_id_table is not None:
            if item_catalog.num_items != model.config.num_items:
                raise ValueError(
                    f"The catalog has {item_catalog.num_items} items, the item-ID table {model.config.num_items} rows."
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
        self.eval_data_collator = eval_data_collator
        self._step_positions: torch.Tensor | None = None  # scored positions of the current optimizer step
        self._micro_batch_weight: torch.Tensor | float = 1.0
        self.encoder_optimizer: torch.optim.Optimizer | None = None
        self.encoder_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.item_table: ItemTable | None = None
        self.gram_counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        # This process's work since the last optimizer step; merged (summed over processes) into `gram_counters` at
        # step boundaries so the counters are global and identical on every process.
        self._pending_counts: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._pending_item_grads: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._update_steps_per_epoch: int | None = None
        self.gram_window_log = GramWindowLog()
        self._encoded_catalog: EncodedCatalog | None = None
        self.add_callback(_CloseWindowAtTrainEnd(self))
        self._warn_about_sparse_encoder_updates()

    def _warn_about_sparse_encoder_updates(self) -> None:
        """
        Two settings that starve or overshoot the encoder under a full-catalog next-item loss with windows longer than
        a step. `encoder_update="accumulate"` gives the encoder one optimizer step per window: content-based SASRec
        fell below popularity on realistic data and reached it with `"per_batch"` and `encoder_epochs=3`. A hybrid at
        `item_learning_rate` 1.0: every cached vector moves at every step, and over long windows the table drifts
        beyond what the encoder can fit (benchmarks/results/cpu-amd-epyc-realistic/next_item_item_learning_rate).
        Both fixes are the next-item program's defaults.
        """
        args = self.args
        if not (args.gram_is_multi_step and getattr(self.gram_model.head, "uses_full_catalog", False)):
            return
        if args.encoder_update == "accumulate":
            logger.warning(
                "A full-catalog loss with windows longer than a step and encoder_update='accumulate' gives the "
                "encoder one optimizer step per window, too few to learn the catalog; use encoder_update='per_batch' "
                "and encoder_epochs=3 (the next_item program's defaults)."
            )
        if self.gram_model.config.item_encoder == "content+id" and args.item_learning_rate >= 1.0:
            logger.warning(
                "A hybrid under a full-catalog loss with windows longer than a step trains its cached content "
                f"vectors at item_learning_rate={args.item_learning_rate:g}, which drifts them beyond what the "
                "encoder can fit; use item_learning_rate=0.01 (the next_item program's default for hybrids)."
            )

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
                name = "gram_auto_max_interval" if self.args.gram_interval_is_auto else "gram_interval"
                raise ValueError(
                    f"{name}={getattr(self.args, name)!r} is a fraction of an epoch, but the training data has no "
                    "length (an IterableDataset); give the interval in steps."
                )
            return dataloader
        # Epoch-fraction windows need the number of optimizer steps per epoch, as the Trainer counts them.
        batches = len(dataloader)
        accumulation = self.args.gradient_accumulation_steps
        self._update_steps_per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)
        return dataloader

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The CF optimizer over the head (and item-ID table), and the CE optimizer over the content encoder."""
        gram_model = self.gram_model
        if self.optimizer is None:
            super().create_optimizer(gram_model.cf_module)
            self._give_item_id_table_its_learning_rate(gram_model)
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

    def _give_item_id_table_its_learning_rate(self, gram_model: GramModel) -> None:
        """Moves the item-ID table into its own parameter group at `item_id_learning_rate` (no weight decay)."""
        rate = self.args.item_id_learning_rate
        if rate is None or gram_model.item_id_table is None:
            return
        table = {id(p) for p in gram_model.item_id_table.parameters()}
        moved = []
        for group in self.optimizer.param_groups:
            moved += [p for p in group["params"] if id(p) in table]
            group["params"] = [p for p in group["params"] if id(p) not in table]
        # Set before the scheduler exists (it records each group's initial rate), and before any step (no state).
        self.optimizer.add_param_group({"params": moved, "lr": rate, "weight_decay": 0.0})

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
            warmup = self.args.get_warmup_steps(num_training_steps)
            if self.args.gram_interval_is_auto:
                # The window ends are not known in advance: the schedule counts CF steps and advances by a window's
                # length at its end, so each fit uses the rate the CF schedule has at the window's last step.
                num_warmup_steps, num_steps = warmup, num_training_steps
            else:
                window_ends = self._window_schedule(num_training_steps).window_ends()
                num_warmup_steps, num_steps = sum(1 for s in window_ends if s <= warmup), len(window_ends)
            self.encoder_lr_scheduler = get_scheduler(
                self.args.lr_scheduler_type,
                optimizer=self.encoder_optimizer,
                num_warmup_steps=num_warmup_steps,
                num_training_steps=max(num_steps, 1),
                scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
            )
        if self._uses_item_table and self.item_table is None:
            self.item_table = ItemTable(
                self.item_catalog.num_items,
                self.gram_model.item_dim,
                device=self.args.device,
                track_drift=self.args.gram_interval_is_auto,
            )
        return scheduler

    def _window_schedule(self, max_steps: int | None = None) -> GramWindowSchedule:
        # Until the training dataloader is built the epoch length is unknown and 1 stands in; `train` builds it before
        # the schedules are made.
        return self.args.gram_window_schedule(
            max_steps if max_steps is not None else self.state.max_steps, self._update_steps_per_epoch or 1
        )

    def _is_window_end(self, step: int, max_steps: int | None = None) -> bool:
        """
        Whether the CE is updated after CF optimizer step `step` (1-based) of `max_steps` (default: this run's): where
        the fixed schedule says so and, with `gram_interval="auto"`, also once the pseudo-targets have drifted
        `gram_auto_drift` from the encodings. The drift is a function of the ItemTable, which is identical on every
        process, so every process decides alike.
        """
        if self._window_schedule(max_steps).ends_window(step):
            return True
        return self.args.gram_interval_is_auto and self.item_table.drift() >= self.args.gram_auto_drift

    def _close_window(self, step: int) -> None:
        """
        Records the end of the window at optimizer step `step` (after its encoder fit) and advances the CE's
        scheduler: by one window, or with `gram_interval="auto"` by the window's steps.
        """
        table = self.item_table
        drift = table.drift() if table is not None and table.tracks_drift else 0.0
        length = self.gram_window_log.close(step, drift)
        for _ in range(length if self.args.gram_interval_is_auto else 1):
            self.encoder_lr_scheduler.step()

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
        self._micro_batch_weight = self._share_of_step(inputs)
        refs = [inputs[key] for key in gram_model.head.item_ref_keys]
        self._pending_counts["occurrences"] += sum(int((ref >= 0).sum()) for ref in refs)
        self._pending_counts["unique_items"] += item_index.numel()
        loss = self._mode_step()(gram_model, item_index, inputs)
        if self.accelerator.sync_gradients:
            self._merge_counters()
        # The Trainer sums the returned losses of a step's micro-batches for logging.
        return loss.detach() * self._micro_batch_weight

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """
        The Trainer's micro-batches of one optimizer step, with the number of scored positions (`labels` other than
        -100) they hold together, which [`_share_of_step`] weighs each micro-batch's mean loss by.
        """
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        # Without accumulation every micro-batch is its whole step: nothing to count.
        counts = [_scored_positions(batch) for batch in batch_samples] if len(batch_samples) > 1 else [None]
        self._step_positions = None if any(count is None for count in counts) else torch.stack(counts).sum()
        return batch_samples, num_items_in_batch

    def _share_of_step(self, inputs: dict[str, Any]) -> torch.Tensor | float:
        """
        This micro-batch's weight in its optimizer step: its scored positions over the step's, so that gradient
        accumulation equals the whole batch also when micro-batches score unequally many positions (heads return a
        mean over their positions); `1 / accumulation steps` when the batches carry no `labels` to count. A tensor on
        the batch's device, so that weighing costs no host-device synchronisation.
        """
        fallback = 1.0 / self.current_gradient_accumulation_steps
        total = self._step_positions
        positions = _scored_positions(inputs) if total is not None else None
        if positions is None:
            return fallback
        total = total.to(positions.device)
        return torch.where(total > 0, positions / total.clamp(min=1), fallback)

    def _merge_counters(self) -> None:
        """Adds every process's pending work to the (global) counters."""
        pending = torch.tensor([self._pending_counts[name] for name in COUNTER_NAMES], dtype=torch.long)
        if distributed.world_size() > 1:
            pending = distributed.all_reduce_sum(pending.to(self.args.device)).cpu()
        for name, value in zip(COUNTER_NAMES, pending.tolist()):
            self.gram_counters[name] += value
        self._pending_counts = dict.fromkeys(COUNTER_NAMES, 0)

    def floating_point_ops(self, inputs: dict[str, torch.Tensor | Any]) -> int:
        # Batches hold item indices, not tokens; the encoder's work is in the gram/ counters instead.
        return 0

    # ---------------------------------------------------------------- logging

    def gram_metrics(self) -> dict[str, float]:
        """
        The cumulative cost counters, with `gram/r_batch` = occurrences / unique items; in `gram` mode also the windows
        ended so far (`gram/windows`, each one encoder fit), their mean length in CF optimizer steps
        (`gram/window_steps`) and, with `gram_interval="auto"`, the drift at which the last one ended (`gram/drift`).
        """
        metrics: dict[str, float] = {f"gram/{name}": value for name, value in self.gram_counters.items()}
        unique = self.gram_counters["unique_items"]
        metrics["gram/r_batch"] = self.gram_counters["occurrences"] / unique if unique else 0.0
        if self.args.gram_mode == "gram":
            metrics["gram/windows"] = self.gram_window_log.windows
            metrics["gram/window_steps"] = self.gram_window_log.mean_window_steps
            if self.args.gram_interval_is_auto:
                metrics["gram/drift"] = self.gram_window_log.last_drift
        return metrics

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs or "train_loss" in logs:
            logs = {**logs, **self.gram_metrics()}
        super().log(logs, start_time)

    # ------------------------------------------------------------------ export

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """
        `Trainer.save_model`, plus `gram_inference.json` beside the model: how the catalog was tokenized and the
        evaluation collator's options, so that `GramRecommender.from_pretrained(output_dir, items=...)` scores exactly
        as `predict` does.
        """
        super().save_model(output_dir, _internal_call=_internal_call)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self.args.should_save:
            settings = inference.inference_settings(self)
            path = os.path.join(output_dir, inference.INFERENCE_CONFIG_NAME)
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(settings, handle, indent=2, sort_keys=True)

    def save_encoder(self, output_dir: str | None = None, **kwargs: Any) -> str | None:
        """
        Saves the content encoder as a folder that plain `AutoModel` and `SentenceTransformer` both load
        ([`gram_hf.export.save_encoder`]; `sentence_transformers=False` leaves out the latter's files): by default to
        `<output_dir>/encoder`, with the trainer's tokenizer and the catalog's `max_length`. Written by the main
        process only; every process waits for it.
        """
        output_dir = output_dir if output_dir is not None else os.path.join(self.args.output_dir, "encoder")
        kwargs = self._encoder_export_kwargs(kwargs)
        path = export.save_encoder(self.gram_model, output_dir, **kwargs) if self.is_world_process_zero() else None
        self.accelerator.wait_for_everyone()
        return path

    def push_encoder_to_hub(self, repo_id: str | None = None, **kwargs: Any):
        """
        Uploads the content encoder export ([`gram_hf.export.push_encoder_to_hub`]) to `repo_id` (default:
        `<hub_model_id>-encoder`), with the trainer's Hub token and privacy settings. Main process only.
        """
        if repo_id is None:
            if not self.args.hub_model_id:
                raise ValueError("push_encoder_to_hub needs a repo_id (or --hub_model_id, then '-encoder' is added).")
            repo_id = f"{self.args.hub_model_id}-encoder"
        kwargs = self._encoder_export_kwargs(kwargs)
        kwargs.setdefault("token", self.args.hub_token)
        kwargs.setdefault("private", self.args.hub_private_repo)
        info = export.push_encoder_to_hub(self.gram_model, repo_id, **kwargs) if self.is_world_process_zero() else None
        self.accelerator.wait_for_everyone()
        return info

    def _encoder_export_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.gram_model.encoder is None:
            raise ValueError(
                "This GramModel has item_encoder='id' (an item-ID table), not a content encoder to export."
            )
        kwargs = dict(kwargs)
        kwargs.setdefault("tokenizer", self.processing_class)  # None: loaded from config.encoder_name_or_path
        if self.item_catalog is not None:
            kwargs.setdefault("max_length", self.item_catalog.max_length)
        return kwargs

    # ---------------------------------------------------------- checkpointing

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save:
            self._gram_state().save(output_dir)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self._gram_state().load(checkpoint)
            logger.info(self._resume_summary(checkpoint))

    def _resume_summary(self, checkpoint: str) -> str:
        """Where a resumed run starts: the step, the epoch and, for GRAM windows longer than a step, the window."""
        step, epoch = self.state.global_step, self.state.epoch or 0.0
        line = f"Resumed from step {step} (epoch {epoch:.2f}) of {self.state.max_steps}"
        if self.args.gram_interval_is_auto:
            start = self.gram_window_log.start_step
            line += (
                f", window {self.gram_window_log.windows + 1} open since step {start} ({step - start} steps, drift "
                f"{self.item_table.drift():.4f} of {self.args.gram_auto_drift:g})"
            )
        elif self.args.gram_mode == "gram" and self._uses_item_table:
            ends = self._window_schedule().window_ends()
            done = [end for end in ends if end <= step]
            following = next((end for end in ends if end > step), None)
            if following is not None:
                start = done[-1] if done else 0
                line += f", window {len(done) + 1} of {len(ends)} (steps {start + 1}-{following}, {step - start} done)"
        return f"{line}: {checkpoint}"

    def _gram_state(self) -> checkpointing.GramState:
        """What a checkpoint holds beside the Trainer's own files: the counters, the CE optimization, the ItemTable."""
        return checkpointing.GramState(
            self.gram_counters,
            self.encoder_optimizer,
            self.encoder_lr_scheduler,
            self.item_table,
            self.gram_window_log,
        )

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """The Trainer's checkpoint, made crash-safe ([`gram_hf.checkpointing.save_checkpoint_crash_safe`])."""
        checkpointing.save_checkpoint_crash_safe(
            functools.partial(super()._save_checkpoint, model, trial),
            run_dir=self._get_output_dir(trial=trial),
            args=self.args,
            state=self.state,
            barrier=self.accelerator.wait_for_everyone,
        )

    def train(self, resume_from_checkpoint: str | bool | None = None, trial: Any = None, **kwargs: Any):
        """
        [`~transformers.Trainer.train`], where `resume_from_checkpoint=True` picks the last *complete* checkpoint in
        `output_dir` (skipping, with a warning, one a killed process left half-written) and an explicit path to an
        incomplete checkpoint is refused.
        """
        resume_from_checkpoint = checkpointing.resolve_resume_checkpoint(resume_from_checkpoint, self.args.output_dir)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)


def _scored_positions(batch: dict[str, Any]) -> torch.Tensor | None:
    """The number of labels other than -100 (padding) in a batch, a 0-d tensor; `None` without a `labels` tensor."""
    labels = batch.get("labels")
    return (labels != -100).sum() if isinstance(labels, torch.Tensor) else None


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
            trainer._fit_encoder_to_item_table(trainer.gram_model, state.global_step)
            trainer._merge_counters()
        table.invalidate()


__all__ = ["GramTrainer", "expand_occurrences"]
