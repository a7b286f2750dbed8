"""
Top-`k` retrieval over an item catalog: exact search streamed over catalog blocks, and an optional approximate index.

[`exact_top_k`] never builds the `users x items` score matrix: it scores one block of items at a time and keeps a
running top-`k`, so memory is `users x (block + k)` whatever the catalog size. [`ItemIndex`] wraps an approximate
maximum-inner-product index (FAISS, the optional `retrieval` extra) for catalogs where even exact streaming is too
slow per request; `benchmarks/inference.py` measures both and the index's recall against exact search.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

# Scores per block of exact search: users x block_rows <= this many (64 MiB of fp32 scores).
DEFAULT_BLOCK_ELEMENTS = 1 << 24


def _exclusion_lists(exclude: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
    if exclude is None:
        return None
    exclude = torch.as_tensor(exclude, dtype=torch.long, device=device)
    if exclude.ndim != 2 or exclude.shape[0] != batch:
        raise ValueError(f"exclude must be [users, H] (-1 for padding), got shape {tuple(exclude.shape)}.")
    return exclude


@torch.no_grad()
def exact_top_k(
    queries: torch.Tensor,
    items: torch.Tensor,
    k: int = 10,
    *,
    exclude: torch.Tensor | None = None,
    block_size: int | None = None,
) -> tuple[torch.Tensor, torch.LongTensor]:
    r"""
    The `k` items with the highest dot product with each query, exactly, streamed over blocks of items.

    Args:
        queries (`torch.Tensor` of shape `(B, d)`): one vector per user.
        items (`torch.Tensor` of shape `(V, d)`): the catalog's item vectors, on the queries' device.
        k (`int`, *optional*, defaults to 10): results per query (fewer than `k` items: padded with -1 / -inf).
        exclude (`torch.LongTensor` of shape `(B, H)`, *optional*): item rows never returned to that user (e.g. the
            items already seen), -1 for padding.
        block_size (`int`, *optional*): items scored at once; default keeps `B x block` at 16M scores.

    Returns:
        `(scores, indices)`: `[B, k]` float32 scores, best first, and the item rows (`-1` past the last item).
    """
    if k < 1:
        raise ValueError(f"k must be positive, got {k}.")
    if queries.ndim != 2 or items.ndim != 2 or queries.shape[1] != items.shape[1]:
        raise ValueError(
            f"queries [B, d] and items [V, d] must share d, got {tuple(queries.shape)}, {tuple(items.shape)}."
        )
    batch, num_items = queries.shape[0], items.shape[0]
    device = queries.device
    exclude = _exclusion_lists(exclude, batch, device)
    block = block_size or max(k, DEFAULT_BLOCK_ELEMENTS // max(batch, 1))
    queries32 = queries.float()
    top_scores = queries32.new_full((batch, k), -math.inf)
    top_items = torch.full((batch, k), -1, dtype=torch.long, device=device)
    for start in range(0, num_items, block):
        stop = min(start + block, num_items)
        with torch.autocast(device.type, enabled=False):
            scores = queries32 @ items[start:stop].float().T
        if exclude is not None:
            users, slots = ((exclude >= start) & (exclude < stop)).nonzero(as_tuple=True)
            scores[users, exclude[users, slots] - start] = -math.inf
        block_k = min(k, stop - start)
        block_scores, block_items = scores.topk(block_k, dim=1)
        candidate_scores = torch.cat([top_scores, block_scores], dim=1)
        candidate_items = torch.cat([top_items, block_items + start], dim=1)
        top_scores, order = candidate_scores.topk(k, dim=1)
        top_items = candidate_items.gather(1, order)
    return top_scores, top_items.masked_fill(top_scores == -math.inf, -1)


def faiss_available() -> bool:
    """Whether the approximate index's library (`faiss-cpu` or `faiss-gpu`, the `retrieval` extra) is installed."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class ItemIndex:
    r"""
    An approximate maximum-inner-product index over item vectors (FAISS HNSW), for `top_k` over catalogs of millions
    of items at a fraction of exact search's cost. Results are item rows, as [`exact_top_k`]'s; excluded items are
    filtered after the search (the index is asked for `k` plus the longest exclusion list).

    Chosen over an inverted-file index and over usearch by `benchmarks/inference.py` (recall@10 against exact search
    and queries per second at 1M items, results in `benchmarks/results/<device>/inference.md`).

    Args:
        vectors (`torch.Tensor` of shape `(V, d)`): the item vectors (copied to the index as float32).
        connectivity (`int`, *optional*, defaults to 32): HNSW's neighbours per node (`M`).
        expansion_add (`int`, *optional*, defaults to 64): HNSW's `efConstruction`.
        expansion_search (`int`, *optional*, defaults to 128): HNSW's `efSearch`, the recall/speed trade-off.
    """

    def __init__(
        self,
        vectors: torch.Tensor,
        *,
        connectivity: int = 32,
        expansion_add: int = 64,
        expansion_search: int = 128,
    ):
        if not faiss_available():
            raise ImportError(
                "An approximate item index needs FAISS: pip install 'gram-hf[retrieval]' (or faiss-cpu); exact search "
                "(use_index=False) needs nothing."
            )
        import faiss

        self.dim = int(vectors.shape[1])
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self._index = faiss.IndexHNSWFlat(self.dim, connectivity, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = expansion_add
        self.expansion_search = expansion_search
        self._index.add(_as_float32_numpy(vectors))

    @property
    def expansion_search(self) -> int:
        return int(self._index.hnsw.efSearch)

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self._index.hnsw.efSearch = int(value)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, vectors: torch.Tensor) -> None:
        """Appends items (their rows continue the index's numbering)."""
        self._index.add(_as_float32_numpy(vectors))

    def search(
        self, queries: torch.Tensor, k: int = 10, *, exclude: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.LongTensor]:
        """`(scores, indices)` as [`exact_top_k`], approximately; on the queries' device."""
        device = queries.device
        exclude = _exclusion_lists(exclude, queries.shape[0], torch.device("cpu"))
        extra = int((exclude >= 0).sum(dim=1).max()) if exclude is not None and exclude.numel() else 0
        fetch = min(k + extra, len(self))
        self._index.hnsw.efSearch = max(self.expansion_search, fetch)
        scores, indices = self._index.search(_as_float32_numpy(queries), fetch)
        scores, indices = torch.from_numpy(scores), torch.from_numpy(indices).long()
        if exclude is not None:
            excluded = (indices.unsqueeze(2) == exclude.unsqueeze(1)).any(dim=2) & (indices >= 0)
            scores = scores.masked_fill(excluded | (indices < 0), -math.inf)
            scores, order = scores.topk(min(k, fetch), dim=1)
            indices = indices.gather(1, order)
        scores, indices = scores[:, :k], indices[:, :k]
        if indices.shape[1] < k:
            pad = k - indices.shape[1]
            scores = torch.cat([scores, scores.new_full((scores.shape[0], pad), -math.inf)], dim=1)
            indices = torch.cat([indices, indices.new_full((indices.shape[0], pad), -1)], dim=1)
        indices = indices.masked_fill(scores == -math.inf, -1)
        return scores.to(device), indices.to(device)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(items={len(self)}, dim={self.dim}, connectivity={self.connectivity}, "
            f"expansion_search={self.expansion_search})"
        )


def _as_float32_numpy(vectors: torch.Tensor | Any) -> np.ndarray:
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().float().cpu().numpy()
    return np.ascontiguousarray(vectors, dtype=np.float32)


__all__ = ["ItemIndex", "exact_top_k", "faiss_available"]
