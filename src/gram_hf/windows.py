"""
When GRAM windows end: parsing `gram_interval`, the schedule of window ends in CF optimizer steps, and the adaptive
interval's decision state.

The fixed schedules are pure functions of the interval, the number of optimizer steps per epoch and the last step,
shared by [`GramTrainingArguments`] (which validates the interval) and [`GramTrainer`] (which fits the encoder at every
window end and builds the encoder's learning-rate schedule from the list of ends). With `gram_interval="auto"` the
trainer ends a window also whenever the pseudo-targets have drifted far enough from what the encoder produced
([`ItemTable.drift`]); [`GramWindowLog`] keeps the count and lengths of the windows for the logs and checkpoints.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

_EPOCH_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*epochs?\s*$")
AUTO_INTERVAL = "auto"


def parse_gram_interval(value: str | int) -> tuple[int | None, float | None]:
    """
    `(steps, None)` for an int interval, `(None, epochs)` for `"<float>epoch"`. Raises `ValueError` naming the allowed
    forms otherwise.
    """
    text = str(value).strip()
    if text.isascii() and text.isdigit():
        steps = int(text)
        if steps >= 1:
            return steps, None
    match = _EPOCH_INTERVAL.match(text)
    if match and float(match.group(1)) > 0:
        return None, float(match.group(1))
    raise ValueError(
        f"gram_interval must be a positive integer number of CF optimizer steps (e.g. 1, 10) or a positive fraction "
        f"of an epoch written '<float>epoch' (e.g. '0.5epoch', '1epoch'); got {value!r}."
    )


def fraction_window_ends(fraction: float, steps_per_epoch: int) -> frozenset[int]:
    """
    The steps of an epoch (1-based) at which windows of `fraction` (< 1) of an epoch end: the rounded multiples of
    `fraction * steps_per_epoch`, and always the epoch's last step.
    """
    # The tolerance keeps float noise (1 / (1 / 49) is 49.00000000000001) from counting an extra window.
    count = math.ceil(1 / fraction - 1e-9)
    ends = {min(steps_per_epoch, max(1, round(k * fraction * steps_per_epoch))) for k in range(1, count + 1)}
    return frozenset(ends | {steps_per_epoch})


@dataclass(frozen=True)
class GramWindowSchedule:
    """
    Which CF optimizer steps (1-based) end a GRAM window, i.e. are followed by an encoder fit.

    - An interval of `interval_steps` steps ends windows at its multiples.
    - An interval of at least one epoch (`interval_epochs >= 1`) ends windows every `round(interval_epochs *
      steps_per_epoch)` steps, counted from the start of training.
    - A shorter one restarts at every epoch and ends windows at the rounded multiples of the fraction within it (see
      [`fraction_window_ends`]), so `"0.5epoch"` always means two windows per epoch (when an epoch has two steps).
    - Step `max_steps`, the last of training, always ends a window, so the encoder sees every pseudo-target.

    Exactly one of `interval_steps` and `interval_epochs` is given, as [`parse_gram_interval`] returns them.

    Args:
        max_steps (`int`): the last optimizer step of training.
        interval_steps (`int`, *optional*): the window in optimizer steps.
        interval_epochs (`float`, *optional*): the window as a fraction of an epoch.
        steps_per_epoch (`int`, *optional*): optimizer steps per epoch; required with `interval_epochs`.
    """

    max_steps: int
    interval_steps: int | None = None
    interval_epochs: float | None = None
    steps_per_epoch: int | None = None

    def __post_init__(self):
        if (self.interval_steps is None) == (self.interval_epochs is None):
            raise ValueError("GramWindowSchedule needs exactly one of interval_steps and interval_epochs.")
        if self.interval_steps is not None and self.interval_steps < 1:
            raise ValueError(f"interval_steps must be a positive integer, got {self.interval_steps!r}.")
        if self.interval_epochs is not None:
            if not self.interval_epochs > 0:
                raise ValueError(f"interval_epochs must be > 0, got {self.interval_epochs!r}.")
            if self.steps_per_epoch is None or self.steps_per_epoch < 1:
                raise ValueError(
                    f"A window of {self.interval_epochs} epoch needs the number of optimizer steps per epoch, got "
                    f"steps_per_epoch={self.steps_per_epoch!r}."
                )

    @classmethod
    def from_interval(
        cls, interval: str | int, max_steps: int, steps_per_epoch: int | None = None
    ) -> GramWindowSchedule:
        """The schedule of a `gram_interval` as written (`3`, `"0.5epoch"`, ...)."""
        steps, epochs = parse_gram_interval(interval)
        return cls(max_steps, interval_steps=steps, interval_epochs=epochs, steps_per_epoch=steps_per_epoch)

    @cached_property
    def _ends_in_epoch(self) -> frozenset[int]:
        return fraction_window_ends(self.interval_epochs, self.steps_per_epoch)

    def ends_window(self, step: int) -> bool:
        """Whether optimizer step `step` (1-based) ends a window."""
        if step >= self.max_steps:
            return True
        if self.interval_steps is not None:
            return step % self.interval_steps == 0
        if self.interval_epochs >= 1:
            return step % max(1, round(self.interval_epochs * self.steps_per_epoch)) == 0
        step_in_epoch = (step - 1) % self.steps_per_epoch + 1
        return step_in_epoch in self._ends_in_epoch

    def window_ends(self) -> list[int]:
        """Every step of training (`1..max_steps`) that ends a window, ascending."""
        return [step for step in range(1, self.max_steps + 1) if self.ends_window(step)]


@dataclass
class GramWindowLog:
    """
    The windows of a GRAM run so far, for the logs (`gram/windows`, `gram/window_steps`) and for checkpoints: where
    the open window started and how many windows ended, over how many CF optimizer steps in all.

    Args:
        start_step (`int`): the optimizer step the open window follows (0 before the first).
        windows (`int`): windows ended (encoder fits) so far.
        window_steps (`int`): optimizer steps in the ended windows, together.
        last_window_steps (`int`): optimizer steps of the last ended window.
        last_drift (`float`): the drift of the touched items' vectors when the last window ended (`gram_interval`
            `"auto"`; 0 otherwise).
    """

    start_step: int = 0
    windows: int = 0
    window_steps: int = 0
    last_window_steps: int = 0
    last_drift: float = 0.0

    def close(self, step: int, drift: float = 0.0) -> int:
        """Ends the open window at optimizer step `step`; returns its length in steps (at least 1)."""
        length = max(step - self.start_step, 1)
        self.windows += 1
        self.window_steps += length
        self.last_window_steps = length
        self.last_drift = drift
        self.start_step = step
        return length

    @property
    def mean_window_steps(self) -> float:
        return self.window_steps / self.windows if self.windows else 0.0

    def state_dict(self) -> dict[str, float]:
        return {
            "start_step": self.start_step,
            "windows": self.windows,
            "window_steps": self.window_steps,
            "last_window_steps": self.last_window_steps,
            "last_drift": self.last_drift,
        }

    def load_state_dict(self, state: dict[str, float]) -> None:
        for name, value in state.items():
            setattr(self, name, type(getattr(self, name))(value))


__all__ = ["AUTO_INTERVAL", "GramWindowLog", "GramWindowSchedule", "fraction_window_ends", "parse_gram_interval"]
