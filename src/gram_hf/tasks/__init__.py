"""Tasks plug into the engine: each registers its head and brings its collator, data and metrics."""

from . import knowledge_tracing, news_recommendation, next_item

__all__ = ["knowledge_tracing", "news_recommendation", "next_item"]
