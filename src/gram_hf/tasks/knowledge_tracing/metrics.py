"""`compute_metrics` for knowledge tracing: the shipped `knowledge_tracing` metric over the Trainer's predictions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import EvalPrediction

from ...metrics.compute import AccumulatingMetrics, padding_mask, split_predictions, to_numpy
from ...metrics.knowledge_tracing.knowledge_tracing import knowledge_tracing_metrics


class KnowledgeTracingMetrics(AccumulatingMetrics):
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
            items = to_numpy(cold_start_items).reshape(-1)
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
        scores, items = split_predictions(eval_pred.predictions)
        labels = to_numpy(eval_pred.label_ids)
        mask = padding_mask(scores, labels, items)
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


__all__ = ["KnowledgeTracingMetrics"]
