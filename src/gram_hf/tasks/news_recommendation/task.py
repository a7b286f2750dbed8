"""News recommendation in the task registry: what the recipes and the benchmark harness train by name."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...task_registry import register_task
from .collator import NewsRecommendationCollator
from .head import NewsRecommendationHead
from .inference import NewsRecommender
from .metrics import NewsRecommendationMetrics
from .mind import NEWS_DEFAULT_POOLING, build_news_catalog

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ...data import InteractionData
    from ...items import ItemCatalog

logger = logging.getLogger(__name__)


def make_collator(data: InteractionData, head: NewsRecommendationHead, mode: str) -> NewsRecommendationCollator:
    return NewsRecommendationCollator(max_history=data.stats.get("max_history"))


def make_metrics(data: InteractionData) -> NewsRecommendationMetrics:
    return NewsRecommendationMetrics()


def make_catalog(
    data: InteractionData,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int | None = None,
    field_max_lengths: Sequence[int] | None = None,
) -> ItemCatalog:
    """Per-field token budgets: `field_max_lengths` in the order of the text fields, or `max_length` for each field."""
    lengths = field_max_lengths
    if lengths is None and max_length is not None:
        lengths = [max_length] * len(data.stats.get("text_fields") or ("title",))
    return build_news_catalog(data, tokenizer, max_lengths=lengths)


def splits(data: InteractionData) -> tuple[str, str]:
    """Early stopping on `validation`; the reported metrics on MIND's labelled `dev` split, as MIND papers report."""
    if "dev" in data:
        return "validation", "dev"
    logger.warning(
        "The validation split is MIND's dev split, which is also reported: pass --validation_fraction > 0 to "
        "early-stop on impressions held out of train instead."
    )
    return "validation", "validation"


def describe(data: InteractionData) -> str:
    sizes = ", ".join(f"{name} {len(data[name]):,}" for name in data.splits)
    return f"{data.num_items:,} news; rows: {sizes} (train: one click each, others: impressions)"


NEWS_RECOMMENDATION_TASK = register_task(
    "news_recommendation",
    recommender=NewsRecommender,
    head=NewsRecommendationHead,
    collator=make_collator,
    metrics=make_metrics,
    build_catalog=make_catalog,
    default_pooling=NEWS_DEFAULT_POOLING,
    metric_for_best_model="auc",
    splits=splits,
    describe=describe,
    metric_names={"auc": "AUC", "mrr": "MRR", "ndcg@5": "nDCG@5", "ndcg@10": "nDCG@10", "loss": "loss"},
)
