"""[`NextItemRecommender`]: a user's top-`k` next items over the whole catalog."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...inference import GramRecommender, ItemRef, is_batch_of_lists
from ...retrieval import ItemIndex, exact_top_k
from .ranking import new_item_offsets

logger = logging.getLogger(__name__)


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

    New releases (items that never trained, [`new_items`]) score below the warm items a user is likely to pick, since
    the model never saw one as a target. `top_k(..., new_item_share=0.1)` ranks the catalog as the mixture in which
    10% of next items are new releases, chosen by the model's scores among them ([`new_item_offsets`]); by default
    `top_k` uses the share the model was evaluated with (the head's `new_item_share`, the program's
    `--new_item_share`), and `new_items=` names the new releases explicitly.
    """

    task_name = "next_item"
    index: ItemIndex | None = None

    def __init__(self, model: Any, items: Any, *args: Any, **kwargs: Any):
        super().__init__(model, items, *args, **kwargs)
        self._added_rows: set[int] = set()  # catalog rows of the items added after training
        self._share_warned = False
        # The loaders' item tables flag the items that never occur in train (`cold_start`).
        self._listed_new: torch.BoolTensor | None = None
        if (hasattr(items, "column_names") or isinstance(items, Mapping)) and "cold_start" in (
            items.column_names if hasattr(items, "column_names") else items
        ):
            self._listed_new = torch.tensor([bool(flag) for flag in items["cold_start"]], dtype=torch.bool)

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
        `[num_items]` mask of the new releases, items without a trained representation: those flagged in the
        `cold_start` column of the `items` table this recommender was built with (the loaders' tables have it), the
        cold-start items of a hybrid model (`GramModel.set_cold_start_items`) and the rows beyond its ID table, and
        every item added with [`add_items`] after this recommender was built.
        """
        mask = torch.zeros(self.num_items, dtype=torch.bool)
        if self._listed_new is not None:
            mask[: len(self._listed_new)] = self._listed_new
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
        new_item_share: float | None = None,
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
            new_item_share (`float`, *optional*): the share of next items that go to new releases (e.g. from the last
                weeks' logs): the list ranks by the mixture of the model's softmax over the warm items and over the
                new releases, whose scores then include the mixture's per-user offset. Exact search: the mixture sums
                over the whole catalog anyway. Default: the head's `new_item_share` (0 unless the model was trained
                with one); 0 ranks by the raw scores.
            new_items (`list[str]`, *optional*): the new releases' ids for `new_item_share` (default: [`new_items`]).
        """
        single = not is_batch_of_lists(history)
        histories = [history] if single else list(history)
        explicit = new_item_share is not None
        if not explicit:
            new_item_share = float(getattr(self.model.head, "new_item_share", 0.0))
        if not 0.0 <= new_item_share < 1.0:
            raise ValueError(f"new_item_share must lie in [0, 1), got {new_item_share}.")
        if new_items is not None and not new_item_share:
            raise ValueError("new_items names the new releases of a new_item_share > 0.")
        if new_items is not None and (
            isinstance(new_items, (str, bytes)) or not all(isinstance(item_id, str) for item_id in new_items)
        ):
            raise TypeError(
                f"new_items is a list of item ids (add new items with add_items first), got {new_items!r}."
            )
        if use_index and new_item_share and explicit:
            raise ValueError(
                "new_item_share ranks by sums over the whole catalog, which exact search computes anyway: pass "
                "use_index=False (or leave it unset)."
            )
        if use_index and self.index is None:
            raise ValueError("use_index=True needs an index: call build_index() first.")
        # Histories may add items (given with their text): the catalog is final once the queries are.
        queries = self.user_vectors(histories)
        exclude = None
        if exclude_seen:
            rows = [self._history_rows(h) for h in histories]
            exclude = torch.full((len(rows), max(len(r) for r in rows)), -1, dtype=torch.long)
            for position, seen in enumerate(rows):
                exclude[position, : len(seen)] = torch.tensor(seen)
        new_mask = None
        if new_item_share and not use_index:
            new_mask = self.new_items if new_items is None else self._new_item_mask(new_items)
            if not new_mask.any() or new_mask.all():
                problem = (
                    "knows no new release (items of a cold_start column, a hybrid's cold-start items, items added "
                    "after training): name them with new_items="
                    if not new_mask.any()
                    else "has only new releases: there is nothing to mix them with"
                )
                if explicit:
                    raise ValueError(f"new_item_share={new_item_share}: this recommender {problem}.")
                if not self._share_warned:  # once, not on every request
                    logger.warning("The model's new_item_share=%s is not applied: this recommender %s.",
                                   new_item_share, problem)  # fmt: skip
                    self._share_warned = True
                new_mask = None
        if use_index is None:
            use_index = self.index is not None and new_mask is None
        if use_index:
            scores, indices = self.index.search(queries, k, exclude=exclude)
        else:
            vectors = self.item_vectors
            exclude = None if exclude is None else exclude.to(self.device)
            mixture = {}
            if new_mask is not None:
                new_mask = new_mask.to(self.device)
                offsets = new_item_offsets(queries, vectors, new_mask, new_item_share, exclude=exclude)
                mixture = {"offset_items": new_mask, "offsets": offsets}
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
        mask = torch.zeros(self.num_items, dtype=torch.bool)
        mask[self._item_rows(list(item_ids), "new_items")] = True
        return mask


__all__ = ["NextItemRecommender"]
