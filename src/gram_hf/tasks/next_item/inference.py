"""[`NextItemRecommender`]: a user's top-`k` next items over the whole catalog."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...inference import GramRecommender, ItemRef, is_batch_of_lists
from ...retrieval import ItemIndex, exact_top_k
from .ranking import new_item_offsets


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

    New releases (items that never trained: a hybrid model's cold-start items and every item added after training)
    score below the warm items a user is likely to pick, since the model never saw one as a target. `top_k(...,
    new_item_share=0.1)` ranks the catalog as the mixture in which 10% of next items are new releases, chosen by the
    model's scores among them ([`new_item_offsets`]); `new_items=` names them explicitly.
    """

    task_name = "next_item"
    index: ItemIndex | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._added_rows: set[int] = set()  # catalog rows of the items added after training

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
        known = self.num_items
        indices = super().add_items(item_ids, texts)
        self.index = None
        self._added_rows.update(int(row) for row in indices if int(row) >= known)
        return indices

    @property
    def new_items(self) -> torch.BoolTensor:
        """
        `[num_items]` mask of the new releases, items without a trained representation: the cold-start items of a
        hybrid model (`GramModel.set_cold_start_items`), the rows beyond its ID table, and every item added with
        [`add_items`] after this recommender was built.
        """
        mask = torch.zeros(self.num_items, dtype=torch.bool)
        if self._added_rows:
            mask[list(self._added_rows)] = True
        if self._content is not None and self._id_rows:
            mask[self._id_rows :] = True
            mask[: self._id_rows] |= self.model.cold_start_items.cpu()
        return mask

    def top_k(
        self,
        history: Sequence[ItemRef] | Sequence[Sequence[ItemRef]],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        use_index: bool | None = None,
        new_item_share: float = 0.0,
        new_items: Sequence[str] | None = None,
    ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """
        The `k` best next items for a user who interacted with `history` (oldest first), as `[{"item_id", "score"},
        ...]`, best first; a list of such lists for a list of histories.

        Args:
            history: item ids (or `{"item_id", "text"}` for new items), or a list of such histories.
            k (`int`, *optional*, defaults to 10): list length.
            exclude_seen (`bool`, *optional*, defaults to `True`): never recommend an item of the history.
            use_index (`bool`, *optional*): search the approximate index; default: when one was built (and no
                `new_item_share`).
            new_item_share (`float`, *optional*, defaults to 0.0): the share of next items that go to new releases
                (e.g. from the last weeks' logs): the list ranks by the mixture of the model's softmax over the warm
                items and over the new releases; their scores then include the mixture's per-user offset. Exact
                search: the mixture sums over the whole catalog anyway.
            new_items (`list[str]`, *optional*): the new releases' ids for `new_item_share` (default: [`new_items`]).
        """
        single = not is_batch_of_lists(history)
        histories = [history] if single else list(history)
        if not 0.0 <= new_item_share < 1.0:
            raise ValueError(f"new_item_share must lie in [0, 1), got {new_item_share}.")
        if new_items is not None and not new_item_share:
            raise ValueError("new_items names the new releases of a new_item_share > 0.")
        if use_index is None:
            use_index = self.index is not None and not new_item_share
        if use_index and new_item_share:
            raise ValueError(
                "new_item_share ranks by sums over the whole catalog, which exact search computes anyway: pass "
                "use_index=False (or leave it unset)."
            )
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
            exclude = None if exclude is None else exclude.to(self.device)
            mixture = {}
            if new_item_share:
                mask = self.new_items if new_items is None else self._new_item_mask(new_items)
                if mask.any() and not mask.all():
                    mask = mask.to(self.device)
                    offsets = new_item_offsets(queries, vectors, mask, new_item_share, exclude=exclude)
                    mixture = {"offset_items": mask, "offsets": offsets}
            scores, indices = exact_top_k(queries, vectors, k, exclude=exclude, **mixture)
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

    def _new_item_mask(self, item_ids: Sequence[str]) -> torch.BoolTensor:
        if isinstance(item_ids, (str, bytes)):
            raise TypeError(f"new_items is a list of item ids, got {item_ids!r}.")
        mask = torch.zeros(self.num_items, dtype=torch.bool)
        mask[self._item_rows(list(item_ids), "new_items")] = True
        return mask


__all__ = ["NextItemRecommender"]
