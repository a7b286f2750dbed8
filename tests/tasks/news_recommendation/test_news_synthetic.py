"""The synthetic MIND generator: MIND's raw formats, determinism, preset scaling and the planted content signal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gram_hf.tasks.news_recommendation import MIND_PRESETS, make_synthetic_mind
from gram_hf.tasks.news_recommendation.mind_parsing import parse_mind_time
from gram_hf.tasks.news_recommendation.synthetic import TOPICS

TINY = {"num_users": 40, "num_news": 100, "train_impressions": 30, "dev_impressions": 20}


def read_tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_for_a_seed_and_different_across_seeds(tmp_path):
    make_synthetic_mind(tmp_path / "a", **TINY, seed=5)
    make_synthetic_mind(tmp_path / "b", **TINY, seed=5)
    make_synthetic_mind(tmp_path / "c", **TINY, seed=6)
    assert read_tree(tmp_path / "a") == read_tree(tmp_path / "b")
    assert read_tree(tmp_path / "a") != read_tree(tmp_path / "c")


def test_mind_raw_formats(tmp_path):
    data = make_synthetic_mind(tmp_path, "large", **TINY, test_impressions=10, seed=0, with_body=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "MINDlarge_dev", "MINDlarge_test", "MINDlarge_train", "news_body.tsv",
    ]  # fmt: skip
    for role, truth in data.splits.items():
        folder = tmp_path / f"MINDlarge_{role}"
        assert truth.folder == folder
        assert {p.name for p in folder.iterdir()} == {
            "news.tsv", "behaviors.tsv", "entity_embedding.vec", "relation_embedding.vec",
        }  # fmt: skip
        news_ids = set()
        for line in (folder / "news.tsv").read_text(encoding="utf-8").splitlines():
            columns = line.split("\t")
            assert len(columns) == 8
            news_ids.add(columns[0])
            assert columns[1] in TOPICS and columns[2] in TOPICS[columns[1]]
            assert columns[5].startswith("https://assets.msn.com/labs/mind/")
            for entities in columns[6:]:
                assert entities == "" or isinstance(json.loads(entities), list)
        lines = (folder / "behaviors.tsv").read_text(encoding="utf-8").splitlines()
        assert len(lines) == truth.num_impressions
        for number, line in enumerate(lines, start=1):
            impression_id, user_id, time, history, impressions = line.split("\t")
            assert int(impression_id) == number and user_id.startswith("U")
            assert parse_mind_time(time).year == 2019 and not time.startswith("0")
            assert set(history.split()) <= news_ids
            tokens = impressions.split()
            if role == "test":
                assert all("-" not in token for token in tokens)
            else:
                assert all(token.rsplit("-", 1)[1] in ("0", "1") for token in tokens)
                assert any(token.endswith("-1") for token in tokens)
            assert {token.split("-")[0] for token in tokens} <= news_ids
        vectors = (folder / "entity_embedding.vec").read_text().splitlines()
        assert all(len(line.rstrip("\t").split("\t")) == 101 for line in vectors)
    assert not data.splits["test"].has_labels and data.splits["dev"].has_labels
    bodies = (tmp_path / "news_body.tsv").read_text(encoding="utf-8").splitlines()
    assert len(bodies) == len(data.news_ids) and all("\t" in line for line in bodies)


def test_titles_and_entities_exercise_quoting(tmp_path):
    make_synthetic_mind(tmp_path, num_users=50, num_news=400, train_impressions=20, dev_impressions=10, seed=0)
    text = (tmp_path / "MINDsmall_train" / "news.tsv").read_text(encoding="utf-8")
    titles = [line.split("\t")[3] for line in text.splitlines()]
    assert any('"' in title for title in titles)
    assert '\\"' in text and "\\t" in text  # escaped quotes and tabs inside entity JSON
    assert any(line.split("\t")[4] == "" for line in text.splitlines())  # empty abstracts


def test_presets_are_mind_statistics():
    small = MIND_PRESETS["small"]
    assert small.num_news == 65_238 and small.test_impressions == 0
    assert MIND_PRESETS["large"].test_impressions == 2_370_727


def test_scaled_counts(tmp_path):
    data = make_synthetic_mind(tmp_path, "small", scale=0.001, seed=0)
    assert len(data.user_ids) == 50 and len(data.news_ids) == 65
    assert data.splits["train"].num_impressions == 157
    assert data.splits["dev"].num_impressions == 73
    assert "test" not in data.splits
    clicks_per_impression = data.splits["train"].num_clicks / data.splits["train"].num_impressions
    assert 1.0 <= clicks_per_impression < 3.0


def test_topic_is_readable_from_the_title(tmp_path):
    data = make_synthetic_mind(tmp_path, **TINY, seed=0)
    words = [words for subs in TOPICS.values() for words in subs.values()]
    lines = (tmp_path / "MINDsmall_train" / "news.tsv").read_text(encoding="utf-8").splitlines()
    index = {news_id: i for i, news_id in enumerate(data.news_ids)}
    for line in lines:
        news_id, _, _, title = line.split("\t")[:4]
        topic = int(data.news_topics[index[news_id]])
        title_words = {word.strip('"').lower() for word in title.split(" ")}
        assert len(title_words & set(words[topic])) >= 1


def test_preferences_predict_clicks_on_news_unseen_in_training(tmp_path):
    data = make_synthetic_mind(tmp_path, "small", scale=0.004, seed=0)
    index = {news_id: i for i, news_id in enumerate(data.news_ids)}
    users = {user_id: i for i, user_id in enumerate(data.user_ids)}
    train_news = {n for candidates in data.splits["train"].candidates for n in candidates}
    clicked, not_clicked = [], []
    for user_id, candidates, labels in zip(
        data.splits["dev"].user_ids, data.splits["dev"].candidates, data.splits["dev"].labels
    ):
        for news_id, label in zip(candidates, labels):
            if news_id in train_news:
                continue
            affinity = data.user_preferences[users[user_id], data.news_topics[index[news_id]]]
            (clicked if label else not_clicked).append(affinity)
    assert len(clicked) > 20 and len(not_clicked) > 100
    # AUC of the true preference on cold news: far above chance
    clicked, not_clicked = np.array(clicked), np.array(not_clicked)
    auc = (clicked[:, None] > not_clicked[None, :]).mean() + 0.5 * (clicked[:, None] == not_clicked[None, :]).mean()
    assert auc > 0.7


def test_histories_reflect_preferences(tmp_path):
    data = make_synthetic_mind(tmp_path, "small", scale=0.004, seed=0)
    index = {news_id: i for i, news_id in enumerate(data.news_ids)}
    users = {user_id: i for i, user_id in enumerate(data.user_ids)}
    shares = []
    for user_id, history in zip(data.splits["train"].user_ids, data.splits["train"].histories):
        if len(history) >= 5:
            topics = data.news_topics[[index[n] for n in history]]
            top = np.argsort(data.user_preferences[users[user_id]])[-3:]
            shares.append(np.isin(topics, top).mean())
    # a user's three favourite topics are ~10% of all topics but far more of the history (small catalogs cap this:
    # histories draw without replacement from the few news of those topics)
    chance = 3 / len(data.topic_names)
    assert np.mean(shares) > 3 * chance


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"preset": "medium"}, "preset"), ({"scale": 0}, "scale"), ({"num_news": 5}, "num_news >= 10")],
)
def test_invalid_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic_mind(tmp_path, **kwargs)
