"""Task heads and their registry.

A head reads item vectors and a batch and returns a loss and scores; it never sees the encoder. Tasks register their
heads here (as PEFT registers its methods), so the engine resolves `GramConfig.head_type` without importing any task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers.utils import ModelOutput

HEAD_REGISTRY: dict[str, type[GramHead]] = {}


@dataclass
class HeadOutput(ModelOutput):
    """
    Output of a task head.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            The training loss, a mean over the batch's scored positions.
        scores (`torch.FloatTensor`):
            The head's predictions (logits) for the scored positions, padding included; its shape is the head's.
    """

    loss: torch.FloatTensor | None = None
    scores: torch.FloatTensor | None = None


class GramHead(nn.Module):
    """
    Base class of task heads.

    Subclasses set `item_ref_keys`, the batch keys whose integer tensors point into the rows of `item_vectors` (-1 for
    padding), optionally `scored_ref_key` (the one of them that `scores` is aligned with),
    and implement `forward(item_vectors, **batch) -> HeadOutput`. The engine uses `item_ref_keys` to expand
    references into per-occurrence rows in `e2e` mode and to count occurrences.
    """

    item_ref_keys: ClassVar[tuple[str, ...]] = ()
    # The reference key aligned with `scores` (one score per reference), if any. Evaluation then returns, next to the
    # scores, the catalog index of every scored position, so metrics can single out e.g. cold-start items.
    scored_ref_key: ClassVar[str | None] = None

    def __init__(self, item_dim: int, **kwargs: Any):
        super().__init__()
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected head_config keys: {sorted(kwargs)}.")
        self.item_dim = item_dim

    def forward(self, item_vectors: torch.Tensor, **batch: torch.Tensor) -> HeadOutput:  # pragma: no cover
        raise NotImplementedError


def register_head(name: str):
    """Class decorator registering a [`GramHead`] under `name`, the value of `GramConfig.head_type` that selects it."""

    def decorator(cls: type[GramHead]) -> type[GramHead]:
        if not issubclass(cls, GramHead):
            raise TypeError(f"{cls.__name__} must subclass GramHead to be registered.")
        if name in HEAD_REGISTRY and HEAD_REGISTRY[name] is not cls:
            raise ValueError(f"A head named {name!r} is already registered ({HEAD_REGISTRY[name].__name__}).")
        HEAD_REGISTRY[name] = cls
        cls.head_type = name
        return cls

    return decorator


def get_head_class(name: str) -> type[GramHead]:
    """The head class registered under `name`."""
    if name not in HEAD_REGISTRY:
        raise ValueError(f"Unknown head_type {name!r}; registered heads: {sorted(HEAD_REGISTRY)}.")
    return HEAD_REGISTRY[name]
