"""The shipped `news_recommendation` evaluate metric: the MIND scorer's per-impression AUC, MRR and nDCG@k."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from gram_hf.metrics import available_metrics, metric_path
from gram_hf.metrics.news_recommendation.news_recommendation import (
    NewsRecommendation,
    impression_ranking_metrics,
    news_recommendation_metrics,
)

KEYS = ("auc", "mrr", "ndcg@5", "ndcg@10")


@pytest.fixture(params=["loaded", "direct"])
def metric(request, tmp_path):
    """The metric as `evaluate.load(metric_path(...))` gives it, and instantiated from its class."""
    if request.param == "loaded":
        import evaluate

        return evaluate.load(metric_path("news_recommendation"), cache_dir=str(tmp_path))
    return NewsRecommendation(cache_dir=str(tmp_path))


# The official MIND scorer's per-impression functions (msnews.github.io evaluate.py), as the reference.
def official_mrr(y_true, y_score):
    order = np.argsort(y_score)[::-1]
    y_true = np.take(y_true, order)
    return np.sum(y_true / (np.arange(len(y_true)) + 1)) / np.sum(y_true)


def official_dcg(y_true, y_score, k):
    order = np.argsort(y_score)[::-1]
    y_true = np.take(y_true, order[:k])
    return np.sum((2**y_true - 1) / np.log2(np.arange(len(y_true)) + 2))


def official_ndcg(y_true, y_score, k):
    return official_dcg(y_true, y_score, k) / official_dcg(y_true, y_true, k)


def random_impressions(seed: int, count: int = 60, ties: bool = False):
    generator = np.random.default_rng(seed)
    predictions, references = [], []
    for _ in range(count):
        length = int(generator.integers(2, 25))
        labels = (generator.uniform(size=length) < 0.2).astype(int)
        labels[generator.integers(length)] = 1  # at least one click
        if labels.all():
            labels[0] = 0
        scores = np.round(generator.normal(size=length), 1) if ties else generator.normal(size=length)
        predictions.append(scores.tolist())
        references.append(labels.tolist())
    return predictions, references


def test_is_listed():
    assert "news_recommendation" in available_metrics()


def test_perfect_ranking_gives_one(metric):
    predictions = [[0.2, 0.9, 0.1], [3.0, 2.0, 1.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0]]
    references = [[0, 1, 0], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
    result = metric.compute(predictions=predictions, references=references)
    assert {key: result[key] for key in KEYS} == dict.fromkeys(KEYS, 1.0)
    assert result["num_impressions"] == 2 and result["num_skipped"] == 0


def test_perfect_ranking_with_several_clicks(metric):
    """MIND's MRR averages 1/rank over the clicks, so it is below 1 even for a perfect ranking of several clicks."""
    predictions = [[0.9, 0.1, 0.8, 0.2], [3.0, 2.0, 1.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0]]
    references = [[1, 0, 1, 0], [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
    result = metric.compute(predictions=predictions, references=references)
    assert {key: result[key] for key in ("auc", "ndcg@5", "ndcg@10")} == {"auc": 1.0, "ndcg@5": 1.0, "ndcg@10": 1.0}
    assert result["mrr"] == pytest.approx(((1 + 1 / 2) / 2 + (1 + 1 / 2 + 1 / 3) / 3) / 2)


def test_reversed_ranking_gives_the_minimum(metric):
    # 5 candidates, the 2 clicks ranked 4th and 5th; 12 candidates, the click ranked 12th (outside the top 10).
    predictions = [[5.0, 4.0, 3.0, 2.0, 1.0], [float(12 - i) for i in range(12)]]
    references = [[0, 0, 0, 1, 1], [0] * 11 + [1]]
    result = metric.compute(predictions=predictions, references=references)
    assert result["auc"] == 0.0
    # MRR: (1/4 + 1/5) / 2 = 0.225 and 1/12.
    assert result["mrr"] == pytest.approx((0.225 + 1 / 12) / 2)
    # nDCG@5 = nDCG@10 of the first: (1/log2(5) + 1/log2(6)) / (1 + 1/log2(3)) = 0.50127; the second scores 0.
    first = (1 / math.log2(5) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    assert first == pytest.approx(0.501266, abs=1e-6)
    assert result["ndcg@5"] == pytest.approx(first / 2)
    assert result["ndcg@10"] == pytest.approx(first / 2)


def test_hand_computed_example(metric):
    # Ranking: 0.9 (no), 0.8 (click), 0.7 (no), 0.6 (click): clicks at ranks 2 and 4.
    result = metric.compute(predictions=[[0.6, 0.9, 0.8, 0.7]], references=[[1, 0, 1, 0]], k_values=[1, 3, 5])
    assert result["mrr"] == pytest.approx((1 / 2 + 1 / 4) / 2)  # 0.375
    assert result["ndcg@1"] == 0.0
    # DCG@3 = 1/log2(3) = 0.63093, IDCG@3 = 1 + 1/log2(3) = 1.63093.
    assert result["ndcg@3"] == pytest.approx(0.386853, abs=1e-6)
    # DCG@5 = 1/log2(3) + 1/log2(5) = 1.06161.
    assert result["ndcg@5"] == pytest.approx(0.650921, abs=1e-6)
    assert result["auc"] == 0.25  # of the 4 (click, non-click) pairs only 0.8 > 0.7 is ordered right
    assert "ndcg@10" not in result


def test_impressions_without_clicks_or_non_clicks_are_skipped(metric):
    predictions = [[0.1, 0.9, 0.3], [0.5, 0.2], [0.4, 0.6], [], [0.7]]
    references = [[0, 1, 0], [0, 0], [1, 1], [], [1]]
    result = metric.compute(predictions=predictions, references=references)
    assert result["num_impressions"] == 5
    assert result["num_skipped"] == 4
    assert {key: result[key] for key in KEYS} == dict.fromkeys(KEYS, 1.0)
    all_skipped = metric.compute(predictions=[[0.5, 0.2]], references=[[0, 0]])
    assert all(math.isnan(all_skipped[key]) for key in KEYS)
    assert all_skipped["num_skipped"] == all_skipped["num_impressions"] == 1


def test_the_official_scorer_keeps_one_class_impressions_where_gram_hf_skips_them(metric):
    """What the docstring says of the official scorer: `roc_auc_score` gives NaN with a warning (no error) on a
    one-class impression, which still counts in MRR/nDCG; gram-hf skips it, and agrees on the rest."""
    import warnings

    from sklearn.exceptions import UndefinedMetricWarning

    predictions = [[0.1, 0.9, 0.3], [0.5, 0.2, 0.4]]
    references = [[0, 1, 0], [0, 0, 0]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        official_auc = roc_auc_score(references[1], predictions[1])
    assert math.isnan(official_auc)
    assert any(issubclass(warning.category, UndefinedMetricWarning) for warning in caught)
    result = metric.compute(predictions=predictions, references=references)
    assert result["num_skipped"] == 1
    assert result["auc"] == roc_auc_score(references[0], predictions[0]) == 1.0
    with np.errstate(invalid="ignore"):  # the scorer's click-less impression is NaN in MRR and nDCG too (0 / 0)
        assert math.isnan(official_mrr(np.array(references[1]), np.array(predictions[1])))
        assert math.isnan(official_ndcg(np.array(references[1]), np.array(predictions[1]), 5))
    assert result["mrr"] == official_mrr(np.array(references[0]), np.array(predictions[0]))


def test_matches_the_official_scorer_without_ties(metric):
    predictions, references = random_impressions(0)
    result = metric.compute(predictions=predictions, references=references)
    pairs = [(np.array(r), np.array(p)) for p, r in zip(predictions, references)]
    assert result["auc"] == pytest.approx(np.mean([roc_auc_score(r, p) for r, p in pairs]), abs=1e-12)
    assert result["mrr"] == pytest.approx(np.mean([official_mrr(r, p) for r, p in pairs]), abs=1e-12)
    for k in (5, 10):
        assert result[f"ndcg@{k}"] == pytest.approx(np.mean([official_ndcg(r, p, k) for r, p in pairs]), abs=1e-12)


def test_ties_match_sklearn_and_average_over_orders(metric):
    predictions, references = random_impressions(1, ties=True)
    assert sum(len(set(p)) < len(p) for p in predictions) > 10
    result = metric.compute(predictions=predictions, references=references)
    pairs = [(np.array(r), np.array(p)) for p, r in zip(predictions, references)]
    assert result["auc"] == pytest.approx(np.mean([roc_auc_score(r, p) for r, p in pairs]), abs=1e-12)
    for k in (5, 10):
        expected = np.mean([ndcg_score(r[None], p[None], k=k) for r, p in pairs])
        assert result[f"ndcg@{k}"] == pytest.approx(expected, abs=1e-12)


def test_tied_mrr_is_the_mean_over_orders_of_the_ties():
    scores, labels = np.array([0.5, 0.9, 0.5, 0.5, 0.1]), np.array([1, 0, 0, 1, 0])
    orders = []
    for permutation in itertools.permutations(range(5)):
        # A strict ranking consistent with the scores: break ties by the permutation.
        ranking = sorted(range(5), key=lambda i: (-scores[i], permutation.index(i)))
        orders.append(official_mrr(labels, -np.argsort(ranking).astype(float)))
    result = impression_ranking_metrics(scores, labels, [5])
    assert result["mrr"] == pytest.approx(np.mean(orders), abs=1e-12)


def test_candidate_order_does_not_matter():
    predictions, references = random_impressions(2, count=20, ties=True)
    generator = np.random.default_rng(3)
    shuffled_predictions, shuffled_references = [], []
    for scores, labels in zip(predictions, references):
        permutation = generator.permutation(len(scores))
        shuffled_predictions.append([scores[i] for i in permutation])
        shuffled_references.append([labels[i] for i in permutation])
    expected = news_recommendation_metrics(predictions, references)
    assert news_recommendation_metrics(shuffled_predictions, shuffled_references) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("predictions", "references", "match"),
    [
        ([[0.1, 0.2]], [[1, -100]], "references must be 0 or 1"),
        ([[0.1, 0.2]], [[1, 2]], "references must be 0 or 1"),
        ([[0.1, 0.2], [0.3]], [[1, 0], [1, 0]], "Impression 1 has 1 predictions but 2 references"),
        ([[0.1, 0.2]], [[1, 0], [1]], "1 impressions of predictions but 2"),
        ([[0.1, float("inf")]], [[1, 0]], "NaN or infinite"),
    ],
)
def test_invalid_inputs_raise(predictions, references, match):
    with pytest.raises(ValueError, match=match):
        news_recommendation_metrics(predictions, references)


def test_invalid_k_values_raise():
    with pytest.raises(ValueError, match="k_values"):
        news_recommendation_metrics([[0.1, 0.2]], [[1, 0]], k_values=[0])
