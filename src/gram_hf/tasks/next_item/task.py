"""Next-item recommendation in the task registry: what the recipes and the benchmark harness train by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...task_registry import register_task
from .collator import NextItemCollator
from .head import SASRecHead
from .inference import NextItemRecommender
from .metrics import NextItemMetrics

if TYPE_CHECKING:
    from ...data import InteractionData


def make_collator(data: InteractionData, head: SASRecHead, mode: str) -> NextItemCollator:
    """Training batches follow the head's loss; evaluation ranks each user's held-out item over the whole catalog."""
    return NextItemCollator.from_head(head, data.num_items, mode=mode)


def make_metrics(data: InteractionData) -> NextItemMetrics:
    return NextItemMetrics(data.items["train_count"])


def describe(data: InteractionData) -> str:
    sizes = ", ".join(f"{name} {len(data[name]):,}" for name in data.splits)
    cold = sum(bool(flag) for flag in data.items["cold_start"])
    return f"{data.num_items:,} items ({cold:,} never in train); users per split: {sizes}"


NEXT_ITEM_TASK = register_task(
    "next_item",
    recommender=NextItemRecommender,
    head=SASRecHead,
    collator=make_collator,
    metrics=make_metrics,
    default_pooling="mean",
    metric_for_best_model="ndcg@10",
    describe=describe,
    metric_names={
        "ndcg@10": "NDCG@10",
        "hr@10": "HR@10",
        "coverage@10": "Coverage@10",
        "surprisal@10": "Surprisal@10",
        "cold_ndcg@10": "cold-start NDCG@10",
        "cold_hr@10": "cold-start HR@10",
        "loss": "loss",
    },
)
