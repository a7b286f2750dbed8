"""A small in-memory knowledge-tracing dataset whose responses depend on words in the item text."""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import numpy as np

EASY_WORDS = ("simple", "easy", "basic", "common", "short", "clear", "plain", "small", "everyday", "familiar")
HARD_WORDS = ("complex", "difficult", "advanced", "rare", "obscure", "intricate", "abstract", "subtle", "technical")
FILLER_WORDS = (
    "the", "student", "reads", "a", "question", "about", "house", "river", "market", "city", "garden", "friend",
    "morning", "train", "letter", "school", "window", "music", "table", "story", "weather", "kitchen", "travel",
)  # fmt: skip


@dataclass
class SyntheticKnowledgeTracing:
    """
    Items with text and learner sequences.

    Attributes:
        item_ids (`list[str]`): item identifiers (`"q0"`, `"q1"`, ...), catalog order.
        texts (`list[str]`): item text; the share of "hard" vs "easy" words sets the item's difficulty.
        difficulty (`np.ndarray`): the difficulty readable from each text, in [-1, 1].
        train, test (`datasets.Dataset`): sequences with columns `user_id`, `items` (catalog indices) and
            `responses` (1 = correct), split by user.
    """

    item_ids: list[str]
    texts: list[str]
    difficulty: np.ndarray
    train: datasets.Dataset
    test: datasets.Dataset


def make_synthetic_knowledge_tracing(
    num_users: int = 200,
    num_items: int = 100,
    min_length: int = 10,
    max_length: int = 50,
    words_per_item: int = 8,
    zipf_exponent: float = 1.0,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> SyntheticKnowledgeTracing:
    """
    Generates a deterministic knowledge-tracing dataset with a planted content signal.

    Each item's text mixes filler words with "easy" and "hard" words; its difficulty is `(#hard - #easy) / #signal
    words`. Learners have an ability `a ~ N(0, 1)` and answer correctly with probability `sigmoid(a - 2.5 *
    difficulty)`, so the text predicts the response and items unseen in training are predictable from their words.
    Items are drawn with Zipf popularity, so some items recur often in a batch (R_batch > 1).
    """
    if num_users < 2 or num_items < 1 or not 1 <= min_length <= max_length:
        raise ValueError("Need num_users >= 2, num_items >= 1 and 1 <= min_length <= max_length.")
    rng = np.random.default_rng(seed)
    texts, difficulty = [], np.empty(num_items)
    for item in range(num_items):
        hard_share = rng.uniform()
        signal = rng.integers(2, max(3, words_per_item // 2 + 1))
        is_hard = rng.uniform(size=signal) < hard_share
        words = [rng.choice(HARD_WORDS) if hard else rng.choice(EASY_WORDS) for hard in is_hard]
        words += list(rng.choice(FILLER_WORDS, size=words_per_item - signal))
        rng.shuffle(words)
        texts.append(" ".join(words))
        difficulty[item] = (2 * is_hard.sum() - signal) / signal
    popularity = 1.0 / np.arange(1, num_items + 1) ** zipf_exponent
    popularity = rng.permutation(popularity / popularity.sum())
    users = []
    for user in range(num_users):
        ability = rng.normal()
        length = int(rng.integers(min_length, max_length + 1))
        items = rng.choice(num_items, size=length, p=popularity)
        p_correct = 1.0 / (1.0 + np.exp(-(ability - 2.5 * difficulty[items])))
        responses = (rng.uniform(size=length) < p_correct).astype(np.int64)
        users.append({"user_id": f"u{user}", "items": items.tolist(), "responses": responses.tolist()})
    num_test = max(1, int(round(test_fraction * num_users)))
    test_users = set(rng.choice(num_users, size=num_test, replace=False).tolist())
    train = datasets.Dataset.from_list([u for i, u in enumerate(users) if i not in test_users])
    test = datasets.Dataset.from_list([u for i, u in enumerate(users) if i in test_users])
    return SyntheticKnowledgeTracing([f"q{i}" for i in range(num_items)], texts, difficulty, train, test)
