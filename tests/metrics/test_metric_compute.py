"""KnowledgeTracingMetrics and NewsRecommendationMetrics: `compute_metrics` on GramTrainer's padded EvalPrediction."""

from __future__ import annotations

import math

import datasets
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from transformers import EvalPrediction

from gram_hf import GramModel, GramTrainer, GramTrainingArguments
from gram_hf.metrics import KnowledgeTracingMetrics, NewsRecommendationMetrics
from gram_hf.metrics.knowledge_tracing.knowledge_tracing import knowledge_tracing_metrics
from gram_hf.metrics.news_recommendation.news_recommendation import news_recommendation_metrics
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, make_synthetic_knowledge_tracing

P = -100  # the Trainer's and GramTrainer's padding value


def kt_eval_prediction(padding_score: float = -100.0) -> EvalPrediction:
    """Two padded sequences: items [3, 1, 4, 1] and [5, 9]; scores are logits."""
    scores = np.array([[2.0, -1.0, 0.5, -0.2], [-3.0, 1.5, padding_score, padding_score]], dtype=np.float32)
    items = np.array([[3, 1, 4, 1], [5, 9, P, P]])
    labels = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, P, P]], dtype=np.float32)
    return EvalPrediction(predictions=(scores, items), label_ids=labels)


FLAT_SCORES = np.array([2.0, -1.0, 0.5, -0.2, -3.0, 1.5])
FLAT_LABELS = np.array([1, 0, 0, 1, 0, 1])
FLAT_ITEMS = np.array([3, 1, 4, 1, 5, 9])


def test_kt_metrics_skip_padding():
    metrics = KnowledgeTracingMetrics()
    result = metrics(kt_eval_prediction())
    assert result == pytest.approx(knowledge_tracing_metrics(FLAT_SCORES, FLAT_LABELS))
    assert result["auc"] == pytest.approx(roc_auc_score(FLAT_LABELS, FLAT_SCORES))
    assert result["accuracy"] == pytest.approx(4 / 6)
    # the padding's scores do not matter
    assert metrics(kt_eval_prediction(padding_score=1e9)) == result
    assert all(type(value) is float for value in result.values())


def test_kt_metrics_plain_scores_without_cold_start():
    eval_pred = kt_eval_prediction()
    scores, _ = eval_pred.predictions
    plain = EvalPrediction(predictions=scores, label_ids=eval_pred.label_ids)
    assert KnowledgeTracingMetrics()(plain) == KnowledgeTracingMetrics()(eval_pred)
    with pytest.raises(ValueError, match="scored items"):
        KnowledgeTracingMetrics(cold_start_items=[1])(plain)


@pytest.mark.parametrize(
    "cold_start_items",
    [
        [1, 5],
        (5, 1, 1),
        np.array([1, 5]),
        torch.tensor([5, 1]),
        [False, True, False, False, False, True, False, False, False, False],  # a mask over a 10-item catalog
        np.array([False, True, False, False, False, True, False, False, False, False, False, False]),
        torch.tensor([False, True, False, False, False, True, False, False, False, False]),
        datasets.Dataset.from_dict({"cold_start": [i in (1, 5) for i in range(10)]})["cold_start"],
    ],
    ids=["list", "tuple", "array", "tensor", "mask-list", "mask-array", "mask-tensor", "dataset-column"],
)
def test_kt_cold_start_items_as_indices_or_mask(cold_start_items):
    result = KnowledgeTracingMetrics(cold_start_items=cold_start_items)(kt_eval_prediction())
    cold = np.isin(FLAT_ITEMS, [1, 5])  # positions 1, 3, 4: labels 0, 1, 0
    assert result["num_cold_start"] == 3
    assert result["cold_start_auc"] == pytest.approx(roc_auc_score(FLAT_LABELS[cold], FLAT_SCORES[cold]))
    assert result["cold_start_accuracy"] == pytest.approx(2 / 3)
    assert result["auc"] == pytest.approx(roc_auc_score(FLAT_LABELS, FLAT_SCORES))


def test_kt_cold_start_edge_cases():
    # indices beyond the largest listed item are simply not cold-start
    none_scored = KnowledgeTracingMetrics(cold_start_items=[0, 2])(kt_eval_prediction())
    assert none_scored["num_cold_start"] == 0 and math.isnan(none_scored["cold_start_auc"])
    empty = KnowledgeTracingMetrics(cold_start_items=[])(kt_eval_prediction())
    assert empty["num_cold_start"] == 0
    # a mask must cover every scored item
    with pytest.raises(ValueError, match="covers 6 items, but item 9"):
        KnowledgeTracingMetrics(cold_start_items=[False] * 6)(kt_eval_prediction())
    with pytest.raises(ValueError, match=">= 0"):
        KnowledgeTracingMetrics(cold_start_items=[-1, 2])
    with pytest.raises(TypeError, match="dtype float"):
        KnowledgeTracingMetrics(cold_start_items=[0.5])


def test_kt_inconsistent_padding_raises():
    eval_pred = kt_eval_prediction()
    scores, items = eval_pred.predictions
    items = items.copy()
    items[0, 2] = P
    with pytest.raises(ValueError, match="labels and item references disagree"):
        KnowledgeTracingMetrics()(EvalPrediction(predictions=(scores, items), label_ids=eval_pred.label_ids))
    with pytest.raises(ValueError, match="do not match labels"):
        KnowledgeTracingMetrics()(EvalPrediction(predictions=(scores[:, :3], items), label_ids=eval_pred.label_ids))
    with pytest.raises(ValueError, match="tuple of 3"):
        KnowledgeTracingMetrics()(EvalPrediction(predictions=(scores, items, items), label_ids=eval_pred.label_ids))


def test_kt_batched_evaluation_equals_whole():
    """With `batch_eval_metrics`, per-batch tensors (bf16 scores included) are kept until `compute_result=True`."""
    eval_pred = kt_eval_prediction()
    scores, items = eval_pred.predictions
    metrics = KnowledgeTracingMetrics(cold_start_items=[1, 5])
    expected = metrics(eval_pred)
    batches = [
        (torch.tensor(scores[:1]).to(torch.bfloat16), torch.tensor(items[:1]), torch.tensor(eval_pred.label_ids[:1])),
        (torch.tensor(scores[1:, :2]), torch.tensor(items[1:, :2]), torch.tensor(eval_pred.label_ids[1:, :2])),
    ]
    first = metrics(EvalPrediction(predictions=batches[0][:2], label_ids=batches[0][2]), compute_result=False)
    assert first == {}
    last = metrics(EvalPrediction(predictions=batches[1][:2], label_ids=batches[1][2]), compute_result=True)
    assert last == pytest.approx(expected)  # these scores are exact in bf16
    # the state is cleared for the next evaluation
    assert metrics(eval_pred) == expected


def test_news_metrics_from_padded_matrices():
    predictions = [[0.1, 0.9, 0.3], [0.5, 0.2], [0.4, 0.6, 0.7, 0.1], [0.3]]
    references = [[0, 1, 0], [0, 0], [1, 0, 1, 0], [1]]
    width = max(map(len, predictions))
    scores = np.full((4, width), -100.0, dtype=np.float32)
    items = np.full((4, width), P)
    labels = np.full((4, width), P)
    for row, (row_scores, row_labels) in enumerate(zip(predictions, references)):
        scores[row, : len(row_scores)] = row_scores
        items[row, : len(row_scores)] = np.arange(len(row_scores)) + 10 * row
        labels[row, : len(row_labels)] = row_labels
    metrics = NewsRecommendationMetrics()
    result = metrics(EvalPrediction(predictions=(scores, items), label_ids=labels))
    expected = news_recommendation_metrics([np.float32(p).tolist() for p in map(np.array, predictions)], references)
    assert result == pytest.approx(expected)
    assert result["num_impressions"] == 4 and result["num_skipped"] == 2
    assert set(result) == {"auc", "mrr", "ndcg@5", "ndcg@10", "num_impressions", "num_skipped"}
    # plain scores work too, and the padding's scores do not matter
    scores[labels == P] = 1e9
    assert metrics(EvalPrediction(predictions=scores, label_ids=labels)) == result
    # batched evaluation
    batched = NewsRecommendationMetrics(k_values=(5, 10))
    assert batched(EvalPrediction(predictions=scores[:3], label_ids=labels[:3]), compute_result=False) == {}
    assert batched(EvalPrediction(predictions=scores[3:, :1], label_ids=labels[3:, :1])) == pytest.approx(result)


def test_news_impressions_with_unknown_labels_are_skipped():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, -100.0], [0.3, 0.4, 0.6]])
    labels = np.array([[1, 0, 0], [0, 1, P], [-1, -1, -1]])
    result = NewsRecommendationMetrics()(EvalPrediction(predictions=scores, label_ids=labels))
    assert result["auc"] == result["mrr"] == 1.0
    assert result["num_impressions"] == 3 and result["num_skipped"] == 1
    unlabelled = NewsRecommendationMetrics()(EvalPrediction(predictions=scores[2:], label_ids=labels[2:]))
    assert math.isnan(unlabelled["auc"]) and unlabelled["num_skipped"] == 1


def test_news_metrics_shape_checks():
    with pytest.raises(ValueError, match=r"\[impressions, candidates\]"):
        NewsRecommendationMetrics()(EvalPrediction(predictions=np.zeros(3), label_ids=np.zeros(3)))
    with pytest.raises(ValueError, match="do not match labels"):
        NewsRecommendationMetrics()(EvalPrediction(predictions=np.zeros((2, 3)), label_ids=np.zeros((2, 4))))


def test_trainer_evaluate_reports_cold_start_auc(tmp_path):
    """End to end: GramTrainer.evaluate with the KT head returns the metrics, cold-start split included."""
    data = make_synthetic_knowledge_tracing(num_users=12, num_items=20, min_length=4, max_length=9, seed=5)
    cold_start = [item % 3 == 0 for item in range(20)]  # any split: the metric reads the flags, not the history
    torch.manual_seed(0)
    model = GramModel.for_item_ids(20, 8, head_type="knowledge_tracing")
    args = GramTrainingArguments(
        output_dir=str(tmp_path),
        gram_mode="nocontent",
        per_device_eval_batch_size=2,
        report_to=[],
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    trainer = GramTrainer(
        model=model,
        args=args,
        data_collator=KnowledgeTracingCollator(),
        eval_dataset=data.test,
        compute_metrics=KnowledgeTracingMetrics(cold_start_items=cold_start),
    )
    metrics = trainer.evaluate()
    # every test interaction is scored once
    test_items = [item for items in data.test["items"] for item in items]
    assert metrics["eval_num_cold_start"] == sum(cold_start[item] for item in test_items) > 0
    # the same numbers from the raw predictions
    (scores, scored_items), labels = trainer.predict(data.test)[:2]
    real = labels != P
    cold = np.asarray(cold_start)[scored_items[real]]
    assert metrics["eval_auc"] == pytest.approx(roc_auc_score(labels[real], scores[real]))
    assert metrics["eval_cold_start_auc"] == pytest.approx(roc_auc_score(labels[real][cold], scores[real][cold]))
    assert metrics["eval_accuracy"] == pytest.approx(np.mean((scores[real] >= 0) == (labels[real] == 1)))
