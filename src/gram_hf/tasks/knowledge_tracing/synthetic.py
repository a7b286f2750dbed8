"""
A small in-memory knowledge-tracing dataset whose responses depend on words in the item text, and the word lists and
item factors the raw-format writers ([`~gram_hf.tasks.knowledge_tracing.raw_synthetic`]) share with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import datasets
import numpy as np

from ..synthetic_structure import (
    ItemStructure,
    SyntheticStructure,
    choose_weak,
    mix_factors,
    resolve_structure,
    share_texts,
)

EASY_WORDS = ("simple", "easy", "basic", "common", "short", "clear", "plain", "small", "everyday", "familiar")
HARD_WORDS = ("complex", "difficult", "advanced", "rare", "obscure", "intricate", "abstract", "subtle", "technical")
FILLER_WORDS = (
    "the", "student", "reads", "a", "question", "about", "house", "river", "market", "city", "garden", "friend",
    "morning", "train", "letter", "school", "window", "music", "table", "story", "weather", "kitchen", "travel",
)  # fmt: skip
SKILL_WORDS = (
    "grammar", "vocabulary", "pronunciation", "spelling", "numbers", "verbs", "adjectives", "plurals", "tenses",
    "idioms", "prepositions", "articles",
)  # fmt: skip
"""The skill an item exercises, one word of its text under a latent structure (`SyntheticStructure.latent_dim > 0`):
items of one skill share the text-expressed part of their skill factors, as EdNet's questions share tags."""
SKILL_WEIGHT = 1.0
"""Weight of the learner-item skill match `<learner skills, item skills> / sqrt(latent_dim)` in a response's logit."""


@dataclass
class SyntheticKnowledgeTracing:
    """
    Items with text and learner sequences.

    Attributes:
        item_ids (`list[str]`): item identifiers (`"q0"`, `"q1"`, ...), catalog order.
        texts (`list[str]`): item text; the share of "hard" vs "easy" words expresses the item's difficulty.
        difficulty (`np.ndarray`): the latent difficulty the responses follow; planted: the difficulty each text
            spells, in [-1, 1]; else the text expresses a `text_signal` share of it (see `item_structure`).
        train, test (`datasets.Dataset`): sequences with columns `user_id`, `items` (catalog indices) and
            `responses` (1 = correct), split by user.
        item_structure (`ItemStructure`, *optional*): the planted item structure (factors: difficulty, then skill
            factors; shared and weak texts; popularity).
    """

    item_ids: list[str]
    texts: list[str]
    difficulty: np.ndarray
    train: datasets.Dataset
    test: datasets.Dataset
    item_structure: ItemStructure | None = None


def plant_item_factors(
    read: np.ndarray,
    skill_ids: np.ndarray | None,
    weak: np.ndarray,
    structure: SyntheticStructure,
    rng: np.random.Generator,
    strata: np.ndarray | None = None,
    unique: bool = False,
) -> ItemStructure:
    """
    The latent factors of knowledge-tracing items from what their texts say: `read` (the difficulty each text
    spells), `skill_ids` (the skill each text names, indices into [`SKILL_WORDS`], or None) and `weak` (filler-only
    texts). Shares texts first (`structure.shared_text_fraction`, groups within `strata`, none when `unique`): a
    sharing item takes its group's text, hence its `read`, skill and weakness (the caller copies the text itself by
    `text_source`). Then column 0 of the factors is the difficulty and the others the skill factors, each
    `sqrt(text_signal) * text part + sqrt(1 - text_signal) * hidden part`, the skills' text part a vector per skill
    (see [`~gram_hf.tasks.synthetic_structure.mix_factors`]). Planted: no draw, the factors are `read`.
    """
    source = share_texts(len(read), 0.0 if unique else structure.shared_text_fraction, rng, strata)
    weak = np.asarray(weak, dtype=bool)[source]
    text_part = np.asarray(read, dtype=np.float64)[source][:, None]
    if skill_ids is not None:
        skill_vectors = rng.normal(size=(len(SKILL_WORDS), structure.latent_dim))
        text_part = np.concatenate([text_part, skill_vectors[np.asarray(skill_ids)[source]]], axis=1)
    factors, text_factors = mix_factors(text_part, structure.text_signal, weak, rng)
    return ItemStructure(structure, factors, text_factors, source, weak, np.zeros(len(read)))


def make_synthetic_knowledge_tracing(
    num_users: int = 200,
    num_items: int = 100,
    min_length: int = 10,
    max_length: int = 50,
    words_per_item: int = 8,
    zipf_exponent: float = 1.0,
    test_fraction: float = 0.2,
    seed: int = 0,
    structure: str | SyntheticStructure = "planted",
) -> SyntheticKnowledgeTracing:
    """
    Generates a deterministic knowledge-tracing dataset with a planted content signal.

    Each item's text mixes filler words with "easy" and "hard" words; its difficulty is `(#hard - #easy) / #signal
    words`. Learners have an ability `a ~ N(0, 1)` and answer correctly with probability `sigmoid(a - 2.5 *
    difficulty)`, so the text predicts the response and items unseen in training are predictable from their words.
    Items are drawn with Zipf popularity, so some items recur often in a batch (R_batch > 1).

    That is the `"planted"` `structure` (a [`~gram_hf.tasks.synthetic_structure.SyntheticStructure`] or its name).
    Under another (`"realistic"`) the text spells only a `text_signal` share of the difficulty; with `latent_dim > 0`
    a skill word (one of [`SKILL_WORDS`], replacing a filler) names the item's skill, which carries a `text_signal`
    share of its skill factors, and learners' skills `~ N(0, I)` add `SKILL_WEIGHT * <learner, item> /
    sqrt(latent_dim)` to the logit; `weak_text_fraction` of the texts are filler only; `shared_text_fraction` of the
    items carry another's text; popularity follows `popularity_skew`. `item_structure` holds what was planted.
    """
    if num_users < 2 or num_items < 1 or not 1 <= min_length <= max_length:
        raise ValueError("Need num_users >= 2, num_items >= 1 and 1 <= min_length <= max_length.")
    structure = resolve_structure(structure)
    rng = np.random.default_rng(seed)
    weak = choose_weak(num_items, structure.weak_text_fraction, rng)
    skill_ids = rng.integers(0, len(SKILL_WORDS), size=num_items) if structure.latent_dim else None
    texts, difficulty = [], np.empty(num_items)
    for item in range(num_items):
        hard_share = rng.uniform()
        signal = 0 if weak[item] else rng.integers(2, max(3, words_per_item // 2 + 1))
        is_hard = rng.uniform(size=signal) < hard_share
        words = [rng.choice(HARD_WORDS) if hard else rng.choice(EASY_WORDS) for hard in is_hard]
        named = [SKILL_WORDS[skill_ids[item]]] if skill_ids is not None and not weak[item] else []
        named = named if words_per_item - signal > len(named) else []  # no room left for the skill word
        words += named + list(rng.choice(FILLER_WORDS, size=words_per_item - signal - len(named)))
        rng.shuffle(words)
        texts.append(" ".join(words))
        difficulty[item] = (2 * is_hard.sum() - signal) / signal if signal else 0.0
    planted = plant_item_factors(difficulty, skill_ids, weak, structure, rng)
    texts = [texts[index] for index in planted.text_source.tolist()]
    difficulty = planted.factors[:, 0].copy()
    item_skills = planted.factors[:, 1:] if skill_ids is not None else None
    popularity = 1.0 / np.arange(1, num_items + 1) ** structure.popularity_exponent(zipf_exponent)
    popularity = rng.permutation(popularity / popularity.sum())
    planted.popularity = popularity
    users = []
    for user in range(num_users):
        ability = rng.normal()
        length = int(rng.integers(min_length, max_length + 1))
        items = rng.choice(num_items, size=length, p=popularity)
        logits = ability - 2.5 * difficulty[items]
        if item_skills is not None:
            learner_skills = rng.normal(size=item_skills.shape[1])
            logits = logits + SKILL_WEIGHT * (item_skills[items] @ learner_skills) / math.sqrt(item_skills.shape[1])
        p_correct = 1.0 / (1.0 + np.exp(-logits))
        responses = (rng.uniform(size=length) < p_correct).astype(np.int64)
        users.append({"user_id": f"u{user}", "items": items.tolist(), "responses": responses.tolist()})
    num_test = max(1, int(round(test_fraction * num_users)))
    test_users = set(rng.choice(num_users, size=num_test, replace=False).tolist())
    train = datasets.Dataset.from_list([u for i, u in enumerate(users) if i not in test_users])
    test = datasets.Dataset.from_list([u for i, u in enumerate(users) if i in test_users])
    return SyntheticKnowledgeTracing([f"q{i}" for i in range(num_items)], texts, difficulty, train, test, planted)
