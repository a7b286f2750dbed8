"""[`NewsRecommender`]: a reader's click scores for the news of an impression."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...inference import GramRecommender, ItemRef, is_batch_of_lists
from .collator import NewsRecommendationCollator


class NewsRecommender(GramRecommender):
    r"""
    News recommendation with a trained model (NRMS over the news vectors): [`score`] gives the click score of each
    candidate for a reader's click history, as `trainer.predict` does for the same impression; [`rank`] orders them.

    Example:

    ```python
    >>> recommender = GramRecommender.from_pretrained("outputs/mind", items=data.items)
    >>> recommender.rank(history=["N55189", "N42782"], candidates=["N31958", "N29379", "N11111"])
    [{'item_id': 'N29379', 'score': 3.12}, {'item_id': 'N31958', 'score': 1.05}, {'item_id': 'N11111', 'score': -0.2}]
    ```
    """

    task_name = "news_recommendation"

    def score(
        self,
        history: Sequence[ItemRef] | Sequence[Sequence[ItemRef]],
        candidates: Sequence[ItemRef] | Sequence[Sequence[ItemRef]],
    ) -> torch.Tensor | list[torch.Tensor]:
        """
        Click scores (logits) of `candidates` for a reader who clicked `history` (oldest first; may be empty: the
        head's learned cold-user vector), aligned with `candidates`, on CPU. With a list of histories, `candidates` is
        a list of candidate lists and a list of tensors is returned.
        """
        single = not is_batch_of_lists(history) and not is_batch_of_lists(candidates)
        histories = [history] if single else list(history)
        impressions = [candidates] if single else list(candidates)
        if len(histories) != len(impressions):
            raise ValueError(f"{len(histories)} histories but {len(impressions)} candidate lists.")
        examples = []
        for clicked, shown in zip(histories, impressions):
            if not shown:
                raise ValueError("An impression needs at least one candidate.")
            examples.append(
                {
                    "history": self._item_rows(list(clicked), "history"),
                    "candidates": self._item_rows(list(shown), "candidates"),
                    "labels": [-1] * len(shown),
                }
            )
        collator = NewsRecommendationCollator(max_history=self.collator_options.get("max_history"))
        results: list[torch.Tensor] = []
        for start in self._batches(len(examples), "impressions"):
            chunk = examples[start : start + self.batch_size]
            scores = self.run_head(collator(chunk)).scores.float().cpu()
            results.extend(scores[row, : len(example["candidates"])] for row, example in enumerate(chunk))
        return results[0] if single else results

    def rank(
        self,
        history: Sequence[ItemRef] | Sequence[Sequence[ItemRef]],
        candidates: Sequence[ItemRef] | Sequence[Sequence[ItemRef]],
    ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """
        The candidates ordered by click score, best first, as `[{"item_id", "score"}, ...]` (ties keep the
        candidates' order); a list of such rankings for a list of histories.
        """
        single = not is_batch_of_lists(history) and not is_batch_of_lists(candidates)
        scores = self.score(history, candidates)
        impressions = [candidates] if single else list(candidates)
        rankings = []
        for shown, impression_scores in zip(impressions, [scores] if single else scores):
            order = torch.sort(impression_scores, descending=True, stable=True).indices.tolist()
            ids = [str(item["item_id"]) if isinstance(item, dict) else str(item) for item in shown]
            rankings.append([{"item_id": ids[i], "score": float(impression_scores[i])} for i in order])
        return rankings[0] if single else rankings


__all__ = ["NewsRecommender"]
