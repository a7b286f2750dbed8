"""The `next_item` evaluate module and NextItemMetrics on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from transformers import EvalPrediction

from gram_hf.metrics import load_metric
from gram_hf.tasks.next_item import NextItemMetrics, item_popularity, popularity_recommendations, random_ranking_ndcg


@pytest.fixture(scope="module")
def metric():
    return load_metric("next_item")


def test_values_by_hand(metric):
    # Catalog of 6 items; training popularity (interactions): total 16.
    popularity = [8, 4, 2, 1, 1, 0]
    predictions = [
        [2, 0, 1],  # target 0 at position 1: gain 1 / log2(3)
        [5, 3, 4],  # target 5 at position 0: gain 1
        [0, 1, 2],  # target 4 missed
        [1, -1, -1],  # a short list (only one recommendable item); target 1 at position 0
    ]
    references = [0, 5, 4, 1]
    result = metric.compute(predictions=predictions, references=references, k=3, item_popularity=popularity)
    assert result["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1 + 0 + 1) / 4)
    assert result["hr@3"] == pytest.approx(3 / 4)
    assert result["coverage@3"] == pytest.approx(6 / 6)  # items 0..5 all appear somewhere
    # self-information in bits: -log2(c / 16) with c clamped to >= 1
    bits = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 4.0, 5: 4.0}
    slots = [2, 0, 1, 5, 3, 4, 0, 1, 2, 1]
    assert result["surprisal@3"] == pytest.approx(sum(bits[i] for i in slots) / len(slots))


def test_cut_off_and_optional_parts(metric):
    # Lists longer than k are cut; without popularity or catalog size, only NDCG and HR are computed.
    result = metric.compute(predictions=[[4, 3, 2, 1], [1, 2, 3, 4]], references=[1, 1], k=2)
    assert result == {"ndcg@2": pytest.approx(0.5), "hr@2": pytest.approx(0.5)}
    result = metric.compute(predictions=[[4, 3], [1, 2]], references=[1, 1], k=2, num_items=10)
    assert result["coverage@2"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="catalog of 5 items"):
        metric.compute(predictions=[[0]], references=[0], k=1, num_items=5, item_popularity=[1, 2])
    with pytest.raises(ValueError, match="below num_items"):
        metric.compute(predictions=[[7]], references=[0], k=1, num_items=5)


def test_next_item_metrics_from_eval_prediction():
    popularity = [5, 3, 0, 2, 0]  # items 2 and 4 are cold-start
    # packed ranking-mode scores: [rank, top-3 ..., rank among the cold-start items]; the trainer adds the held-out
    # catalog index per row
    scores = np.array(
        [[0, 1, 0, 3, -1], [2, 0, 1, 2, 0], [5, 0, 1, 3, 1], [1, 3, 4, 0, 0], [-100, -100, -100, -100, -100]]
    )
    targets = np.array([1, 2, 2, 4, -100])  # the last row is the Trainer's padding
    metrics = NextItemMetrics(popularity, k=3)
    result = metrics(EvalPrediction(predictions=(scores, targets), label_ids=targets))
    gains = [1.0, 1 / math.log2(4), 0.0, 1 / math.log2(3)]
    assert result["ndcg@3"] == pytest.approx(np.mean(gains))
    assert result["hr@3"] == pytest.approx(3 / 4)
    assert result["coverage@3"] == pytest.approx(5 / 5)
    assert result["cold_users"] == 3
    assert result["cold_ndcg@3"] == pytest.approx(np.mean(gains[1:]))
    assert result["cold_hr@3"] == pytest.approx(2 / 3)
    # Among the 2 cold-start items the cold-start users' targets rank 0, 1, 0.
    assert result["cold_items"] == 2
    assert result["cold_only_ndcg@3"] == pytest.approx((1 + 1 / math.log2(3) + 1) / 3)
    assert result["cold_only_hr@3"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="eval_top_k"):
        NextItemMetrics(popularity, k=10)(EvalPrediction(predictions=(scores, targets), label_ids=targets))
    # Without cold-start ranks (a collator that named no cold-start items) only the full-catalog metrics.
    scores[:, -1] = np.where(targets >= 0, -1, -100)
    result = metrics(EvalPrediction(predictions=(scores, targets), label_ids=targets))
    assert "cold_hr@3" in result and not any(key.startswith("cold_only") for key in result)


def test_random_ranking_ndcg():
    # One relevant item among 5, every rank equally likely: the mean of the discounted gains of ranks 1..5.
    assert random_ranking_ndcg(5) == pytest.approx(sum(1 / math.log2(rank + 1) for rank in range(1, 6)) / 5)
    assert random_ranking_ndcg(200) == pytest.approx(sum(1 / math.log2(r + 1) for r in range(1, 11)) / 200)
    assert random_ranking_ndcg(3, k=1) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="positive"):
        random_ranking_ndcg(0)


def test_popularity_baseline_and_popularity_counts():
    train = [[0, 1, 1], [1, 2], [3]]
    popularity = item_popularity(train, num_items=5)
    assert popularity.tolist() == [1, 3, 1, 1, 0]
    # evaluation sequences: history + held-out item; ties in popularity go to the lower index
    top, targets = popularity_recommendations([[1, 0, 2], [4, 3]], popularity, k=2)
    assert targets.tolist() == [2, 3]
    assert top.tolist() == [[2, 3], [1, 0]]  # 1 and 0 were seen by the first user
    top, _ = popularity_recommendations([[1, 0, 2]], popularity, k=2, exclude_seen=False)
    assert top.tolist() == [[1, 0]]
