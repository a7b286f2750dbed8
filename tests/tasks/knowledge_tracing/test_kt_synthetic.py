"""The synthetic knowledge-tracing dataset: determinism, splits, ranges and the planted content signal."""

from __future__ import annotations

import numpy as np
import pytest

from gram_hf.tasks.knowledge_tracing import SyntheticKnowledgeTracing, make_synthetic_knowledge_tracing
from gram_hf.tasks.knowledge_tracing.synthetic import EASY_WORDS, HARD_WORDS

SMALL = {"num_users": 40, "num_items": 30, "min_length": 5, "max_length": 12}


def rows(data: SyntheticKnowledgeTracing) -> tuple[list[dict], list[dict]]:
    return data.train.to_list(), data.test.to_list()


def test_deterministic_for_a_seed():
    first = make_synthetic_knowledge_tracing(**SMALL, seed=3)
    second = make_synthetic_knowledge_tracing(**SMALL, seed=3)
    assert first.item_ids == second.item_ids
    assert first.texts == second.texts
    np.testing.assert_array_equal(first.difficulty, second.difficulty)
    assert rows(first) == rows(second)


def test_different_across_seeds():
    first = make_synthetic_knowledge_tracing(**SMALL, seed=0)
    second = make_synthetic_knowledge_tracing(**SMALL, seed=1)
    assert first.texts != second.texts
    assert rows(first) != rows(second)


def test_users_split_disjoint_and_complete():
    data = make_synthetic_knowledge_tracing(**SMALL, test_fraction=0.25, seed=0)
    train_users = data.train["user_id"]
    test_users = data.test["user_id"]
    assert len(set(train_users)) == len(train_users)
    assert len(set(test_users)) == len(test_users)
    assert not set(train_users) & set(test_users)
    assert set(train_users) | set(test_users) == {f"u{i}" for i in range(SMALL["num_users"])}
    assert len(test_users) == 10
    assert set(data.train.column_names) == {"user_id", "items", "responses"}


def test_items_and_responses_in_range():
    data = make_synthetic_knowledge_tracing(**SMALL, seed=0)
    assert data.item_ids == [f"q{i}" for i in range(SMALL["num_items"])]
    assert len(data.texts) == len(data.difficulty) == SMALL["num_items"]
    for split in (data.train, data.test):
        for row in split:
            assert len(row["items"]) == len(row["responses"])
            assert SMALL["min_length"] <= len(row["items"]) <= SMALL["max_length"]
            assert all(0 <= item < SMALL["num_items"] for item in row["items"])
            assert set(row["responses"]) <= {0, 1}


def test_difficulty_is_readable_from_the_text():
    data = make_synthetic_knowledge_tracing(**SMALL, words_per_item=8, seed=0)
    assert ((data.difficulty >= -1) & (data.difficulty <= 1)).all()
    for text, difficulty in zip(data.texts, data.difficulty):
        words = text.split()
        assert len(words) == 8
        hard = sum(word in HARD_WORDS for word in words)
        easy = sum(word in EASY_WORDS for word in words)
        assert hard + easy >= 2
        assert difficulty == pytest.approx((hard - easy) / (hard + easy))


def test_difficulty_predicts_correctness():
    data = make_synthetic_knowledge_tracing(seed=0)
    items = np.concatenate([np.asarray(row["items"]) for row in data.train])
    responses = np.concatenate([np.asarray(row["responses"]) for row in data.train])
    item_difficulty = data.difficulty[items]
    hard = item_difficulty > 0.3
    easy = item_difficulty < -0.3
    assert hard.sum() > 100 and easy.sum() > 100
    assert responses[easy].mean() - responses[hard].mean() > 0.4


def test_popularity_is_skewed():
    data = make_synthetic_knowledge_tracing(seed=0)
    items = np.concatenate([np.asarray(row["items"]) for row in data.train])
    counts = np.bincount(items, minlength=100)
    assert counts.max() > 5 * np.median(counts)


@pytest.mark.parametrize(
    "kwargs",
    [{"num_users": 1}, {"num_items": 0}, {"min_length": 0}, {"min_length": 10, "max_length": 5}],
)
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError, match="num_users >= 2"):
        make_synthetic_knowledge_tracing(**kwargs)
