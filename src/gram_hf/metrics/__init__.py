"""
Local `evaluate` metric modules shipped with gram-hf (no Hub needed).

Each metric lives in its own folder `gram_hf/metrics/<name>/<name>.py`, the layout `evaluate.load(<folder>)` expects,
and is self-contained (evaluate copies the script into its modules cache before importing it). Load one with
[`load_metric`] or `evaluate.load(metric_path(name))`, or import its class, e.g.
`gram_hf.metrics.knowledge_tracing.knowledge_tracing.KnowledgeTracing`.

- `knowledge_tracing`: AUC and accuracy of response predictions, overall and on cold-start interactions;
- `news_recommendation`: per-impression AUC, MRR and nDCG@5/10 averaged over impressions (the MIND scorer's).

The same metrics as `compute_metrics` callables for [`GramTrainer`] live with their tasks (`KnowledgeTracingMetrics`
in `gram_hf.tasks.knowledge_tracing`, `NewsRecommendationMetrics` in `gram_hf.tasks.news_recommendation`,
`NextItemMetrics` in `gram_hf.tasks.next_item`); `from gram_hf.metrics import KnowledgeTracingMetrics` still works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METRICS_DIR = Path(__file__).resolve().parent


def available_metrics() -> list[str]:
    """The names of the shipped metric modules."""
    return sorted(path.name for path in METRICS_DIR.iterdir() if (path / f"{path.name}.py").is_file())


def metric_path(name: str) -> str:
    """The folder of the shipped metric `name`, for `evaluate.load(metric_path(name))`."""
    folder = METRICS_DIR / name
    if not (folder / f"{name}.py").is_file():
        raise ValueError(f"Unknown gram-hf metric {name!r}; available: {available_metrics()}.")
    return str(folder)


def load_metric(name: str, **kwargs: Any):
    """`evaluate.load` of the shipped metric `name` (keyword arguments are passed on)."""
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)


# The callables moved to their tasks; they stay importable from here, resolved on first use because the tasks import
# this package (an import at the top would be a circle).
_TASK_METRICS = {
    "KnowledgeTracingMetrics": "gram_hf.tasks.knowledge_tracing.metrics",
    "NewsRecommendationMetrics": "gram_hf.tasks.news_recommendation.metrics",
    "NextItemMetrics": "gram_hf.tasks.next_item.metrics",
}


def __getattr__(name: str) -> Any:
    if name in _TASK_METRICS:
        import importlib

        return getattr(importlib.import_module(_TASK_METRICS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "METRICS_DIR",
    "KnowledgeTracingMetrics",
    "NewsRecommendationMetrics",
    "NextItemMetrics",
    "available_metrics",
    "load_metric",
    "metric_path",
]
