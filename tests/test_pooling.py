"""Pooling of token states: padding never contributes."""

from __future__ import annotations

import pytest
import torch

from gram_hf.pooling import AdditiveAttentionPooling, ClsPooling, MeanPooling, build_pooling

HIDDEN = 6


@pytest.fixture
def states():
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 5, HIDDEN, generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    return hidden, mask


def perturb_padding(hidden: torch.Tensor, mask: torch.Tensor, value: float = 1e3) -> torch.Tensor:
    changed = hidden.clone()
    changed[mask == 0] = torch.full_like(changed[mask == 0], value)
    return changed


def test_mean_pooling_is_masked_mean(states):
    hidden, mask = states
    pooled = MeanPooling()(hidden, mask)
    assert pooled.shape == (3, HIDDEN)
    torch.testing.assert_close(pooled[0], hidden[0].mean(0))
    torch.testing.assert_close(pooled[1], hidden[1, :3].mean(0))
    torch.testing.assert_close(pooled[2], hidden[2, 0])


def test_mean_pooling_ignores_padded_tokens(states):
    hidden, mask = states
    pooled = MeanPooling()(hidden, mask)
    torch.testing.assert_close(MeanPooling()(perturb_padding(hidden, mask), mask), pooled)
    torch.testing.assert_close(MeanPooling()(perturb_padding(hidden, mask, -7.0), mask), pooled)


def test_mean_pooling_fully_masked_row_is_finite(states):
    hidden, _ = states
    pooled = MeanPooling()(hidden[:1], torch.zeros(1, 5, dtype=torch.long))
    assert torch.isfinite(pooled).all()


def test_cls_pooling_takes_first_token(states):
    hidden, mask = states
    pooled = ClsPooling()(hidden, mask)
    torch.testing.assert_close(pooled, hidden[:, 0])
    changed = hidden.clone()
    changed[:, 1:] += 5.0
    torch.testing.assert_close(ClsPooling()(changed, mask), pooled)


def attention_weights(pooling: AdditiveAttentionPooling, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The softmax weights, recomputed from the module's parameters over the real tokens only."""
    scores = pooling.query(torch.tanh(pooling.projection(hidden))).squeeze(-1)
    scores = scores.masked_fill(mask == 0, float("-inf"))
    return torch.softmax(scores, dim=-1)


def test_attention_pooling_gives_padding_zero_weight(states):
    torch.manual_seed(0)
    hidden, mask = states
    pooling = AdditiveAttentionPooling(HIDDEN, attention_dim=4)
    with torch.no_grad():
        pooled = pooling(hidden, mask)
        for value in (1e3, -1e3, 0.0):
            torch.testing.assert_close(pooling(perturb_padding(hidden, mask, value), mask), pooled)
        # a padded row equals the same row truncated to its real tokens
        torch.testing.assert_close(pooling(hidden[1:2, :3], mask[1:2, :3]), pooled[1:2])
        torch.testing.assert_close(pooled[2], hidden[2, 0])  # a single real token has all the weight


def test_attention_pooling_is_a_convex_combination(states):
    torch.manual_seed(1)
    hidden, mask = states
    pooling = AdditiveAttentionPooling(HIDDEN, attention_dim=4)
    with torch.no_grad():
        pooled = pooling(hidden, mask)
        weights = attention_weights(pooling, hidden, mask)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert (weights[mask == 0] == 0).all()
    torch.testing.assert_close(pooled, torch.einsum("bt,btd->bd", weights, hidden))
    # per dimension, the output lies between the smallest and largest real token state
    big = torch.finfo(hidden.dtype).max
    lower = hidden.masked_fill((mask == 0).unsqueeze(-1), big).amin(1)
    upper = hidden.masked_fill((mask == 0).unsqueeze(-1), -big).amax(1)
    assert (pooled >= lower - 1e-6).all() and (pooled <= upper + 1e-6).all()
    # the weights are not uniform (a real attention, not a mean)
    assert not torch.allclose(pooled[0], hidden[0].mean(0))


def test_attention_pooling_of_identical_tokens_returns_that_token():
    torch.manual_seed(2)
    pooling = AdditiveAttentionPooling(HIDDEN, attention_dim=4)
    token = torch.randn(HIDDEN)
    hidden = token.expand(2, 4, HIDDEN).clone()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    hidden[1, 2:] = 100.0
    with torch.no_grad():
        pooled = pooling(hidden, mask)
    torch.testing.assert_close(pooled, token.expand(2, HIDDEN))


def test_attention_pooling_trains_its_parameters(states):
    hidden, mask = states
    pooling = AdditiveAttentionPooling(HIDDEN, attention_dim=4)
    pooling(hidden, mask).pow(2).sum().backward()
    assert pooling.query.weight.grad.abs().sum() > 0
    assert pooling.projection.weight.grad.abs().sum() > 0


def test_build_pooling():
    assert isinstance(build_pooling("mean", HIDDEN), MeanPooling)
    assert isinstance(build_pooling("cls", HIDDEN), ClsPooling)
    attention = build_pooling("attention", HIDDEN, attention_dim=9)
    assert isinstance(attention, AdditiveAttentionPooling)
    assert attention.projection.out_features == 9
    with pytest.raises(ValueError, match="mean"):
        build_pooling("max", HIDDEN)
