"""NextItemCollator: the batch contract for full-catalog, sampled and evaluation batches, and input checks."""

from __future__ import annotations

import pytest
import torch

from gram_hf.tasks.next_item import NextItemCollator, SASRecHead

FEATURES = [{"items": [4, 2, 9, 2, 7]}, {"items": [1, 3]}, {"items": [8, 0, 5, 6]}]


def test_full_catalog_batch_references_the_whole_catalog():
    batch = NextItemCollator(num_items=10, loss_type="cce")(FEATURES)
    assert set(batch) == {"item_index", "input_ref", "catalog_ref", "labels"}
    assert batch["item_index"].tolist() == list(range(10))
    assert batch["catalog_ref"].tolist() == list(range(10))
    assert batch["input_ref"].tolist() == [[4, 2, 9, 2], [1, -1, -1, -1], [8, 0, 5, -1]]
    assert batch["labels"].tolist() == [[2, 9, 2, 7], [3, -100, -100, -100], [0, 5, 6, -100]]


def test_truncation_keeps_the_most_recent_positions():
    batch = NextItemCollator(num_items=10, loss_type="ce", max_length=2)(FEATURES)
    assert batch["input_ref"].tolist() == [[9, 2], [1, -1], [0, 5]]
    assert batch["labels"].tolist() == [[2, 7], [3, -100], [5, 6]]


def test_sampled_batch_holds_unique_items_and_removes_accidental_hits():
    generator = torch.Generator().manual_seed(0)
    collator = NextItemCollator(num_items=6, loss_type="ce_sampled", num_negatives=12, generator=generator)
    batch = collator([{"items": [0, 1, 2, 3, 4, 5]}, {"items": [5, 4]}])
    assert set(batch) == {"item_index", "input_ref", "target_ref", "negative_ref"}
    item_index = batch["item_index"]
    assert torch.equal(item_index, torch.unique(item_index))
    inputs, targets, negatives = batch["input_ref"], batch["target_ref"], batch["negative_ref"]
    assert negatives.shape == (2, 5, 12)
    assert item_index[inputs[0]].tolist() == [0, 1, 2, 3, 4]
    assert item_index[targets[0]].tolist() == [1, 2, 3, 4, 5]
    assert inputs[1].tolist()[1:] == [-1] * 4 and (negatives[1, 1:] == -1).all()
    valid = negatives >= 0
    negative_items = item_index[negatives.clamp(min=0)]
    target_items = item_index[targets.clamp(min=0)].unsqueeze(-1).expand_as(negative_items)
    assert not (valid & (negative_items == target_items)).any()  # no accidental hit survives
    assert (~valid[0]).any()  # with 6 items and 12 draws, some hits were removed
    referenced = torch.cat([inputs[inputs >= 0], targets[targets >= 0], negatives[valid]])
    assert sorted(set(referenced.tolist())) == list(range(item_index.numel()))  # every unique item is referenced


@pytest.mark.parametrize(("sharing", "shape"), [("sequence", (2, 12)), ("batch", (12,))])
def test_shared_negatives_are_one_set_per_sequence_or_batch_with_a_mask_of_hits(sharing, shape):
    generator = torch.Generator().manual_seed(0)
    collator = NextItemCollator(num_items=6, loss_type="cce_sampled", num_negatives=12, generator=generator,
                                negative_sharing=sharing)  # fmt: skip
    batch = collator([{"items": [0, 1, 2, 3, 4, 5]}, {"items": [5, 4]}])
    assert set(batch) == {"item_index", "input_ref", "target_ref", "negative_ref", "negative_mask"}
    item_index, targets, negatives = batch["item_index"], batch["target_ref"], batch["negative_ref"]
    mask = batch["negative_mask"]
    assert negatives.shape == shape and (negatives >= 0).all() and mask.shape == (2, 5, 12)
    # Every position of a sequence scores its sequence's (the batch's) set.
    per_position = item_index[negatives].unsqueeze(-2).expand(2, 5, 12)
    hits = per_position == item_index[targets.clamp(min=0)].unsqueeze(-1)
    valid = (targets >= 0).unsqueeze(-1)
    assert torch.equal(mask, valid & ~hits)  # a position drops exactly its accidental hits; padding keeps none
    assert hits[0].any() and mask[0].any()
    if sharing == "sequence":
        assert not torch.equal(negatives[0], negatives[1])  # the sequences draw their own sets
    with pytest.raises(ValueError, match=f"negative_sharing='{sharing}' applies"):
        NextItemCollator(num_items=6, loss_type="bce", negative_sharing=sharing)
    head = SASRecHead(8, loss_type="ce_sampled", num_negatives=9, negative_sharing=sharing)
    assert NextItemCollator.from_head(head, num_items=20).negative_sharing == sharing


def test_negatives_are_reproducible_from_the_global_generator():
    collator = NextItemCollator(num_items=50, loss_type="bce")
    torch.manual_seed(3)
    first = collator(FEATURES)
    torch.manual_seed(3)
    second = collator(FEATURES)
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert first["negative_ref"].shape == (3, 4, 1)


def test_eval_batch_holds_out_the_last_item():
    batch = NextItemCollator(num_items=10, mode="eval", max_length=2)(FEATURES)
    assert set(batch) == {"item_index", "input_ref", "catalog_ref", "labels", "target_ref", "seen_ref"}
    assert batch["item_index"].tolist() == list(range(10))
    assert batch["input_ref"].tolist() == [[9, 2], [1, -1], [0, 5]]
    assert batch["labels"].tolist() == [7, 3, 6] == batch["target_ref"].tolist()
    # the excluded history is complete, not truncated
    assert batch["seen_ref"].tolist() == [[4, 2, 9, 2], [1, -1, -1, -1], [8, 0, 5, -1]]
    assert "seen_ref" not in NextItemCollator(num_items=10, mode="eval", exclude_seen=False)(FEATURES)


def test_from_head_copies_the_loss_settings():
    head = SASRecHead(8, loss_type="cce_sampled", num_negatives=9, max_length=3)
    collator = NextItemCollator.from_head(head, num_items=20)
    assert (collator.loss_type, collator.num_negatives, collator.max_length) == ("cce_sampled", 9, 3)
    assert NextItemCollator.from_head(head, num_items=20, mode="eval", max_length=5).max_length == 5


@pytest.mark.parametrize(
    ("kwargs", "features", "match"),
    [
        ({}, [{"items": [1]}], "at least 2"),
        ({}, [{"items": [1, 10]}], r"\[0, 10\)"),
        ({}, [{"items": [-1, 2]}], r"\[0, 10\)"),
        ({}, [{"items": [[1, 2]]}], "1-D"),
        ({"mode": "eval"}, [{"items": []}], "at least 1"),
    ],
)
def test_invalid_sequences_name_their_position(kwargs, features, match):
    collator = NextItemCollator(num_items=10, **kwargs)
    with pytest.raises(ValueError, match=match) as info:
        collator([{"items": [1, 2, 3]}, *features])
    assert "Example 1" in str(info.value)


def test_invalid_settings():
    with pytest.raises(ValueError, match="loss_type"):
        NextItemCollator(num_items=10, loss_type="xe")
    with pytest.raises(ValueError, match="mode"):
        NextItemCollator(num_items=10, mode="test")
    with pytest.raises(ValueError, match="num_negatives"):
        NextItemCollator(num_items=10, loss_type="bce", num_negatives=0)
