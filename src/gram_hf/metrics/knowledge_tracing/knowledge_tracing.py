"""
Knowledge-tracing metrics for `evaluate`: AUC, accuracy, and both restricted to cold-start interactions.

A self-contained metric script (numpy, datasets and evaluate only): `evaluate.load` copies this file into its modules
cache before importing it, so it must not import from gram-hf.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{yang-etal-2022-gram,
    title = "{GRAM}: Fast Fine-tuning of Pre-trained Language Models for Content-based Collaborative Filtering",
    author = "Yang, Yoonseok and Kim, Kyu Seok and Kim, Minsam and Park, Juneyoung",
    booktitle = "Proceedings of the 2022 Conference of the North American Chapter of the Association for
                 Computational Linguistics: Human Language Technologies",
    year = "2022",
    publisher = "Association for Computational Linguistics",
    doi = "10.18653/v1/2022.naacl-main.61",
    pages = "839--851",
}
"""

_DESCRIPTION = """\
Metrics of knowledge tracing (predicting whether a learner answers an item correctly), as reported by GRAM:

- `auc`: area under the ROC curve over all interactions, computed exactly from ranks (Mann-Whitney U with average ranks
  for tied scores), so it equals `sklearn.metrics.roc_auc_score`;
- `accuracy`: the share of interactions whose thresholded prediction equals the response (threshold: logit 0, i.e.
  probability 0.5; a score exactly at the threshold predicts "correct");
- with `cold_start`: `cold_start_auc`, `cold_start_accuracy` and `num_cold_start`, the same over the interactions
  flagged cold-start only (items unseen in training, where content is the only signal).

An AUC is NaN when its interactions do not contain both a correct and a wrong response (`roc_auc_score` would raise);
accuracies are NaN over zero interactions.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): one score per interaction: logits (default) or probabilities of a correct answer,
        see `prediction_type`.
    references (`list` of `int`): the responses, 1 = correct, 0 = wrong. Anything else raises (padding such as -100
        must be removed beforehand).
    cold_start (`list` of `bool`, *optional*): whether each interaction is cold-start. Pass it to `compute()` (aligned
        with all predictions, including those given to `add_batch`), or load the `"cold_start"` configuration, where it
        is an input column like `predictions` and can be streamed with `add_batch`.
    prediction_type (`str`, *optional*, defaults to `"logits"`): `"logits"` (accuracy thresholds at 0) or
        `"probabilities"` (thresholds at 0.5; values must lie in [0, 1]). AUC does not depend on it.

Returns:
    auc (`float`): ROC AUC over all interactions.
    accuracy (`float`): accuracy over all interactions.
    cold_start_auc (`float`): ROC AUC over cold-start interactions (only when `cold_start` is given).
    cold_start_accuracy (`float`): accuracy over cold-start interactions (only when `cold_start` is given).
    num_cold_start (`int`): number of cold-start interactions (only when `cold_start` is given).

Examples:
    >>> kt = evaluate.load(gram_hf.metrics.metric_path("knowledge_tracing"))
    >>> kt.compute(predictions=[2.0, -1.0, 0.5, -3.0], references=[1, 0, 0, 1], cold_start=[False, False, True, True])
    {'auc': 0.5, 'accuracy': 0.5, 'cold_start_auc': 0.0, 'cold_start_accuracy': 0.0, 'num_cold_start': 2}
"""

PREDICTION_TYPES = ("logits", "probabilities")
CONFIG_NAMES = ("default", "cold_start")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """
    The area under the ROC curve of `scores` for binary `labels`, exactly: the Mann-Whitney U statistic with tied
    scores given their average rank, divided by (#positives * #negatives). NaN when a class is missing.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(bool)
    num_positive = int(labels.sum())
    num_negative = labels.size - num_positive
    if num_positive == 0 or num_negative == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Twice the average 1-based rank of each distinct score (the mean of the positions its ties occupy), in integers
    # so that the rank sum is exact.
    twice_ranks = 2 * np.cumsum(counts) - counts + 1
    twice_u = int(twice_ranks[inverse.reshape(-1)][labels].sum()) - num_positive * (num_positive + 1)
    return twice_u / (2 * num_positive * num_negative)


def knowledge_tracing_metrics(
    predictions: np.ndarray,
    references: np.ndarray,
    cold_start: np.ndarray | None = None,
    prediction_type: str = "logits",
) -> dict[str, float]:
    """
    The knowledge-tracing metrics of flat arrays (see the module's description); validates its inputs.

    Args:
        predictions (`np.ndarray` of shape `(N,)`): logits or probabilities of a correct answer.
        references (`np.ndarray` of shape `(N,)`): responses, 1 = correct, 0 = wrong.
        cold_start (`np.ndarray` of shape `(N,)`, *optional*): boolean flags of cold-start interactions.
        prediction_type (`str`, *optional*, defaults to `"logits"`): `"logits"` or `"probabilities"`.
    """
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}.")
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    references = np.asarray(references, dtype=np.float64).reshape(-1)
    if predictions.shape != references.shape:
        raise ValueError(f"Got {predictions.size} predictions but {references.size} references.")
    if not np.isfinite(predictions).all():
        raise ValueError(f"{int((~np.isfinite(predictions)).sum())} predictions are NaN or infinite.")
    invalid = (references != 0) & (references != 1)
    if invalid.any():
        raise ValueError(
            f"references must be 0 or 1 (remove padding first); got {int(invalid.sum())} other values, e.g. "
            f"{np.unique(references[invalid])[:5].tolist()}."
        )
    if prediction_type == "probabilities" and ((predictions < 0) | (predictions > 1)).any():
        raise ValueError("prediction_type='probabilities' needs predictions in [0, 1]; pass logits as 'logits'.")
    threshold = 0.0 if prediction_type == "logits" else 0.5
    correct = (predictions >= threshold) == (references == 1)

    results = {"auc": roc_auc(predictions, references), "accuracy": _mean(correct)}
    if cold_start is not None:
        cold_start = np.asarray(cold_start).reshape(-1)
        if cold_start.shape != predictions.shape:
            raise ValueError(f"Got {cold_start.size} cold_start flags for {predictions.size} predictions.")
        if cold_start.dtype != bool:
            if not np.isin(cold_start, (0, 1)).all():
                raise ValueError("cold_start must hold booleans (or 0/1).")
            cold_start = cold_start.astype(bool)
        results["cold_start_auc"] = roc_auc(predictions[cold_start], references[cold_start])
        results["cold_start_accuracy"] = _mean(correct[cold_start])
        results["num_cold_start"] = int(cold_start.sum())
    return results


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class KnowledgeTracing(evaluate.Metric):
    """Knowledge-tracing AUC and accuracy, overall and on cold-start interactions (configurations: `"default"`,
    `"cold_start"`)."""

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in CONFIG_NAMES:
            raise KeyError(f"Unknown knowledge_tracing configuration {self.config_name!r}; use one of {CONFIG_NAMES}.")
        features = {
            "predictions": datasets.Value("float64"),
            # Float rather than integer references: Arrow would truncate a fractional label to an integer silently;
            # here it reaches the 0/1 check and raises.
            "references": datasets.Value("float32"),
        }
        if self.config_name == "cold_start":
            features["cold_start"] = datasets.Value("bool")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(features),
            format="numpy",
            reference_urls=["https://aclanthology.org/2022.naacl-main.61/"],
        )

    def _compute(
        self,
        predictions: np.ndarray,
        references: np.ndarray,
        cold_start: np.ndarray | None = None,
        prediction_type: str = "logits",
    ) -> dict[str, float]:
        return knowledge_tracing_metrics(predictions, references, cold_start, prediction_type)
