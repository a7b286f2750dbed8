"""
News-recommendation metrics for `evaluate`: per-impression AUC, MRR and nDCG@k averaged over impressions (MIND).

A self-contained metric script (numpy, datasets and evaluate only): `evaluate.load` copies this file into its modules
cache before importing it, so it must not import from gram-hf.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{wu-etal-2020-mind,
    title = "{MIND}: A Large-scale Dataset for News Recommendation",
    author = "Wu, Fangzhao and Qiao, Ying and Chen, Jiun-Hung and Wu, Chuhan and Qi, Tao and Lian, Jianxun and
              Liu, Danyang and Xie, Xing and Gao, Jianfeng and Wu, Winnie and Zhou, Ming",
    booktitle = "Proceedings of the 58th Annual Meeting of the Association for Computational Linguistics",
    year = "2020",
    publisher = "Association for Computational Linguistics",
    doi = "10.18653/v1/2020.acl-main.331",
    pages = "3597--3606",
}
"""

_DESCRIPTION = """\
The ranking metrics of the MIND news-recommendation benchmark. An impression is a list of candidate news shown to a
user, each clicked (1) or not (0); the model scores every candidate. Each metric is computed per impression and
averaged over impressions, with the official MIND scorer's definitions:

- `auc`: ROC AUC of the impression's scores (ties get average ranks, as `sklearn.metrics.roc_auc_score`);
- `mrr`: the sum over clicked candidates of 1 / rank, divided by the number of clicks (so a perfect ranking of several
  clicks scores below 1);
- `ndcg@k`: DCG@k / IDCG@k with gain 2^y - 1 and discount log2(rank + 1), rank 1-based by descending score.

Impressions without a click or without a non-clicked candidate are skipped for every metric and counted in
`num_skipped`: AUC is undefined there. The official scorer does not skip them: with current scikit-learn (1.x) its
`roc_auc_score` returns NaN with an `UndefinedMetricWarning` for such an impression (older releases raised); an
impression without a click is also NaN in its MRR and nDCG (0 / 0), one made only of clicks keeps its MRR and nDCG
(nDCG 1), and any NaN makes the scorer's mean NaN. gram-hf keeps the skip, so its means stay defined and equal the
scorer's over the impressions that have both a click and a non-click. Tied scores: MRR and nDCG are
averaged over all orders of the tied candidates (as `sklearn.metrics.ndcg_score` with `ignore_ties=False`), so they
do not depend on the input order; without ties they equal the official scorer's values, which break ties by sort order.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): per impression, the score of each candidate.
    references (`list` of `list` of `int`): per impression, 1 for a clicked candidate, 0 otherwise (no padding).
    k_values (`Sequence[int]`, *optional*, defaults to `(5, 10)`): the cut-offs of the reported `ndcg@k`.

Returns:
    auc (`float`): mean per-impression ROC AUC.
    mrr (`float`): mean per-impression mean reciprocal rank.
    ndcg@k (`float`), for each k in `k_values`: mean per-impression nDCG@k.
    num_impressions (`int`): the number of impressions given.
    num_skipped (`int`): impressions left out of the means (no click, or nothing but clicks).
    The means are NaN when every impression is skipped.

Examples:
    >>> news = evaluate.load(gram_hf.metrics.metric_path("news_recommendation"))
    >>> news.compute(predictions=[[0.1, 0.9, 0.3], [0.5, 0.2]], references=[[0, 1, 0], [0, 0]])
    {'auc': 1.0, 'mrr': 1.0, 'ndcg@5': 1.0, 'ndcg@10': 1.0, 'num_impressions': 2, 'num_skipped': 1}
"""

DEFAULT_K_VALUES = (5, 10)


def impression_ranking_metrics(
    scores: np.ndarray, labels: np.ndarray, lengths: np.ndarray, k_values: Sequence[int] = DEFAULT_K_VALUES
) -> dict[str, float]:
    """
    The news-recommendation metrics of impressions given flat: `scores` and `labels` concatenated over impressions,
    `lengths` the number of candidates of each impression (0 allowed). Vectorised over all impressions at once.

    Args:
        scores (`np.ndarray` of shape `(N,)`): candidate scores.
        labels (`np.ndarray` of shape `(N,)`): 1 = clicked, 0 = not clicked.
        lengths (`np.ndarray` of shape `(M,)`): candidates per impression, summing to N.
        k_values (`Sequence[int]`, *optional*, defaults to `(5, 10)`): the nDCG cut-offs.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    lengths = np.asarray(lengths).reshape(-1)
    k_values = tuple(k_values)
    if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in k_values):
        raise ValueError(f"k_values must be positive integers, got {k_values}.")
    if lengths.size and (not np.issubdtype(lengths.dtype, np.integer) or lengths.min() < 0):
        raise ValueError("lengths must be non-negative integers.")
    lengths = lengths.astype(np.int64)
    if scores.shape != labels.shape or int(lengths.sum()) != scores.size:
        raise ValueError(
            f"Got {scores.size} scores, {labels.size} labels and impression lengths summing to {int(lengths.sum())}."
        )
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} predictions are NaN or infinite.")
    invalid = (labels != 0) & (labels != 1)
    if invalid.any():
        raise ValueError(
            f"references must be 0 or 1 (remove padding first); got {int(invalid.sum())} other values, e.g. "
            f"{np.unique(labels[invalid])[:5].tolist()}."
        )

    num_impressions = lengths.size
    impression = np.repeat(np.arange(num_impressions), lengths)
    # Candidates by impression, and within an impression by descending score; `impression` stays as it is (sorted).
    order = np.lexsort((-scores, impression))
    scores, labels = scores[order], labels[order]
    position = np.arange(scores.size) - (np.cumsum(lengths) - lengths)[impression]  # 0-based rank in the impression
    # Tie groups: runs of equal scores within an impression. A candidate of a group of `size` whose first member has
    # `before` candidates ranked above it takes each rank before + 1 .. before + size with equal probability under a
    # random order of the ties; MRR and DCG use the expectation of 1/rank and of the discount over those ranks.
    starts_group = np.ones(scores.size, dtype=bool)
    starts_group[1:] = (scores[1:] != scores[:-1]) | (impression[1:] != impression[:-1])
    group_start = np.flatnonzero(starts_group)
    group = np.cumsum(starts_group) - 1
    size = np.diff(np.append(group_start, scores.size))[group]
    before = position[group_start][group]

    positives = np.bincount(impression, weights=labels, minlength=num_impressions)
    negatives = lengths - positives
    valid = (positives > 0) & (negatives > 0)
    results: dict[str, float] = {}

    # AUC = (sum of the positives' ascending average ranks - P(P+1)/2) / (P * N), per impression.
    ascending_rank = lengths[impression] - before - (size - 1) / 2.0
    rank_sums = np.bincount(impression, weights=labels * ascending_rank, minlength=num_impressions)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sums - positives * (positives + 1) / 2.0) / (positives * negatives)
    results["auc"] = _mean(auc[valid])

    max_length = int(lengths.max()) if lengths.size else 0
    ranks = np.arange(1, max_length + 1, dtype=np.float64)
    reciprocal_rank = _mean_over_ranks(1.0 / ranks, before, size)
    with np.errstate(divide="ignore", invalid="ignore"):
        mrr = np.bincount(impression, weights=labels * reciprocal_rank, minlength=num_impressions) / positives
    results["mrr"] = _mean(mrr[valid])

    for k in k_values:
        discounts = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
        # Gains 2^y - 1 are the labels themselves for binary clicks.
        expected_discount = _mean_over_ranks(discounts, before, size)
        dcg = np.bincount(impression, weights=labels * expected_discount, minlength=num_impressions)
        # The ideal DCG@k ranks the impression's clicks first: the sum of the first min(P, k) discounts.
        ideal = np.concatenate([[0.0], np.cumsum(discounts)])[positives.astype(np.int64)]
        with np.errstate(divide="ignore", invalid="ignore"):
            results[f"ndcg@{k}"] = _mean((dcg / ideal)[valid])

    results["num_impressions"] = int(num_impressions)
    results["num_skipped"] = int(num_impressions - valid.sum())
    return results


def news_recommendation_metrics(
    predictions: Sequence[Sequence[float]],
    references: Sequence[Sequence[int]],
    k_values: Sequence[int] = DEFAULT_K_VALUES,
) -> dict[str, float]:
    """The news-recommendation metrics of ragged per-impression `predictions` and `references` (see `_DESCRIPTION`)."""
    if len(predictions) != len(references):
        raise ValueError(f"Got {len(predictions)} impressions of predictions but {len(references)} of references.")
    lengths = np.fromiter((len(scores) for scores in predictions), dtype=np.int64, count=len(predictions))
    reference_lengths = np.fromiter((len(labels) for labels in references), dtype=np.int64, count=len(references))
    mismatched = np.flatnonzero(lengths != reference_lengths)
    if mismatched.size:
        index = int(mismatched[0])
        raise ValueError(
            f"Impression {index} has {lengths[index]} predictions but {reference_lengths[index]} references."
        )
    total = int(lengths.sum())
    scores = np.fromiter(itertools.chain.from_iterable(predictions), dtype=np.float64, count=total)
    labels = np.fromiter(itertools.chain.from_iterable(references), dtype=np.float64, count=total)
    return impression_ranking_metrics(scores, labels, lengths, k_values)


def _mean_over_ranks(per_rank: np.ndarray, before: np.ndarray, size: np.ndarray) -> np.ndarray:
    """
    For each candidate, the mean of `per_rank[r - 1]` over the ranks r = before + 1 .. before + size its tie group
    occupies; an untied candidate reads its own rank's value directly (no cumulative-sum rounding).
    """
    if per_rank.size == 0:
        return np.zeros(before.shape)
    cumulative = np.concatenate([[0.0], np.cumsum(per_rank)])
    tied = (cumulative[before + size] - cumulative[before]) / size
    return np.where(size == 1, per_rank[np.minimum(before, per_rank.size - 1)], tied)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NewsRecommendation(evaluate.Metric):
    """Per-impression AUC, MRR and nDCG@k of news recommendation, averaged over impressions (MIND's scorer)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    # float64 scores: rounding to float32 could tie distinct scores and change the ranking.
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    # Float rather than integer references: Arrow would truncate a fractional label to an integer
                    # silently; here it reaches the 0/1 check and raises.
                    "references": datasets.Sequence(datasets.Value("float32")),
                }
            ),
            reference_urls=["https://msnews.github.io/", "https://aclanthology.org/2020.acl-main.331/"],
        )

    def _compute(
        self,
        predictions: Sequence[Sequence[float]],
        references: Sequence[Sequence[int]],
        k_values: Sequence[int] = DEFAULT_K_VALUES,
    ) -> dict[str, float]:
        return news_recommendation_metrics(predictions, references, k_values)
