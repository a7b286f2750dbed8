"""The new-release mixture of the full-catalog ranking against explicit softmaxes."""

from __future__ import annotations

import math

import pytest
import torch

from gram_hf.tasks.next_item import new_item_offsets, rank_catalog


def mixture_problem(seed=0, users=5, items=37, dim=8, new_scale=0.3):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(users, dim, generator=generator)
    catalog = torch.randn(items, dim, generator=generator)
    new_items = torch.zeros(items, dtype=torch.bool)
    new_items[[2, 9, 10, 23, 36]] = True
    # New releases never trained: a model trained on the warm catalog scores them low.
    catalog[new_items] *= new_scale
    exclude = torch.tensor([[0, 9, -1], [-1, -1, -1], [2, 10, 23], [5, 6, -1], [36, -1, -1]])
    targets = torch.tensor([10, 23, 4, 36, 9])
    return hidden, catalog, new_items, exclude, targets


def mixture_log_probabilities(hidden, catalog, new_items, exclude, share):
    """log p(i) of the mixture in float64, -inf for excluded items."""
    scores = (hidden.double() @ catalog.double().T).clone()
    for row, excluded in enumerate(exclude.tolist()):
        scores[row, [item for item in excluded if item >= 0]] = -math.inf
    warm = scores.masked_fill(new_items, -math.inf)
    new = scores.masked_fill(~new_items, -math.inf)
    warm = warm - warm.logsumexp(dim=1, keepdim=True) + math.log(1 - share)
    new = new - new.logsumexp(dim=1, keepdim=True) + math.log(share)
    return torch.where(new_items, new, warm)


@pytest.mark.parametrize("share", [0.05, 0.3, 0.9])
@pytest.mark.parametrize("block_size", [1, 7, None])
def test_offsets_rank_by_the_mixture_probability(share, block_size):
    hidden, catalog, new_items, exclude, targets = mixture_problem()
    offsets = new_item_offsets(hidden, catalog, new_items, share, exclude=exclude, block_size=block_size)
    log_p = mixture_log_probabilities(hidden, catalog, new_items, exclude, share)
    scores = hidden.double() @ catalog.double().T
    # The offset turns the raw scores into log p(i) up to a per-user constant.
    shifted = scores + torch.where(new_items, offsets.double().unsqueeze(1), 0.0) - log_p
    finite = torch.isfinite(log_p)
    for row in range(hidden.shape[0]):
        constant = shifted[row][finite[row]]
        assert torch.allclose(constant, constant[0].expand_as(constant), atol=1e-5), row
    top, ranks = rank_catalog(
        hidden, catalog, targets, k=6, exclude=exclude, block_size=block_size, offset_items=new_items, offsets=offsets
    )
    for row, target in enumerate(targets.tolist()):
        order = [int(item) for item in log_p[row].argsort(descending=True) if torch.isfinite(log_p[row, item])]
        assert top[row].tolist() == order[:6], row
        expected = order.index(target) if target in order else catalog.shape[0]
        assert ranks[row] == expected, row


def test_the_mixture_brings_new_releases_into_the_list_and_keeps_each_groups_order():
    hidden, catalog, new_items, exclude, targets = mixture_problem(seed=3, new_scale=0.05)
    plain, _ = rank_catalog(hidden, catalog, targets, k=5, exclude=exclude)
    assert not new_items[plain[plain >= 0]].any()  # raw scores: no new release reaches a top-5
    counts = []
    for share in (0.01, 0.3, 0.99):
        offsets = new_item_offsets(hidden, catalog, new_items, share, exclude=exclude)
        mixed, _ = rank_catalog(
            hidden, catalog, targets, k=5, exclude=exclude, offset_items=new_items, offsets=offsets
        )
        counts.append(int(new_items[mixed].sum()))
        scores = hidden @ catalog.T
        for row in range(hidden.shape[0]):
            for group in (new_items, ~new_items):
                members = [item for item in mixed[row].tolist() if group[item]]
                assert members == sorted(members, key=lambda item: -float(scores[row, item])), (share, row)
    assert counts[0] < counts[1] < counts[2]


def test_users_with_nothing_to_interleave_get_no_offset():
    hidden, catalog, new_items, _, _ = mixture_problem()
    new_rows = new_items.nonzero().squeeze(1)
    warm_rows = (~new_items).nonzero().squeeze(1)
    exclude = torch.full((5, len(warm_rows)), -1)
    exclude[0, : len(new_rows)] = new_rows  # every new release seen
    exclude[1] = warm_rows  # every warm item seen
    offsets = new_item_offsets(hidden, catalog, new_items, 0.5, exclude=exclude)
    assert offsets[:2].tolist() == [0.0, 0.0] and torch.isfinite(offsets).all()
    top, _ = rank_catalog(hidden, catalog, k=3, exclude=exclude, offset_items=new_items, offsets=offsets)
    assert not new_items[top[0]].any() and new_items[top[1]].all()


def test_mixture_arguments_are_checked():
    hidden, catalog, new_items, _, _ = mixture_problem()
    for share in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="share must lie in"):
            new_item_offsets(hidden, catalog, new_items, share)
    with pytest.raises(ValueError, match="new_items must be"):
        new_item_offsets(hidden, catalog, new_items[:-1], 0.2)
    with pytest.raises(ValueError, match="go together"):
        rank_catalog(hidden, catalog, offsets=torch.zeros(5))
    with pytest.raises(ValueError, match="offset_items must be"):
        rank_catalog(hidden, catalog, offset_items=new_items, offsets=torch.zeros(4))
    # Indices are not a mask: a row list of the catalog's length would silently mean something else.
    with pytest.raises(ValueError, match="offset_items must be a boolean"):
        rank_catalog(hidden, catalog, offset_items=new_items.long(), offsets=torch.zeros(5))
    with pytest.raises(ValueError, match="new_items must be a boolean"):
        new_item_offsets(hidden, catalog, new_items.long(), 0.2)
