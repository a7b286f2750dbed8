"""
Full-catalog ranking for next-item evaluation: each user's top-`k` items and the held-out item's rank, streamed over
catalog blocks so that no users x items score matrix is built.
"""

from __future__ import annotations

import math

import torch

from .losses import _auto_block_size, _block_elements


@torch.no_grad()
def rank_catalog(
    hidden: torch.Tensor,
    catalog: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    k: int = 10,
    exclude: torch.Tensor | None = None,
    block_size: int | None = None,
) -> tuple[torch.LongTensor, torch.LongTensor]:
    r"""
    Top-`k` items and the target's rank over the full catalog, streamed over catalog blocks so that no `B x V` score
    matrix is ever built (evaluation at 100k+ items).

    Ties are broken against the target (pessimistic ranking): the target's rank is the number of other, non-excluded
    items scoring at least as high (within fp32 rounding of the dot product), and the top-`k` list places the target
    after every such item, so a hit in the list and `rank < k` agree. A model that scores every item alike ranks every
    target last among equals instead of first.

    Args:
        hidden (`torch.Tensor` of shape `(B, d)`): one state per user (SASRec's at the last position).
        catalog (`torch.Tensor` of shape `(V, d)`): item vectors; the returned indices are rows of it.
        targets (`torch.LongTensor` of shape `(B,)`, *optional*): the held-out item per user (negative: none).
        k (`int`, *optional*, defaults to 10): list length.
        exclude (`torch.LongTensor` of shape `(B, H)`, *optional*): rows never recommended to that user (e.g. items
            already seen), -1 for padding. An excluded target gets rank `V` (a miss).
        block_size (`int`, *optional*): catalog rows per block.

    Returns:
        `(top_items, target_rank)`: `LongTensor [B, k]` of catalog rows, best first (-1 where fewer than `k` items
        can be recommended), and `LongTensor [B]`, the 0-based rank of each target (-1 without a target).
    """
    if k < 1:
        raise ValueError(f"k must be positive, got {k}.")
    batch, dim = hidden.shape
    num_items = catalog.shape[0]
    device = hidden.device
    hidden32 = hidden.float()
    has_target = torch.zeros(batch, dtype=torch.bool, device=device) if targets is None else targets >= 0
    safe_targets = torch.zeros(batch, dtype=torch.long, device=device) if targets is None else targets.clamp(min=0)
    target_vectors = catalog[safe_targets].float()
    target_scores = (hidden32 * target_vectors).sum(dim=1)
    # Items within the rounding error of the target's dot product (|err| <= d * eps * |h| * |w| for both products)
    # count as ties, and ties count against the target. Its own score is put just below that threshold.
    tolerance = 4 * dim * torch.finfo(torch.float32).eps * hidden32.norm(dim=1) * target_vectors.norm(dim=1)
    threshold = target_scores - tolerance
    below = torch.nextafter(threshold, threshold.new_tensor(-math.inf))
    target_excluded = torch.zeros(batch, dtype=torch.bool, device=device)
    if exclude is not None:
        target_excluded = ((exclude == safe_targets.unsqueeze(1)) & (exclude >= 0)).any(dim=1) & has_target
    top_scores = hidden32.new_full((batch, k), -math.inf)
    top_items = torch.full((batch, k), -1, dtype=torch.long, device=device)
    counts = torch.zeros(batch, dtype=torch.long, device=device)
    block = _auto_block_size(batch, num_items, block_size, _block_elements(hidden))
    user_index = torch.arange(batch, device=device)
    for start in range(0, num_items, block):
        stop = min(start + block, num_items)
        with torch.autocast(device.type, enabled=False):  # fp32 scores also under --bf16: ranks need them
            scores = hidden32 @ catalog[start:stop].float().T
        in_block = has_target & (safe_targets >= start) & (safe_targets < stop)
        scores[user_index[in_block], safe_targets[in_block] - start] = below[in_block]
        if exclude is not None:
            hit = (exclude >= start) & (exclude < stop)
            users, slots = hit.nonzero(as_tuple=True)
            scores[users, exclude[users, slots] - start] = -math.inf
        # Summing the comparison in int32 is several times faster on CPU than torch's default int64 accumulation.
        counts += (scores >= threshold.unsqueeze(1)).sum(dim=1, dtype=torch.int32)
        # The block's own top-k first, then a merge of 2k candidates: the union's top-k, without copying the block.
        block_scores, block_columns = scores.topk(min(k, stop - start), dim=1)
        candidate_scores = torch.cat([top_scores, block_scores], dim=1)
        candidate_items = torch.cat([top_items, block_columns + start], dim=1)
        top_scores, order = candidate_scores.topk(k, dim=1)
        top_items = candidate_items.gather(1, order)
    top_items = top_items.masked_fill(top_scores == -math.inf, -1)
    ranks = torch.where(target_excluded, torch.full_like(counts, num_items), counts)
    ranks = ranks.masked_fill(~has_target, -1)
    return top_items, ranks


__all__ = ["rank_catalog"]
