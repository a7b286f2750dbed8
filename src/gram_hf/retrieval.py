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


def checked_offsets(
    offset_items: torch.Tensor | None, offsets: torch.Tensor | None, num_items: int, batch: int, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """`(offset_items, offsets)` validated and on `device`, `offsets` as a float32 `[B, 1]` column (or both `None`)."""
    if (offset_items is None) != (offsets is None):
        raise ValueError("offset_items and offsets go together.")
    if offsets is None:
        return None, None
    if offset_items.dtype != torch.bool or offset_items.shape != (num_items,) or offsets.shape != (batch,):
        raise ValueError(
            f"offset_items must be a boolean ({num_items},) mask and offsets ({batch},), got "
            f"{offset_items.dtype} {tuple(offset_items.shape)} and {tuple(offsets.shape)}."
        )
    return offset_items.to(device), offsets.to(device=device, dtype=torch.float32).unsqueeze(1)


def add_offsets(
    scores: torch.Tensor, offset_items: torch.Tensor | None, offsets: torch.Tensor | None, start: int, stop: int
) -> None:
    """Adds each user's offset (`[B, 1]`) in place to the scores `[B, stop - start]` of the block's offset items."""
    if offsets is not None:
        columns = offset_items[start:stop].nonzero().squeeze(1)
        if columns.numel():
            scores[:, columns] += offsets


def mask_excluded(scores: torch.Tensor, exclude: torch.Tensor | None, start: int, stop: int) -> None:
    """Sets to -inf, in place, the scores `[B, stop - start]` of the block's items each user's `exclude` row names."""
    if exclude is not None:
        users, slots = ((exclude >= start) & (exclude < stop)).nonzero(as_tuple=True)
        scores[users, exclude[users, slots] - start] = -math.inf


@torch.no_grad()
def exact_top_k(
    queries: torch.Tensor,
    items: torch.Tensor,
    k: int = 10,
    *,
    exclude: torch.Tensor | None = None,
    block_size: int | None = None,
    offset_items: torch.Tensor | None = None,
    offsets: torch.Tensor | None = None,
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
        offset_items (`torch.BoolTensor` of shape `(V,)`, *optional*): items whose scores get each user's `offsets`
            added (the new releases of a next-item mixture, [`~gram_hf.tasks.next_item.new_item_offsets`]).
        offsets (`torch.Tensor` of shape `(B,)`, *optional*): the per-user score offset of the `offset_items`.

    Returns:
        `(scores, indices)`: `[B, k]` float32 scores (offsets included), best first, and the item rows (`-1` past
        the last item).
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
    offset_items, offsets = checked_offsets(offset_items, offsets, num_items, batch, device)
    block = block_size or max(k, DEFAULT_BLOCK_ELEMENTS // max(batch, 1))
    queries32 = queries.float()
    top_scores = queries32.new_full((batch, k), -math.inf)
    top_items = torch.full((batch, k), -1, dtype=torch.long, device=device)
    for start in range(0, num_items, block):
        stop = min(start + block, num_items)
        with torch.autocast(device.type, enabled=False):
            scores = queries32 @ items[start:stop].float().T
        add_offsets(scores, offset_items, offsets, start, stop)
        mask_excluded(scores, exclude, start, stop)
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
    An approximate maximum-inner-product index over item vectors (FAISS), for `top_k` over catalogs of millions of
    items at a fraction of exact search's cost. Results are item rows, as [`exact_top_k`]'s; excluded items are
    filtered after the search (the index is asked for `k` plus the longest exclusion list).

    The default is an inverted-file index (`kind="ivf"`: `sqrt(V)` k-means lists, each query scans the `nprobe`
    nearest lists exactly): `benchmarks/inference.py` measured it against FAISS HNSW and usearch HNSW at 100k and 1M
    items (`benchmarks/results/<device>/inference.md`), where it built 25x faster than the graphs and was the fastest
    at recall@10 >= 0.95 at 1M items. Recall depends on the vectors: [`ItemIndex.tune`] picks the smallest `nprobe`
    that reaches a recall target against exact search on sample queries (e.g. users' vectors).

    Args:
        vectors (`torch.Tensor` of shape `(V, d)`): the item vectors (copied to the index as float32).
        kind (`str`, *optional*, defaults to `"ivf"`): `"ivf"` (IVF-Flat) or `"hnsw"` (HNSW-Flat, no training, slower
            to build).
        nlist (`int`, *optional*): IVF lists; default `sqrt(V)` (at least 1).
        nprobe (`int`, *optional*, defaults to 8): IVF lists scanned per query.
        connectivity (`int`, *optional*, defaults to 32), expansion_add (`int`, *optional*, defaults to 64),
        expansion_search (`int`, *optional*, defaults to 128): HNSW's `M`, `efConstruction` and `efSearch`.
        seed (`int`, *optional*, defaults to 0): the sample the IVF lists are trained on.
    """

    def __init__(
        self,
        vectors: torch.Tensor,
        *,
        kind: str = "ivf",
        nlist: int | None = None,
        nprobe: int = 8,
        connectivity: int = 32,
        expansion_add: int = 64,
        expansion_search: int = 128,
        seed: int = 0,
    ):
        if not faiss_available():
            raise ImportError(
                "An approximate item index needs FAISS: pip install 'gram-hf[retrieval]' (or faiss-cpu); exact search "
                "(use_index=False) needs nothing."
            )
        import faiss

        if kind not in ("ivf", "hnsw"):
            raise ValueError(f"kind must be 'ivf' or 'hnsw', got {kind!r}.")
        data = _as_float32_numpy(vectors)
        num_items, self.dim = data.shape
        self.kind = kind
        if kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(self.dim, connectivity, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = expansion_add
            self._index.hnsw.efSearch = expansion_search
        else:
            self.nlist = max(1, min(nlist or int(math.sqrt(num_items)), num_items))
            self._quantizer = faiss.IndexFlatIP(self.dim)  # kept: the IVF index does not own it
            self._index = faiss.IndexIVFFlat(self._quantizer, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            # 64 training points per list (FAISS warns below 39), a seeded sample of the catalog.
            rng = np.random.default_rng(seed)
            sample = rng.choice(num_items, min(num_items, 64 * self.nlist), replace=False)
            self._index.train(data[np.sort(sample)])
            self._index.nprobe = nprobe
        self._index.add(data)

    @property
    def search_effort(self) -> int:
        """`nprobe` (IVF) or `efSearch` (HNSW): the recall / speed trade-off."""
        return int(self._index.nprobe if self.kind == "ivf" else self._index.hnsw.efSearch)

    @search_effort.setter
    def search_effort(self, value: int) -> None:
        if self.kind == "ivf":
            self._index.nprobe = max(1, min(int(value), self.nlist))
        else:
            self._index.hnsw.efSearch = max(1, int(value))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, vectors: torch.Tensor) -> None:
        """Appends items (their rows continue the index's numbering; IVF assigns them to the trained lists)."""
        self._index.add(_as_float32_numpy(vectors))

    def tune(self, queries: torch.Tensor, items: torch.Tensor, *, k: int = 10, target_recall: float = 0.95) -> float:
        """
        Sets the smallest search effort (powers of two) whose recall@k against exact search on `queries` reaches
        `target_recall`, and returns that recall. `items` are the indexed vectors (for the exact reference).
        """
        _, exact = exact_top_k(queries.float().cpu(), items.float().cpu(), k)
        limit = self.nlist if self.kind == "ivf" else 4096
        effort, recall = 1, 0.0
        while True:
            self.search_effort = effort
            _, found = self.search(queries.cpu(), k)
            recall = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, exact)) / exact.numel()
            if recall >= target_recall or effort >= limit:
                return recall
            effort *= 2

    def search(
        self, queries: torch.Tensor, k: int = 10, *, exclude: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.LongTensor]:
        """`(scores, indices)` as [`exact_top_k`], approximately; on the queries' device."""
        device = queries.device
        exclude = _exclusion_lists(exclude, queries.shape[0], torch.device("cpu"))
        extra = int((exclude >= 0).sum(dim=1).max()) if exclude is not None and exclude.numel() else 0
        fetch = min(k + extra, len(self))
        if self.kind == "hnsw" and self._index.hnsw.efSearch < fetch:
            self._index.hnsw.efSearch = fetch
        scores, indices = self._index.search(_as_float32_numpy(queries), fetch)
        scores, indices = torch.from_numpy(scores), torch.from_numpy(indices).long()
        scores = scores.masked_fill(indices < 0, -math.inf)
        if exclude is not None:
            excluded = (indices.unsqueeze(2) == exclude.unsqueeze(1)).any(dim=2) & (indices >= 0)
            scores = scores.masked_fill(excluded, -math.inf)
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
        name = type(self).__name__
        return f"{name}(kind={self.kind!r}, items={len(self)}, dim={self.dim}, search_effort={self.search_effort})"


def _as_float32_numpy(vectors: torch.Tensor | Any) -> np.ndarray:
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().float().cpu().numpy()
    return np.ascontiguousarray(vectors, dtype=np.float32)


__all__ = ["ItemIndex", "exact_top_k", "faiss_available"]
