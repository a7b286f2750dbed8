"""Exact blockwise top-k against one full `torch.topk`, and the approximate index's recall and exclusions."""

from __future__ import annotations

import pytest
import torch

from gram_hf import ItemIndex, exact_top_k


def clustered(num_items: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(50, dim, generator=generator)
    items = centres[torch.randint(0, 50, (num_items,), generator=generator)] + torch.randn(
        num_items, dim, generator=generator
    )
    users = centres[torch.randint(0, 50, (16,), generator=generator)] + torch.randn(16, dim, generator=generator)
    return users, items


@pytest.mark.parametrize("block_size", [None, 7, 1000])
def test_exact_top_k_equals_one_full_topk(block_size):
    users, items = clustered(500, 8)
    scores, indices = exact_top_k(users, items, k=10, block_size=block_size)
    expected = torch.topk(users @ items.T, 10)
    assert torch.equal(indices, expected.indices)
    assert torch.allclose(scores, expected.values, atol=1e-5)


@pytest.mark.parametrize("block_size", [None, 7])
def test_exact_top_k_adds_each_users_offset_to_the_offset_items(block_size):
    users, items = clustered(300, 8, seed=1)
    marked = torch.zeros(300, dtype=torch.bool)
    marked[::17] = True
    offsets = torch.linspace(-3.0, 6.0, users.shape[0])
    scores, indices = exact_top_k(users, items, k=10, block_size=block_size, offset_items=marked, offsets=offsets)
    expected = torch.topk(users @ items.T + marked.float() * offsets.unsqueeze(1), 10)
    assert torch.equal(indices, expected.indices)
    assert torch.allclose(scores, expected.values, atol=1e-5)
    with pytest.raises(ValueError, match="go together"):
        exact_top_k(users, items, offsets=offsets)
    with pytest.raises(ValueError, match="offset_items must be a boolean"):
        exact_top_k(users, items, offset_items=marked.long(), offsets=offsets)


def test_exact_top_k_excludes_and_pads():
    users, items = clustered(12, 4)
    full = torch.topk(users @ items.T, 12).indices
    exclude = torch.full((16, 3), -1)
    exclude[:, :2] = full[:, :2]  # each user's two best items are excluded
    scores, indices = exact_top_k(users, items, k=15, exclude=exclude, block_size=5)
    assert torch.equal(indices[:, :10], full[:, 2:])
    assert bool((indices[:, 10:] == -1).all()) and bool(torch.isinf(scores[:, 10:]).all())
    with pytest.raises(ValueError, match="exclude must be"):
        exact_top_k(users, items, exclude=torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_item_index_recall_and_exclusions(kind):
    pytest.importorskip("faiss")
    users, items = clustered(5000, 16)
    index = ItemIndex(items, kind=kind)
    tuned = index.tune(users, items, target_recall=0.95)
    _, exact = exact_top_k(users, items, k=10)
    _, approximate = index.search(users, k=10)
    recall = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(approximate, exact)) / exact.numel()
    assert recall == tuned and recall >= 0.95
    exclude = exact[:, :3]
    _, filtered = index.search(users, k=10, exclude=exclude)
    assert not bool((filtered.unsqueeze(2) == exclude.unsqueeze(1)).any())
    index.add(users[:1] * 100)  # a new item far along the first user's direction: found first
    index.search_effort = 10_000  # every list (IVF): the new item's list is scanned wherever it was put
    _, top = index.search(users[:1], k=1)
    assert top.item() == 5000 and len(index) == 5001


def test_item_index_tune_raises_effort_until_the_target():
    pytest.importorskip("faiss")
    users, items = clustered(4000, 8, seed=1)
    index = ItemIndex(items, nprobe=1)
    assert index.tune(users, items, target_recall=1.0) == 1.0  # at worst every list is scanned: exact
    assert index.search_effort > 1
