"""[`ItemTable`]: GRAM's cached item vectors and the state of the current window."""

from __future__ import annotations

import torch


class ItemTable:
    """
    The item vectors GRAM trains the collaborative-filtering module against, one fp32 row per catalog item.

    A row is *fresh* when it was encoded by the current content encoder (or has since been moved by pseudo-target
    updates); the encoder changes only at window ends, after which every row is stale and is re-encoded lazily when a
    batch first needs it. A row is *touched* when the CF loss produced a gradient for it in the current window: the
    encoder is fitted to the touched rows (the pseudo-targets) at the window's end.

    The table holds state only; [`GramTrainer`] encodes and fits. All updates are deterministic functions of the
    batch, the encoder and the gradients, so a later multi-process trainer can keep the table identical on every rank
    by combining the gradients before [`ItemTable.apply_gradient`].

    Args:
        num_items (`int`): catalog size.
        dim (`int`): item-vector dimension.
        device (`torch.device`, *optional*): where the table lives (the training device).
    """

    def __init__(self, num_items: int, dim: int, device: torch.device | str | None = None):
        if num_items <= 0 or dim <= 0:
            raise ValueError(f"ItemTable needs num_items > 0 and dim > 0, got {num_items} and {dim}.")
        self.vectors = torch.zeros(num_items, dim, dtype=torch.float32, device=device)
        self.fresh = torch.zeros(num_items, dtype=torch.bool, device=device)
        self.touched = torch.zeros(num_items, dtype=torch.bool, device=device)

    @property
    def num_items(self) -> int:
        return self.vectors.shape[0]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def device(self) -> torch.device:
        return self.vectors.device

    def stale(self, index: torch.LongTensor) -> torch.LongTensor:
        """The entries of `index` (unique catalog indices) whose vectors must be encoded before use."""
        return index[~self.fresh[index]]

    def fill(self, index: torch.LongTensor, vectors: torch.Tensor) -> None:
        """Stores freshly encoded `vectors` for the unique catalog indices `index`."""
        self.vectors[index] = vectors.detach().to(self.vectors.dtype)
        self.fresh[index] = True

    def lookup(self, index: torch.LongTensor) -> torch.Tensor:
        """A copy of the vectors at `index`; every entry must be fresh."""
        if not bool(self.fresh[index].all()):
            raise RuntimeError("ItemTable.lookup on stale entries: encode them first (ItemTable.stale / fill).")
        return self.vectors[index]

    def apply_gradient(self, index: torch.LongTensor, grad: torch.Tensor, learning_rate: float) -> None:
        """
        The pseudo-target update `h <- h - learning_rate * grad` for the rows at `index` (repeats are summed), which
        also marks them touched for the current window.
        """
        self.vectors.index_add_(0, index, grad.to(self.vectors.dtype), alpha=-learning_rate)
        self.touched[index] = True

    def touched_indices(self) -> torch.LongTensor:
        """Catalog indices touched in the current window, ascending."""
        return self.touched.nonzero().squeeze(1)

    def invalidate(self) -> None:
        """Ends a window: the encoder has changed, so every vector is stale and nothing is touched."""
        self.fresh.zero_()
        self.touched.zero_()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"vectors": self.vectors, "fresh": self.fresh, "touched": self.touched}

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        vectors = state_dict["vectors"]
        if tuple(vectors.shape) != tuple(self.vectors.shape):
            raise ValueError(
                f"ItemTable state has shape {tuple(vectors.shape)}, this table is {tuple(self.vectors.shape)} "
                "(was the catalog or item_dim changed since the checkpoint?)."
            )
        self.vectors.copy_(vectors)
        self.fresh.copy_(state_dict["fresh"])
        self.touched.copy_(state_dict["touched"])
