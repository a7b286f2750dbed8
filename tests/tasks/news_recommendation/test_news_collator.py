"""NewsRecommendationCollator: GRAM's batch contract (unique items, references, padding) and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gram_hf.tasks.news_recommendation import NewsRecommendationCollator

FEATURES = [
    {"history": [7, 2, 7], "candidates": [3, 9, 2], "labels": [0, 1, 0]},
    {"history": [], "candidates": [11, 3], "labels": [1, 0]},
    {"history": [30], "candidates": [5, 6, 7, 8, 9], "labels": [-1, -1, -1, -1, -1]},
]


def test_batch_contract():
    batch = NewsRecommendationCollator()(FEATURES)
    assert set(batch) == {"item_index", "history_ref", "candidate_ref", "labels"}
    assert batch["item_index"].tolist() == [2, 3, 5, 6, 7, 8, 9, 11, 30]
    assert batch["item_index"].dtype == batch["history_ref"].dtype == batch["candidate_ref"].dtype == torch.long
    assert batch["labels"].dtype == torch.float32
    assert batch["history_ref"].tolist() == [[4, 0, 4], [-1, -1, -1], [8, -1, -1]]
    assert batch["candidate_ref"].tolist() == [[1, 6, 0, -1, -1], [7, 1, -1, -1, -1], [2, 3, 4, 5, 6]]
    assert batch["labels"].tolist() == [
        [0, 1, 0, -100, -100],
        [1, 0, -100, -100, -100],
        [-1, -1, -1, -1, -1],
    ]


def random_features(generator: np.random.Generator, count: int) -> list[dict]:
    features = []
    for _ in range(count):
        history = generator.integers(0, 40, size=int(generator.integers(0, 12))).tolist()
        candidates = generator.integers(0, 40, size=int(generator.integers(1, 9))).tolist()
        features.append(
            {"history": history, "candidates": candidates, "labels": generator.integers(0, 2, len(candidates))}
        )
    return features


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_references_reproduce_the_catalog_indices(seed):
    features = random_features(np.random.default_rng(seed), 7)
    batch = NewsRecommendationCollator()(features)
    item_index, history_ref, candidate_ref, labels = (
        batch[key] for key in ("item_index", "history_ref", "candidate_ref", "labels")
    )
    assert torch.equal(item_index, torch.unique(item_index))  # unique and ascending
    assert history_ref.shape == (7, max(1, max(len(f["history"]) for f in features)))
    assert candidate_ref.shape == labels.shape == (7, max(len(f["candidates"]) for f in features))
    for row, feature in enumerate(features):
        history, candidates = feature["history"], feature["candidates"]
        assert item_index[history_ref[row, : len(history)]].tolist() == history
        assert (history_ref[row, len(history) :] == -1).all()
        assert item_index[candidate_ref[row, : len(candidates)]].tolist() == candidates
        assert (candidate_ref[row, len(candidates) :] == -1).all()
        assert labels[row, : len(candidates)].tolist() == [float(x) for x in feature["labels"]]
        assert (labels[row, len(candidates) :] == -100).all()
    # every unique item is referenced, nothing else is in the batch
    referenced = torch.cat([history_ref[history_ref >= 0], candidate_ref[candidate_ref >= 0]])
    assert sorted(set(referenced.tolist())) == list(range(len(item_index)))


def test_empty_histories_still_have_a_history_axis():
    batch = NewsRecommendationCollator()([{"history": [], "candidates": [1, 2], "labels": [1, 0]}])
    assert batch["history_ref"].tolist() == [[-1]]
    assert batch["item_index"].tolist() == [1, 2]


def test_max_history_keeps_the_most_recent_and_custom_columns():
    collator = NewsRecommendationCollator(history_column="h", candidates_column="c", labels_column="y", max_history=2)
    batch = collator([{"h": [1, 2, 3, 4], "c": [9], "y": [1]}, {"h": [5], "c": [9, 1], "y": [0, 1]}])
    assert batch["item_index"][batch["history_ref"][0]].tolist() == [3, 4]
    assert batch["item_index"][batch["history_ref"][1, :1]].tolist() == [5]
    assert 2 not in batch["item_index"].tolist()  # truncated history items are not encoded


OK = {"history": [1], "candidates": [1, 2], "labels": [1, 0]}


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"history": [1], "candidates": [], "labels": []}, "Example 2 of the batch has no candidates"),
        (
            {"history": [1], "candidates": [1, 2], "labels": [1]},
            "Example 2 of the batch has 2 candidates but 1 labels",
        ),
        ({"history": [1], "candidates": [1, 2], "labels": [1, 2]}, "Labels must be 1, 0 or -1"),
        ({"history": [-1], "candidates": [1, 2], "labels": [1, 0]}, "Catalog indices must be >= 0"),
    ],
)
def test_invalid_examples(bad, match):
    with pytest.raises(ValueError, match=match):
        NewsRecommendationCollator()([OK, OK, bad])


def test_collates_loader_rows(tmp_path):
    from gram_hf.tasks.news_recommendation import load_mind, make_synthetic_mind

    synthetic = make_synthetic_mind(tmp_path / "mind", num_users=10, num_news=40, train_impressions=6,
                                    dev_impressions=4, seed=0)  # fmt: skip
    data = load_mind(synthetic.path, cache_dir=tmp_path / "cache")
    for split in ("train", "validation"):
        rows = data[split].select(range(4)).to_list()
        batch = NewsRecommendationCollator()(rows)
        for row, features in enumerate(rows):
            candidates = batch["item_index"][batch["candidate_ref"][row, : len(features["candidates"])]]
            assert candidates.tolist() == features["candidates"]
