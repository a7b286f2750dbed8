"""Pooling of token states into one vector per item."""

from __future__ import annotations

import torch
from torch import nn


class MeanPooling(nn.Module):
    """Mean of the token states over the attention mask (sentence-transformers' default)."""

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
        # clamp: an empty text still has its special tokens, but a fully masked row must not divide by zero
        return (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class ClsPooling(nn.Module):
    """The first token's state (BERT's `[CLS]`)."""

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return hidden_states[:, 0]


class AdditiveAttentionPooling(nn.Module):
    """
    Additive attention over tokens, as in PLM-NR and NRMS: `a_t = softmax_t(q^T tanh(W h_t + b))`, output
    `sum_t a_t h_t`. Padding tokens get zero weight.
    """

    def __init__(self, hidden_size: int, attention_dim: int = 200):
        super().__init__()
        self.projection = nn.Linear(hidden_size, attention_dim)
        self.query = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        scores = self.query(torch.tanh(self.projection(hidden_states))).squeeze(-1)
        scores = scores.masked_fill(attention_mask == 0, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        return torch.einsum("bt,btd->bd", weights, hidden_states)


def build_pooling(pooling: str, hidden_size: int, attention_dim: int = 200) -> nn.Module:
    """The pooling module named by `GramConfig.pooling`."""
    if pooling == "mean":
        return MeanPooling()
    if pooling == "cls":
        return ClsPooling()
    if pooling == "attention":
        return AdditiveAttentionPooling(hidden_size, attention_dim)
    raise ValueError(f"pooling must be one of ('mean', 'cls', 'attention'), got {pooling!r}.")
