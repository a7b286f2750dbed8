"""[`ItemTable`]: GRAM's cached item vectors and the state of the current window."""

from __future__ import annotations

import math

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

    With `track_drift=True` (`gram_interval="auto"`) the table also keeps each row as the encoder produced it and
    the window's drift: how far the pseudo-target updates have *systematically* moved the touched rows from those
    encodings, relative to their norm ([`ItemTable.drift`]). It is updated incrementally from the rows each step
    changes, so deciding costs no encoding and no pass over the catalog.

    Args:
        num_items (`int`): catalog size.
        dim (`int`): item-vector dimension.
        device (`torch.device`, *optional*): where the table lives (the training device).
        track_drift (`bool`, *optional*, defaults to `False`): keep the encodings and the drift (twice the memory).
    """

    def __init__(self, num_items: int, dim: int, device: torch.device | str | None = None, track_drift: bool = False):
        if num_items <= 0 or dim <= 0:
            raise ValueError(f"ItemTable needs num_items > 0 and dim > 0, got {num_items} and {dim}.")
        self.vectors = torch.zeros(num_items, dim, dtype=torch.float32, device=device)
        self.fresh = torch.zeros(num_items, dtype=torch.bool, device=device)
        self.touched = torch.zeros(num_items, dtype=torch.bool, device=device)
        # The encodings the open window started from, and float64 sums over the touched rows of ||H~ - H||^2, ||H||^2
        # and the steps' own moves sum_s ||delta_s||^2 (float64: they are updated by differences at every step of a
        # window that may last an epoch).
        self.encoded = torch.zeros_like(self.vectors) if track_drift else None
        self._drift_sums = torch.zeros(3, dtype=torch.float64, device=device)

    @property
    def tracks_drift(self) -> bool:
        return self.encoded is not None

    def drift_components(self) -> dict[str, float]:
        """
        Over the rows touched in the open window (`H` their encodings, `H~` their pseudo-targets now, `delta_s` the
        move of step `s`): `total` = `||H~ - H|| / ||H||`; `noise` = `sqrt(sum_s ||delta_s||^2) / ||H||`, where the
        total would be if the steps' moves were independent (a random walk); `systematic` = `sqrt(max(total^2 -
        noise^2, 0))`, the part of the total the steps agree on (the cross terms `2 sum_{s<t} <delta_s, delta_t>`).
        All 0 when nothing is touched. Needs `track_drift=True`.
        """
        if not self.tracks_drift:
            raise RuntimeError("ItemTable.drift needs an ItemTable built with track_drift=True.")
        moved, norm, steps = self._drift_sums.tolist()
        if norm <= 0:
            return {"total": 0.0, "noise": 0.0, "systematic": 0.0}
        return {
            "total": math.sqrt(max(moved, 0.0) / norm),
            "noise": math.sqrt(max(steps, 0.0) / norm),
            "systematic": math.sqrt(max(moved - steps, 0.0) / norm),
        }

    def drift(self) -> float:
        """
        The systematic drift of the open window ([`ItemTable.drift_components`]): how far the pseudo-targets have moved
        from the encodings in the directions the steps agree on. Pseudo-target updates that cancel out (noisy
        gradients, a random walk around the encodings) leave it near 0 however large each step is; updates that keep
        pushing the same way make it grow with the window. Needs `track_drift=True`.
        """
        return self.drift_components()["systematic"]

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
        if self.tracks_drift:
            self.encoded[index] = self.vectors[index]

    def lookup(self, index: torch.LongTensor) -> torch.Tensor:
        """A copy of the vectors at `index`; every entry must be fresh."""
        if not bool(self.fresh[index].all()):
            raise RuntimeError("ItemTable.lookup on stale entries: encode them first (ItemTable.stale / fill).")
        return self.vectors[index]

    def apply_gradient(self, index: torch.LongTensor, grad: torch.Tensor, learning_rate: float) -> None:
        """
        The pseudo-target update `h <- h - learning_rate * grad` for the rows at `index` (repeats are summed), which
        also marks them touched for the current window. One optimizer step's update; see [`apply_gradients`] for a
        step whose gradients come in parts.
        """
        self.apply_gradients([(index, grad)], learning_rate)

    def apply_gradients(self, parts: list[tuple[torch.LongTensor, torch.Tensor]], learning_rate: float) -> None:
        """
        One optimizer step's pseudo-target update from its parts `(index, grad)` (e.g. one per process, in rank order),
        applied in order; with `track_drift=True` the step's move counts once in the drift, whatever the parts.
        """
        if not self.tracks_drift:
            for index, grad in parts:
                self.vectors.index_add_(0, index, grad.to(self.vectors.dtype), alpha=-learning_rate)
                self.touched[index] = True
            return
        rows = torch.unique(torch.cat([index for index, _ in parts]))
        newly_touched = rows[~self.touched[rows]]
        encoded = self.encoded[rows].double()
        before = self.vectors[rows].double()
        for index, grad in parts:
            self.vectors.index_add_(0, index, grad.to(self.vectors.dtype), alpha=-learning_rate)
            self.touched[index] = True
        after = self.vectors[rows].double()
        self._drift_sums[0] += (after - encoded).pow(2).sum() - (before - encoded).pow(2).sum()
        self._drift_sums[1] += self.encoded[newly_touched].double().pow(2).sum()
        self._drift_sums[2] += (after - before).pow(2).sum()

    def touched_indices(self) -> torch.LongTensor:
        """Catalog indices touched in the current window, ascending."""
        return self.touched.nonzero().squeeze(1)

    def invalidate(self) -> None:
        """Ends a window: the encoder has changed, so every vector is stale and nothing is touched."""
        self.fresh.zero_()
        self.touched.zero_()
        self._drift_sums.zero_()

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"vectors": self.vectors, "fresh": self.fresh, "touched": self.touched}
        if self.tracks_drift:
            state.update(encoded=self.encoded, drift_sums=self._drift_sums)
        return state

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
        if self.tracks_drift:
            if "encoded" not in state_dict:
                raise ValueError(
                    "The ItemTable state holds no encodings to measure drift from: the checkpoint was written with a "
                    "fixed gram_interval; resume it with that interval, not 'auto'."
                )
            self.encoded.copy_(state_dict["encoded"])
            self._drift_sums.copy_(state_dict["drift_sums"])
