"""
The next-item readers' pyarrow paths read what their line-by-line paths read (or hand the file to them), and the bulk
`prepare_sequences` equals the row-by-row one it replaced (kept here as the reference).
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from gram_hf.tasks.next_item import prepare_sequences, readers


def reference_prepare_sequences(users, items, timestamps, min_item_interactions, min_user_interactions):
    """`prepare_sequences` as it was before issue 17: pandas, then one Python list per user."""
    frame = pd.DataFrame(
        {"user": users, "item": items, "timestamp": np.asarray(timestamps, np.int64), "order": np.arange(len(users))}
    )
    frame = frame.sort_values(["timestamp", "order"], kind="stable").drop_duplicates(["user", "item"], keep="first")
    while True:
        frame = frame[frame["item"].map(frame["item"].value_counts()).to_numpy() >= min_item_interactions]
        keep = frame["user"].map(frame["user"].value_counts()).to_numpy() >= min_user_interactions
        if keep.all():
            break
        frame = frame[keep]
    item_keys = np.sort(frame["item"].unique())
    frame = frame.assign(index=np.searchsorted(item_keys, frame["item"].to_numpy()))
    frame = frame.sort_values(["user", "timestamp", "order"], kind="stable")
    splits = {name: {"user_id": [], "items": [], "timestamps": []} for name in ("train", "validation", "test")}
    train_counts = np.zeros(len(item_keys), dtype=np.int64)
    for user, rows in frame.groupby("user", sort=True):
        sequence, times = rows["index"].tolist(), rows["timestamp"].tolist()
        for name, stop in (("test", len(rows)), ("validation", len(rows) - 1), ("train", len(rows) - 2)):
            if name == "train":
                if stop < 2:
                    continue
                np.add.at(train_counts, sequence[:stop], 1)
            splits[name]["user_id"].append(str(user))
            splits[name]["items"].append(sequence[:stop])
            splits[name]["timestamps"].append(times[:stop])
    return item_keys.tolist(), splits, train_counts.tolist()


@pytest.mark.parametrize("keys", ["int", "sorted_int", "wide_int", "str", "arrow_str"])
def test_prepare_sequences_equals_the_row_by_row_version(keys):
    rng = np.random.default_rng(7)
    for trial in range(30):
        size = int(rng.integers(20, 400))
        users = rng.integers(0, int(rng.integers(3, 40)), size)
        items = rng.integers(0, int(rng.integers(3, 30)), size) * 7 - 50  # negative ids too, and gaps
        timestamps = rng.integers(0, 20, size)  # many ties
        if keys == "sorted_int":  # rows already by user and time (MovieLens' files): no reordering
            order = np.lexsort((timestamps, users))
            users, items, timestamps = users[order], items[order], timestamps[order]
        if keys == "wide_int":  # ids far apart: hashed, not offsets
            users, items = users * 10**12, items * 10**12
        if keys in ("str", "arrow_str"):
            users = np.asarray([f"user{value}" for value in users], dtype=object)
            items = np.asarray([f"B{value:+05d}" for value in items], dtype=object)
        if keys == "arrow_str":  # as the Amazon reader gives them: dictionary-encoded by Arrow
            users, items, timestamps = pa.array(users), pa.array(items), pa.array(timestamps)
        cores = {"min_item_interactions": int(rng.integers(1, 5)), "min_user_interactions": int(rng.integers(3, 6))}
        try:
            expected = reference_prepare_sequences(
                *(np.asarray(column) for column in (users, items, timestamps)), **cores
            )
        except ValueError:  # the reference does not raise; an empty frame makes groupby give nothing
            continue
        if not expected[1]["test"]["user_id"]:
            with pytest.raises(ValueError, match="No interactions"):
                prepare_sequences(users, items, timestamps, **cores)
            continue
        prepared = prepare_sequences(users, items, timestamps, **cores)
        assert (prepared.item_keys.tolist(), prepared.splits, prepared.train_counts.tolist()) == expected, trial


def test_ratings_fast_read_equals_pandas(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,10,4.5,100\n2,11,0.5,99\n\n1,12,5.0,101\n")
    fast = readers._read_ratings_fast(str(path))
    pd.testing.assert_frame_equal(fast.to_pandas(), pd.read_csv(path, dtype={"rating": "float64"}))
    path.write_text("userId,movieId,rating,timestamp\n1,10,NA,100\n")
    assert readers._read_ratings_fast(str(path)) is None


REVIEWS = [
    {"reviewerID": "A1", "asin": "B1", "unixReviewTime": 5, "summary": "ok"},
    {"reviewerID": "A\u00e9", "asin": "B2", "unixReviewTime": 7},
]


def test_reviews_fast_read_equals_the_line_reader(tmp_path, monkeypatch):
    path = tmp_path / "reviews.json.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(record) + "\n\n" for record in REVIEWS).encode()))
    fast = readers._read_reviews_fast(str(path))
    assert fast is not None
    assert fast.to_pydict() == {"user": ["A1", "A\u00e9"], "item": ["B1", "B2"], "timestamp": [5, 7]}
    monkeypatch.setattr(readers, "_read_reviews_fast", lambda path: None)
    assert readers.read_amazon_reviews(str(path)).equals(fast)  # line by line


@pytest.mark.parametrize(
    "line",
    ['{"asin": "B1", "unixReviewTime": 5}', '{"reviewerID": "A", "asin": "B1", "unixReviewTime": 5.5}', "[1, 2]"],
)
def test_reviews_fast_read_leaves_doubtful_lines_to_the_line_reader(tmp_path, line):
    path = tmp_path / "reviews.json"
    path.write_text(json.dumps(REVIEWS[0]) + "\n" + line + "\n")
    assert readers._read_reviews_fast(str(path)) is None


def test_needed_metadata_fast_read_equals_the_line_reader(tmp_path, monkeypatch):
    path = tmp_path / "meta.json"
    lines = [
        "{'asin': 'B1', 'title': 'one'}",
        '{"asin" : "B2", "title": "two, JSON"}\r',  # a CRLF line
        "{'title': 'asin second', 'asin': 'B3'}",
        "   ",
        "",
        "{'asin' :\u00a0'B9', 'title': broken}",  # not needed: skipped unparsed (Python's \\s matches U+00A0)
    ]
    path.write_text("\n".join(lines), encoding="utf-8")  # no final line break
    needed = {"B1", "B2", "B3"}
    fast = readers._read_needed_metadata(str(path), needed)
    monkeypatch.setattr(readers, "_read_needed_metadata", lambda path, needed: None)
    assert fast == readers.read_amazon_metadata(str(path), needed)  # line by line
    assert sorted(fast) == ["B1", "B2", "B3"]
    monkeypatch.undo()
    path.write_text("{'asin': 'B1', 'title': 'one'}\n{'asin': 'B2', 'title': broken}\n", encoding="utf-8")
    assert readers._read_needed_metadata(str(path), needed) is None
    with pytest.raises(ValueError, match="meta.json:2: neither a Python literal nor JSON"):
        readers.read_amazon_metadata(str(path), needed)
