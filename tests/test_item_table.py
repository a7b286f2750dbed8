"""ItemTable: freshness, pseudo-target updates, touched rows and checkpoint state."""

from __future__ import annotations

import pytest
import torch

from gram_hf import ItemTable


@pytest.fixture
def table():
    return ItemTable(num_items=6, dim=3)


def index(*values: int) -> torch.LongTensor:
    return torch.tensor(values, dtype=torch.long)


def test_new_table_is_stale_and_untouched(table):
    assert (table.num_items, table.dim) == (6, 3)
    assert table.vectors.dtype == torch.float32
    assert table.stale(index(0, 2, 5)).tolist() == [0, 2, 5]
    assert table.touched_indices().tolist() == []


@pytest.mark.parametrize(("num_items", "dim"), [(0, 3), (4, 0), (-1, 3)])
def test_invalid_shape_raises(num_items, dim):
    with pytest.raises(ValueError, match="num_items > 0 and dim > 0"):
        ItemTable(num_items, dim)


def test_fill_then_lookup(table):
    vectors = torch.arange(6.0).reshape(2, 3)
    table.fill(index(4, 1), vectors)
    assert table.stale(index(0, 1, 4, 5)).tolist() == [0, 5]
    torch.testing.assert_close(table.lookup(index(1, 4, 1)), vectors[[1, 0, 1]])


def test_fill_stores_fp32_detached_copies(table):
    source = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    table.fill(index(0, 3), source * 2)
    assert table.vectors.dtype == torch.float32
    assert not table.vectors.requires_grad
    with torch.no_grad():
        source.mul_(10)
    torch.testing.assert_close(table.lookup(index(0)), torch.full((1, 3), 2.0))


def test_lookup_of_stale_entry_raises(table):
    table.fill(index(0), torch.ones(1, 3))
    with pytest.raises(RuntimeError, match="stale"):
        table.lookup(index(0, 1))


def test_lookup_returns_a_copy(table):
    table.fill(index(2), torch.ones(1, 3))
    looked_up = table.lookup(index(2))
    looked_up += 5
    torch.testing.assert_close(table.lookup(index(2)), torch.ones(1, 3))


def test_apply_gradient_sums_repeated_indices_and_marks_touched(table):
    table.fill(torch.arange(6), torch.ones(6, 3))
    grad = torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 4.0]])
    table.apply_gradient(index(3, 1, 3), grad, learning_rate=0.5)
    expected = torch.ones(6, 3)
    expected[3] -= 0.5 * (grad[0] + grad[2])
    expected[1] -= 0.5 * grad[1]
    torch.testing.assert_close(table.vectors, expected)
    assert table.touched_indices().tolist() == [1, 3]
    # updated rows stay fresh: they are the cached vectors the next CF step reads
    assert table.stale(torch.arange(6)).tolist() == []


def test_apply_gradient_accumulates_across_calls_and_casts(table):
    table.fill(torch.arange(6), torch.zeros(6, 3))
    table.apply_gradient(index(5), torch.ones(1, 3, dtype=torch.float16), learning_rate=1.0)
    table.apply_gradient(index(0, 5), torch.ones(2, 3), learning_rate=2.0)
    torch.testing.assert_close(table.vectors[5], torch.full((3,), -3.0))
    torch.testing.assert_close(table.vectors[0], torch.full((3,), -2.0))
    assert table.vectors.dtype == torch.float32
    assert table.touched_indices().tolist() == [0, 5]


def test_touched_indices_are_ascending_and_unique(table):
    table.fill(torch.arange(6), torch.zeros(6, 3))
    table.apply_gradient(index(4, 0, 4, 2), torch.ones(4, 3), learning_rate=0.1)
    touched = table.touched_indices()
    assert touched.dtype == torch.long
    assert touched.tolist() == [0, 2, 4]


def test_invalidate_ends_the_window(table):
    table.fill(torch.arange(6), torch.ones(6, 3))
    table.apply_gradient(index(2), torch.ones(1, 3), learning_rate=1.0)
    before = table.vectors.clone()
    table.invalidate()
    assert table.stale(torch.arange(6)).tolist() == list(range(6))
    assert table.touched_indices().tolist() == []
    torch.testing.assert_close(table.vectors, before)  # vectors are kept, just no longer trusted
    with pytest.raises(RuntimeError):
        table.lookup(index(2))


def test_state_dict_round_trip(table, tmp_path):
    table.fill(index(0, 1, 4), torch.randn(3, 3))
    table.apply_gradient(index(1), torch.ones(1, 3), learning_rate=0.3)
    path = tmp_path / "table.pt"
    torch.save(table.state_dict(), path)

    restored = ItemTable(6, 3)
    restored.load_state_dict(torch.load(path))
    torch.testing.assert_close(restored.vectors, table.vectors)
    assert torch.equal(restored.fresh, table.fresh)
    assert torch.equal(restored.touched, table.touched)
    assert restored.stale(torch.arange(6)).tolist() == [2, 3, 5]
    assert restored.touched_indices().tolist() == [1]

    # the restored table owns its tensors
    table.apply_gradient(index(0), torch.ones(1, 3), learning_rate=1.0)
    assert not torch.equal(restored.vectors[0], table.vectors[0])
    assert restored.touched_indices().tolist() == [1]


def test_load_state_dict_shape_mismatch_raises(table):
    other = ItemTable(5, 3)
    with pytest.raises(ValueError, match=r"shape \(5, 3\).*\(6, 3\)"):
        table.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="shape"):
        table.load_state_dict(ItemTable(6, 4).state_dict())
    assert table.stale(torch.arange(6)).numel() == 6  # unchanged by the failed loads


def test_drift_is_the_systematic_relative_move_of_the_touched_rows_since_their_encoding():
    table = ItemTable(5, 3, track_drift=True)
    encodings = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0], [2.0, 0.0, 2.0]])
    table.fill(torch.arange(5), encodings)
    assert table.drift() == 0.0
    # Two steps, one with a repeated row (its gradients add up) and one given in two parts, as two processes give
    # it; row 4 is never touched.
    steps = [
        [(torch.tensor([0, 1, 1]), torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0]]))],
        [(torch.tensor([1]), torch.tensor([[0, 0.5, 2.0]])),
         (torch.tensor([2, 1]), torch.tensor([[3.0, 0, 0], [0, 1, 0.0]]))],
    ]  # fmt: skip
    moves = []
    for parts in steps:
        before = table.vectors.clone()
        table.apply_gradients(parts, 0.5)
        moves.append(table.vectors - before)
    touched = torch.tensor([0, 1, 2])
    norm = encodings[touched].double().pow(2).sum()
    total = (table.vectors - encodings)[touched].double().pow(2).sum()
    noise = sum(move.double().pow(2).sum() for move in moves)
    components = table.drift_components()
    assert components["total"] == pytest.approx((total / norm).sqrt().item(), rel=1e-6)
    assert components["noise"] == pytest.approx((noise / norm).sqrt().item(), rel=1e-6)
    assert table.drift() == components["systematic"] == pytest.approx(((total - noise) / norm).sqrt().item(), rel=1e-6)
    # Updates that cancel out leave no systematic drift however large they are; consistent ones keep it growing.
    noisy = ItemTable(2, 2, track_drift=True)
    noisy.fill(torch.arange(2), torch.ones(2, 2))
    for sign in (1.0, -1.0, 1.0, -1.0):
        noisy.apply_gradient(torch.tensor([0]), torch.tensor([[sign, 0.0]]), 0.5)
    assert noisy.drift() == 0.0 and noisy.drift_components()["noise"] > 0.5
    # A checkpoint restores the drift; a new window starts from none.
    restored = ItemTable(5, 3, track_drift=True)
    restored.load_state_dict(table.state_dict())
    assert restored.drift_components() == table.drift_components()
    table.invalidate()
    assert table.drift() == 0.0
    with pytest.raises(ValueError, match="fixed gram_interval"):
        restored.load_state_dict(ItemTable(5, 3).state_dict())
    with pytest.raises(RuntimeError, match="track_drift"):
        ItemTable(5, 3).drift()
