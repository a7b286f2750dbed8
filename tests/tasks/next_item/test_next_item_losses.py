"""Cut cross-entropy and its sampled variant against the materialised losses; blockwise ranking against brute force."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from gram_hf.tasks.next_item import (
    linear_cross_entropy,
    rank_catalog,
    sampled_binary_cross_entropy,
    sampled_cross_entropy,
    sampled_linear_cross_entropy,
)

TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def random_problem(seed: int, batch=4, length=7, dim=16, items=53):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, length, dim, generator=generator, requires_grad=True)
    catalog = torch.randn(items, dim, generator=generator, requires_grad=True)
    targets = torch.randint(0, items, (batch, length), generator=generator)
    targets[0, 4:] = -100  # padding at the end of a sequence
    targets[2] = -100  # a sequence that is all padding
    targets[3, 1] = -100
    return hidden, catalog, targets


def assert_same_gradients(loss, reference, inputs):
    """The gradients of `loss` and `reference` for `inputs` agree under a random, non-uniform incoming gradient (which
    exercises the backward's per-row scaling)."""
    upstream = torch.randn_like(loss)
    grads = torch.autograd.grad(loss, inputs, upstream)
    reference_grads = torch.autograd.grad(reference, inputs, upstream)
    for grad, reference_grad in zip(grads, reference_grads):
        torch.testing.assert_close(grad, reference_grad, **TOLERANCE)


@pytest.mark.parametrize("block_size", [1, 5, 16, 53, 1000, None])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cce_equals_full_cross_entropy_in_value_and_gradients(block_size, reduction):
    hidden, catalog, targets = random_problem(seed=block_size or 0)
    loss = linear_cross_entropy(hidden, catalog, targets, block_size=block_size, reduction=reduction, impl="torch")
    logits = hidden @ catalog.T
    reference = F.cross_entropy(logits.reshape(-1, catalog.shape[0]), targets.reshape(-1), reduction=reduction)
    reference = reference.reshape(targets.shape) if reduction == "none" else reference
    torch.testing.assert_close(loss, reference, **TOLERANCE)
    assert_same_gradients(loss, reference, (hidden, catalog))
    if reduction == "none":
        assert (loss[targets == -100] == 0).all()


def test_cce_custom_ignore_index_and_large_logits():
    hidden, catalog, targets = random_problem(seed=3)
    targets = targets.masked_fill(targets == -100, 7_000)
    with torch.no_grad():
        catalog.mul_(30)  # logits in the thousands: the online log-sum-exp must not overflow
    loss = linear_cross_entropy(hidden, catalog, targets, ignore_index=7_000, block_size=4)
    reference = F.cross_entropy((hidden @ catalog.T).transpose(1, 2), targets, ignore_index=7_000)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, reference, atol=1e-3, rtol=1e-5)


def test_cce_gradient_only_for_what_needs_it_and_bf16_inputs():
    hidden, catalog, targets = random_problem(seed=4)
    frozen = catalog.detach()
    loss = linear_cross_entropy(hidden, frozen, targets, block_size=8)
    (grad,) = torch.autograd.grad(loss, hidden)
    reference = F.cross_entropy((hidden @ frozen.T).transpose(1, 2), targets)
    torch.testing.assert_close(grad, torch.autograd.grad(reference, hidden)[0], **TOLERANCE)
    # bf16 operands are upcast per block: the loss is fp32 and matches fp32 maths on the rounded inputs.
    h16, c16 = hidden.detach().bfloat16(), catalog.detach().bfloat16()
    loss16 = linear_cross_entropy(h16, c16, targets, block_size=8)
    assert loss16.dtype == torch.float32
    expected = F.cross_entropy((h16.float() @ c16.float().T).transpose(1, 2), targets)
    torch.testing.assert_close(loss16, expected, **TOLERANCE)


def test_cce_all_ignored_is_nan_like_cross_entropy_and_bad_input_raises():
    hidden, catalog, targets = random_problem(seed=5)
    ignored = torch.full_like(targets, -100)
    assert math.isnan(linear_cross_entropy(hidden, catalog, ignored).item())
    assert math.isnan(F.cross_entropy((hidden @ catalog.T).transpose(1, 2), ignored).item())
    assert linear_cross_entropy(hidden, catalog, ignored, reduction="sum").item() == 0
    with pytest.raises(IndexError, match=r"\[0, 53\)"):
        linear_cross_entropy(hidden, catalog, targets.masked_fill(targets == -100, 53))
    with pytest.raises(ValueError, match="reduction"):
        linear_cross_entropy(hidden, catalog, targets, reduction="avg")
    with pytest.raises(ValueError, match="impl"):
        linear_cross_entropy(hidden, catalog, targets, impl="triton")
    with pytest.raises(ValueError, match="CUDA"):
        linear_cross_entropy(hidden, catalog, targets, impl="cce")
    with pytest.raises(ValueError, match="targets must have shape"):
        linear_cross_entropy(hidden, catalog, targets[:, :3])


@pytest.mark.parametrize("block_size", [1, 3, 8, None])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cce_sampled_equals_materialised_sampled_softmax(block_size, reduction):
    hidden, catalog, targets = random_problem(seed=10 + (block_size or 0))
    generator = torch.Generator().manual_seed(1)
    negatives = torch.randint(0, catalog.shape[0], (*targets.shape, 8), generator=generator)
    negatives[1, 2, :3] = targets[1, 2]  # accidental hits
    negatives[1, 3, 0] = negatives[1, 3, 1]  # a negative drawn twice
    negatives[3, 0, 5:] = -1  # padding negatives
    mask = torch.rand(negatives.shape, generator=generator) > 0.2
    kwargs = {"negative_mask": mask, "reduction": reduction}
    loss = sampled_linear_cross_entropy(hidden, catalog, targets, negatives, block_size=block_size, **kwargs)
    reference = sampled_cross_entropy(hidden, catalog, targets, negatives, **kwargs)
    torch.testing.assert_close(loss, reference, **TOLERANCE)
    assert_same_gradients(loss, reference, (hidden, catalog))


@pytest.mark.parametrize("block_size", [1, 3, 7, 20, 21, None])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("sharing", ["sequence", "batch"])
def test_shared_negatives_equal_the_same_negatives_at_every_position(block_size, reduction, sharing):
    """
    A `(B, K)` set of negatives per sequence (or one `(K,)` set for the batch) is the per-position loss with the
    sequence's (the batch's) set at every position: value and gradients, with chunks of positions inside a sequence
    (1, 3), of whole sequences (7 positions = one sequence; 20 and 21: two and three sequences, the last chunk partial)
    and the default.
    """
    hidden, catalog, targets = random_problem(seed=20 + (block_size or 0))
    generator = torch.Generator().manual_seed(2)
    shape = (targets.shape[0], 9) if sharing == "sequence" else (9,)
    negatives = torch.randint(0, catalog.shape[0], shape, generator=generator)
    negatives[..., 1] = targets[1, 2]  # an accidental hit of one position
    negatives[..., 4] = negatives[..., 3]  # a negative drawn twice
    negatives[..., 8] = -1  # a padding slot
    if sharing == "sequence":
        negatives[0, 5] = -1  # padding in one sequence's set only
    mask = torch.rand((*targets.shape, 9), generator=generator) > 0.2
    kwargs = {"negative_mask": mask, "reduction": reduction}
    per_position = negatives.unsqueeze(-2).expand(*targets.shape, -1)
    reference = sampled_cross_entropy(hidden, catalog, targets, per_position, **kwargs)
    upstream = torch.randn_like(reference)
    reference_grads = torch.autograd.grad(reference, (hidden, catalog), upstream)
    for loss in (
        sampled_cross_entropy(hidden, catalog, targets, negatives, **kwargs),
        sampled_linear_cross_entropy(hidden, catalog, targets, negatives, block_size=block_size, **kwargs),
    ):
        torch.testing.assert_close(loss, reference, **TOLERANCE)
        grads = torch.autograd.grad(loss, (hidden, catalog), upstream)
        for grad, reference_grad in zip(grads, reference_grads):
            torch.testing.assert_close(grad, reference_grad, **TOLERANCE)
    # The hit is removed at its position only: the other positions keep negative 1.
    alone = torch.zeros_like(mask)
    alone[..., 1] = True
    per_row = sampled_cross_entropy(hidden, catalog, targets, negatives, negative_mask=alone, reduction="none")
    assert per_row[1, 2].item() == 0.0 and per_row[1, 3].item() > 0.0


@pytest.mark.parametrize("sharing", ["sequence", "batch"])
def test_shared_negatives_leave_ignored_positions_out_entirely(sharing):
    """
    An ignored position's state and target reach nothing, as with per-position negatives: a NaN state there, and an
    `ignore_index` beyond the catalog, give the per-position loss and gradients.
    """
    hidden, catalog, targets = random_problem(seed=31)
    ignore = 7000  # beyond the 53 catalog rows
    targets = targets.masked_fill(targets == -100, ignore)
    with torch.no_grad():
        hidden[0, 5] = math.nan  # an ignored position (targets[0, 4:] is padding)
    shape = (targets.shape[0], 6) if sharing == "sequence" else (6,)
    negatives = torch.randint(0, catalog.shape[0], shape, generator=torch.Generator().manual_seed(4))
    per_position = negatives.unsqueeze(-2).expand(*targets.shape, -1)
    reference = sampled_cross_entropy(hidden, catalog, targets, per_position, ignore_index=ignore)
    reference_grads = torch.autograd.grad(reference, (hidden, catalog))
    assert torch.isfinite(reference)
    for function in (sampled_cross_entropy, sampled_linear_cross_entropy):
        loss = function(hidden, catalog, targets, negatives, ignore_index=ignore)
        torch.testing.assert_close(loss, reference, **TOLERANCE)
        for grad, reference_grad in zip(torch.autograd.grad(loss, (hidden, catalog)), reference_grads):
            torch.testing.assert_close(grad, reference_grad, **TOLERANCE)


@pytest.mark.parametrize(("target_shape", "negative_shape"), [((2, 0), (2, 4)), ((2, 0), (4,)), ((0, 5), (0, 4)),
                                                              ((0, 5), (4,))])  # fmt: skip
def test_shared_negatives_with_no_positions(target_shape, negative_shape):
    """Empty batches and zero-length sequences: a sum of 0 and a mean that is NaN, as `F.cross_entropy`'s."""
    hidden = torch.randn(*target_shape, 8, requires_grad=True)
    catalog = torch.randn(10, 8, requires_grad=True)
    targets = torch.zeros(target_shape, dtype=torch.long)
    negatives = torch.zeros(negative_shape, dtype=torch.long)
    for function in (sampled_cross_entropy, sampled_linear_cross_entropy):
        total = function(hidden, catalog, targets, negatives, reduction="sum")
        assert total.item() == 0.0
        total.backward()
        assert function(hidden, catalog, targets, negatives, reduction="none").shape == target_shape
        assert torch.isnan(function(hidden, catalog, targets, negatives))


def test_shared_negatives_validate_their_mask_and_rows():
    hidden, catalog, targets = random_problem(seed=3)
    negatives = torch.tensor([0, 5, 7])
    with pytest.raises(ValueError, match="positions x shared negatives"):
        sampled_linear_cross_entropy(hidden, catalog, targets, negatives, negative_mask=torch.ones(3, dtype=bool))
    with pytest.raises(IndexError, match="must lie in"):
        sampled_cross_entropy(hidden, catalog, targets, torch.tensor([0, catalog.shape[0]]))
    with pytest.raises(IndexError, match="must lie in"):
        sampled_linear_cross_entropy(hidden, catalog, targets, torch.full((targets.shape[0], 2), catalog.shape[0]))
    # Negatives that are neither per position, per sequence nor per batch.
    with pytest.raises(ValueError, match="negatives must have shape"):
        sampled_linear_cross_entropy(hidden, catalog, targets, torch.zeros(targets.shape[0] + 1, 2, dtype=torch.long))


def test_sampled_softmax_reference_by_hand():
    """One position: logits of the target and the kept negatives, accidental hit and masked negative removed."""
    hidden = torch.tensor([[1.0, 0.0]])
    catalog = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0], [-1.0, 0.0]])
    targets = torch.tensor([0])
    negatives = torch.tensor([[0, 1, 2, 3]])  # 0 is an accidental hit
    mask = torch.tensor([[True, True, True, False]])  # 3 is masked by the caller
    expected = -2.0 + math.log(math.exp(2.0) + math.exp(1.0) + math.exp(0.0))
    for function in (sampled_cross_entropy, sampled_linear_cross_entropy):
        loss = function(hidden, catalog, targets, negatives, negative_mask=mask)
        assert loss.item() == pytest.approx(expected, abs=1e-6)
    # Without removing accidental hits the target counts twice in the denominator.
    kept = sampled_cross_entropy(hidden, catalog, targets, negatives, negative_mask=mask, remove_accidental_hits=False)
    assert kept.item() == pytest.approx(-2.0 + math.log(2 * math.exp(2.0) + math.exp(1.0) + 1.0), abs=1e-6)


def test_sasrec_binary_cross_entropy_by_hand():
    hidden = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    catalog = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    targets = torch.tensor([0, 1, -100])
    negatives = torch.tensor([[2], [1], [0]])  # row 1's negative is an accidental hit
    loss = sampled_binary_cross_entropy(hidden, catalog, targets, negatives)
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    positive = (softplus(-2.0) + softplus(-1.0)) / 2
    negative = softplus(0.0) / 1  # only row 0's negative (logit 0) is valid
    assert loss.item() == pytest.approx(positive + negative, abs=1e-6)


def brute_force_rank(hidden, catalog, targets, exclude, k):
    scores = hidden @ catalog.T
    tops, ranks = [], []
    for row in range(hidden.shape[0]):
        excluded = {int(e) for e in exclude[row] if e >= 0}
        target = int(targets[row])
        allowed = [i for i in range(catalog.shape[0]) if i not in excluded]
        if target in excluded:
            ranks.append(catalog.shape[0])
        else:
            ranks.append(sum(1 for i in allowed if i != target and scores[row, i] >= scores[row, target]))
        ranked = sorted(allowed, key=lambda i: (-float(scores[row, i]), i == target))
        tops.append(ranked[:k])
    return tops, ranks


@pytest.mark.parametrize("block_size", [1, 6, 64, None])
def test_rank_catalog_equals_brute_force_with_ties_and_exclusions(block_size):
    generator = torch.Generator().manual_seed(block_size or 0)
    hidden = torch.randn(6, 8, generator=generator)
    catalog = torch.randn(40, 8, generator=generator)
    catalog[11] = catalog[3]  # a duplicate of user 0's target: a tie, ranked against the target
    catalog[20] = catalog[21]
    targets = torch.tensor([3, 21, 5, 0, 39, 12])
    exclude = torch.tensor([[1, 2, -1], [-1, -1, -1], [5, 6, 7], [30, 31, 32], [-1, -1, -1], [0, 0, 1]])
    top, ranks = rank_catalog(hidden, catalog, targets, k=5, exclude=exclude, block_size=block_size)
    expected_top, expected_ranks = brute_force_rank(hidden, catalog, targets, exclude, 5)
    assert ranks.tolist() == expected_ranks
    assert ranks[2] == 40  # an excluded target is a miss
    for row in range(6):
        assert set(top[row].tolist()) == set(expected_top[row]), row
        # the list and the rank agree: a hit sits exactly at its rank
        if ranks[row] < 5:
            assert top[row, ranks[row]] == targets[row]
        else:
            assert targets[row] not in top[row]
    assert not (set(top[2].tolist()) & {5, 6, 7})


def test_rank_catalog_constant_scores_rank_the_target_last_and_pad_short_lists():
    hidden = torch.ones(2, 4)
    catalog = torch.ones(3, 4)
    top, ranks = rank_catalog(hidden, catalog, torch.tensor([1, -1]), k=5)
    assert ranks.tolist() == [2, -1]  # pessimistic: both other items tie with the target
    assert top[0].tolist()[:3] == [0, 2, 1] or top[0].tolist()[:3] == [2, 0, 1]
    assert top[0, 3:].tolist() == [-1, -1]  # only 3 items to recommend


@pytest.mark.bf16
def test_streamed_losses_and_ranking_keep_fp32_maths_under_cpu_autocast():
    """Under `--bf16` (CPU autocast) the streamed losses and the ranking compute exactly what they do in fp32."""
    hidden, catalog, targets = random_problem(seed=7)
    negatives = torch.randint(0, catalog.shape[0], (*targets.shape, 5), generator=torch.Generator().manual_seed(1))
    per_sequence, per_batch = negatives[:, 0], negatives[0, 0]
    losses = {
        "cce": lambda: linear_cross_entropy(hidden, catalog, targets, block_size=8, impl="torch"),
        "cce_sampled": lambda: sampled_linear_cross_entropy(hidden, catalog, targets, negatives, block_size=2),
        "ce_sampled": lambda: sampled_cross_entropy(hidden, catalog, targets, negatives),
        "bce": lambda: sampled_binary_cross_entropy(hidden, catalog, targets, negatives),
    }
    for name, shared in (("sequence", per_sequence), ("batch", per_batch)):
        losses[f"cce_sampled {name}"] = partial(
            sampled_linear_cross_entropy, hidden, catalog, targets, shared, block_size=3
        )
        losses[f"ce_sampled {name}"] = partial(sampled_cross_entropy, hidden, catalog, targets, shared)
    for name, loss in losses.items():
        expected = loss()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = loss()
        assert mixed.dtype == torch.float32 and torch.equal(mixed, expected), name

    last = hidden[:, -1].detach()
    expected = rank_catalog(last, catalog.detach(), targets[:, 0], k=5, block_size=10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = rank_catalog(last, catalog.detach(), targets[:, 0], k=5, block_size=10)
    assert all(torch.equal(a, b) for a, b in zip(mixed, expected))


def test_streamed_losses_backward_inside_autocast_keeps_fp32_gradients():
    """
    `loss.backward()` called inside the autocast region (as a hand-written bf16 loop does) gives the fp32 gradients:
    the streamed backward passes switch autocast off (seen on a GPU: "mat1 and mat2 must have the same dtype").
    """
    hidden, catalog, targets = random_problem(seed=3)
    negatives = torch.randint(0, catalog.shape[0], (*targets.shape, 5), generator=torch.Generator().manual_seed(2))
    losses = {
        "cce": lambda h, c: linear_cross_entropy(h, c, targets, block_size=8, impl="torch"),
        "cce_sampled": lambda h, c: sampled_linear_cross_entropy(h, c, targets, negatives, block_size=2),
        "cce_sampled sequence": lambda h, c: sampled_linear_cross_entropy(
            h, c, targets, negatives[:, 0], block_size=3
        ),
        "cce_sampled batch": lambda h, c: sampled_linear_cross_entropy(h, c, targets, negatives[0, 0], block_size=3),
    }
    for name, loss in losses.items():
        grads = []
        for autocast in (False, True):
            h, c = hidden.detach().clone().requires_grad_(), catalog.detach().clone().requires_grad_()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss(h, c).backward()
            grads.append((h.grad, c.grad))
        (h32, c32), (hmix, cmix) = grads
        assert hmix.dtype == torch.float32 and torch.equal(hmix, h32) and torch.equal(cmix, c32), name


@pytest.mark.parametrize("fused_rows", [1, 4, 7, 1000])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cce_with_gradients_in_the_forward_pass_equals_cross_entropy(fused_rows, reduction):
    # Row chunks against the whole catalog, gradients computed in the forward pass and scaled in the backward (exact
    # for mean and sum; per-row weights, reduction="none", recompute).
    from gram_hf.tasks.next_item.losses import LinearCrossEntropyFunction, _reduce

    hidden, catalog, targets = random_problem(seed=11 + fused_rows)
    flat = targets.reshape(-1)
    valid = flat != -100
    rows = valid.nonzero().squeeze(1)
    per_row = LinearCrossEntropyFunction.apply(hidden.reshape(-1, 16)[rows], catalog, flat[rows], 5, fused_rows)
    loss = _reduce(per_row, valid, targets.shape, reduction)
    reference = F.cross_entropy((hidden @ catalog.T).transpose(1, 2), targets, reduction=reduction)
    torch.testing.assert_close(loss, reference, **TOLERANCE)
    assert_same_gradients(loss, reference, (hidden, catalog))


def test_cce_takes_the_fused_path_only_when_training_on_cpu_with_the_default_blocks(monkeypatch):
    from gram_hf.tasks.next_item import losses

    calls = []
    original = losses.LinearCrossEntropyFunction.apply
    monkeypatch.setattr(losses.LinearCrossEntropyFunction, "apply",
                        lambda *args: calls.append(args[-1]) or original(*args))  # fmt: skip
    hidden, catalog, targets = random_problem(seed=2)
    loss = linear_cross_entropy(hidden, catalog, targets, impl="torch")
    frozen = linear_cross_entropy(hidden, catalog.detach(), targets, impl="torch")
    with torch.no_grad():
        evaluation = linear_cross_entropy(hidden, catalog, targets, impl="torch")
    streamed = linear_cross_entropy(hidden, catalog, targets, block_size=8, impl="torch")
    assert calls[0] == calls[1] == losses.DEFAULT_BLOCK_ELEMENTS // 53 and calls[2:] == [0, 0]
    torch.testing.assert_close(loss, streamed, **TOLERANCE)
    torch.testing.assert_close(evaluation, streamed, **TOLERANCE)
    loss.backward()
    hidden_grad, catalog_grad = hidden.grad.clone(), catalog.grad.clone()
    hidden.grad, catalog.grad = None, None
    streamed.backward()
    torch.testing.assert_close(hidden_grad, hidden.grad, **TOLERANCE)
    torch.testing.assert_close(catalog_grad, catalog.grad, **TOLERANCE)
    (frozen_grad,) = torch.autograd.grad(frozen, hidden)
    torch.testing.assert_close(frozen_grad, hidden.grad, **TOLERANCE)
    # Too large a catalog for MIN_FUSED_ROWS rows in a block: streamed.
    wide = torch.randn(losses.DEFAULT_BLOCK_ELEMENTS // (losses.MIN_FUSED_ROWS - 1), 2, requires_grad=True)
    calls.clear()
    linear_cross_entropy(torch.randn(40, 2, requires_grad=True), wide, torch.zeros(40, dtype=torch.long))
    assert calls == [0]
