"""The shipped `knowledge_tracing` evaluate metric: exact AUC (sklearn's), accuracy threshold, cold-start split."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gram_hf.metrics import available_metrics, metric_path
from gram_hf.metrics.knowledge_tracing.knowledge_tracing import KnowledgeTracing, knowledge_tracing_metrics, roc_auc


@pytest.fixture(params=["loaded", "direct"])
def metric(request, tmp_path):
    """The metric as `evaluate.load(metric_path(...))` gives it, and instantiated from its class."""
    if request.param == "loaded":
        import evaluate

        return evaluate.load(metric_path("knowledge_tracing"), cache_dir=str(tmp_path))
    return KnowledgeTracing(cache_dir=str(tmp_path))


def random_data(seed: int, size: int = 400):
    """Scores with many ties (one decimal) and random responses."""
    generator = np.random.default_rng(seed)
    scores = np.round(generator.normal(size=size), 1)
    references = generator.integers(0, 2, size=size)
    return scores, references


def test_is_listed():
    assert "knowledge_tracing" in available_metrics()


def test_perfect_and_reversed_predictions(metric):
    references = [1, 0, 1, 1, 0, 0]
    logits = [2.0, -1.0, 0.5, 3.0, -0.1, -4.0]
    perfect = metric.compute(predictions=logits, references=references)
    assert perfect == {"auc": 1.0, "accuracy": 1.0}
    reversed_ = metric.compute(predictions=[-x for x in logits], references=references)
    assert reversed_ == {"auc": 0.0, "accuracy": 0.0}


def test_auc_equals_sklearn_with_ties(metric):
    for seed in range(3):
        scores, references = random_data(seed)
        assert len(np.unique(scores)) < len(scores) / 4  # plenty of ties
        result = metric.compute(predictions=scores, references=references)
        assert result["auc"] == pytest.approx(roc_auc_score(references, scores), abs=1e-12)
        assert result["accuracy"] == pytest.approx(np.mean((scores >= 0) == (references == 1)))


def test_roc_auc_all_tied_is_one_half_and_single_class_is_nan():
    assert roc_auc(np.zeros(5), np.array([0, 1, 1, 0, 1])) == 0.5
    assert math.isnan(roc_auc(np.arange(4.0), np.ones(4)))
    assert math.isnan(roc_auc(np.arange(4.0), np.zeros(4)))
    assert math.isnan(roc_auc(np.array([]), np.array([])))


def test_accuracy_threshold_by_prediction_type(metric):
    references = [1, 0, 1, 0]
    # A score at the threshold predicts "correct".
    logits = metric.compute(predictions=[0.0, -0.01, 0.3, 0.2], references=references)
    assert logits["accuracy"] == 0.75  # 0.0 -> correct (right), -0.01 -> wrong (right), 0.3 right, 0.2 wrong
    probabilities = metric.compute(
        predictions=[0.5, 0.49, 0.3, 0.2], references=references, prediction_type="probabilities"
    )
    assert probabilities["accuracy"] == 0.75
    assert probabilities["auc"] == logits["auc"] == 0.75


def test_cold_start_auc_uses_only_flagged_interactions(metric):
    scores, references = random_data(7, size=300)
    cold_start = np.random.default_rng(8).uniform(size=scores.size) < 0.3
    result = metric.compute(predictions=scores, references=references, cold_start=cold_start)
    assert result["auc"] == pytest.approx(roc_auc_score(references, scores), abs=1e-12)
    assert result["cold_start_auc"] == pytest.approx(
        roc_auc_score(references[cold_start], scores[cold_start]), abs=1e-12
    )
    correct = (scores >= 0) == (references == 1)
    assert result["cold_start_accuracy"] == pytest.approx(correct[cold_start].mean())
    assert result["num_cold_start"] == int(cold_start.sum())
    # Changing warm interactions' scores leaves the cold-start metrics alone.
    changed = np.where(cold_start, scores, -scores + 5.0)
    other = metric.compute(predictions=changed, references=references, cold_start=cold_start)
    assert other["cold_start_auc"] == result["cold_start_auc"]
    assert other["auc"] != result["auc"]


def test_cold_start_without_flagged_or_single_class_is_nan(metric):
    result = metric.compute(predictions=[0.2, -0.3], references=[1, 0], cold_start=[False, False])
    assert math.isnan(result["cold_start_auc"]) and math.isnan(result["cold_start_accuracy"])
    assert result["num_cold_start"] == 0
    one_class = metric.compute(predictions=[0.2, -0.3, 0.1], references=[1, 0, 1], cold_start=[True, False, True])
    assert math.isnan(one_class["cold_start_auc"])
    assert one_class["cold_start_accuracy"] == 1.0


def test_cold_start_configuration_streams_flags(tmp_path):
    import evaluate

    scores, references = random_data(3, size=60)
    cold_start = np.arange(60) % 3 == 0
    streamed = evaluate.load(metric_path("knowledge_tracing"), "cold_start", cache_dir=str(tmp_path))
    for start in range(0, 60, 25):
        window = slice(start, start + 25)
        streamed.add_batch(predictions=scores[window], references=references[window], cold_start=cold_start[window])
    expected = knowledge_tracing_metrics(scores, references, cold_start)
    assert streamed.compute() == pytest.approx(expected)


def test_unknown_configuration_raises(tmp_path):
    with pytest.raises(KeyError, match="cold_start"):
        KnowledgeTracing(config_name="warm", cache_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"predictions": [0.1, 0.2], "references": [1, -100]}, "references must be 0 or 1"),
        ({"predictions": [0.1, 0.2], "references": [1, 0.5]}, "references must be 0 or 1"),
        ({"predictions": [0.1, float("nan")], "references": [1, 0]}, "NaN or infinite"),
        ({"predictions": [0.1, 0.2], "references": [1, 0], "prediction_type": "odds"}, "prediction_type"),
        ({"predictions": [0.1, 1.2], "references": [1, 0], "prediction_type": "probabilities"}, r"in \[0, 1\]"),
        ({"predictions": [0.1, 0.2], "references": [1, 0], "cold_start": [True]}, "cold_start flags"),
        ({"predictions": [0.1, 0.2], "references": [1]}, "2 predictions but 1 references"),
    ],
)
def test_invalid_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        knowledge_tracing_metrics(**kwargs)
