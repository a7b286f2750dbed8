"""Knowledge tracing: predict a learner's next response from their history and the items' content."""

from .collator import KnowledgeTracingCollator
from .head import KnowledgeTracingHead
from .synthetic import SyntheticKnowledgeTracing, make_synthetic_knowledge_tracing

__all__ = [
    "KnowledgeTracingCollator",
    "KnowledgeTracingHead",
    "SyntheticKnowledgeTracing",
    "make_synthetic_knowledge_tracing",
]
