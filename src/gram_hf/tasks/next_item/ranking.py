"""
Full-catalog ranking for next-item evaluation: each user's top-`k` items and the held-out item's rank, streamed over
catalog blocks so that no users x items score matrix is built; and the new-release mixture ([`new_item_offsets`]),
which lets items that never trained compete with the warm catalog in one list.
"""

from __future__ import annotations

import math

import torch

from ...retrieval import add_offsets, checked_offsets, mask_excluded
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
    offset_items: torch.Tensor | None = None,
    offsets: torch.Tensor | None = None,
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
        offset_items (`torch.BoolTensor` of shape `(V,)`, *optional*): rows whose scores get each user's `offsets`
            added before ranking (the new releases, with [`new_item_offsets`]).
        offsets (`torch.Tensor` of shape `(B,)`, *optional*): the per-user score offset of the `offset_items`.

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
    eps = torch.finfo(torch.float32).eps
    # Items within the rounding error of the target's dot product (|err| <= d * eps * |h| * |w| for both products)
    # count as ties, and ties count against the target. Its own score is put just below that threshold.
    tolerance = 4 * dim * eps * hidden32.norm(dim=1) * target_vectors.norm(dim=1)
    offset_items, offsets = checked_offsets(offset_items, offsets, num_items, batch, device)
    if offsets is not None:
        target_scores = target_scores + torch.where(offset_items[safe_targets], offsets.squeeze(1), 0.0)
        # The offset's addition rounds too, alike for the target and for the items it is compared with.
        tolerance = tolerance + 4 * eps * (target_scores.abs() + offsets.squeeze(1).abs())
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
        add_offsets(scores, offset_items, offsets, start, stop)
        in_block = has_target & (safe_targets >= start) & (safe_targets < stop)
        scores[user_index[in_block], safe_targets[in_block] - start] = below[in_block]
        mask_excluded(scores, exclude, start, stop)
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


@torch.no_grad()
def new_item_offsets(
    hidden: torch.Tensor,
    catalog: torch.Tensor,
    new_items: torch.Tensor,
    share: float,
    *,
    exclude: torch.Tensor | None = None,
    block_size: int | None = None,
) -> torch.Tensor:
    r"""
    Per-user score offsets that rank the new releases (items that never trained) and the warm catalog as one mixture:
    the next item is a new release with probability `share`, and then the model's softmax over the new releases says
    which; otherwise its softmax over the warm items does. With `s_i` a user's scores,

    $$\log p(i) = s_i - \operatorname{LSE}_{\text{warm}}(s) + \log(1 - \text{share}) \text{ (warm)}, \quad
    s_i - \operatorname{LSE}_{\text{new}}(s) + \log \text{share} \text{ (new)},$$

    so adding `log(share / (1 - share)) + LSE_warm(s) - LSE_new(s)` to the new releases' scores ranks by `p(i)`. Why
    it is needed: a model trained on the warm catalog never saw a new release as a target, so its scores rank every
    new release below the warm items a user is likely to pick (whole-catalog cold-start HR@10 near 0) even where it
    orders the new releases well among themselves; the share, what part of the traffic goes to new releases, is a
    fact of the deployment (the last weeks' logs), not something the training split can show. Within each group the
    order is the model's; only how the two interleave changes. Items in `exclude` count in neither sum.

    Args:
        hidden (`torch.Tensor` of shape `(B, d)`): one state per user.
        catalog (`torch.Tensor` of shape `(V, d)`): item vectors.
        new_items (`torch.BoolTensor` of shape `(V,)`): the new releases among the catalog's rows.
        share (`float`): probability in (0, 1) that the next item is a new release.
        exclude (`torch.LongTensor` of shape `(B, H)`, *optional*): rows never recommended to that user, -1 padding.
        block_size (`int`, *optional*): catalog rows per block.

    Returns:
        `torch.Tensor` of shape `(B,)`: the offset to add to each user's new-release scores (0 for a user with no
        recommendable new release or warm item, whose ranking has nothing to interleave).
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"new_item_offsets: share must lie in (0, 1), got {share}.")
    batch = hidden.shape[0]
    num_items = catalog.shape[0]
    if new_items.dtype != torch.bool or new_items.shape != (num_items,):
        raise ValueError(
            f"new_items must be a boolean ({num_items},) mask, got {new_items.dtype} {tuple(new_items.shape)}."
        )
    device = hidden.device
    new_items = new_items.to(device)
    hidden32 = hidden.float()
    log_sums = hidden32.new_full((2, batch), -math.inf)  # warm, new
    block = _auto_block_size(batch, num_items, block_size, _block_elements(hidden))
    for start in range(0, num_items, block):
        stop = min(start + block, num_items)
        with torch.autocast(device.type, enabled=False):
            scores = hidden32 @ catalog[start:stop].float().T
        mask_excluded(scores, exclude, start, stop)
        is_new = new_items[start:stop]
        for group, members in enumerate((~is_new, is_new)):
            if members.any():
                block_sum = scores[:, members].logsumexp(dim=1)
                log_sums[group] = torch.logaddexp(log_sums[group], block_sum)
    offsets = math.log(share / (1.0 - share)) + log_sums[0] - log_sums[1]
    return torch.where(torch.isfinite(offsets), offsets, torch.zeros_like(offsets))


__all__ = ["new_item_offsets", "rank_catalog"]
