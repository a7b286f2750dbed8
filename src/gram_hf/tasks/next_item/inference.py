"""[`NextItemRecommender`]: a user's top-`k` next items over the whole catalog."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...inference import GramRecommender, ItemRef, is_batch_of_lists
from ...retrieval import ItemIndex, exact_top_k


class NextItemRecommender(GramRecommender):
    r"""
    Next-item recommendation with a trained SASRec: [`top_k`] retrieves each user's best `k` items over the whole
    catalog — exactly, streamed over catalog blocks (never a users x items matrix), or through an approximate index
    ([`build_index`], FAISS) for catalogs of millions. The exact list is the one `trainer.predict` ranks for the same
    history.

    Example:

    ```python
    >>> recommender = GramRecommender.from_pretrained("outputs/next_item", items=data.items)
    >>> recommender.top_k(["1193", "661", "914"], k=3)
    [{'item_id': '3408', 'score': 7.41}, {'item_id': '2355', 'score': 7.02}, {'item_id': '1197', 'score': 6.93}]
    ```
    """

    task_name = "next_item"
    index: ItemIndex | None = None

    @property
    def max_length(self) -> int:
        """Items of a history the model reads (the most recent ones), as the evaluation collator kept them."""
        return int(self.collator_options.get("max_length") or self.model.head.max_length)

    def user_vectors(self, histories: Sequence[Sequence[ItemRef]]) -> torch.Tensor:
        """SASRec's state after each history (`[B, item_dim]` float32 on the device): the users' query vectors."""
        rows = [self._history_rows(history) for history in histories]
        states = []
        for start in self._batches(len(rows), "users"):
            chunk = [history[-self.max_length :] for history in rows[start : start + self.batch_size]]
            width = max(len(history) for history in chunk)
            input_rows = torch.full((len(chunk), width), -1, dtype=torch.long)
            for position, history in enumerate(chunk):
                input_rows[position, : len(history)] = torch.tensor(history)
            input_rows = input_rows.to(self.device)
            with torch.no_grad():
                hidden = self.model.head.encode_sequence(self.item_vectors, input_rows)
            last = (input_rows >= 0).sum(dim=1) - 1
            states.append(hidden[torch.arange(len(chunk), device=self.device), last].float())
        return torch.cat(states)

    def _history_rows(self, history: Sequence[ItemRef]) -> list[int]:
        if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
            raise TypeError(f"A history is a list of items (oldest first), got {history!r}.")
        if not history:
            raise ValueError(
                "An empty history has nothing to predict from: SASRec recommends after at least one item (use "
                "popularity for users without one)."
            )
        return self._item_rows(list(history), "history")

    def build_index(
        self,
        tune_histories: Sequence[Sequence[ItemRef]] | None = None,
        *,
        target_recall: float = 0.95,
        **options: Any,
    ) -> ItemIndex:
        """
        Builds the approximate index over the current item vectors ([`ItemIndex`], `options` passed on); `top_k` then
        uses it unless `use_index=False`. With `tune_histories` (e.g. a few hundred users' histories) the index's
        search effort is set to the smallest that reaches `target_recall` (recall@10 against exact search on those
        users). Adding items drops the index (build it again).
        """
        self.index = ItemIndex(self.item_vectors, **options)
        if tune_histories is not None:
            recall = self.index.tune(self.user_vectors(tune_histories), self.item_vectors, target_recall=target_recall)
            self.index_recall = recall
        return self.index

    def add_items(self, item_ids, texts):
        indices = super().add_items(item_ids, texts)
        self.index = None
        return indices

    def top_k(
        self,
        history: Sequence[ItemRef] | Sequence[Sequence[ItemRef]],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        use_index: bool | None = None,
    ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """
        The `k` best next items for a user who interacted with `history` (oldest first), as `[{"item_id", "score"},
        ...]`, best first; a list of such lists for a list of histories.

        Args:
            history: item ids (or `{"item_id", "text"}` for new items), or a list of such histories.
            k (`int`, *optional*, defaults to 10): list length.
            exclude_seen (`bool`, *optional*, defaults to `True`): never recommend an item of the history.
            use_index (`bool`, *optional*): search the approximate index; default: when one was built.
        """
        single = not is_batch_of_lists(history)
        histories = [history] if single else list(history)
        if use_index is None:
            use_index = self.index is not None
        if use_index and self.index is None:
            raise ValueError("use_index=True needs an index: call build_index() first.")
        queries = self.user_vectors(histories)
        exclude = None
        if exclude_seen:
            rows = [self._history_rows(h) for h in histories]
            exclude = torch.full((len(rows), max(len(r) for r in rows)), -1, dtype=torch.long)
            for position, seen in enumerate(rows):
                exclude[position, : len(seen)] = torch.tensor(seen)
        if use_index:
            scores, indices = self.index.search(queries, k, exclude=exclude)
        else:
            vectors = self.item_vectors
            scores, indices = exact_top_k(
                queries, vectors, k, exclude=None if exclude is None else exclude.to(self.device)
            )
        scores, indices = scores.cpu(), indices.cpu()
        results = [
            [
                {"item_id": self.item_ids[int(item)], "score": float(score)}
                for score, item in zip(user_scores, user_items)
                if int(item) >= 0
            ]
            for user_scores, user_items in zip(scores, indices)
        ]
        return results[0] if single else results


__all__ = ["NextItemRecommender"]
