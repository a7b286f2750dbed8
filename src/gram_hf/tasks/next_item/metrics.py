"""`compute_metrics` for next-item evaluation, the popularity baseline, and training popularity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def item_popularity(sequences: Sequence[Sequence[int]], num_items: int) -> np.ndarray:
    """Occurrences of every catalog item in `sequences` (e.g. the `items` column of the train split)."""
    counts = np.zeros(num_items, dtype=np.int64)
    for sequence in sequences:
        np.add.at(counts, np.asarray(sequence, dtype=np.int64), 1)
    return counts


def _load_metric():
    from ...metrics import load_metric

    return load_metric("next_item")


class NextItemMetrics:
    """
    A `compute_metrics` for [`GramTrainer`] with [`SASRecHead`] in ranking mode: turns the `EvalPrediction` of an
    evaluation batch layout ([`NextItemCollator`] with `mode="eval"`) into NDCG@k, HR@k, Coverage@k and Surprisal@k
    through the shipped `evaluate` module `next_item`, plus the same NDCG and HR on the users whose held-out item is a
    cold-start item (never in training), as `cold_ndcg@k`, `cold_hr@k` and `cold_users`. Those users' items are also
    ranked among the cold-start items only (the item cold-start protocol, where a new release competes with the
    other new releases rather than with the warm items' popularity): `cold_only_ndcg@k` and `cold_only_hr@k`, with
    `cold_items` the number of cold-start items they are ranked among ([`random_ranking_ndcg`] of it is a random
    ranking's level).

    The predictions are the head's packed `[n, 2 + K]` scores (target rank, the top `K >= k` catalog indices, then
    the target's rank among the cold-start items, -1 where there is none) and, from the trainer, each row's held-out
    catalog index (`scored_ref_key="target_ref"`).

    Args:
        train_popularity (`Sequence[int]`): training interactions per catalog item (the items' `train_count`, or
            [`item_popularity`] of the train split); its length is the catalog size.
        k (`int`, *optional*, defaults to 10): the cut-off.
        cold_start (`bool`, *optional*, defaults to `True`): add the cold-start metrics.
    """

    def __init__(self, train_popularity: Sequence[int], k: int = 10, cold_start: bool = True):
        self.popularity = np.asarray(train_popularity, dtype=np.int64)
        if self.popularity.ndim != 1 or not len(self.popularity):
            raise ValueError("train_popularity must be a non-empty 1-D sequence of counts.")
        self.k = k
        self.cold_start = cold_start
        self._metric = None

    @property
    def metric(self):
        if self._metric is None:
            self._metric = _load_metric()
        return self._metric

    def __call__(self, eval_prediction: Any) -> dict[str, float]:
        predictions = eval_prediction.predictions
        if isinstance(predictions, (tuple, list)):
            scores, targets = np.asarray(predictions[0]), np.asarray(predictions[1])
        else:
            scores, targets = np.asarray(predictions), np.asarray(eval_prediction.label_ids)
        if scores.ndim != 2 or scores.shape[1] < 2 + self.k:
            raise ValueError(
                f"Expected ranking-mode scores of shape [n, 2 + K] with K >= k={self.k}, got {scores.shape}: evaluate "
                "with NextItemCollator(mode='eval') and a head whose eval_top_k >= k."
            )
        keep = targets >= 0  # rows the Trainer padded when gathering batches
        return self.compute(scores[keep, 1 : 1 + self.k], targets[keep], scores[keep, -1])

    def compute(
        self, top_items: np.ndarray, targets: np.ndarray, cold_ranks: np.ndarray | None = None
    ) -> dict[str, float]:
        """
        The metrics of top-`k` lists `[n, >= k]` (catalog indices) against held-out items `[n]`; with `cold_ranks`
        (`[n]`, each cold-start target's 0-based rank among the cold-start items, -1 elsewhere) also the cold-start
        users' metrics among the cold-start items only.
        """
        top_items = np.asarray(top_items, dtype=np.int64)[:, : self.k]
        targets = np.asarray(targets, dtype=np.int64)
        result = self.metric.compute(
            predictions=top_items.tolist(),
            references=targets.tolist(),
            k=self.k,
            item_popularity=self.popularity.tolist(),
        )
        if self.cold_start:
            cold = self.popularity[targets] == 0
            result["cold_users"] = int(cold.sum())
            if cold.any():
                cold_result = self.metric.compute(
                    predictions=top_items[cold].tolist(), references=targets[cold].tolist(), k=self.k
                )
                result[f"cold_ndcg@{self.k}"] = cold_result[f"ndcg@{self.k}"]
                result[f"cold_hr@{self.k}"] = cold_result[f"hr@{self.k}"]
                ranks = None if cold_ranks is None else np.asarray(cold_ranks, dtype=np.int64)[cold]
                if ranks is not None and (ranks >= 0).all():  # every cold-start user was ranked among them
                    hits = ranks < self.k
                    result["cold_items"] = int((self.popularity == 0).sum())
                    result[f"cold_only_ndcg@{self.k}"] = float(np.where(hits, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
                    result[f"cold_only_hr@{self.k}"] = float(hits.mean())
        return result


def random_ranking_ndcg(num_items: int, k: int = 10) -> float:
    """
    The expected NDCG@k (one relevant item) of a uniformly random ranking of `num_items` items: the level a model
    that knows nothing about them reaches.
    """
    if num_items < 1:
        raise ValueError(f"num_items must be positive, got {num_items}.")
    ranks = np.arange(min(k, num_items))
    return float((1.0 / np.log2(ranks + 2.0)).sum() / num_items)


def popularity_recommendations(
    sequences: Sequence[Sequence[int]], train_popularity: Sequence[int], k: int = 10, exclude_seen: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """
    The popularity baseline on evaluation sequences (history + held-out last item): every user gets the `k` most
    popular training items, without those in their history when `exclude_seen`. Returns `(top_items [n, k], targets
    [n])` for [`NextItemMetrics.compute`]. Ties in popularity go to the lower catalog index.
    """
    popularity = np.asarray(train_popularity, dtype=np.int64)
    order = np.lexsort((np.arange(len(popularity)), -popularity))
    top_items = np.full((len(sequences), k), -1, dtype=np.int64)
    targets = np.empty(len(sequences), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        history = set(sequence[:-1]) if exclude_seen else set()
        targets[row] = sequence[-1]
        chosen = []
        for item in order:
            if int(item) not in history:
                chosen.append(int(item))
                if len(chosen) == k:
                    break
        top_items[row, : len(chosen)] = chosen
    return top_items, targets


__all__ = ["NextItemMetrics", "item_popularity", "popularity_recommendations", "random_ranking_ndcg"]
