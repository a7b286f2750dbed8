"""
Deprecated: the programs' shared pieces moved to [`gram_hf.scripts`] (arguments, synthetic-data cache, pipeline,
report), and the per-task runners became one, [`gram_hf.scripts.run_task`]. This module re-exports the old names and
will be removed in a future release.
"""

from __future__ import annotations

import warnings
from typing import Any

from .scripts import *  # noqa: F403
from .scripts import __all__ as _scripts_all
from .scripts import run_task
from .scripts.synthetic_cache import SYNTHETIC_MANIFEST_NAME

warnings.warn(
    "gram_hf.recipes is deprecated: import from gram_hf.scripts (run_knowledge_tracing and run_news_recommendation "
    "are gram_hf.scripts.run_task('knowledge_tracing' | 'news_recommendation', ...)).",
    FutureWarning,
    stacklevel=2,
)


def run_knowledge_tracing(data: Any, args: Any, *, recipe: str, source: str) -> dict:
    """Deprecated: `run_task("knowledge_tracing", data, args, ..., **args.data.task_options(data))`."""
    return run_task("knowledge_tracing", data, args, recipe=recipe, source=source, **args.data.task_options(data))


def run_news_recommendation(data: Any, args: Any, *, recipe: str, source: str) -> dict:
    """Deprecated: `run_task("news_recommendation", data, args, ...)`."""
    return run_task("news_recommendation", data, args, recipe=recipe, source=source)


__all__ = [*_scripts_all, "SYNTHETIC_MANIFEST_NAME", "run_knowledge_tracing", "run_news_recommendation"]
