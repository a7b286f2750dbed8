"""Next-item recommendation metrics over top-k lists: NDCG@k, HR@k, Coverage@k and Surprisal@k."""

from __future__ import annotations

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Ranking metrics of next-item recommendation with one held-out item per user (leave-one-out), computed from each
user's top-k list over the full catalog:

- NDCG@k: mean of 1 / log2(position + 2) over users whose held-out item is at 0-based `position` < k of their list,
  0 for the others (one relevant item, so the ideal DCG is 1);
- HR@k (hit rate): share of users whose held-out item is in their top k;
- Coverage@k: share of the catalog (`num_items`, or the length of `item_popularity`) that appears in at least one
  user's top k;
- Surprisal@k: mean self-information, in bits, of the recommended items, -log2(p_i) with p_i = max(c_i, 1) / sum(c),
  c_i the item's number of training interactions (an item never seen in training counts as seen once); averaged
  over every recommended slot of every list. High values mean recommendations away from the popular head.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]`): each user's recommendation list, catalog indices, best first; entries < 0 are
        padding (fewer than k recommendable items). Only the first `k` entries are read.
    references (`list[int]`): each user's held-out item (catalog index).
    k (`int`, defaults to 10): the cut-off.
    num_items (`int`, *optional*): catalog size, for Coverage@k; defaults to `len(item_popularity)`.
    item_popularity (`list[int]`, *optional*): training interactions per catalog item, for Surprisal@k.
Returns:
    `ndcg@k`, `hr@k`, and when the catalog size is known `coverage@k`, and with `item_popularity` `surprisal@k`.
Examples:
    >>> metric = evaluate.load("path/to/gram_hf/metrics/next_item")
    >>> metric.compute(predictions=[[3, 1], [0, 2]], references=[1, 4], k=2, item_popularity=[4, 2, 1, 1, 0])
    {'ndcg@2': 0.31546487678572877, 'hr@2': 0.5, 'coverage@2': 0.8, 'surprisal@2': 2.25}
"""

_CITATION = """
@inproceedings{kang2018sasrec,
  title={Self-Attentive Sequential Recommendation},
  author={Kang, Wang-Cheng and McAuley, Julian},
  booktitle={ICDM},
  year={2018}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NextItem(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("int64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, k: int = 10, num_items: int | None = None, item_popularity=None):
        if k < 1:
            raise ValueError(f"k must be positive, got {k}.")
        if not len(predictions):
            raise ValueError("next_item needs at least one prediction.")
        popularity = None if item_popularity is None else np.asarray(item_popularity, dtype=np.float64)
        if num_items is None and popularity is not None:
            num_items = len(popularity)
        if popularity is not None and len(popularity) != num_items:
            raise ValueError(f"item_popularity has {len(popularity)} entries for a catalog of {num_items} items.")
        lists = np.full((len(predictions), k), -1, dtype=np.int64)
        for row, prediction in enumerate(predictions):
            head = np.asarray(prediction[:k], dtype=np.int64)
            lists[row, : len(head)] = head
        references = np.asarray(references, dtype=np.int64)
        recommended = lists >= 0
        if num_items is not None and bool((lists[recommended] >= num_items).any()):
            raise ValueError(f"Recommended items must be catalog indices below num_items={num_items}.")
        hits = (lists == references[:, None]) & recommended
        hit_any = hits.any(axis=1)
        positions = hits.argmax(axis=1)
        gains = np.where(hit_any, 1.0 / np.log2(positions + 2.0), 0.0)
        result = {f"ndcg@{k}": float(gains.mean()), f"hr@{k}": float(hit_any.mean())}
        if num_items is not None:
            result[f"coverage@{k}"] = float(np.unique(lists[recommended]).size / num_items)
        if popularity is not None:
            total = popularity.sum()
            if total <= 0:
                raise ValueError("item_popularity must count at least one training interaction.")
            information = -np.log2(np.maximum(popularity, 1.0) / total)
            slots = lists[recommended]
            result[f"surprisal@{k}"] = float(information[slots].mean()) if slots.size else math.nan
        return result
