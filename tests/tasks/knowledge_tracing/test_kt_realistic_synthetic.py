"""
The knowledge-tracing generators under `structure="realistic"`: the planted structure is what the settings ask —
skewed popularity, the asked share of items sharing their text (with different factors), generic texts, a text that
explains about `text_signal` of the items' latent factors, and a collaborative signal that per-item statistics find
and the text does not.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gram_hf.tasks.knowledge_tracing import (
    load_ednet,
    make_synthetic_knowledge_tracing,
    write_synthetic_duolingo,
    write_synthetic_ednet,
    write_synthetic_kt_csv,
    write_synthetic_poj,
)
from gram_hf.tasks.knowledge_tracing.synthetic import EASY_WORDS, HARD_WORDS, SKILL_WORDS
from gram_hf.tasks.synthetic_structure import SYNTHETIC_STRUCTURES, top_share

REALISTIC = SYNTHETIC_STRUCTURES["realistic"]


def read_texts(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """What a reader finds in each text: `[difficulty spelled by hard/easy words, one-hot skill word]`, and the mask
    of texts with any signal word."""
    features, informative = [], []
    for text in texts:
        words = re.findall(r"[a-z]+", text.lower())
        hard = sum(word in HARD_WORDS for word in words)
        easy = sum(word in EASY_WORDS for word in words)
        skills = [float(skill in words) for skill in SKILL_WORDS]
        features.append([(hard - easy) / (hard + easy) if hard + easy else 0.0, *skills])
        informative.append(hard + easy + sum(skills) > 0)
    return np.array(features), np.array(informative)


def item_counts(truth) -> np.ndarray:
    index = {item: position for position, item in enumerate(truth.item_ids)}
    counts = np.zeros(len(truth.item_ids))
    for sequence in truth.sequences.values():
        np.add.at(counts, [index[item] for item in sequence["item_ids"]], 1)
    return counts


def id_and_text_auc(truth, seed: int = 0) -> tuple[float, float]:
    """
    AUC on a third of the learners (held out) of two item statistics: the item's correct rate among the other
    learners (ID-only) and the difficulty its text spells (content-only), over held-out answers to items seen before.
    """
    index = {item: position for position, item in enumerate(truth.item_ids)}
    read = read_texts(truth.item_texts)[0][:, 0]
    users = list(truth.sequences)
    held_out = set(np.random.default_rng(seed).choice(len(users), len(users) // 3, replace=False).tolist())
    correct, seen = np.zeros(len(index)), np.zeros(len(index))
    for position, user in enumerate(users):
        if position not in held_out:
            items = [index[item] for item in truth.sequences[user]["item_ids"]]
            np.add.at(correct, items, truth.sequences[user]["responses"])
            np.add.at(seen, items, 1)
    rate = (correct + 1) / (seen + 2)
    labels, by_id, by_text = [], [], []
    for position in sorted(held_out):
        sequence = truth.sequences[users[position]]
        for item, response in zip(sequence["item_ids"], sequence["responses"]):
            if seen[index[item]]:
                labels.append(response)
                by_id.append(rate[index[item]])
                by_text.append(-read[index[item]])
    return roc_auc_score(labels, by_id), roc_auc_score(labels, by_text)


WRITERS = [
    (write_synthetic_duolingo, {"scale": 0.005}),
    (write_synthetic_ednet, {"scale": 0.00005, "text_tokens": 8}),
    (write_synthetic_poj, {"scale": 0.0005, "text_tokens": 14}),
    (write_synthetic_kt_csv, {"scale": 0.005}),
]


@pytest.mark.parametrize(("writer", "kwargs"), WRITERS, ids=lambda value: getattr(value, "__name__", ""))
def test_writers_plant_shared_and_weak_texts(tmp_path, writer, kwargs):
    truth = writer(tmp_path, seed=1, structure="realistic", **kwargs)
    planted = truth.item_structure
    with_text = np.array([bool(text) for text in truth.item_texts])  # EdNet lists unused questions without text
    num_items = int(with_text.sum())
    assert planted.factors.shape == (len(truth.item_ids), 1 + REALISTIC.latent_dim)
    np.testing.assert_array_equal(planted.factors[:, 0], truth.item_difficulty)
    # Sharing, as the written texts show it, is what the structure says.
    texts = np.array(truth.item_texts, dtype=object)
    _, inverse, counts = np.unique(texts[with_text], return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(counts[inverse] > 1, planted.shared_text[with_text])
    expected = 0 if writer is write_synthetic_duolingo else round(REALISTIC.shared_text_fraction * num_items)
    assert planted.shared_text.sum() == expected  # Duolingo's items are their sentences: never shared
    for leader in np.unique(planted.text_source[planted.shared_text]):
        group = np.flatnonzero(planted.text_source == leader)
        assert len({texts[i] for i in group}) == 1
        assert len({tuple(planted.factors[i].round(9)) for i in group}) == len(group)  # same text, other factors
    # Weak texts say nothing; the others spell a difficulty and name a skill.
    features, informative = read_texts(truth.item_texts)
    weak = planted.weak_text[with_text]
    assert not informative[with_text][weak].any() and informative[with_text][~weak].all()
    assert (features[with_text][~weak][:, 1:].sum(axis=1) == 1).all()
    assert abs(weak.mean() - REALISTIC.weak_text_fraction) < 0.08
    assert truth.cold_start_items == writer(tmp_path / "planted", seed=1, **kwargs).cold_start_items


@pytest.mark.parametrize("text_signal", [0.3, 0.7])
def test_text_explains_the_asked_share_of_the_factors(tmp_path, text_signal):
    structure = dataclasses.replace(REALISTIC, text_signal=text_signal)
    truth = write_synthetic_kt_csv(tmp_path, scale=0.05, seed=0, structure=structure, text_tokens=6)
    planted = truth.item_structure
    features, _ = read_texts(truth.item_texts)
    informative = ~planted.weak_text
    assert len(truth.item_ids) > 1000
    # Where the text speaks it explains `text_signal` of the factors; over the catalog, that times the informative
    # share, as the truth reports.
    assert planted.explained_by(features, informative) == pytest.approx(text_signal, abs=0.05)
    assert planted.text_explained_share == pytest.approx((1 - REALISTIC.weak_text_fraction) * text_signal, abs=0.04)
    assert planted.explained_by(features) == pytest.approx(planted.text_explained_share, abs=0.05)
    # The difficulty alone, from the hard/easy words alone.
    difficulty_only = dataclasses.replace(planted, factors=planted.factors[:, :1])
    assert difficulty_only.explained_by(features[:, :1], informative) == pytest.approx(text_signal, abs=0.07)


def test_popularity_is_skewed(tmp_path):
    realistic = write_synthetic_kt_csv(tmp_path / "r", scale=0.02, seed=0, structure="realistic")
    planted = write_synthetic_kt_csv(tmp_path / "p", scale=0.02, seed=0)
    assert top_share(item_counts(realistic)) > 0.68
    assert top_share(item_counts(realistic)) > top_share(item_counts(planted)) + 0.08
    np.testing.assert_allclose(
        np.sort(realistic.item_structure.popularity)[::-1][:3] / realistic.item_structure.popularity.max(),
        [1.0, 2.0**-REALISTIC.popularity_skew, 3.0**-REALISTIC.popularity_skew],
    )


def test_ids_find_what_the_text_misses(tmp_path):
    realistic = write_synthetic_kt_csv(tmp_path / "r", scale=0.02, seed=0, structure="realistic")
    by_id, by_text = id_and_text_auc(realistic)
    assert by_id > by_text + 0.08  # the collaborative signal: per-item correctness beats the text
    assert by_text > 0.55  # and the text still helps (cold-start items have nothing else)
    planted = write_synthetic_kt_csv(tmp_path / "p", scale=0.02, seed=0)
    by_id, by_text = id_and_text_auc(planted)
    assert by_text > by_id - 0.01  # planted: the text says it all


def test_in_memory_generator(tmp_path):
    data = make_synthetic_knowledge_tracing(num_users=500, num_items=300, structure="realistic", seed=0)
    planted = data.item_structure
    np.testing.assert_array_equal(planted.factors[:, 0], data.difficulty)
    assert planted.shared_text.sum() == round(REALISTIC.shared_text_fraction * 300)
    _, inverse, counts = np.unique(np.array(data.texts, dtype=object), return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(counts[inverse] > 1, planted.shared_text)
    features, informative = read_texts(data.texts)
    np.testing.assert_array_equal(informative, ~planted.weak_text)
    assert planted.explained_by(features, informative) == pytest.approx(REALISTIC.text_signal, abs=0.1)
    counts = np.bincount(np.concatenate(list(data.train["items"]) + list(data.test["items"])), minlength=300)
    assert top_share(counts) > 0.6
    assert make_synthetic_knowledge_tracing(num_users=20, num_items=30, structure="realistic", seed=3).texts == (
        make_synthetic_knowledge_tracing(num_users=20, num_items=30, structure="realistic", seed=3).texts
    )


def test_ednet_loader_reads_shared_texts_and_keeps_cold_start_items(tmp_path):
    truth = write_synthetic_ednet(tmp_path / "raw", scale=0.00005, seed=0, text_tokens=8, structure="realistic")
    data = load_ednet(
        truth.files["kt1_dir"], truth.files["questions_csv"], truth.files["item_text"],
        cold_start_items=truth.cold_start_items, cache_dir=tmp_path / "cache",
    )  # fmt: skip
    texts = dict(zip(truth.item_ids, truth.item_texts))
    assert all(texts[item] == text for item, text in zip(data.items["item_id"], data.items["text"]))
    assert len(set(data.items["text"])) < len(data.items)  # items that share their text stay distinct items
    assert sum(data.items["cold_start"]) == truth.cold_start_items > 0
