"""KnowledgeTracingCollator: GRAM's batch contract (unique items, references, padding) and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator

FEATURES = [
    {"items": [7, 2, 7, 11], "responses": [1, 0, 1, 1]},
    {"items": [2, 30], "responses": [0, 1]},
    {"items": [11], "responses": [0]},
]


def test_batch_contract():
    batch = KnowledgeTracingCollator()(FEATURES)
    assert set(batch) == {"item_index", "item_ref", "labels"}
    assert batch["item_index"].tolist() == [2, 7, 11, 30]
    assert batch["item_index"].dtype == batch["item_ref"].dtype == torch.long
    assert batch["labels"].dtype == torch.float32
    assert batch["item_ref"].tolist() == [[1, 0, 1, 2], [0, 3, -1, -1], [2, -1, -1, -1]]
    assert batch["labels"].tolist() == [[1, 0, 1, 1], [0, 1, -100, -100], [0, -100, -100, -100]]


def test_item_ref_maps_back_to_catalog_indices():
    generator = np.random.default_rng(0)
    features = []
    for _ in range(5):
        length = int(generator.integers(1, 9))
        features.append(
            {"items": generator.integers(0, 20, size=length).tolist(), "responses": generator.integers(0, 2, length)}
        )
    batch = KnowledgeTracingCollator()(features)
    item_index, item_ref, labels = batch["item_index"], batch["item_ref"], batch["labels"]
    assert torch.equal(item_index, torch.unique(item_index))  # unique and ascending
    assert item_ref.shape == (5, max(len(f["items"]) for f in features))
    for row, feature in enumerate(features):
        length = len(feature["items"])
        assert item_index[item_ref[row, :length]].tolist() == feature["items"]
        assert labels[row, :length].tolist() == [float(r) for r in feature["responses"]]
        assert (item_ref[row, length:] == -1).all()
        assert (labels[row, length:] == -100).all()
    # every unique item is referenced
    assert sorted(set(item_ref[item_ref >= 0].tolist())) == list(range(len(item_index)))


def test_custom_columns_and_max_seq_len():
    collator = KnowledgeTracingCollator(items_column="q", responses_column="r", max_seq_len=3)
    batch = collator([{"q": [4, 4, 1], "r": [True, False, True]}])
    assert batch["item_index"].tolist() == [1, 4]
    assert batch["item_ref"].tolist() == [[1, 1, 0]]
    assert batch["labels"].tolist() == [[1.0, 0.0, 1.0]]


OK = {"items": [1, 2], "responses": [0, 1]}


@pytest.mark.parametrize(
    ("bad", "match", "kwargs"),
    [
        ({"items": [1, 2, 3], "responses": [0, 1]}, "1-D and of equal length", {}),
        ({"items": [[1, 2]], "responses": [[0, 1]]}, "1-D and of equal length", {}),
        ({"items": [1, 2], "responses": [0, 2]}, "responses must be 0 or 1", {}),
        ({"items": [1, 2], "responses": [0, 0.5]}, "responses must be 0 or 1", {}),
        ({"items": [1, 2, 3, 4], "responses": [0, 1, 1, 0]}, "more than max_seq_len=3", {"max_seq_len": 3}),
        ({"items": [], "responses": []}, "empty sequence", {}),
        ({"items": [1, -1], "responses": [0, 1]}, "catalog indices must be >= 0", {}),
    ],
)
def test_invalid_examples_name_their_position(bad, match, kwargs):
    collator = KnowledgeTracingCollator(**kwargs)
    with pytest.raises(ValueError, match=match) as info:
        collator([OK, OK, bad])
    assert "Example 2" in str(info.value)
