"""The news-recommendation head: NRMS's user encoder over clicked-news vectors, dot-product click scores."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...heads import GramHead, HeadOutput, register_head
from ...pooling import AdditiveAttentionPooling

_PREFERRED_HEADS = (16, 12, 8, 6, 4, 2, 1)


def default_num_attention_heads(item_dim: int, min_head_dim: int = 16) -> int:
    """
    The most attention heads (NRMS uses 16) among 16, 12, 8, 6, 4, 2, 1 that divide `item_dim` with heads of at least
    `min_head_dim` dimensions: 16 for 384 (MiniLM) and 768, 8 for 128, 2 for 32, 1 for 8.
    """
    for heads in _PREFERRED_HEADS:
        if item_dim % heads == 0 and item_dim // heads >= min_head_dim:
            return heads
    return 1


class MultiHeadSelfAttention(nn.Module):
    """
    NRMS's multi-head self-attention over a user's clicked news: per head `softmax(Q K^T / sqrt(d_head)) V`, heads
    concatenated (no output projection, as in NRMS and PLM-NR). Padding keys get zero weight; a query row whose keys
    are all padding attends uniformly (finite, and discarded by the caller), so no NaN can arise.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_attention_heads={num_heads} must divide item_dim={dim}.")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, dim = hidden_states.shape

        def heads(projection: nn.Linear) -> torch.Tensor:
            return projection(hidden_states).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        query, key, value = heads(self.query), heads(self.key), heads(self.value)
        scores = query @ key.transpose(-1, -2) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        return (weights @ value).transpose(1, 2).reshape(batch, length, dim)


@register_head("news_recommendation")
class NewsRecommendationHead(GramHead):
    r"""
    NRMS (Wu et al., 2019) as used by PLM-NR and the GRAM paper: the user vector is multi-head self-attention over the
    vectors of the user's clicked news followed by additive-attention pooling; a candidate's score (logit) is the dot
    product of the user vector and the candidate's vector.

    Loss: for every clicked candidate `p` of an impression, the cross-entropy of `p` against the impression's
    non-clicked candidates `N`, `-log(exp(s_p) / (exp(s_p) + sum_{n in N} exp(s_n)))`, averaged over all clicks of
    the batch. A training row (one click, `npratio` negatives) gives exactly PLM-NR's `1 + npratio`-way cross-entropy,
    wherever the click sits; a whole evaluation impression with several clicks gives the mean of their cross-entropies,
    and impressions without a click (or without labels, `-1`) add nothing. When no row of the batch has a click the
    loss is `None` (evaluation on a labelless split), which is an error in training mode.

    A user without history (all `history_ref` padding) gets a learned user vector, so cold users are ranked by a
    learned content preference instead of all-zero scores. Scores at padded candidate positions are 0.

    Batch keys: `history_ref` (`[B, H]`) and `candidate_ref` (`[B, C]`), positions into `item_vectors` with -1 for
    padding, and `labels` (`[B, C]` float, 1 clicked, 0 not, -1 unknown, -100 padding).

    Args:
        item_dim (`int`): dimension of news vectors.
        num_attention_heads (`int`, *optional*): self-attention heads; must divide `item_dim`. Default:
            [`default_num_attention_heads`] (16 for 384- and 768-dimensional encoders).
        query_dim (`int`, *optional*, defaults to 200): size of the additive attention's query network (NRMS: 200).
        dropout (`float`, *optional*, defaults to 0.2): dropout on the news vectors entering the user encoder and on
            the self-attention output (NRMS: 0.2).
    """

    item_ref_keys = ("history_ref", "candidate_ref")
    scored_ref_key = "candidate_ref"

    def __init__(
        self, item_dim: int, num_attention_heads: int | None = None, query_dim: int = 200, dropout: float = 0.2
    ):
        super().__init__(item_dim)
        self.num_attention_heads = num_attention_heads or default_num_attention_heads(item_dim)
        self.self_attention = MultiHeadSelfAttention(item_dim, self.num_attention_heads)
        self.pooling = AdditiveAttentionPooling(item_dim, query_dim)
        self.dropout = nn.Dropout(dropout)
        self.empty_user = nn.Parameter(torch.zeros(item_dim))

    def user_vectors(self, item_vectors: torch.Tensor, history_ref: torch.LongTensor) -> torch.Tensor:
        """User vectors `[B, d]` from the clicked news at `history_ref` (`[B, H]`, -1 padding)."""
        mask = history_ref >= 0
        # Padding gathers row 0, then is zeroed: whatever row 0 holds never reaches a real position.
        history = item_vectors[history_ref.clamp(min=0)] * mask.unsqueeze(-1).to(item_vectors.dtype)
        states = self.dropout(self.self_attention(self.dropout(history), mask))
        pooled = self.pooling(states, mask.long())
        has_history = mask.any(dim=1, keepdim=True)
        return torch.where(has_history, pooled, self.empty_user.to(pooled.dtype).expand_as(pooled))

    def forward(
        self,
        item_vectors: torch.Tensor,
        history_ref: torch.LongTensor,
        candidate_ref: torch.LongTensor,
        labels: torch.Tensor | None = None,
    ) -> HeadOutput:
        if history_ref.ndim != 2 or candidate_ref.ndim != 2 or history_ref.shape[0] != candidate_ref.shape[0]:
            raise ValueError(
                f"history_ref and candidate_ref must be [B, H] and [B, C], got {tuple(history_ref.shape)} and "
                f"{tuple(candidate_ref.shape)}."
            )
        users = self.user_vectors(item_vectors, history_ref)
        candidate_mask = candidate_ref >= 0
        candidates = item_vectors[candidate_ref.clamp(min=0)]
        scores = torch.einsum("bd,bcd->bc", users, candidates).masked_fill(~candidate_mask, 0.0)
        loss = None
        if labels is not None:
            loss = self.loss(scores, labels, candidate_mask)
            if loss is None and self.training:
                raise ValueError("A training batch has no clicked candidate (labels == 1); nothing to learn from.")
        return HeadOutput(loss=loss, scores=scores)

    @staticmethod
    def loss(scores: torch.Tensor, labels: torch.Tensor, candidate_mask: torch.Tensor) -> torch.Tensor | None:
        """Mean over clicked candidates of the cross-entropy against their impression's non-clicked candidates."""
        scores = scores.float()
        positives = (labels == 1) & candidate_mask
        if not bool(positives.any()):
            return None
        negatives = (labels == 0) & candidate_mask
        # logsumexp over the negatives; an impression without negatives gets a very negative finite value (not -inf,
        # whose logsumexp gradient is NaN), so its clicks cost softplus(-huge) = 0 with zero gradient.
        floor = torch.finfo(scores.dtype).min
        negative_lse = torch.logsumexp(scores.masked_fill(~negatives, floor), dim=1, keepdim=True)
        # -log(e^s_p / (e^s_p + sum_n e^s_n)) = log(1 + e^(lse_n - s_p)) = softplus(lse_n - s_p)
        per_click = nn.functional.softplus(negative_lse - scores)
        return per_click[positives].mean()


__all__ = ["MultiHeadSelfAttention", "NewsRecommendationHead", "default_num_attention_heads"]
