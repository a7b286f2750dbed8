"""
Local `evaluate` metric modules shipped with gram-hf (no Hub needed).

Each metric lives in its own folder `gram_hf/metrics/<name>/<name>.py`, the layout `evaluate.load(<folder>)` expects,
and is self-contained (evaluate copies the script into its modules cache before importing it). Load one with
[`load_metric`] or `evaluate.load(metric_path(name))`, or import its class, e.g.
`gram_hf.metrics.knowledge_tracing.knowledge_tracing.KnowledgeTracing`.

- `knowledge_tracing`: AUC and accuracy of response predictions, overall and on cold-start interactions;
- `news_recommendation`: per-impression AUC, MRR and nDCG@5/10 averaged over impressions (the MIND scorer's).

[`KnowledgeTracingMetrics`] and [`NewsRecommendationMetrics`] are the same metrics as `compute_metrics` callables for
[`GramTrainer`].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .compute import KnowledgeTracingMetrics, NewsRecommendationMetrics

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


__all__ = [
    "METRICS_DIR",
    "KnowledgeTracingMetrics",
    "NewsRecommendationMetrics",
    "available_metrics",
    "load_metric",
    "metric_path",
]
