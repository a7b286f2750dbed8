"""Tasks plug into the engine: each registers itself (`gram_hf.register_task`): head, collator, metrics, catalog."""

from . import knowledge_tracing, news_recommendation, next_item

__all__ = ["knowledge_tracing", "news_recommendation", "next_item"]
