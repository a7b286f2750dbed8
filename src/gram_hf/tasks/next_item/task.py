"""Next-item recommendation in the task registry: what the recipes and the benchmark harness train by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ...task_registry import register_task
from .collator import NextItemCollator
from .head import SASRecHead
from .inference import NextItemRecommender
from .metrics import NextItemMetrics
from .slicing import sequence_slices

TRAIN_SLICES = ("all", "last")

if TYPE_CHECKING:
    import datasets

    from ...data import InteractionData


def make_collator(data: InteractionData, head: SASRecHead, mode: str) -> NextItemCollator:
    """
    Training batches follow the head's loss and score the items of the train split only (see
    [`NextItemCollator`]'s `training_items`: an item first seen after training is no negative); evaluation ranks
    each user's held-out item over the whole catalog and, when it is a cold-start item, also among the cold-start
    items only.
    """
    options = {}
    counts = np.asarray(data.items["train_count"])
    if (counts == 0).any():
        options["training_items"] = torch.from_numpy(np.flatnonzero(counts > 0))
    return NextItemCollator.from_head(head, data.num_items, mode=mode, **options)


def make_train_dataset(
    data: InteractionData, head: SASRecHead, train_slices: str = "all", slice_stride: int | None = None
) -> datasets.Dataset:
    """
    The training rows: with `train_slices="all"` every target of every sequence, as [`sequence_slices`] of the
    head's `max_length` (`slice_stride` apart, default `max_length`); with `"last"` one row per user whose last
    `max_length` targets train (the original SASRec).
    """
    if train_slices not in TRAIN_SLICES:
        raise ValueError(f"train_slices must be one of {TRAIN_SLICES}, got {train_slices!r}.")
    if train_slices == "last":
        return data["train"]
    return sequence_slices(data["train"], head.max_length, slice_stride)


def make_metrics(data: InteractionData) -> NextItemMetrics:
    return NextItemMetrics(data.items["train_count"])


def describe(data: InteractionData) -> str:
    sizes = ", ".join(f"{name} {len(data[name]):,}" for name in data.splits)
    cold = sum(bool(flag) for flag in data.items["cold_start"])
    return f"{data.num_items:,} items ({cold:,} never in train); users per split: {sizes}"


NEXT_ITEM_TASK = register_task(
    "next_item",
    recommender=NextItemRecommender,
    train_dataset=make_train_dataset,
    head=SASRecHead,
    collator=make_collator,
    metrics=make_metrics,
    default_pooling="mean",
    metric_for_best_model="ndcg@10",
    describe=describe,
    validation_context=lambda model: model.head.ranking_by_scores(),
    metric_names={
        "ndcg@10": "NDCG@10",
        "hr@10": "HR@10",
        "coverage@10": "Coverage@10",
        "surprisal@10": "Surprisal@10",
        "cold_ndcg@10": "cold-start NDCG@10",
        "cold_hr@10": "cold-start HR@10",
        "cold_only_ndcg@10": "cold-start NDCG@10 among new items",
        "cold_only_hr@10": "cold-start HR@10 among new items",
        "loss": "loss",
    },
)
