"""Training slices of long sequences: every target trained once, with bounded context, and what the collator makes of
them."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch

from gram_hf.tasks.next_item import NextItemCollator, sequence_slices
from gram_hf.tasks.next_item.slicing import slice_bounds
from gram_hf.tasks.next_item.task import make_train_dataset


def _dataset(lengths):
    items = [list(range(100 * row, 100 * row + n)) for row, n in enumerate(lengths)]
    times = [[10 * v for v in seq] for seq in items]
    return datasets.Dataset.from_dict({"user_id": [f"u{r}" for r in range(len(lengths))], "items": items,
                                       "timestamps": times})  # fmt: skip


def _trained(slices):
    """(user, target item, context length) of every trained target."""
    out = []
    for row in slices:
        seq, start = row["items"], row["loss_start"]
        for position in range(start + 1, len(seq)):
            out.append((row["user_id"], seq[position], position))
    return out


@pytest.mark.parametrize("max_length, stride", [(4, 2), (4, 4), (4, 1), (5, 3), (1, 1), (50, 25)])
def test_every_target_trains_exactly_once_with_its_context(max_length, stride):
    lengths = [2, 3, max_length + 1, max_length + 2, 3 * max_length + 4, 137]
    dataset = _dataset(lengths)
    slices = sequence_slices(dataset, max_length, stride)
    trained = _trained(slices)
    expected = [(f"u{r}", item) for r, n in enumerate(lengths) for item in range(100 * r + 1, 100 * r + n)]
    assert sorted((user, item) for user, item, _ in trained) == sorted(expected)
    assert len(trained) == len(expected)  # no target twice
    for _user, item, context in trained:
        position = item % 100  # the target's index in its user's whole sequence
        assert context >= min(position, max_length - stride + 1)
    assert all(len(row["items"]) <= max_length + 1 for row in slices)
    # Slices are contiguous pieces of the sequence, timestamps sliced alike.
    for row in slices:
        assert row["items"] == list(range(row["items"][0], row["items"][0] + len(row["items"])))
        assert row["timestamps"] == [10 * v for v in row["items"]]


def test_short_sequences_are_one_slice_and_the_default_stride_is_max_length():
    slices = sequence_slices(_dataset([2, 5, 8, 14]), 6)
    assert [(row["user_id"], row["loss_start"]) for row in slices] == [
        ("u0", 0), ("u1", 0), ("u2", 0), ("u2", 0), ("u3", 0), ("u3", 0), ("u3", 0)
    ]  # fmt: skip
    assert [len(row["items"]) for row in slices][2:] == [2, 7, 2, 7, 7]
    rows, starts, ends = slice_bounds(np.array([8]), 6, 3)
    assert rows.tolist() == [0, 0] and starts.tolist() == [0, 1] and ends.tolist() == [5, 8]


def test_invalid_strides():
    with pytest.raises(ValueError, match="stride"):
        sequence_slices(_dataset([5]), 4, 5)
    with pytest.raises(ValueError, match="stride"):
        sequence_slices(_dataset([5]), 4, 0)


@pytest.mark.parametrize("loss_type", ["cce", "ce_sampled"])
def test_collator_trains_only_targets_from_loss_start(loss_type):
    features = [{"items": [1, 2, 3, 4, 5], "loss_start": 2}, {"items": [6, 7, 8], "loss_start": 0}]
    batch = NextItemCollator(num_items=10, loss_type=loss_type, num_negatives=3)(features)
    if loss_type == "cce":
        assert batch["labels"].tolist() == [[-100, -100, 4, 5], [7, 8, -100, -100]]
    else:
        targets = batch["target_ref"]
        assert (targets[0, :2] == -1).all() and (targets[0, 2:] >= 0).all()
        assert batch["item_index"][targets[0, 2:]].tolist() == [4, 5]
        assert (batch["negative_ref"][0, :2] == -1).all()  # no negatives for context-only positions
    inputs = batch["input_ref"][0]
    if loss_type != "cce":
        inputs = batch["item_index"][inputs]
    assert inputs.tolist() == [1, 2, 3, 4]  # the context still feeds the model
    with pytest.raises(ValueError, match="loss_start"):
        NextItemCollator(num_items=10)([{"items": [1, 2, 3], "loss_start": 2}])


def test_training_rows_of_the_task():
    class Data(dict):
        pass

    data = Data(train=_dataset([3, 30]))
    head = type("Head", (), {"max_length": 10})()
    assert make_train_dataset(data, head, "last") is data["train"]
    slices = make_train_dataset(data, head)
    assert len(slices) == 1 + 1 + int(np.ceil((30 - 11) / 10))
    assert len(_trained(slices)) == 2 + 29
    with pytest.raises(ValueError, match="train_slices"):
        make_train_dataset(data, head, "every")


def test_slices_feed_a_training_step():
    from gram_hf.tasks.next_item import SASRecHead

    head = SASRecHead(item_dim=8, max_length=4, loss_type="cce", num_blocks=1)
    slices = sequence_slices(_dataset([12]), 4, 2).map(lambda row: {"items": [v % 20 for v in row["items"]]})
    batch = NextItemCollator.from_head(head, num_items=20)(list(slices))
    labels = batch["labels"]
    assert int((labels != -100).sum()) == 11  # the sequence's 11 targets, once each
    assert torch.isfinite(torch.tensor(float(labels.numel())))
