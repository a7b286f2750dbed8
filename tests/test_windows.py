"""GramWindowSchedule: when GRAM windows end, a pure function of the interval, the epoch length and the last step."""

from __future__ import annotations

import pytest

from gram_hf import GramTrainingArguments, GramWindowSchedule
from gram_hf.windows import fraction_window_ends


def ends(interval, max_steps, steps_per_epoch=None):
    return GramWindowSchedule.from_interval(interval, max_steps, steps_per_epoch).window_ends()


@pytest.mark.parametrize("steps_per_epoch", range(2, 21))
def test_half_epoch_gives_two_windows_per_epoch(steps_per_epoch):
    epochs = 3
    schedule = GramWindowSchedule.from_interval("0.5epoch", epochs * steps_per_epoch, steps_per_epoch)
    found = schedule.window_ends()
    for epoch in range(epochs):
        in_epoch = [s for s in found if epoch * steps_per_epoch < s <= (epoch + 1) * steps_per_epoch]
        assert len(in_epoch) == 2, (epoch, in_epoch)
        assert in_epoch[-1] == (epoch + 1) * steps_per_epoch  # the second window closes the epoch
        # the first one ends halfway (rounded), the same step of every epoch
        assert in_epoch[0] - epoch * steps_per_epoch == round(steps_per_epoch / 2)


def test_int_interval_ends_at_its_multiples():
    assert ends("3", 12) == [3, 6, 9, 12]
    assert ends(4, 100)[:5] == [4, 8, 12, 16, 20]
    assert ends("1", 5) == [1, 2, 3, 4, 5]
    schedule = GramWindowSchedule.from_interval("5", 100)
    assert not any(schedule.ends_window(s) for s in (1, 2, 3, 4, 6, 7, 8, 9))


@pytest.mark.parametrize(
    ("interval", "steps_per_epoch", "max_steps"),
    [("3", None, 10), ("7", None, 5), ("0.5epoch", 4, 7), ("1epoch", 4, 9), ("2epoch", 5, 13), ("0.3epoch", 10, 11)],
)
def test_last_step_always_ends_a_window(interval, steps_per_epoch, max_steps):
    found = ends(interval, max_steps, steps_per_epoch)
    assert found[-1] == max_steps
    assert GramWindowSchedule.from_interval(interval, max_steps, steps_per_epoch).ends_window(max_steps)


def test_interval_longer_than_training_ends_only_at_the_last_step():
    assert ends("10", 4) == [4]
    assert ends("3epoch", 5, steps_per_epoch=2) == [5]


def test_fraction_rounding():
    # round-half-to-even: 2.5 -> 2 (a 5-step epoch halves after step 2), 7.5 -> 8
    assert fraction_window_ends(0.5, 5) == {2, 5}
    assert fraction_window_ends(0.5, 15) == {8, 15}
    assert fraction_window_ends(0.3, 10) == {3, 6, 9, 10}  # the 4th multiple (12) is cut to the epoch's end
    assert fraction_window_ends(0.25, 6) == {2, 3, 4, 6}  # 1.5 -> 2, 3, 4.5 -> 4, 6
    assert fraction_window_ends(0.2, 10) == {2, 4, 6, 8, 10}  # 3 * 0.2 * 10 is 6.000000000000001: still step 6
    assert fraction_window_ends(0.1, 3) == {1, 2, 3}  # windows shorter than a step collapse to one per step
    # sub-epoch windows restart each epoch: the same steps of every epoch
    assert ends("0.5epoch", 10, steps_per_epoch=5) == [2, 5, 7, 10]


def test_whole_epoch_intervals_count_from_the_start_of_training():
    assert ends("1epoch", 12, steps_per_epoch=4) == [4, 8, 12]
    assert ends("2epoch", 13, steps_per_epoch=3) == [6, 12, 13]
    assert ends("1.5epoch", 12, steps_per_epoch=4) == [6, 12]  # round(1.5 * 4) = 6 steps a window
    assert ends("1.5epoch", 10, steps_per_epoch=3) == [4, 8, 10]  # round(4.5) = 4


def test_invalid_schedules_are_refused():
    with pytest.raises(ValueError, match="steps per epoch"):
        GramWindowSchedule.from_interval("0.5epoch", 10)
    with pytest.raises(ValueError, match="exactly one"):
        GramWindowSchedule(10, interval_steps=2, interval_epochs=0.5, steps_per_epoch=4)
    with pytest.raises(ValueError, match="exactly one"):
        GramWindowSchedule(10)
    with pytest.raises(ValueError, match="positive integer"):
        GramWindowSchedule(10, interval_steps=0)
    with pytest.raises(ValueError, match="gram_interval must be"):
        GramWindowSchedule.from_interval("2 epochs each", 10)


def test_training_arguments_build_the_schedule(tmp_path):
    args = GramTrainingArguments(output_dir=str(tmp_path), gram_mode="gram", gram_interval="0.5epoch")
    assert args.gram_window_schedule(8, steps_per_epoch=4).window_ends() == [2, 4, 6, 8]
    args = GramTrainingArguments(output_dir=str(tmp_path), gram_mode="gram", gram_interval="3")
    assert args.gram_window_schedule(8).window_ends() == [3, 6, 8]
    # e2e updates the encoder at every step, whatever gram_interval says
    args = GramTrainingArguments(output_dir=str(tmp_path), gram_mode="e2e", gram_interval="3")
    assert args.gram_window_schedule(5).window_ends() == [1, 2, 3, 4, 5]
