"""[`GramTrainingArguments`]: `TrainingArguments` plus how the content encoder and the CF module are trained."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from .windows import AUTO_INTERVAL, GramWindowSchedule, parse_gram_interval

GRAM_MODES = ("e2e", "gram", "nofinetune", "nocontent")
ENCODER_UPDATES = ("accumulate", "per_batch")


@dataclass
class GramTrainingArguments(TrainingArguments):
    r"""
    [`~transformers.TrainingArguments`] for [`GramTrainer`].

    The Trainer's own optimizer (`learning_rate`, `optim`, `lr_scheduler_type`, warmup, weight decay, `max_grad_norm`)
    trains the collaborative-filtering module (the task head, and the ID table in `nocontent` mode). The content
    encoder gets a second optimizer of the same type with `encoder_learning_rate`; its scheduler advances once per
    window, so in `e2e` and Single-step GRAM both schedules move in lockstep.
    """

    gram_mode: str = field(
        default="gram",
        metadata={
            "help": "How the content encoder is trained: 'e2e' (back-propagate through the encoder once per item "
            "occurrence, the baseline), 'gram' (alternate CF steps on cached item vectors with encoder fits to "
            "pseudo-targets), 'nofinetune' (encoder frozen, vectors computed once) or 'nocontent' (a learned "
            "item-ID table, no encoder).",
            "choices": list(GRAM_MODES),
        },
    )
    gram_interval: str = field(
        default="1",
        metadata={
            "help": "GRAM window: the encoder is fitted every this many CF optimizer steps (an int; 1 is "
            "Single-step GRAM, exactly E2E), every fraction of an epoch ('0.5epoch', '1epoch'), or 'auto': whenever "
            "the pseudo-targets have drifted `gram_auto_drift` (systematically) from what the encoder produced, and "
            "at least at the "
            "ends of `gram_auto_max_interval`. Windows also end at epoch ends when the interval is at most one "
            "epoch, and at the last training step."
        },
    )
    gram_auto_drift: float = field(
        default=0.0005,
        metadata={
            "help": "gram_interval='auto': a window ends after the CF step at which the touched items' pseudo-targets "
            "have moved systematically (the part of their move the steps agree on, not the noise that cancels out) "
            "this fraction of their vectors' norm away from what the encoder produced. 0 ends every step "
            "(Single-step GRAM). The default put gram-auto above the fixed intervals' quality-work front on "
            "knowledge tracing (benchmarks/results/cpu-amd-epyc-interval)."
        },
    )
    gram_auto_max_interval: str = field(
        default="1epoch",
        metadata={
            "help": "gram_interval='auto': windows end at least where this fixed interval's windows end (steps or "
            "'<float>epoch'; the default ends one at every epoch end), whatever the drift."
        },
    )
    item_learning_rate: float = field(
        default=1.0,
        metadata={
            "help": "eta in the pseudo-target h~ = h - eta * dL/dh. With 1.0 and interval 1 the encoder gradient "
            "equals the end-to-end gradient; with longer windows the cached vectors are trained by SGD at this rate."
        },
    )
    encoder_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the content encoder's optimizer; defaults to `learning_rate`."},
    )
    item_id_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the item-ID table (item_encoder 'id' or 'content+id') in the CF optimizer; "
            "defaults to `learning_rate`. Each row trains only on its item's interactions, so embedding tables often "
            "want a larger rate than the network."
        },
    )
    encoder_batch_size: int = field(
        default=32,
        metadata={
            "help": "Items per encoder forward+backward when fitting the encoder to pseudo-targets; bounds the "
            "encoder's activation memory independently of the CF batch."
        },
    )
    encoder_eval_batch_size: int = field(
        default=256,
        metadata={"help": "Items per no-grad encoder batch (lazy ItemTable fills, length-sorted)."},
    )
    encoder_update: str = field(
        default="accumulate",
        metadata={
            "help": "'accumulate': one encoder optimizer step per pass over the window's touched items (gradients "
            "summed over encoder mini-batches; exact for interval 1) or 'per_batch': one step per encoder mini-batch.",
            "choices": list(ENCODER_UPDATES),
        },
    )
    encoder_epochs: int = field(
        default=1,
        metadata={"help": "Passes over the window's touched items when fitting the encoder to pseudo-targets."},
    )
    gram_recompute: bool = field(
        default=False,
        metadata={
            "help": "Single-step GRAM only: False keeps the encoder's graph from the unique-item forward and "
            "back-propagates the item gradients through it (one forward+backward per unique item); True encodes "
            "without grad and recomputes in mini-batches of `encoder_batch_size` (bounded memory, one extra "
            "forward). Longer windows always recompute."
        },
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Kept False: the GRAM collators need columns the model's forward does not name."},
    )
    report_to: None | str | list[str] = field(
        default="none",
        metadata={
            "help": "Integrations to report logs to, comma-separated on a command line (e.g. 'tensorboard,trackio'; "
            "'none' by default; 'all' for every installed one). The gram/* counters are logged with the loss."
        },
    )

    def __post_init__(self):
        if self.gram_mode not in GRAM_MODES:
            raise ValueError(f"gram_mode must be one of {GRAM_MODES}, got {self.gram_mode!r}.")
        if self.encoder_update not in ENCODER_UPDATES:
            raise ValueError(f"encoder_update must be one of {ENCODER_UPDATES}, got {self.encoder_update!r}.")
        self.gram_interval = str(self.gram_interval).strip()
        if self.gram_interval.lower() == AUTO_INTERVAL:
            self.gram_interval = AUTO_INTERVAL
            self.gram_auto_max_interval = str(self.gram_auto_max_interval).strip()
            try:
                self._interval_steps, self._interval_epochs = parse_gram_interval(self.gram_auto_max_interval)
            except ValueError as error:
                raise ValueError(f"gram_auto_max_interval: {error}") from None
        else:
            self._interval_steps, self._interval_epochs = parse_gram_interval(self.gram_interval)
        if not (self.gram_auto_drift >= 0):  # also refuses NaN
            raise ValueError(f"gram_auto_drift must be >= 0 (0 ends every window after one step), got "
                             f"{self.gram_auto_drift}.")  # fmt: skip
        if not self.item_learning_rate > 0:
            raise ValueError(f"item_learning_rate must be > 0, got {self.item_learning_rate}.")
        if self.encoder_learning_rate is not None and self.encoder_learning_rate < 0:
            raise ValueError(f"encoder_learning_rate must be >= 0 or None, got {self.encoder_learning_rate}.")
        if self.item_id_learning_rate is not None and not self.item_id_learning_rate >= 0:
            raise ValueError(f"item_id_learning_rate must be >= 0 or None, got {self.item_id_learning_rate}.")
        for name in ("encoder_batch_size", "encoder_eval_batch_size", "encoder_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        # A command line gives one string (HfArgumentParser takes the first type of the union): split it, so that
        # `--report_to tensorboard,trackio` reports to both.
        if self.report_to is not None:
            names = [self.report_to] if isinstance(self.report_to, str) else list(self.report_to)
            names = [name.strip() for entry in names for name in str(entry).split(",") if name.strip()]
            self.report_to = names[0] if len(names) == 1 else names
        if self.fp16 and self.gram_mode in ("e2e", "gram"):
            raise ValueError(
                f"fp16 is not supported with gram_mode={self.gram_mode!r}: the encoder's second optimizer has no "
                "loss scaler. Use bf16 (or fp32); fp16 is allowed with 'nofinetune' and 'nocontent'."
            )
        super().__post_init__()
        if self.gram_mode in ("e2e", "gram") and str(
            getattr(self.lr_scheduler_type, "value", self.lr_scheduler_type)
        ) in (
            "reduce_lr_on_plateau",
            "greedy",
        ):
            raise ValueError(
                f"lr_scheduler_type={self.lr_scheduler_type!r} steps on evaluation metrics, which the encoder's "
                "per-window scheduler does not see; use a step-based scheduler (linear, cosine, constant, ...) "
                f"with gram_mode={self.gram_mode!r}."
            )

    @property
    def encoder_lr(self) -> float:
        """The content encoder's learning rate."""
        return self.learning_rate if self.encoder_learning_rate is None else self.encoder_learning_rate

    @property
    def gram_interval_is_auto(self) -> bool:
        """Whether the trainer chooses the window ends (`gram_interval="auto"`) in `gram` mode."""
        return self.gram_mode == "gram" and self.gram_interval == AUTO_INTERVAL

    @property
    def gram_is_multi_step(self) -> bool:
        """Whether `gram` mode runs windows longer than one CF step (steps > 1, epoch fractions or `"auto"`)."""
        return self.gram_mode == "gram" and self.gram_interval_steps != 1

    @property
    def gram_interval_steps(self) -> int | None:
        """
        The window in CF optimizer steps, or `None` when it is a fraction of an epoch or `"auto"` (whose longest
        window is then `gram_auto_max_interval`, see [`gram_window_schedule`]).
        """
        return None if self.gram_interval == AUTO_INTERVAL else self._interval_steps

    @property
    def gram_interval_epochs(self) -> float | None:
        """
        The window as a fraction of an epoch, or `None` when it is a number of steps; for `"auto"` the epoch fraction
        of `gram_auto_max_interval`, since the windows then depend on the epoch length too.
        """
        return self._interval_epochs

    def gram_window_schedule(self, max_steps: int, steps_per_epoch: int | None = None) -> GramWindowSchedule:
        """
        When the encoder is updated: the [`GramWindowSchedule`] of `gram_interval` over `max_steps` CF optimizer
        steps. In `e2e` mode every step is a window of its own (the encoder steps with the CF module). With
        `gram_interval="auto"` it is the schedule of `gram_auto_max_interval`: the ends that always happen, to which
        the trainer adds those the drift asks for.

        Args:
            max_steps (`int`): the last optimizer step of training.
            steps_per_epoch (`int`, *optional*): optimizer steps per epoch; needed by an epoch-fraction interval.
        """
        if self.gram_mode == "e2e":
            return GramWindowSchedule(max_steps, interval_steps=1)
        return GramWindowSchedule(
            max_steps,
            interval_steps=self._interval_steps,
            interval_epochs=self._interval_epochs,
            steps_per_epoch=steps_per_epoch,
        )


__all__ = ["ENCODER_UPDATES", "GRAM_MODES", "GramTrainingArguments", "parse_gram_interval"]
