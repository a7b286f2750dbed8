"""
`compute_metrics` callables for [`GramTrainer`]: they read the Trainer's `EvalPrediction` (padded score and label
matrices, and the catalog index of every scored position) and return the shipped metrics as plain Python numbers.

They call the metric scripts' numpy functions directly rather than `evaluate.Metric.compute`, so an evaluation writes
no Arrow cache files; the definitions are the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import EvalPrediction

from .knowledge_tracing.knowledge_tracing import knowledge_tracing_metrics
from .news_recommendation.news_recommendation import DEFAULT_K_VALUES, impression_ranking_metrics

# The Trainer pads labels, predictions and scored items with this value when it concatenates batches; heads use it for
# padding labels and `GramTrainer.prediction_step` for padding scored items.
PADDING = -100
# The news collator's label of candidates whose click is unknown (a labelless test split).
UNKNOWN_LABEL = -1


def _to_numpy(value: Any) -> np.ndarray:
    """A numpy array of a tensor (any device, bf16 included), array, list or `datasets` column."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.is_floating_point() and value.dtype not in (torch.float32, torch.float64):
            value = value.float()  # numpy has no bfloat16
        return value.cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    if not isinstance(value, (list, tuple)):
        value = list(value)
    return np.asarray(value)


def _split_predictions(predictions: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """`(scores, scored_items)` of `EvalPrediction.predictions`: a pair (heads with a `scored_ref_key`) or scores."""
    if isinstance(predictions, (tuple, list)):
        if len(predictions) != 2:
            raise ValueError(
                f"Expected predictions (scores, scored_items) as GramTrainer returns them, got a tuple of "
                f"{len(predictions)} arrays."
            )
        return _to_numpy(predictions[0]), _to_numpy(predictions[1])
    return _to_numpy(predictions), None


def _padding_mask(scores: np.ndarray, labels: np.ndarray, items: np.ndarray | None) -> np.ndarray:
    """The real (non-padding) positions: labels other than -100; checks that shapes and padding agree."""
    if scores.shape != labels.shape:
        raise ValueError(f"Scores of shape {scores.shape} do not match labels of shape {labels.shape}.")
    mask = labels != PADDING
    if items is not None:
        if items.shape != labels.shape:
            raise ValueError(f"Scored items of shape {items.shape} do not match labels of shape {labels.shape}.")
        if (items[mask] < 0).any():
            raise ValueError("Labelled positions without a scored item (-100): labels and item references disagree.")
    return mask


class _Accumulating:
    """
    Support for `TrainingArguments.batch_eval_metrics`: the Trainer then calls the metric once per batch with
    `compute_result=False` and on the last batch with `compute_result=True`. AUC needs every prediction, so batches are
    kept (as flat arrays of real positions only) until the last one.
    """

    def __init__(self):
        self._pending: list[tuple[np.ndarray, ...]] = []

    def reset(self) -> None:
        """Drops batches kept from an unfinished batched evaluation."""
        self._pending = []

    def _collect(self, parts: tuple[np.ndarray, ...], compute_result: bool) -> tuple[np.ndarray, ...] | None:
        self._pending.append(parts)
        if not compute_result:
            return None
        pending, self._pending = self._pending, []
        if len(pending) == 1:
            return pending[0]
        return tuple(np.concatenate(arrays) for arrays in zip(*pending))


class KnowledgeTracingMetrics(_Accumulating):
    """
    `compute_metrics` for knowledge tracing: `auc` and `accuracy` (threshold: logit 0) over all answered positions,
    and, with `cold_start_items`, `cold_start_auc`, `cold_start_accuracy` and `num_cold_start` over the interactions
    with a cold-start item (AUCs are NaN when their interactions lack a correct or a wrong response). Definitions: the
    shipped `knowledge_tracing` metric.

    Reads `EvalPrediction.predictions` as `(scores, scored_items)`, as [`GramTrainer`] returns them for the
    knowledge-tracing head (scores `[N, T]` logits, scored_items `[N, T]` catalog indices, -100 for padding), or as
    plain scores when no cold-start split is asked for; `label_ids` `[N, T]` responses with -100 for padding.

    Args:
        cold_start_items (`Sequence[int]`, `np.ndarray`, `torch.Tensor` or boolean mask, *optional*):
            The cold-start items: catalog indices, or a boolean mask over the catalog (e.g. the `cold_start` column of
            the items dataset, where row i is catalog index i).

    Example:

    ```python
    >>> trainer = GramTrainer(..., compute_metrics=KnowledgeTracingMetrics(cold_start_items=data.items["cold_start"]))
    >>> trainer.evaluate()["eval_cold_start_auc"]
    ```
    """

    def __init__(self, cold_start_items: Sequence[int] | Sequence[bool] | np.ndarray | torch.Tensor | None = None):
        super().__init__()
        self.cold_start_mask: np.ndarray | None = None
        # A boolean mask must cover every scored item; a list of indices marks the rest as not cold-start.
        self._mask_covers_catalog = False
        if cold_start_items is not None:
            items = _to_numpy(cold_start_items).reshape(-1)
            if items.dtype == bool:
                self.cold_start_mask = items
                self._mask_covers_catalog = True
            elif items.size == 0 or np.issubdtype(items.dtype, np.integer):
                items = items.astype(np.int64)
                if items.size and items.min() < 0:
                    raise ValueError("cold_start_items must be catalog indices (>= 0) or a boolean mask.")
                self.cold_start_mask = np.zeros(int(items.max()) + 1 if items.size else 0, dtype=bool)
                self.cold_start_mask[items] = True
            else:
                raise TypeError(
                    f"cold_start_items must be catalog indices (integers) or a boolean mask, got dtype {items.dtype}."
                )

    def __call__(self, eval_pred: EvalPrediction, compute_result: bool = True) -> dict[str, float]:
        """
        The metrics of `eval_pred` (with `batch_eval_metrics`: `{}` until the batch with `compute_result=True`, then
        the metrics of all batches).
        """
        scores, items = _split_predictions(eval_pred.predictions)
        labels = _to_numpy(eval_pred.label_ids)
        mask = _padding_mask(scores, labels, items)
        parts = (scores[mask], labels[mask])
        if self.cold_start_mask is not None:
            if items is None:
                raise ValueError(
                    "cold_start_items needs the scored items beside the scores: predictions (scores, scored_items) as "
                    "GramTrainer returns them for a head with a scored_ref_key."
                )
            parts += (self._is_cold_start(items[mask].astype(np.int64)),)
        collected = self._collect(parts, compute_result)
        if collected is None:
            return {}
        return knowledge_tracing_metrics(*collected, prediction_type="logits")

    def _is_cold_start(self, items: np.ndarray) -> np.ndarray:
        mask = self.cold_start_mask
        inside = items < mask.size
        if self._mask_covers_catalog and not inside.all():
            raise ValueError(
                f"The cold_start_items mask covers {mask.size} items, but item {int(items[~inside].max())} was scored."
            )
        flags = np.zeros(items.shape, dtype=bool)
        flags[inside] = mask[items[inside]]
        return flags


class NewsRecommendationMetrics(_Accumulating):
    """
    `compute_metrics` for news recommendation: `auc`, `mrr` and `ndcg@k` computed per impression and averaged, with
    `num_impressions` and `num_skipped` (impressions without a click or without a non-click). Definitions: the shipped
    `news_recommendation` metric (the official MIND scorer's).

    Reads `EvalPrediction.predictions` as `(scores, scored_items)` or plain scores, `[N, C]`: one impression per row,
    one candidate per column, any value at padding; `label_ids` `[N, C]` clicks (1/0) with -100 at padding, which
    decides the candidates. Impressions holding an unknown label (-1, as the news collator marks a labelless split)
    are skipped whole, like impressions without a click.

    Args:
        k_values (`Sequence[int]`, *optional*, defaults to `(5, 10)`): the cut-offs of the reported `ndcg@k`.
    """

    def __init__(self, k_values: Sequence[int] = DEFAULT_K_VALUES):
        super().__init__()
        self.k_values = tuple(k_values)

    def __call__(self, eval_pred: EvalPrediction, compute_result: bool = True) -> dict[str, float]:
        """
        The metrics of `eval_pred` (with `batch_eval_metrics`: `{}` until the batch with `compute_result=True`, then
        the metrics of all batches).
        """
        scores, items = _split_predictions(eval_pred.predictions)
        labels = _to_numpy(eval_pred.label_ids)
        if labels.ndim != 2:
            raise ValueError(f"Expected [impressions, candidates] labels, got shape {labels.shape}.")
        mask = _padding_mask(scores, labels, items)
        # Impressions with unknown labels (-1, a labelless split) cannot be scored: they are emptied, hence skipped.
        mask &= ~(labels == UNKNOWN_LABEL).any(axis=1, keepdims=True)
        # Row-major selection keeps each impression's candidates together and in order.
        collected = self._collect((scores[mask], labels[mask], mask.sum(axis=1)), compute_result)
        if collected is None:
            return {}
        return impression_ranking_metrics(*collected, k_values=self.k_values)


__all__ = ["KnowledgeTracingMetrics", "NewsRecommendationMetrics"]
