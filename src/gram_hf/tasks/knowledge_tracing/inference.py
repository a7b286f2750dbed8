"""[`KnowledgeTracingRecommender`]: the probability that a learner answers the next items correctly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Number
from typing import Any

import torch

from ...inference import GramRecommender, ItemRef
from .collator import KnowledgeTracingCollator

LearnerHistory = Sequence[tuple[ItemRef, int]] | Mapping[str, Sequence[Any]]
"""A learner's answered items, oldest first: `(item, response)` pairs (1 = correct) or a mapping with `items`,
`responses` and one list per feature of the head (a row of a knowledge-tracing dataset, with item ids)."""


def _is_pair(entry: Any) -> bool:
    return (
        isinstance(entry, Sequence)
        and not isinstance(entry, (str, bytes))
        and len(entry) == 2
        and isinstance(entry[1], (Number, bool))
    )


def _is_one_history(value: Any) -> bool:
    if isinstance(value, Mapping):
        return True
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"A learner history is a list of (item, response) pairs or a mapping, got {value!r}.")
    return all(_is_pair(entry) for entry in value)


class KnowledgeTracingRecommender(GramRecommender):
    r"""
    Knowledge tracing with a trained model: [`predict_response`] gives, for a learner's history, the probability of
    answering each of some next items correctly — the head's prediction at the next position, as `trainer.predict`
    gives it for the item that follows the same history.

    Example:

    ```python
    >>> recommender = GramRecommender.from_pretrained("outputs/kt", items=data.items)
    >>> recommender.predict_response([("q12", 1), ("q7", 0)], items=["q3", "q9"])
    tensor([0.8123, 0.4410])
    ```
    """

    task_name = "knowledge_tracing"

    def predict_response(
        self,
        history: LearnerHistory | Sequence[LearnerHistory],
        items: Sequence[ItemRef] | Sequence[Sequence[ItemRef]],
        *,
        item_features: Mapping[str, Sequence[int]] | Sequence[Mapping[str, Sequence[int]]] | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """
        The probability that the learner answers each of `items` correctly next.

        Args:
            history: one learner's history ([`LearnerHistory`]; may be empty: the prediction then comes from the
                head's learned start state) or a list of histories.
            items: the candidate next items (ids, or `{"item_id", "text"}` for new items); with several histories,
                one list per history.
            item_features (*optional*): the head's feature values of the candidates (name -> one id per candidate;
                with several histories, one such mapping per history); features left out are 0 (unknown), as are a
                history's.

        Returns:
            `torch.Tensor` of shape `(len(items),)` on CPU (one learner) or a list of them (several).
        """
        single = _is_one_history(history)
        histories = [history] if single else list(history)
        candidates = [items] if single else list(items)
        features = [item_features] if single else list(item_features or [None] * len(histories))
        if len(candidates) != len(histories) or len(features) != len(histories):
            raise ValueError(f"{len(histories)} histories need as many candidate lists (and item_features).")
        head = self.model.head
        names = list(head.features)
        max_seq_len = self.collator_options.get("max_seq_len")
        examples, owners = [], []
        for learner, (one_history, one_items, one_features) in enumerate(zip(histories, candidates, features)):
            rows, responses, history_features = self._history(one_history, names)
            if max_seq_len is not None and len(rows) >= max_seq_len:
                keep = max_seq_len - 1
                rows, responses = rows[len(rows) - keep :], responses[len(responses) - keep :]
                history_features = {name: values[len(values) - keep :] for name, values in history_features.items()}
            if isinstance(one_items, (str, bytes, Mapping)) or not isinstance(one_items, Sequence):
                raise TypeError(f"items must be a list of items, got {one_items!r}.")
            item_rows = self._item_rows(list(one_items), "items")
            given = dict(one_features or {})
            unknown = sorted(set(given) - set(names))
            if unknown:
                raise ValueError(f"item_features {unknown} are not features of the head ({names}).")
            for position, row in enumerate(item_rows):
                example = {"items": [*rows, row], "responses": [*responses, 0]}
                for name in names:
                    values = given.get(name)
                    example[name] = [*history_features[name], int(values[position]) if values is not None else 0]
                examples.append(example)
                owners.append(learner)
        collator = KnowledgeTracingCollator(feature_columns=names)
        probabilities = torch.empty(len(examples))
        for start in self._batches(len(examples), "learner-item pairs"):
            chunk = examples[start : start + self.batch_size]
            scores = self.run_head(collator(chunk)).scores.float()
            last = torch.tensor([len(example["items"]) - 1 for example in chunk], device=scores.device)
            logits = scores[torch.arange(len(chunk), device=scores.device), last]
            probabilities[start : start + len(chunk)] = torch.sigmoid(logits).cpu()
        if single:
            return probabilities
        owners_tensor = torch.tensor(owners, dtype=torch.long)
        return [probabilities[owners_tensor == learner] for learner in range(len(histories))]

    def _history(self, history: LearnerHistory, names: list[str]) -> tuple[list[int], list[int], dict[str, list[int]]]:
        if isinstance(history, Mapping):
            if "items" not in history or "responses" not in history:
                raise ValueError(f"A history mapping needs 'items' and 'responses', got keys {sorted(history)}.")
            items, responses = list(history["items"]), list(history["responses"])
            if len(items) != len(responses):
                raise ValueError(f"A history has {len(items)} items but {len(responses)} responses.")
            features = {name: [int(v) for v in history.get(name, [0] * len(items))] for name in names}
        else:
            items = [entry[0] for entry in history]
            responses = [entry[1] for entry in history]
            features = {name: [0] * len(items) for name in names}
        for response in responses:
            if response not in (0, 1):
                raise ValueError(f"Responses are 1 (correct) or 0 (wrong), got {response!r}.")
        return self._item_rows(items, "history"), [int(r) for r in responses], features


__all__ = ["KnowledgeTracingRecommender", "LearnerHistory"]
