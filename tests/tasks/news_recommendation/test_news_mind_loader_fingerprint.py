"""
load_mind's output pinned, and its bulk (pyarrow) path equal to its line-by-line path (issue 17).

The raw folders are written here, so that no generator change moves the digests. What the bulk rewrite must not
change (validation, dev and test impressions, the training rows' impressions and histories, items, stats) is pinned
to digests taken before it, at commit 29a031c; the training candidates and labels (negatives drawn in bulk since
`MIND.VERSION` 2.0.0) to digests of the new sampler.

To see the digests of the current code: `GRAM_HF_PRINT_FINGERPRINTS=1 python -m pytest -q -s <this file>`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest

from gram_hf.data import InteractionData
from gram_hf.raw_files import iter_lines
from gram_hf.tasks.news_recommendation import load_mind, mind_builder
from gram_hf.tasks.news_recommendation.mind_builder import sample_negative_positions
from gram_hf.tasks.news_recommendation.mind_parsing import read_behaviors_table, split_behaviors_line

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))

from fingerprints import digest, table_digest  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def fingerprint(data: InteractionData, root: Path) -> dict[str, str]:
    """Digests of each split, of the training rows without the drawn columns, of the items and of the stats."""
    stats = json.loads(json.dumps(data.stats, default=str).replace(str(root), "<root>"))
    digests = {name: table_digest(split) for name, split in data.splits.items()}
    digests["train_rows"] = table_digest(data.splits["train"].remove_columns(["candidates", "labels"]))
    return {**digests, "items": table_digest(data.items), "stats": digest(stats)}


MIND_TIME = "11/{day}/2019 {hour}:05:58 {half}"


def write_mind(root: Path) -> Path:
    """MINDlarge train/dev/test: entities, empty abstracts, missing news, clickless impressions, a body file."""
    rng = np.random.default_rng(3)
    for role in ("train", "dev", "test"):
        folder = root / f"MINDlarge_{role}"
        folder.mkdir(parents=True)
        offset = {"train": 0, "dev": 10, "test": 20}[role]
        news = []
        for index in range(offset, offset + 40):
            entities = json.dumps([{"Label": "X", "WikidataId": f"Q{index}"}]) if index % 3 else "[]"
            abstract = "" if index % 5 == 0 else f'Abstract "{index}" here'
            news.append(
                f"N{index}\tsports\tfootball_nfl\tTitle {index}\t{abstract}\thttps://x/{index}.html\t{entities}\t"
                f"{'' if index % 7 == 0 else entities}"
            )
        (folder / "news.tsv").write_text("\n".join(news) + "\n", encoding="utf-8")
        behaviors = []
        for impression in range(1, 46):
            known = np.arange(offset, offset + 40)
            history = [f"N{i}" for i in rng.choice(known, size=int(rng.integers(0, 8)), replace=False)]
            if impression % 11 == 0:
                history.append("N999")  # in no news.tsv
            candidates = rng.choice(known, size=int(rng.integers(1, 9)), replace=False)
            labels = (rng.random(len(candidates)) < 0.3).astype(int)
            if impression % 13 == 0:
                labels[:] = 0  # no click
            if impression % 17 == 0:
                labels[:] = 1  # no negative
            tokens = [f"N{c}-{label}" if role != "test" else f"N{c}" for c, label in zip(candidates, labels)]
            if impression % 19 == 0:
                tokens.append("N998-0" if role != "test" else "N998")
            day, hour = 9 + impression % 5, 1 + impression % 12
            time = MIND_TIME.format(day=day, hour=hour, half="AM" if impression % 2 else "PM")
            behaviors.append(
                f"{impression + offset * 100}\tU{rng.integers(15)}\t{time}\t{' '.join(history)}\t{' '.join(tokens)}"
            )
        (folder / "behaviors.tsv").write_text("\n".join(behaviors) + "\n", encoding="utf-8")
    bodies = [f"N{index}\tBody of {index}\twith a tab" for index in range(0, 60, 2)]
    (root / "news_body.tsv").write_text("\n".join(bodies) + "\n", encoding="utf-8")
    return root


CASES: dict[str, dict[str, Any]] = {
    "mind": {},
    "mind_carved_body": {
        "validation_fraction": 0.3,
        "max_history": 3,
        "npratio": 2,
        "text_fields": ("title", "abstract", "body"),
    },
}

# Before the bulk path (commit 29a031c): everything but the drawn training candidates and labels.
UNCHANGED: dict[str, dict[str, str]] = {
    "mind": {
        "validation": "d9cf1eea72af13f5",
        "test": "d708c7154abea863",
        "train_rows": "b06eee6b80034dbd",
        "items": "5bc409b6eaba2f6c",
        "stats": "43e043cbe8bdb89c",
    },
    "mind_carved_body": {
        "validation": "b039ab7d522e5742",
        "dev": "1a5ec53135f473a8",
        "test": "4ac83b02011aba7c",
        "train_rows": "8f1b63cd6a19fede",
        "items": "ec24c723e9d8f792",
        "stats": "c03df72a6968c6ff",
    },
}
# The training split with negatives drawn by `sample_negative_positions` (MIND.VERSION 2.0.0).
TRAIN: dict[str, str] = {"mind": "cc2c0838af37aeac", "mind_carved_body": "530ce8c28a43ea5e"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mind_output_is_pinned(case, tmp_path):
    root = write_mind(tmp_path / "raw")
    got = fingerprint(load_mind(root, cache_dir=tmp_path / "cache", **CASES[case]), root)
    if os.environ.get("GRAM_HF_PRINT_FINGERPRINTS"):
        print(f"\n    {case!r}: {got!r},")
    assert {name: got[name] for name in UNCHANGED[case]} == UNCHANGED[case]
    assert got["train"] == TRAIN[case]
    assert set(got) == {*UNCHANGED[case], "train"}
    # A cached load returns the same.
    assert fingerprint(load_mind(root, cache_dir=tmp_path / "cache", **CASES[case]), root) == got


@pytest.mark.parametrize("case", sorted(CASES))
def test_bulk_and_line_paths_give_the_same_splits(case, tmp_path, monkeypatch):
    root = write_mind(tmp_path / "raw")
    for role in ("train", "dev", "test"):
        assert read_behaviors_table(root / f"MINDlarge_{role}" / "behaviors.tsv") is not None  # the bulk path runs
    bulk = fingerprint(load_mind(root, cache_dir=tmp_path / "bulk", **CASES[case]), root)
    monkeypatch.setattr(mind_builder, "read_behaviors_table", lambda path: None)
    lines = fingerprint(load_mind(root, cache_dir=tmp_path / "lines", **CASES[case]), root)
    assert lines == bulk


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_read_behaviors_table_reads_as_the_line_reader(tmp_path, bom):
    lines = [
        "1\tU1\t11/9/2019 9:05:58 AM\tN1 N2\tN3-1 N4-0",
        "",  # blank lines are skipped by both readers
        "22\tU2\t2/29/2020 12:00:00 PM\t\tN1--1 N5-0",  # an empty history; a NewsID holding '-'
        "3\tU3\t12/31/2019 12:59:07 AM\tN7\tN8-0",
        "4\tU\x0b4\t12/31/2019 12:59:07 AM\tN7\tN8-0",  # other ASCII whitespace, kept in a UserID by both readers
    ]
    path = tmp_path / "behaviors.tsv"
    path.write_bytes(bom + ("\r\n".join(lines) + "\r\n").encode())  # a byte-order mark: dropped by both
    table = read_behaviors_table(path)
    expected = [split_behaviors_line(line, path, number) for number, line in iter_lines(path)]
    assert table.impression_id.to_pylist() == [row[0] for row in expected]
    assert table.user_id.to_pylist() == [row[1] for row in expected]
    assert table.time.to_pylist() == [row[2] for row in expected]
    assert table.histories() == [row[3].split() for row in expected]
    assert table.impressions() == [row[4].split() for row in expected]


def test_regular_files_never_take_the_line_path(tmp_path, monkeypatch):
    """Every NewsID known, labelled and labelless files: the bulk path alone reads them."""
    calls = []
    line_path = mind_builder.MIND._read_impression_lines
    monkeypatch.setattr(
        mind_builder.MIND, "_read_impression_lines", lambda self, *args: calls.append(args) or line_path(self, *args)
    )
    news = "".join(f"N{i}\tnews\tnewsus\tTitle {i}\t\thttps://x/{i}\t[]\t[]\n" for i in range(1, 9))
    time = "11/11/2019 9:05:58 AM"
    for role, tokens in (("train", "N3-1 N4-0 N5-0"), ("dev", "N3-0 N6-1"), ("test", "N3 N6")):
        folder = tmp_path / f"MINDlarge_{role}"
        folder.mkdir()
        (folder / "news.tsv").write_text(news, encoding="utf-8")
        behaviors = f"1\tU1\t{time}\tN1 N2\t{tokens}\n2\tU2\t{time}\t\t{tokens}\n"
        (folder / "behaviors.tsv").write_text(behaviors, encoding="utf-8")
    data = load_mind(tmp_path, cache_dir=tmp_path / "cache")
    assert calls == []
    assert data.splits["validation"]["labels"] == [[0, 1], [0, 1]]
    assert data.splits["test"]["labels"] == [[-1, -1], [-1, -1]]
    assert data.splits["train"]["history"] == [[0, 1], []]
    assert set(data.splits["train"]["candidates"][0]) == {2, 3, 4}  # 2 negatives, repeated to npratio 4


@pytest.mark.parametrize(
    "line",
    [
        "1\tU1\t11/9/2019 9:05:58 am\tN1\tN3-1",  # lower-case am: Python's parser only
        "1\tU1\t2/31/2019 9:05:58 AM\tN1\tN3-1",  # a day February lacks (strptime would roll it over)
        "1\tU1\t11/9/2019 9:05:60 AM\tN1\tN3-1",  # a leap second
        "1\tU1\t11/9/2019 9:05:58 AM\tN1  N2\tN3-1",  # a run of spaces
        "1\tU1\t11/9/2019 9:05:58 AM\tN1\tN3-1 ",  # a space at the edge
        "1\tU1\t11/9/2019 9:05:58 AM\tN1\xa0N2\tN3-1",  # a Unicode space
        "1\tU1\t11/9/2019 9:05:58 AM\tN1\x0bN2\tN3-1",  # other ASCII whitespace in a History
        "1\tU1\t11/9/2019 9:05:58 AM\tN1\tN3-1\x1cN2-0",  # ... in Impressions
        "1\tU1\t11/9/2019 9:05:58 AM\tN1\tN3-1\x0c",
        "1\tU1\t11/9/2019 9:05:58 AM\tN1\rN2\tN3-1",  # a lone carriage return
        "x\tU1\t11/9/2019 9:05:58 AM\tN1\tN3-1",  # malformed: the line reader names it
        "1\tU1\t11/9/2019 9:05:58 AM\tN1",
    ],
)
def test_irregular_files_go_to_the_line_reader(tmp_path, line):
    path = tmp_path / "behaviors.tsv"
    path.write_text(line + "\n", encoding="utf-8", newline="")
    assert read_behaviors_table(path) is None


def test_sample_negative_positions():
    rng = np.random.default_rng(0)
    counts = np.array([6, 4, 2, 1, 9] * 2000)
    drawn = sample_negative_positions(counts, 4, rng)
    assert drawn.shape == (len(counts), 4)
    assert ((drawn >= 0) & (drawn < counts[:, None])).all()
    enough = counts >= 4
    # Enough negatives: without replacement.
    assert all(len(set(row)) == 4 for row in drawn[enough].tolist())
    # Too few: from the negatives repeated npratio // count + 1 times, so none is used more often than that.
    for count in (2, 1):
        rows = drawn[counts == count]
        for value in range(count):
            assert (rows == value).sum(axis=1).max() <= 4 // count + 1
    assert (drawn[counts == 1] == 0).all()
    # Uniform over the negatives, in every slot.
    for slot in range(4):
        frequencies = np.bincount(drawn[counts == 9, slot], minlength=9) / (counts == 9).sum()
        assert np.abs(frequencies - 1 / 9).max() < 0.03
    # Seeded.
    assert (sample_negative_positions(counts, 4, np.random.default_rng(0)) == drawn).all()
    assert sample_negative_positions(np.zeros(0, dtype=np.int64), 4, rng).shape == (0, 4)


def test_splits_written_in_pieces_read_as_one_table(tmp_path, monkeypatch):
    """A split is built and written in tables of `_ROWS_PER_TABLE` rows: any size gives the same splits."""
    root = write_mind(tmp_path / "raw")
    options = CASES["mind_carved_body"]
    whole = fingerprint(load_mind(root, cache_dir=tmp_path / "whole", **options), root)
    monkeypatch.setattr(mind_builder, "_ROWS_PER_TABLE", 7)
    data = load_mind(root, cache_dir=tmp_path / "pieces", **options)
    assert data.splits["train"].data.table.column("history").num_chunks > 1
    assert fingerprint(data, root) == whole


def test_behaviors_take_the_catalog_order_from_the_news_just_built(tmp_path, monkeypatch):
    """The news config's items give the catalog order to the behaviors config; read again when the items are cached."""
    root = write_mind(tmp_path / "raw")
    calls = []
    read_news_ids = mind_builder.read_news_ids
    monkeypatch.setattr(mind_builder, "read_news_ids", lambda files: calls.append(files) or read_news_ids(files))
    data = load_mind(root, cache_dir=tmp_path / "cache")
    assert calls == []
    news_files = [root / f"MINDlarge_{role}" / "news.tsv" for role in ("train", "dev", "test")]
    assert data.items["item_id"] == read_news_ids(news_files).to_pylist()
    mind_builder._CATALOG_IDS.clear()  # a new process: the items come from the cache, the news files are read
    again = load_mind(root, cache_dir=tmp_path / "cache", max_history=3)
    assert len(calls) == 1
    reference = load_mind(root, cache_dir=tmp_path / "reference", max_history=3)
    assert fingerprint(again, root) == fingerprint(reference, root)
