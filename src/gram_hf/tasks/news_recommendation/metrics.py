"""`compute_metrics` for news recommendation: the shipped `news_recommendation` metric (the MIND scorer's)."""

from __future__ import annotations

from collections.abc import Sequence

from transformers import EvalPrediction

from ...metrics.compute import UNKNOWN_LABEL, AccumulatingMetrics, padding_mask, split_predictions, to_numpy
from ...metrics.news_recommendation.news_recommendation import DEFAULT_K_VALUES, impression_ranking_metrics


class NewsRecommendationMetrics(AccumulatingMetrics):
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
        scores, items = split_predictions(eval_pred.predictions)
        labels = to_numpy(eval_pred.label_ids)
        if labels.ndim != 2:
            raise ValueError(f"Expected [impressions, candidates] labels, got shape {labels.shape}.")
        mask = padding_mask(scores, labels, items)
        # Impressions with unknown labels (-1, a labelless split) cannot be scored: they are emptied, hence skipped.
        mask &= ~(labels == UNKNOWN_LABEL).any(axis=1, keepdims=True)
        # Row-major selection keeps each impression's candidates together and in order.
        collected = self._collect((scores[mask], labels[mask], mask.sum(axis=1)), compute_result)
        if collected is None:
            return {}
        return impression_ranking_metrics(*collected, k_values=self.k_values)


__all__ = ["NewsRecommendationMetrics"]
