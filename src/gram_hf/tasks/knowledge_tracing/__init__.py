"""Knowledge tracing: predict a learner's next response from their history and the items' content."""

from ..synthetic_structure import SYNTHETIC_STRUCTURES, ItemStructure, SyntheticStructure
from .builder import KnowledgeTracingRawBuilder
from .canonical import build_interaction_data
from .collator import KnowledgeTracingCollator
from .csv import KnowledgeTracingCSVBuilder, load_kt_csv
from .duolingo import DuolingoBuilder, load_duolingo
from .ednet import EdNetBuilder, load_ednet
from .head import KnowledgeTracingHead
from .metrics import KnowledgeTracingMetrics
from .poj import POJBuilder, load_poj
from .raw_synthetic import (
    PRESETS,
    KTPreset,
    SyntheticKTTruth,
    write_synthetic_duolingo,
    write_synthetic_ednet,
    write_synthetic_kt_csv,
    write_synthetic_poj,
)
from .split_arguments import KnowledgeTracingSplitArguments
from .synthetic import SyntheticKnowledgeTracing, make_synthetic_knowledge_tracing
from .task import KNOWLEDGE_TRACING_TASK

__all__ = [
    "KNOWLEDGE_TRACING_TASK",
    "KnowledgeTracingMetrics",
    "PRESETS",
    "SYNTHETIC_STRUCTURES",
    "DuolingoBuilder",
    "EdNetBuilder",
    "ItemStructure",
    "KTPreset",
    "KnowledgeTracingCSVBuilder",
    "KnowledgeTracingCollator",
    "KnowledgeTracingHead",
    "KnowledgeTracingRawBuilder",
    "KnowledgeTracingSplitArguments",
    "POJBuilder",
    "SyntheticKTTruth",
    "SyntheticKnowledgeTracing",
    "SyntheticStructure",
    "build_interaction_data",
    "load_duolingo",
    "load_ednet",
    "load_kt_csv",
    "load_poj",
    "make_synthetic_knowledge_tracing",
    "write_synthetic_duolingo",
    "write_synthetic_ednet",
    "write_synthetic_kt_csv",
    "write_synthetic_poj",
]
