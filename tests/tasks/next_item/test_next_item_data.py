"""Next-item data: preprocessing by hand, MovieLens / Amazon loaders on synthetic raw files, bad input, caching."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from gram_hf.tasks.next_item import (
    load_amazon,
    load_movielens,
    make_synthetic_amazon,
    make_synthetic_movielens,
    prepare_sequences,
)
from gram_hf.tasks.next_item.readers import amazon_text, read_amazon_metadata


def test_prepare_sequences_by_hand():
    # user a: 4 items; b: 3; c: 2 (dropped: < 3); item z has 1 interaction (dropped at item core 2).
    rows = [
        ("a", "x", 10), ("a", "y", 5), ("b", "y", 1), ("a", "w", 20), ("a", "z", 30), ("b", "x", 2),
        ("b", "w", 2), ("c", "x", 7), ("c", "y", 8), ("a", "x", 40), ("a", "v", 50), ("b", "v", 60),
    ]  # fmt: skip
    users, items, times = (np.array(column) for column in zip(*rows))
    prepared = prepare_sequences(users, items, times, min_item_interactions=2, min_user_interactions=3)
    assert prepared.item_keys.tolist() == ["v", "w", "x", "y"]
    v, w, x, y = range(4)
    # a: y(5) x(10) w(20) [z dropped] [x repeat dropped] v(50); b: y(1) x(2) w(2, tie kept in input order) v(60)
    assert prepared.splits["test"]["user_id"] == ["a", "b"]
    assert prepared.splits["test"]["items"] == [[y, x, w, v], [y, x, w, v]]
    assert prepared.splits["validation"]["items"] == [[y, x, w], [y, x, w]]
    assert prepared.splits["train"]["items"] == [[y, x], [y, x]]
    assert prepared.splits["test"]["timestamps"][1] == [1, 2, 2, 60]
    assert prepared.train_counts.tolist() == [0, 0, 2, 2]
    assert prepared.item_interactions.tolist() == [2, 2, 2, 2]
    stats = prepared.stats
    assert stats["dropped"] == {"duplicates": 1, "filtered_min_interactions": 3}
    assert stats["users"] == 2 and stats["items"] == 4 and stats["cold_start_items"] == 2
    assert stats["interactions"] == 8 == len(rows) - sum(stats["dropped"].values())


def test_prepare_sequences_filters_until_both_cores_hold():
    # Dropping user c (2 interactions) leaves items q and t with 1 < 2 interactions, which then drops user b below 3.
    sequences = {"a": "pqrs", "b": "prt", "c": "qt", "d": "prs"}
    rows = [(user, item, t) for user, items in sequences.items() for t, item in enumerate(items)]
    users, items, times = (np.array(column) for column in zip(*rows))
    prepared = prepare_sequences(users, items, times, min_item_interactions=2, min_user_interactions=3)
    assert prepared.item_keys.tolist() == ["p", "r", "s"]
    assert prepared.splits["test"]["user_id"] == ["a", "d"]
    assert prepared.stats["filter_rounds"] == 3
    with pytest.raises(ValueError, match="at least 3"):
        prepare_sequences(users, items, times, min_user_interactions=2)
    with pytest.raises(ValueError, match="No interactions"):
        prepare_sequences(users, items, times, min_item_interactions=100)


SMALL_MOVIELENS = {"num_users": 60, "num_items": 40, "num_genres": 4, "max_length": 12, "new_item_fraction": 0.1,
                   "new_item_rate": 0.6, "seed": 1}  # fmt: skip


@pytest.fixture(scope="module")
def movielens_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ml")
    synthetic = make_synthetic_movielens(folder, **SMALL_MOVIELENS)
    return folder, synthetic


def check_leave_one_out(data):
    test, validation, train = data["test"], data["validation"], data["train"]
    by_user = {row["user_id"]: row["items"] for row in test}
    assert len(test) == len(validation) == len(by_user)
    for row in validation:
        assert row["items"] == by_user[row["user_id"]][:-1]
    for row in train:
        assert row["items"] == by_user[row["user_id"]][:-2] and len(row["items"]) >= 2
    for row in test:
        assert len(row["items"]) >= 3 and row["timestamps"] == sorted(row["timestamps"])
    counts = np.bincount([i for row in test for i in row["items"]], minlength=data.num_items)
    assert (counts >= 5).all()
    assert counts.tolist() == data.items["num_interactions"]
    train_counts = np.bincount([i for row in train for i in row["items"]], minlength=data.num_items)
    assert train_counts.tolist() == data.items["train_count"]
    assert data.items["cold_start"] == (train_counts == 0).tolist()


def test_load_movielens_synthetic(movielens_dir, tmp_path):
    folder, synthetic = movielens_dir
    data = load_movielens(folder, cache_dir=str(tmp_path / "cache"))
    check_leave_one_out(data)
    assert data.stats["dataset"] == "movielens" and data.stats["users"] == len(data["test"])
    item_ids = data.items["item_id"]
    assert item_ids == sorted(item_ids, key=int)  # catalog order is movieId order
    first = data.items[0]
    assert first["text"].startswith(first["title"]) and all(genre in first["text"] for genre in first["genres"])
    assert any("," in title for title in data.items["title"])  # quoted titles survive
    cold = {item_ids[i] for i, flag in enumerate(data.items["cold_start"]) if flag}
    assert cold and cold <= set(synthetic.new_items)  # cold-start items are the new releases
    # deterministic by seed
    again = make_synthetic_movielens(tmp_path / "again", **SMALL_MOVIELENS)
    assert open(again.files["ratings"]).read() == open(synthetic.files["ratings"]).read()


def test_movielens_cache_is_keyed_on_the_files(tmp_path):
    folder = tmp_path / "ml"
    make_synthetic_movielens(folder, num_users=40, num_items=30, num_genres=3, max_length=10, seed=2)
    cache = str(tmp_path / "cache")
    first = load_movielens(folder, cache_dir=cache)
    assert load_movielens(folder, cache_dir=cache).stats == first.stats  # served from the cache, stats included
    filtered = load_movielens(folder, cache_dir=cache, min_rating=2.5)  # options are part of the key too
    assert 0 < filtered.stats["dropped"]["below_min_rating"] < first.stats["rows_read"]
    for data in (first, filtered):  # the dropped-counts contract: every rating is in the splits or dropped
        assert data.stats["rows_read"] == data.stats["interactions"] + sum(data.stats["dropped"].values())
        assert data.stats["interactions"] == sum(len(items) for items in data["test"]["items"])
    ratings = folder / "ratings.csv"
    lines = ratings.read_text().splitlines()
    ratings.write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # an edited file is re-read, not served stale
    edited = load_movielens(folder, cache_dir=cache)
    assert edited.stats["rows_read"] == len(lines) // 2 - 1 != first.stats["rows_read"]


def test_movielens_unknown_movies_are_dropped_or_strict(tmp_path):
    folder = tmp_path / "ml"
    make_synthetic_movielens(folder, num_users=40, num_items=30, num_genres=3, max_length=10, seed=3)
    movies = folder / "movies.csv"
    lines = movies.read_text().splitlines()
    movies.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # the first movie loses its metadata
    data = load_movielens(folder, cache_dir=str(tmp_path / "cache"))
    assert data.stats["dropped"]["unknown_items"] > 0
    assert data.stats["rows_read"] == data.stats["interactions"] + sum(data.stats["dropped"].values())
    with pytest.raises(ValueError, match="absent from the item file"):
        load_movielens(folder, cache_dir=str(tmp_path / "cache"), strict=True)


@pytest.mark.parametrize(
    ("file", "line", "bad", "match"),
    [
        ("ratings.csv", 3, "1,2,3.5", "ratings.csv:3: expected 4 comma-separated fields"),
        ("ratings.csv", 4, "1,abc,3.5,100", "ratings.csv:4: movieId 'abc' is not a valid int"),
        ("ratings.csv", 1, "user,movie,rating,time", "ratings.csv:1: expected the header"),
        ("movies.csv", 3, "12,Title Only", "movies.csv:3: expected 3 fields"),
        ("movies.csv", 2, "x1,Some Title (1999),Drama", "movies.csv:2: movieId 'x1' is not an integer"),
    ],
)
def test_movielens_malformed_lines_name_file_and_line(tmp_path, file, line, bad, match):
    folder = tmp_path / "ml"
    make_synthetic_movielens(folder, num_users=20, num_items=20, num_genres=2, max_length=8, seed=4)
    path = folder / file
    lines = path.read_text().splitlines()
    lines[line - 1] = bad
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=match):
        load_movielens(folder, cache_dir=str(tmp_path / "cache"))


def test_missing_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "ratings.csv")):
        load_movielens(tmp_path)
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    with pytest.raises(FileNotFoundError, match="movies.csv"):
        load_movielens(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_amazon(tmp_path / "nowhere.json", tmp_path / "ratings.csv")


@pytest.fixture(scope="module")
def amazon_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("amazon")
    return make_synthetic_amazon(folder, num_users=60, num_items=40, num_categories=4, max_length=12, seed=5)


def test_load_amazon_synthetic(amazon_files, tmp_path):
    files = amazon_files.files
    first_line = open(files["metadata"]).readline()
    assert first_line.startswith("{'asin': ")  # Python literal, not JSON, as the 2014 metadata
    data = load_amazon(files["reviews"], files["metadata"], cache_dir=str(tmp_path / "cache"))
    check_leave_one_out(data)
    assert data.items["item_id"] == sorted(data.items["item_id"])
    assert data.stats["metadata_records"] == data.stats["items"] <= 40  # unreviewed records are skipped
    row = data.items[0]
    assert row["title"] in row["text"] and row["categories"][0] == "Beauty" and row["description"] in row["text"]


def test_amazon_metadata_is_parsed_never_evaluated(tmp_path, amazon_files):
    marker = tmp_path / "executed"
    metadata = tmp_path / "meta.json"
    payload = f"{{'asin': 'B1', 'title': __import__('pathlib').Path({str(marker)!r}).touch()}}"
    metadata.write_text("{'asin': 'B0', 'title': 'ok', 'categories': [['Beauty', 'Nail']]}\n" + payload + "\n")
    with pytest.raises(ValueError, match="meta.json:2: neither a Python literal nor JSON"):
        read_amazon_metadata(str(metadata))
    assert not marker.exists()
    # JSON records (2018 release) parse too, and list descriptions and flat categories are joined.
    record = {"asin": "B2", "title": "T", "category": ["Beauty", "Nail"], "description": ["a", "b"], "rank": None}
    metadata.write_text(json.dumps(record) + "\n")
    record = read_amazon_metadata(str(metadata))["B2"]
    assert amazon_text(record) == ("T. Beauty, Nail. a b", ["Beauty", "Nail"], "T", "a b")


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "reviews.json:2: invalid JSON"),
        ('{"asin": "B1", "unixReviewTime": 5}', "reviews.json:2: missing reviewerID"),
        ('{"reviewerID": "A", "asin": "B1", "unixReviewTime": "yesterday"}', "reviews.json:2: unixReviewTime must"),
        ("[1, 2]", "reviews.json:2: expected a JSON object"),
    ],
)
def test_amazon_malformed_reviews_name_file_and_line(tmp_path, amazon_files, line, match):
    reviews = tmp_path / "reviews.json"
    lines = open(amazon_files.files["reviews"]).read().splitlines()
    reviews.write_text("\n".join([lines[0], line, *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=match):
        load_amazon(reviews, amazon_files.files["metadata"], cache_dir=str(tmp_path / "cache"))


def test_amazon_reads_gzip(tmp_path, amazon_files):
    import gzip

    compressed = {}
    for name, path in amazon_files.files.items():
        compressed[name] = str(tmp_path / (os.path.basename(path) + ".gz"))
        with open(path, "rb") as source, gzip.open(compressed[name], "wb") as target:
            target.write(source.read())
    data = load_amazon(compressed["reviews"], compressed["metadata"], cache_dir=str(tmp_path / "cache"))
    plain = load_amazon(amazon_files.files["reviews"], amazon_files.files["metadata"], cache_dir=str(tmp_path / "c2"))
    assert data["test"]["items"] == plain["test"]["items"]


def test_amazon_truncated_gzip_names_the_file_and_the_line(tmp_path, amazon_files):
    import gzip

    reviews = tmp_path / "reviews_Beauty_5.json.gz"
    with open(amazon_files.files["reviews"], "rb") as source, gzip.open(reviews, "wb") as target:
        target.write(source.read())
    cut = tmp_path / "cut_reviews_Beauty_5.json.gz"
    cut.write_bytes(reviews.read_bytes()[: reviews.stat().st_size // 2])
    with pytest.raises(ValueError, match="the file looks truncated") as info:
        load_amazon(cut, amazon_files.files["metadata"], cache_dir=str(tmp_path / "cache"))
    assert str(info.value).startswith(f"{cut}:{info.value.line}: ") and info.value.line > 1
    assert not isinstance(info.value, EOFError)


def test_movielens_bad_lines_and_invalid_utf8_are_reported_together(tmp_path):
    folder = tmp_path / "ml"
    make_synthetic_movielens(folder, num_users=20, num_items=20, num_genres=2, max_length=8, seed=4)
    ratings = folder / "ratings.csv"
    lines = ratings.read_text().splitlines()
    for number in (3, 5, 6, 8, 9, 10, 11):
        lines[number - 1] = "1,2,3.5"
    ratings.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as info:
        load_movielens(folder, cache_dir=str(tmp_path / "cache"))
    message = str(info.value)
    assert message.startswith("7 bad lines:\n") and message.endswith("... and 2 more bad lines")
    assert [line for _, line, _ in info.value.problems] == [3, 5, 6, 8, 9]
    movies = folder / "movies.csv"
    movies.write_bytes(movies.read_bytes().replace(b"\n", "\n9999,Am\xe9lie (2001),Comedy\n".encode("latin-1"), 1))
    ratings.write_text("\n".join(ratings.read_text().splitlines()[:2]) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{movies}:2: not valid UTF-8 (byte 0xe9 at column 8")):
        load_movielens(folder, cache_dir=str(tmp_path / "cache"))
