"""
What every task's `compute_metrics` callable shares: reading the Trainer's `EvalPrediction` (padded score and label
matrices, and the catalog index of every scored position) as numpy, and keeping batches for
`TrainingArguments.batch_eval_metrics`.

The callables themselves live with their tasks (`gram_hf.tasks.<task>.metrics`) and call the shipped metric scripts'
numpy functions directly rather than `evaluate.Metric.compute`, so an evaluation writes no Arrow cache files; the
definitions are the same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# The Trainer pads labels, predictions and scored items with this value when it concatenates batches; heads use it for
# padding labels and `GramTrainer.prediction_step` for padding scored items.
PADDING = -100
# The news collator's label of candidates whose click is unknown (a labelless test split).
UNKNOWN_LABEL = -1


def to_numpy(value: Any) -> np.ndarray:
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


def split_predictions(predictions: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """`(scores, scored_items)` of `EvalPrediction.predictions`: a pair (heads with a `scored_ref_key`) or scores."""
    if isinstance(predictions, (tuple, list)):
        if len(predictions) != 2:
            raise ValueError(
                f"Expected predictions (scores, scored_items) as GramTrainer returns them, got a tuple of "
                f"{len(predictions)} arrays."
            )
        return to_numpy(predictions[0]), to_numpy(predictions[1])
    return to_numpy(predictions), None


def padding_mask(scores: np.ndarray, labels: np.ndarray, items: np.ndarray | None) -> np.ndarray:
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


class AccumulatingMetrics:
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


__all__ = ["PADDING", "UNKNOWN_LABEL", "AccumulatingMetrics", "padding_mask", "split_predictions", "to_numpy"]
