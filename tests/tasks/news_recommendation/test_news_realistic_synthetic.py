"""
The synthetic MIND generator under `structure="realistic"`: titles express about `text_signal` of the news' latent
taste vectors, the asked share of news share their texts, generic titles name no topic, popularity is skewed, and a
per-news click rate (ID-only) predicts clicks better than the titles do, while dev candidates stay news unseen in
training.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gram_hf.tasks.news_recommendation import make_synthetic_mind
from gram_hf.tasks.news_recommendation.synthetic import TOPICS
from gram_hf.tasks.synthetic_structure import SYNTHETIC_STRUCTURES, top_share

REALISTIC = SYNTHETIC_STRUCTURES["realistic"]
TOPIC_WORDS = [
    re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b")
    for subcategories in TOPICS.values()
    for words in subcategories.values()
]


def written_news(folder) -> dict[str, list[str]]:
    """Every news row written in any split, by NewsID (rows repeat identically across splits)."""
    rows = {}
    for path in sorted(folder.glob("MIND*_*/news.tsv")):
        for line in path.read_text(encoding="utf-8").splitlines():
            columns = line.split("\t")
            assert rows.setdefault(columns[0], columns) == columns
    return rows


def topic_features(title: str) -> np.ndarray:
    """How many words of each topic a title holds (what a reader of the title finds)."""
    title = title.lower()
    return np.array([len(topic.findall(title)) for topic in TOPIC_WORDS], dtype=np.float64)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mind")
    realistic = make_synthetic_mind(folder / "realistic", "small", 0.01, seed=0, structure="realistic")
    planted = make_synthetic_mind(folder / "planted", "small", 0.01, seed=0)
    return realistic, planted


def test_shared_and_weak_texts(generated):
    truth = generated[0]
    planted = truth.item_structure
    rows = written_news(truth.path)
    index = {news_id: i for i, news_id in enumerate(truth.news_ids)}
    assert planted.factors.shape == (len(truth.news_ids), REALISTIC.latent_dim)
    assert planted.shared_text.sum() == round(REALISTIC.shared_text_fraction * len(truth.news_ids))
    titles = Counter((row[3], row[4]) for row in rows.values())
    for news_id, row in rows.items():
        item = index[news_id]
        source = truth.news_ids[planted.text_source[item]]
        if source in rows:  # a shared news carries its group's title and abstract, and its topic
            assert rows[source][1:5] == row[1:5]
        if titles[(row[3], row[4])] > 1:
            assert planted.shared_text[item]
        words = topic_features(row[3])
        if planted.weak_text[item]:
            assert words.sum() == 0 and row[1] not in row[3].lower()  # generic: no topic word, no category
        else:
            assert words[truth.news_topics[item]] >= 1
    groups = [
        np.flatnonzero(planted.text_source == leader) for leader in set(planted.text_source[planted.shared_text])
    ]
    assert all(np.ptp(planted.factors[group], axis=0).max() > 0 for group in groups)  # same text, other factors
    assert abs(planted.weak_text.mean() - REALISTIC.weak_text_fraction) < 0.05


def test_titles_explain_the_asked_share(generated):
    truth = generated[0]
    planted = truth.item_structure
    rows = written_news(truth.path)
    written = np.array([news_id in rows for news_id in truth.news_ids])
    features = np.array([topic_features(rows[news_id][3]) if news_id in rows else np.zeros(len(TOPIC_WORDS))
                         for news_id in truth.news_ids])  # fmt: skip
    informative = written & ~planted.weak_text
    assert informative.sum() > 400
    assert planted.explained_by(features, informative) == pytest.approx(REALISTIC.text_signal, abs=0.08)
    assert planted.explained_by(features, written) == pytest.approx(planted.text_explained_share, abs=0.08)
    assert planted.explained_by(features, written) < 0.4  # the titles leave most of the taste vector unexplained
    assert generated[1].item_structure.explained_by(features_of(generated[1]), None) > 0.85  # planted: it is all


def features_of(truth) -> np.ndarray:
    rows = written_news(truth.path)
    return np.array([topic_features(rows[n][3]) if n in rows else np.zeros(len(TOPIC_WORDS)) for n in truth.news_ids])


def clicked_counts(truth) -> Counter:
    split = truth.splits["train"]
    return Counter(
        n for candidates, labels in zip(split.candidates, split.labels) for n, y in zip(candidates, labels) if y
    )


def test_popularity_is_skewed(generated):
    realistic, planted = generated
    shares = [top_share(list(clicked_counts(truth).values()) + [0] * len(truth.news_ids)) for truth in generated]
    histories = [
        top_share(list(Counter(n for h in {tuple(h) for h in t.splits["train"].histories} for n in h).values()))
        for t in generated
    ]
    assert shares[0] > 0.75 and shares[0] > shares[1] and histories[0] > histories[1]
    popularity = np.sort(realistic.item_structure.popularity)[::-1]
    assert popularity[1] / popularity[0] == pytest.approx(2.0**-REALISTIC.popularity_skew)
    split = realistic.splits["train"]
    assert 1.0 <= split.num_clicks / split.num_impressions < 3.0  # click volume as planted


def ctr_and_title_auc(truth, seed: int = 0) -> tuple[float, float]:
    """
    AUC over half the training impressions of a per-news click rate from the other half (ID-only) and of the match
    between a candidate's topic words and the topic words of the user's history (content-only).
    """
    split = truth.splits["train"]
    features = {news_id: topic_features(row[3]) for news_id, row in written_news(truth.path).items()}
    first = np.random.default_rng(seed).uniform(size=split.num_impressions) < 0.5
    shown, clicks = Counter(), Counter()
    for k in np.flatnonzero(first):
        for news_id, label in zip(split.candidates[k], split.labels[k]):
            shown[news_id] += 1
            clicks[news_id] += label
    labels, by_id, by_title = [], [], []
    for k in np.flatnonzero(~first):
        history = sum((features[n] for n in split.histories[k]), np.zeros(len(TOPIC_WORDS)))
        history /= max(1.0, history.sum())
        for news_id, label in zip(split.candidates[k], split.labels[k]):
            if shown[news_id] >= 3:
                labels.append(label)
                by_id.append((clicks[news_id] + 0.1) / (shown[news_id] + 1))
                by_title.append(features[news_id] @ history)
    return roc_auc_score(labels, by_id), roc_auc_score(labels, by_title)


def test_ids_find_what_the_titles_miss(generated):
    realistic, planted = generated
    by_id, by_title = ctr_and_title_auc(realistic)
    assert by_id > by_title + 0.05
    assert by_title > 0.53  # the titles still carry some signal
    by_id, by_title = ctr_and_title_auc(planted)
    assert by_title > by_id + 0.05  # planted: the titles carry it


def test_dev_candidates_stay_cold(generated):
    for truth in generated:
        train = truth.splits["train"]
        seen = {n for candidates in train.candidates for n in candidates} | {n for h in train.histories for n in h}
        dev = [n for candidates in truth.splits["dev"].candidates for n in candidates]
        assert np.mean([n not in seen for n in dev]) > 0.3
