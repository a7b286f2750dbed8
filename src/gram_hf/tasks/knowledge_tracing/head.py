"""The knowledge-tracing head: a DKT-style LSTM over (item vector, response) pairs scored against the next item."""

from __future__ import annotations

import torch
from torch import nn

from ...heads import GramHead, HeadOutput, register_head


@register_head("knowledge_tracing")
class KnowledgeTracingHead(GramHead):
    r"""
    Predicts whether a learner answers each item of their sequence correctly.

    The input at step t is the previous interaction, `[h_{t-1} * r_{t-1}; h_{t-1} * (1 - r_{t-1})]` (DKT's split of
    the item by correctness, with item vectors in place of one-hot ids), and a learned start vector at t = 0. A
    stacked LSTM reads the inputs; the logit at t is the LSTM state projected to the item space and dotted with the
    current item vector `h_t`, so the prediction depends on the item's content. The loss is the binary cross-entropy
    over non-padding positions.

    Batch keys: `item_ref` (`[B, T]` positions into the item vectors, -1 for padding) and `labels` (`[B, T]` float,
    1 = correct, 0 = wrong, -100 for padding).

    Args:
        item_dim (`int`): dimension of item vectors.
        hidden_size (`int`, *optional*): LSTM hidden size; defaults to `item_dim` (as in the GRAM paper).
        num_layers (`int`, *optional*, defaults to 2): stacked LSTM layers.
        dropout (`float`, *optional*, defaults to 0.0): dropout between LSTM layers and on the output state.
    """

    item_ref_keys = ("item_ref",)
    scored_ref_key = "item_ref"

    def __init__(self, item_dim: int, hidden_size: int | None = None, num_layers: int = 2, dropout: float = 0.0):
        super().__init__(item_dim)
        self.hidden_size = hidden_size or item_dim
        self.start = nn.Parameter(torch.zeros(2 * item_dim))
        self.lstm = nn.LSTM(
            2 * item_dim,
            self.hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(self.hidden_size, item_dim)

    def forward(
        self, item_vectors: torch.Tensor, item_ref: torch.LongTensor, labels: torch.Tensor | None = None
    ) -> HeadOutput:
        mask = item_ref >= 0
        vectors = item_vectors[item_ref.clamp(min=0)] * mask.unsqueeze(-1).to(item_vectors.dtype)
        if labels is None:
            raise ValueError("The knowledge-tracing head needs `labels` (the responses) as inputs and targets.")
        responses = torch.where(mask, labels, torch.zeros_like(labels)).to(vectors.dtype).unsqueeze(-1)
        interactions = torch.cat([vectors * responses, vectors * (1 - responses)], dim=-1)
        start = self.start.to(interactions.dtype).expand(interactions.shape[0], 1, -1)
        states, _ = self.lstm(torch.cat([start, interactions[:, :-1]], dim=1))
        logits = (self.output(self.dropout(states)) * vectors).sum(-1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits[mask].float(), labels[mask].float())
        return HeadOutput(loss=loss, scores=logits)
