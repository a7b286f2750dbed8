"""The next-item head: SASRec over item vectors, scored against the catalog through the tied output layer."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...heads import GramHead, HeadOutput, register_head
from .losses import (
    linear_cross_entropy,
    sampled_binary_cross_entropy,
    sampled_cross_entropy,
    sampled_linear_cross_entropy,
)
from .ranking import new_item_offsets, rank_catalog

LOSS_TYPES = ("bce", "ce", "ce_sampled", "cce", "cce_sampled")
# Losses that score every position against the whole catalog: the batch carries the catalog as a reference key.
FULL_CATALOG_LOSSES = ("ce", "cce")
# Losses that score every position against its target and sampled negatives only.
SAMPLED_LOSSES = ("bce", "ce_sampled", "cce_sampled")
DEFAULT_NUM_NEGATIVES = {"bce": 1, "ce_sampled": 256, "cce_sampled": 256}
# The softmax losses over sampled negatives, which may share one set of negatives across positions.
SHARED_NEGATIVE_LOSSES = ("ce_sampled", "cce_sampled")
# Which positions draw one set of negatives together: each its own, a sequence's positions, or the whole batch.
NEGATIVE_SHARING = ("position", "sequence", "batch")


def check_negative_sharing(loss_type: str, negative_sharing: str) -> None:
    """Refuses an unknown `negative_sharing`, or sharing for a loss that is not a softmax over sampled negatives."""
    if negative_sharing not in NEGATIVE_SHARING:
        raise ValueError(f"negative_sharing must be one of {NEGATIVE_SHARING}, got {negative_sharing!r}.")
    if negative_sharing != "position" and loss_type not in SHARED_NEGATIVE_LOSSES:
        raise ValueError(
            f"negative_sharing={negative_sharing!r} applies to the sampled softmax losses {SHARED_NEGATIVE_LOSSES}, "
            f"not loss_type={loss_type!r}."
        )


@dataclass
class NextItemOutput(HeadOutput):
    """
    Output of [`SASRecHead`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            The loss selected by `loss_type` in training; in ranking mode the full-catalog cross-entropy of the
            held-out items.
        scores (`torch.Tensor`):
            Training batches: the target's logit at every position (`[B, T]`, 0 at padding). Ranking mode
            (evaluation batches): a `LongTensor [B, 2 + k]`, column 0 the target's 0-based rank over the catalog,
            columns `1..k` the top-`k` catalog columns, best first, and the last column the target's rank among the
            cold-start items only (`cold_ref`; -1 where the target is not one of them or the batch has none) — one
            tensor so that `Trainer.predict` gathers it.
        target_rank (`torch.LongTensor` of shape `(B,)`, *optional*): ranking mode: column 0 of `scores`.
        top_items (`torch.LongTensor` of shape `(B, k)`, *optional*): ranking mode: columns `1..k` of `scores`.
        cold_rank (`torch.LongTensor` of shape `(B,)`, *optional*): ranking mode: the last column of `scores`.
    """

    target_rank: torch.LongTensor | None = None
    top_items: torch.LongTensor | None = None
    cold_rank: torch.LongTensor | None = None


class PointWiseFeedForward(nn.Module):
    """SASRec's position-wise feed-forward layer with its residual connection."""

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        self.dense_in = nn.Linear(hidden_size, hidden_size)
        self.dense_out = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        outputs = self.dropout(self.dense_out(self.dropout(F.relu(self.dense_in(hidden_states)))))
        return outputs + hidden_states


class SASRecBlock(nn.Module):
    """One SASRec block: pre-norm causal self-attention and the point-wise feed-forward layer."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(hidden_size, eps=1e-8)
        self.attention = nn.MultiheadAttention(hidden_size, num_heads, dropout=dropout, batch_first=True)
        self.feed_forward_norm = nn.LayerNorm(hidden_size, eps=1e-8)
        self.feed_forward = PointWiseFeedForward(hidden_size, dropout)

    def forward(self, hidden_states: torch.Tensor, causal_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        queries = self.attention_norm(hidden_states)
        attended, _ = self.attention(queries, hidden_states, hidden_states, attn_mask=causal_mask, need_weights=False)
        # As the reference SASRec implementation: the residual starts from the normalised queries.
        hidden_states = self.feed_forward(self.feed_forward_norm(queries + attended))
        return hidden_states * mask


@register_head("next_item")
class SASRecHead(GramHead):
    r"""
    SASRec (Kang & McAuley, ICDM 2018) over content-based item vectors, with a choice of losses for large catalogs.

    The input at position t is the vector of the t-th item of the user's sequence (scaled by sqrt(d)) plus a learned
    position embedding; `num_blocks` blocks of causal self-attention and a point-wise feed-forward layer produce a
    state per position, and the score of item i at position t is the dot product of that state with i's vector: the
    output layer is tied with the input item vectors. The item vectors come from the content encoder (so an item never
    seen in training is scored from its text) or from an item-ID table (`item_encoder='id'`, which
    `gram_mode='nocontent'` trains, and which cannot).

    **Losses** (`loss_type`), all over the non-padding positions:
    - `"bce"`: SASRec's own binary cross-entropy with `num_negatives` (default 1) sampled negatives per position;
    - `"ce"`: full softmax cross-entropy over the catalog, materialising the `N x V` logits (the reference);
    - `"cce"`: the same loss through [`linear_cross_entropy`], which never materialises the logits;
    - `"ce_sampled"` (CE-): softmax over the target and `num_negatives` (default 256) uniform negatives per position,
      accidental hits masked, materialised;
    - `"cce_sampled"` (CCE-): the same loss through [`sampled_linear_cross_entropy`], streamed.
    `negative_sharing` decides which positions of the two softmax losses over negatives draw their `num_negatives`
    items together: `"position"` (each its own set), `"sequence"` (one set per sequence, which all its positions
    score) or `"batch"` (one set for every position, the memory-efficient-SASRec reference's `negatives_sharing`).
    Shared sets make the negative logits one `T x K` product per sequence (one `N x K` product) instead of `N x K`
    gathered vectors, much faster where gathers dominate (a CPU); a batch-wide set also updates only `K` catalog
    vectors per step, where per-sequence sets update `B x K`.

    **Batch contract** (see [`NextItemCollator`]). Training batches for the full-catalog losses hold `input_ref`
    (`[B, T]`, the sequence's items), `catalog_ref` (`[C]`, the catalog, i.e. the output layer, usually
    `arange(num_items)`) and `labels` (`[B, T]`, the next item as a *column* of `catalog_ref`, -100 for padding); the
    sampled losses hold `input_ref`, `target_ref` (`[B, T]`) and `negative_ref` (`[B, T, K]`, -1 for padding and for
    masked accidental hits; with shared negatives, `negative_ref` is `[B, K]` (per sequence) or `[K]` (per batch) and
    `negative_mask` `[B, T, K]` marks the negatives each position keeps). Because the catalog is itself a reference
    key, the engine's semantics stay exact: in `e2e` every catalog item is one more occurrence (the output layer's),
    and in `gram` the loss's gradient for every catalog vector feeds that item's pseudo-target.

    **Evaluation** (ranking mode: the head in eval mode and a batch with `catalog_ref` and 1-D `labels`): the state at
    each sequence's last position is ranked against the whole catalog block by block ([`rank_catalog`]), never
    building a `B x V` score matrix; items in `seen_ref` (`[B, H]`, optional) are excluded. With `cold_ref` (`[C]`,
    optional: the cold-start items, which never trained) a target among them is also ranked among them only, the item
    cold-start protocol (a new release competes with the other new releases, not with the warm items' popularity).
    `scores` packs the target's rank, the top-`eval_top_k` columns and that cold-start rank into one
    `LongTensor [B, 2 + k]`, which [`NextItemMetrics`] reads. With `new_item_share > 0` the whole-catalog ranking
    mixes the cold-start items in as new releases that take that share of the next items ([`new_item_offsets`]);
    their order among themselves, and the warm items', stays the model's.

    Args:
        item_dim (`int`): dimension of item vectors, which is also SASRec's hidden size (the output layer is tied).
        num_blocks (`int`, *optional*, defaults to 2): self-attention blocks (SASRec's default).
        num_heads (`int`, *optional*, defaults to 1): attention heads; must divide `item_dim`.
        max_length (`int`, *optional*, defaults to 200): longest input sequence (the number of position embeddings).
        dropout (`float`, *optional*, defaults to 0.2): dropout on inputs, attention and feed-forward layers.
        loss_type (`str`, *optional*, defaults to `"cce"`): one of `"bce"`, `"ce"`, `"ce_sampled"`, `"cce"`,
            `"cce_sampled"`.
        num_negatives (`int`, *optional*): negatives per position for the sampled losses (default 1 for `"bce"`,
            256 for the sampled softmax); stored here so that [`NextItemCollator.from_head`] samples accordingly.
        negative_sharing (`str`, *optional*, defaults to `"position"`): `ce_sampled` and `cce_sampled` draw a set of
            negatives per `"position"`, per `"sequence"` or per `"batch"` (stored for
            [`NextItemCollator.from_head`] too).
        shared_negatives (`bool`, *optional*): deprecated, `True` is `negative_sharing="batch"` (read from
            configurations saved before `negative_sharing`).
        loss_block_size (`int`, *optional*): catalog rows per block of `cce`; candidates per chunk of `cce_sampled`,
            positions per chunk with shared negatives.
        loss_impl (`str`, *optional*, defaults to `"auto"`): `"cce"` implementation (`"torch"`, `"cce"` kernels on
            CUDA, or `"auto"`), see [`linear_cross_entropy`].
        eval_top_k (`int`, *optional*, defaults to 10): length of the recommendation lists in ranking mode.
        eval_block_size (`int`, *optional*): catalog rows per block when ranking.
        new_item_share (`float`, *optional*, defaults to 0.0): in ranking mode, the probability that a user's next
            item is one of the batch's cold-start items (`cold_ref`, the new releases): the ranking is then by the
            mixture of the model's softmax over the warm items and over the new releases ([`new_item_offsets`]). 0
            ranks by the raw scores, where items that never trained rarely reach a top-10.
    """

    item_ref_keys = ("input_ref", "catalog_ref")
    scored_ref_key = "target_ref"

    def __init__(
        self,
        item_dim: int,
        num_blocks: int = 2,
        num_heads: int = 1,
        max_length: int = 200,
        dropout: float = 0.2,
        loss_type: str = "cce",
        num_negatives: int | None = None,
        loss_block_size: int | None = None,
        loss_impl: str = "auto",
        eval_top_k: int = 10,
        eval_block_size: int | None = None,
        negative_sharing: str = "position",
        shared_negatives: bool | None = None,
        new_item_share: float = 0.0,
    ):
        super().__init__(item_dim)
        if shared_negatives is not None:
            # Configurations saved before `negative_sharing` had this flag: True was one set per batch.
            warnings.warn(
                "SASRecHead's shared_negatives is deprecated; use negative_sharing='batch' (or 'sequence').",
                FutureWarning,
                stacklevel=2,
            )
            negative_sharing = "batch" if shared_negatives else negative_sharing
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}.")
        if item_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide item_dim={item_dim}.")
        if num_blocks < 1 or max_length < 1 or eval_top_k < 1:
            raise ValueError("num_blocks, max_length and eval_top_k must be positive.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}.")
        if not 0.0 <= new_item_share < 1.0:
            raise ValueError(f"new_item_share must lie in [0, 1), got {new_item_share}.")
        if loss_type in SAMPLED_LOSSES:
            num_negatives = DEFAULT_NUM_NEGATIVES[loss_type] if num_negatives is None else num_negatives
            if num_negatives < 1:
                raise ValueError(f"num_negatives must be positive for loss_type={loss_type!r}, got {num_negatives}.")
            # The batch keys the engine encodes and expands depend on the loss: the sampled losses reference only
            # the sequence, its targets and the negatives, never the whole catalog.
            self.item_ref_keys = ("input_ref", "target_ref", "negative_ref")
        check_negative_sharing(loss_type, negative_sharing)
        self.loss_type = loss_type
        self.num_negatives = num_negatives
        self.negative_sharing = negative_sharing
        self.max_length = max_length
        self.loss_block_size = loss_block_size
        self.loss_impl = loss_impl
        self.eval_top_k = eval_top_k
        self.eval_block_size = eval_block_size
        self.new_item_share = new_item_share
        self.input_scale = math.sqrt(item_dim)
        self.position_embeddings = nn.Embedding(max_length, item_dim)
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SASRecBlock(item_dim, num_heads, dropout) for _ in range(num_blocks))
        self.final_norm = nn.LayerNorm(item_dim, eps=1e-8)

    @contextmanager
    def ranking_by_scores(self) -> Iterator[None]:
        """
        Ranks by the model's own scores inside the block (`new_item_share` off): the validation evaluations of
        training run so (the task's `validation_context`), since a leave-one-out validation split holds warm targets
        and model selection judges the model, not the deployment's share of new releases.
        """
        share = self.new_item_share
        self.new_item_share = 0.0
        try:
            yield
        finally:
            self.new_item_share = share

    @property
    def uses_full_catalog(self) -> bool:
        """Whether the training loss scores against the whole catalog (the batch then references every item)."""
        return self.loss_type in FULL_CATALOG_LOSSES

    def encode_sequence(self, item_vectors: torch.Tensor, input_ref: torch.LongTensor) -> torch.Tensor:
        """SASRec's states `[B, T, d]` for the sequences `input_ref` (positions into `item_vectors`, -1 padding)."""
        batch, length = input_ref.shape
        if length > self.max_length:
            raise ValueError(
                f"Sequences of {length} items exceed max_length={self.max_length}; truncate them in the collator."
            )
        mask = (input_ref >= 0).unsqueeze(-1).to(item_vectors.dtype)
        positions = torch.arange(length, device=input_ref.device)
        hidden_states = item_vectors[input_ref.clamp(min=0)] * self.input_scale + self.position_embeddings(positions)
        hidden_states = self.input_dropout(hidden_states) * mask
        # Right padding with a causal mask: a real position attends only to earlier positions, which are all real, so
        # no key-padding mask is needed (and no row is ever fully masked).
        causal_mask = torch.ones(length, length, dtype=torch.bool, device=input_ref.device).triu(1)
        for block in self.blocks:
            hidden_states = block(hidden_states, causal_mask, mask)
        return self.final_norm(hidden_states)

    @staticmethod
    def catalog_vectors(item_vectors: torch.Tensor, catalog_ref: torch.LongTensor) -> torch.Tensor:
        """The output layer `[C, d]`: the rows of `item_vectors` at `catalog_ref` (no copy when that is every row)."""
        if catalog_ref.ndim != 1:
            raise ValueError(f"catalog_ref must be 1-D, got shape {tuple(catalog_ref.shape)}.")
        if catalog_ref.numel() and int(catalog_ref.min()) < 0:
            raise ValueError("catalog_ref must not contain padding (-1): the catalog is the output layer.")
        if catalog_ref.numel() == item_vectors.shape[0] and bool(
            (catalog_ref == torch.arange(catalog_ref.numel(), device=catalog_ref.device)).all()
        ):
            return item_vectors
        return item_vectors[catalog_ref]

    def forward(
        self,
        item_vectors: torch.Tensor,
        input_ref: torch.LongTensor,
        labels: torch.LongTensor | None = None,
        catalog_ref: torch.LongTensor | None = None,
        target_ref: torch.LongTensor | None = None,
        negative_ref: torch.LongTensor | None = None,
        seen_ref: torch.LongTensor | None = None,
        negative_mask: torch.BoolTensor | None = None,
        cold_ref: torch.LongTensor | None = None,
    ) -> NextItemOutput:
        hidden_states = self.encode_sequence(item_vectors, input_ref)
        if not self.training and catalog_ref is not None and (labels is None or labels.ndim == 1):
            return self._rank(hidden_states, item_vectors, input_ref, catalog_ref, labels, seen_ref, cold_ref)
        if self.uses_full_catalog:
            return self._full_catalog_loss(hidden_states, item_vectors, catalog_ref, labels)
        return self._sampled_loss(hidden_states, item_vectors, target_ref, negative_ref, negative_mask)

    def _full_catalog_loss(self, hidden_states, item_vectors, catalog_ref, labels) -> NextItemOutput:
        if catalog_ref is None or labels is None:
            raise ValueError(
                f"loss_type={self.loss_type!r} needs `catalog_ref` (the catalog) and `labels` (next items as columns "
                "of it) in the batch: use NextItemCollator with the same loss_type."
            )
        catalog = self.catalog_vectors(item_vectors, catalog_ref)
        if self.loss_type == "ce":
            valid = labels != -100
            logits = hidden_states[valid] @ catalog.T
            loss = F.cross_entropy(logits.float(), labels[valid])
        else:
            loss = linear_cross_entropy(
                hidden_states, catalog, labels, block_size=self.loss_block_size, impl=self.loss_impl
            )
        scores = None
        if not self.training:
            valid = labels != -100
            scores = (hidden_states * catalog[labels.clamp(min=0)]).sum(-1) * valid
        return NextItemOutput(loss=loss, scores=scores)

    def _sampled_loss(self, hidden_states, item_vectors, target_ref, negative_ref, negative_mask) -> NextItemOutput:
        if target_ref is None or negative_ref is None:
            raise ValueError(
                f"loss_type={self.loss_type!r} needs `target_ref` and `negative_ref` in the batch: use "
                "NextItemCollator with the same loss_type."
            )
        targets = target_ref.masked_fill(target_ref < 0, -100)
        # Accidental hits were removed by the collator by catalog identity (negative_ref = -1), which stays right
        # after e2e expansion; comparing rows as well is exact whenever rows are unique items.
        # Shared negatives (`[B, K]`, `[K]`) come with the collator's `negative_mask`, which marks accidental hits the
        # same way.
        if self.loss_type == "bce":
            loss = sampled_binary_cross_entropy(hidden_states, item_vectors, targets, negative_ref)
        elif self.loss_type == "ce_sampled":
            loss = sampled_cross_entropy(
                hidden_states, item_vectors, targets, negative_ref, negative_mask=negative_mask
            )
        else:
            loss = sampled_linear_cross_entropy(
                hidden_states,
                item_vectors,
                targets,
                negative_ref,
                negative_mask=negative_mask,
                block_size=self.loss_block_size,
            )
        scores = None
        if not self.training:
            valid = target_ref >= 0
            scores = (hidden_states * item_vectors[target_ref.clamp(min=0)]).sum(-1) * valid
        return NextItemOutput(loss=loss, scores=scores)

    def _rank(
        self, hidden_states, item_vectors, input_ref, catalog_ref, labels, seen_ref, cold_ref=None
    ) -> NextItemOutput:
        catalog = self.catalog_vectors(item_vectors, catalog_ref)
        last = ((input_ref >= 0).sum(dim=1) - 1).clamp(min=0)
        final_states = hidden_states[torch.arange(input_ref.shape[0], device=input_ref.device), last]
        # Seen and cold-start items are rows of item_vectors; the ranking is over columns of catalog_ref.
        column_of_row = torch.full((item_vectors.shape[0],), -1, dtype=torch.long, device=catalog_ref.device)
        column_of_row[catalog_ref] = torch.arange(catalog_ref.numel(), device=catalog_ref.device)
        exclude = None if seen_ref is None else _lookup(column_of_row, seen_ref)
        targets = None if labels is None else labels.masked_fill(labels < 0, -1)
        cold_columns = None
        if cold_ref is not None:
            cold_columns = _lookup(column_of_row, cold_ref)
            cold_columns = cold_columns[cold_columns >= 0]
        mixture = {}
        if self.new_item_share > 0 and cold_columns is not None and cold_columns.numel():
            new_items = torch.zeros(catalog.shape[0], dtype=torch.bool, device=catalog.device)
            new_items[cold_columns] = True
            offsets = new_item_offsets(
                final_states, catalog, new_items, self.new_item_share, exclude=exclude, block_size=self.eval_block_size
            )
            mixture = {"offset_items": new_items, "offsets": offsets}
        top_items, ranks = rank_catalog(
            final_states, catalog, targets, k=self.eval_top_k, exclude=exclude, block_size=self.eval_block_size,
            **mixture,
        )  # fmt: skip
        cold_ranks = torch.full_like(ranks, -1)
        if cold_columns is not None and targets is not None and cold_columns.numel():
            # Catalog column -> position among the cold-start columns (-1 elsewhere): targets and seen items outside
            # that set drop out of the cold-start ranking.
            cold_position = torch.full((catalog.shape[0],), -1, dtype=torch.long, device=catalog.device)
            cold_position[cold_columns] = torch.arange(cold_columns.numel(), device=catalog.device)
            _, cold_ranks = rank_catalog(
                final_states,
                catalog[cold_columns],
                _lookup(cold_position, targets),
                k=1,
                exclude=None if exclude is None else _lookup(cold_position, exclude),
                block_size=self.eval_block_size,
            )
        loss = None
        if labels is not None and bool((labels >= 0).any()):
            loss = linear_cross_entropy(
                final_states,
                catalog,
                labels.masked_fill(labels < 0, -100),
                block_size=self.eval_block_size,
                impl=self.loss_impl,
            )
        return NextItemOutput(
            loss=loss,
            scores=torch.cat([ranks.unsqueeze(1), top_items, cold_ranks.unsqueeze(1)], dim=1),
            target_rank=ranks,
            top_items=top_items,
            cold_rank=cold_ranks,
        )


def _lookup(table: torch.LongTensor, references: torch.LongTensor) -> torch.LongTensor:
    """`table[references]` where `references >= 0`, -1 (padding) elsewhere."""
    return torch.where(references >= 0, table[references.clamp(min=0)], torch.full_like(references, -1))


__all__ = ["FULL_CATALOG_LOSSES", "LOSS_TYPES", "NEGATIVE_SHARING", "SAMPLED_LOSSES", "NextItemOutput", "SASRecHead"]
