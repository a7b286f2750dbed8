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


# ------------------------------------------------------------------------------------------------ feature columns

WITH_FEATURES = [
    {"user_id": "a", "items": [7, 2, 7], "responses": [1, 0, 1], "part": [3, 1, 3], "elapsed_time": [4, 0, 9]},
    {"user_id": "b", "items": [2], "responses": [0], "part": np.array([1], dtype=np.int32), "elapsed_time": [2]},
]


def test_feature_columns_are_padded_with_zero():
    batch = KnowledgeTracingCollator(feature_columns=("part", "elapsed_time"))(WITH_FEATURES)
    assert set(batch) == {"item_index", "item_ref", "labels", "part", "elapsed_time"}
    assert batch["part"].dtype == batch["elapsed_time"].dtype == torch.long
    assert batch["part"].tolist() == [[3, 1, 3], [1, 0, 0]]
    assert batch["elapsed_time"].tolist() == [[4, 0, 9], [2, 0, 0]]
    assert batch["item_ref"].tolist() == [[1, 0, 1], [0, -1, -1]]
    # without feature_columns the feature columns are ignored, like user_id
    assert set(KnowledgeTracingCollator()(WITH_FEATURES)) == {"item_index", "item_ref", "labels"}


def test_a_single_feature_column_name_is_accepted():
    batch = KnowledgeTracingCollator(feature_columns="part")(WITH_FEATURES)
    assert batch["part"].tolist() == [[3, 1, 3], [1, 0, 0]]


def test_matches_a_per_example_reference_on_random_batches():
    generator = np.random.default_rng(4)
    for _ in range(5):
        examples = []
        for _ in range(int(generator.integers(1, 7))):
            length = int(generator.integers(1, 12))
            examples.append(
                {
                    "items": generator.integers(0, 30, size=length),
                    "responses": generator.integers(0, 2, size=length),
                    "part": generator.integers(0, 8, size=length),
                }
            )
        batch = KnowledgeTracingCollator(feature_columns=["part"])(examples)
        width = max(len(e["items"]) for e in examples)
        assert batch["part"].shape == batch["item_ref"].shape == (len(examples), width)
        for row, example in enumerate(examples):
            length = len(example["items"])
            assert batch["item_index"][batch["item_ref"][row, :length]].tolist() == example["items"].tolist()
            assert batch["part"][row, :length].tolist() == example["part"].tolist()
            assert (batch["part"][row, length:] == 0).all()


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"items": [1, 2], "responses": [0, 1]}, "no feature column 'part'"),
        ({"items": [1, 2], "responses": [0, 1], "part": [1]}, "feature 'part' has shape"),
        ({"items": [1, 2], "responses": [0, 1], "part": [1.0, 2.0]}, "needs integer ids"),
        ({"items": [1, 2], "responses": [0, 1], "part": [1, -2]}, "feature 'part' must be >= 0, got -2"),
    ],
)
def test_invalid_features_name_their_position(bad, match):
    ok = {"items": [1, 2], "responses": [0, 1], "part": [1, 2]}
    with pytest.raises(ValueError, match=match) as info:
        KnowledgeTracingCollator(feature_columns=["part"])([ok, ok, bad])
    assert "Example 2" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"feature_columns": ["labels"]}, "clash"),
        ({"feature_columns": ["items"]}, "clash"),
        ({"feature_columns": ["part", "part"]}, "duplicates"),
        ({"max_seq_len": 0}, "max_seq_len"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KnowledgeTracingCollator(**kwargs)


def test_empty_batch_raises():
    with pytest.raises(ValueError, match="empty batch"):
        KnowledgeTracingCollator()([])
