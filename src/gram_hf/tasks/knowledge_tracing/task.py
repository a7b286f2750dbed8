"""Knowledge tracing in the task registry: what the recipes and the benchmark harness train by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...task_registry import register_task
from .collator import KnowledgeTracingCollator
from .head import KnowledgeTracingHead
from .inference import KnowledgeTracingRecommender
from .metrics import KnowledgeTracingMetrics

if TYPE_CHECKING:
    from ...data import InteractionData


def make_collator(
    data: InteractionData, head: KnowledgeTracingHead, mode: str, *, max_seq_len: int | None = None
) -> KnowledgeTracingCollator:
    """Training and evaluation batches are alike; the head's features are the collator's feature columns."""
    return KnowledgeTracingCollator(max_seq_len=max_seq_len, feature_columns=list(head.features))


def make_metrics(data: InteractionData) -> KnowledgeTracingMetrics:
    return KnowledgeTracingMetrics(cold_start_items=data.items["cold_start"])


def describe(data: InteractionData) -> str:
    stats = data.stats
    return (
        f"{stats['users']['total']:,} learners, {stats['interactions']['total']:,} interactions, "
        f"{stats['items']['total']:,} items ({stats['items']['cold_start']:,} cold-start)"
    )


KNOWLEDGE_TRACING_TASK = register_task(
    "knowledge_tracing",
    recommender=KnowledgeTracingRecommender,
    head=KnowledgeTracingHead,
    collator=make_collator,
    metrics=make_metrics,
    default_pooling="mean",
    metric_for_best_model="auc",
    describe=describe,
    metric_names={
        "auc": "AUC",
        "cold_start_auc": "cold-start AUC",
        "accuracy": "accuracy",
        "cold_start_accuracy": "cold-start accuracy",
        "loss": "loss",
    },
)
