"""
The knowledge-tracing and next-item loaders' output pinned: small raw datasets, written here (so that no generator
change moves them), loaded, and the splits, items and stats hashed against digests taken before the loaders were
rewritten to write Arrow in bulk (issue 17). A change to what a loader returns (a row, a column type, an item, a
count) changes a digest. (MIND, whose training negatives are now drawn differently, is pinned by its own tests.)

To see the digests of the current code: `GRAM_HF_PRINT_FINGERPRINTS=1 python -m pytest -q -s <this file>`.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gram_hf.data import InteractionData
from gram_hf.tasks.knowledge_tracing import load_duolingo, load_ednet, load_kt_csv, load_poj
from gram_hf.tasks.next_item import load_amazon, load_movielens

sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))

from fingerprints import digest, table_digest  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


# ---------------------------------------------------------------------------------------------- the fingerprint


def fingerprint(data: InteractionData, root: Path) -> dict[str, str]:
    """Digests of each split, of the items and of the stats (the raw folder written as `<root>`)."""
    stats = json.loads(json.dumps(data.stats, default=str).replace(str(root), "<root>"))
    return {
        "splits": digest({name: table_digest(split) for name, split in data.splits.items()}),
        "items": table_digest(data.items),
        "stats": digest(stats),
    }


# ------------------------------------------------------------------------------------------- the raw datasets

POJ_RESULTS = ("Accepted", "Wrong Answer", "Compile Error", "Time Limit Exceeded", "Runtime Error")


def write_poj(root: Path, *, gz: bool = False, blank_line: bool = False) -> tuple[Path, Path]:
    """A POJ log (an extra column, rows in any order, unjudged and empty rows, unknown problems) and statements."""
    rng = np.random.default_rng(17)
    rows = []
    for _ in range(400):
        problem = str(1000 + int(rng.integers(27)))  # 1025 and 1026 have no statement: unknown items
        moment = 1_300_000_000 + int(rng.integers(0, 40)) * 3600 * 7  # coarse: ties within a learner
        rows.append([f"u{rng.integers(30)}", problem, POJ_RESULTS[rng.integers(5)], "C++", moment])
    rows[5][2] = "Waiting"
    rows[77][2] = "Running & Judging"
    rows[123][1] = ""
    rows[300][0] = " "
    lines = ["User,Problem,Result,Language,Submit Time"]
    for user, problem, result, language, moment in rows:
        stamp = dt.datetime.fromtimestamp(moment, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(",".join([user, problem, result, language, stamp]))
    if blank_line:
        lines.insert(200, "")
    text = "\n".join(lines) + "\n"
    log = root / ("poj_log.csv.gz" if gz else "poj_log.csv")
    if gz:
        with gzip.open(log, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        log.write_text(text, encoding="utf-8")
    statements = root / "problems.csv"
    with open(statements, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["problem_id", "text"])
        for index in range(25):
            writer.writerow([str(1000 + index), f'Problem {index}: sum "a, b"\nthen print {index}'])
    return log, statements


def write_ednet(root: Path, *, blank_line: bool = False) -> tuple[Path, Path, Path]:
    """EdNet KT1 user files (an empty one, empty answers and times, unknown questions), questions and texts."""
    rng = np.random.default_rng(5)
    kt1 = root / "KT1"
    kt1.mkdir(parents=True)
    num_questions = 40
    for user in (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233):
        lines = ["timestamp,solving_id,question_id,user_answer,elapsed_time"]
        if user != 8:  # u8.csv holds only its header
            moment = 1_565_000_000_000 + user * 1000
            for solving in range(int(rng.integers(3, 25))):
                moment += int(rng.integers(0, 3)) * 60_000
                for _ in range(int(rng.integers(1, 4))):  # bundle questions share the timestamp
                    question = f"q{int(rng.integers(1, num_questions + 3))}"  # q41, q42: unknown
                    answer = "abcd"[rng.integers(4)] if rng.random() > 0.1 else ""
                    elapsed = str(int(rng.integers(0, 200_000))) if rng.random() > 0.1 else ""
                    lines.append(f"{moment},{solving + 1},{question},{answer},{elapsed}")
        if blank_line and user == 21:
            lines.insert(3, "")
        (kt1 / f"u{user}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (kt1 / "notes.txt").write_text("not a user file\n", encoding="utf-8")
    questions = root / "questions.csv"
    lines = ["question_id,bundle_id,explanation_id,correct_answer,part,tags,deployed_at"]
    for index in range(1, num_questions + 1):
        tags = "-1" if index % 9 == 0 else ";".join(str(tag) for tag in range(index % 4, index % 4 + 2))
        lines.append(f"q{index},b{(index + 1) // 2},e{index},{'abcd'[index % 4]},{index % 7 + 1},{tags},-1")
    questions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    texts = root / "texts.csv"
    with open(texts, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question_id", "text"])
        for index in range(1, num_questions + 1):
            if index % 10 != 3:  # q3, q13, ...: no text
                writer.writerow([f"q{index}", f"Question {index}, choose: (a) x (b) y"])
    return kt1, questions, texts


def write_duolingo(root: Path) -> Path:
    """A SLAM track (train, dev, test, keys): prompts, null times, repeated sentences, unknown fields."""
    rng = np.random.default_rng(11)
    words = ["yo", "soy", "un", "niño", "ella", "come", "manzanas", "el", "gato", "bebe", "agua"]
    formats = ("reverse_translate", "reverse_tap", "listen", "unknown")
    users = [f"XEinXf{index}+" for index in range(9)]
    for split in ("train", "dev", "test"):
        blocks, keys = [], []
        for user_index, user in enumerate(users):
            days = 0.0 if split == "train" else 10.0 * (1 + (split == "test"))
            for exercise in range(int(rng.integers(1, 9))):
                days += float(rng.integers(0, 3)) * 0.125
                session = f"{user_index:02d}{split[0]}{exercise:03d}ab"[:8]
                lines = []
                format_ = formats[rng.integers(4)]
                if format_ != "listen" and rng.random() < 0.5:
                    lines.append(f"# prompt:Prompt: {exercise}")
                time = "null" if rng.random() < 0.15 else str(int(rng.integers(1, 90)))
                lines.append(
                    f"# user:{user}  countries:CO|US  days:{days:.3f}  client:{('web', 'ios', 'bot')[user_index % 3]}"
                    f"  session:{('lesson', 'practice', 'test')[exercise % 3]}  format:{format_}  time:{time}"
                )
                for token_index in range(int(rng.integers(1, 4))):
                    instance = f"{session}{exercise % 100:02d}{token_index:02d}"
                    token = words[rng.integers(3)] if exercise % 2 else words[rng.integers(len(words))]
                    label = "1" if rng.random() < 0.2 else "0"
                    line = f"{instance}  {token}  NOUN  Number=Sing  nsubj  0"
                    if split == "train":
                        lines.append(f"{line}  {label}")
                    else:
                        lines.append(line)
                        keys.append(f"{instance} {label}")
                blocks.append("\n".join(lines))
        path = root / f"en_es.slam.20190204.{split}"
        path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
        if split != "train":
            Path(f"{path}.key").write_text("\n".join(keys) + "\n", encoding="utf-8")
    return root


def _kt_rows(seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(300):
        rows.append(
            {
                "user_id": f"learner{rng.integers(25)}",
                "item_id": f"it{rng.integers(32)}",  # it30, it31: unknown
                "timestamp": int(rng.integers(0, 50)) * 1000,  # ms, with ties
                "correct": ("1", "0", "true", "False")[rng.integers(4)],
                "skill": ("", "algebra", "geometry", "probability")[rng.integers(4)],
            }
        )
    return rows


def write_kt_csv(root: Path, *, form: str = "csv") -> tuple[Path, Path]:
    """Generic tables: shuffled interactions with a feature column (csv, parquet or ISO dates), items with quotes."""
    rows = _kt_rows(23)
    items = root / "items.csv"
    with open(items, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "text"])
        for index in range(30):
            writer.writerow([f"it{index}", f'Item {index}, "quoted"\nsecond line'])
    if form == "parquet":
        table = pa.table(
            {
                "user_id": [row["user_id"] for row in rows],
                "item_id": [row["item_id"] for row in rows],
                "timestamp": pa.array([row["timestamp"] for row in rows], pa.int64()),
                "correct": pa.array([row["correct"].lower() in ("1", "true") for row in rows]),
                "skill": [row["skill"] for row in rows],
            }
        )
        interactions = root / "interactions.parquet"
        pq.write_table(table, interactions)
        return interactions, items
    interactions = root / "interactions.csv"
    with open(interactions, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp", "correct", "skill", "other"])
        for index, row in enumerate(rows):
            stamp = row["timestamp"]
            if form == "iso":
                stamp = f"2020-01-{1 + stamp // 86_400_000:02d}T00:{stamp // 60_000 % 60:02d}:{stamp // 1000 % 60:02d}"
            writer.writerow([row["user_id"], row["item_id"], stamp, row["correct"], row["skill"], index])
    return interactions, items


def write_movielens(root: Path) -> Path:
    """ML-20M layout: repeated user-movie pairs, movies absent from movies.csv, quoted titles, no genres."""
    rng = np.random.default_rng(8)
    root.mkdir(parents=True, exist_ok=True)
    lines = ["userId,movieId,rating,timestamp"]
    for _ in range(900):
        user, movie = int(rng.integers(1, 40)), int(rng.integers(1, 33))  # movies 31, 32: unknown
        lines.append(f"{user},{movie},{rng.integers(1, 11) / 2},{1_000_000 + int(rng.integers(0, 300))}")
    (root / "ratings.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open(root / "movies.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["movieId", "title", "genres"])
        for movie in range(1, 31):
            genres = (
                "(no genres listed)" if movie % 8 == 0 else "|".join(["Comedy", "Drama", "Horror"][: movie % 3 + 1])
            )
            writer.writerow([movie, f"Movie, number {movie} ({1990 + movie})", genres])
    return root


def write_amazon(root: Path) -> tuple[Path, Path]:
    """5-core reviews (JSON lines, gzipped) and 2014-style metadata (Python literals) with unreviewed products."""
    rng = np.random.default_rng(9)
    root.mkdir(parents=True, exist_ok=True)
    reviews = root / "reviews.json.gz"
    with gzip.open(reviews, "wt", encoding="utf-8") as handle:
        for _ in range(500):
            record = {
                "reviewerID": f"A{rng.integers(50)}",
                "asin": f"B{int(rng.integers(0, 27)):04d}",  # B0025, B0026: no metadata
                "overall": 5.0,
                "unixReviewTime": 1_400_000_000 + int(rng.integers(0, 100)) * 86_400,
            }
            handle.write(json.dumps(record) + "\n")
    metadata = root / "meta.json"
    with open(metadata, "w", encoding="utf-8") as handle:
        for index in range(40):
            if index in (25, 26):
                continue
            record: dict[str, Any] = {"asin": f"B{index:04d}", "title": f"Product {index}'s cream"}
            if index % 3:
                record["categories"] = [["Beauty", "Skin Care"], ["Beauty", f"Cat {index % 4}"]]
            if index % 4:
                record["description"] = f"Description of {index}"
            handle.write(repr(record) + "\n")
    return reviews, metadata


# ------------------------------------------------------------------------------------------------------- the cases
#
# A case writes its raw files under `root` once and returns the load (given a cache folder), so that the cached load
# reads the same files.

Load = Callable[[Path], InteractionData]


def _poj(root: Path, **options) -> Load:
    log, statements = write_poj(root, **options)
    return lambda cache: load_poj(log, statements, cache_dir=cache, cold_start_items=3, max_seq_len=7)


def _ednet(root: Path, *, missing_text: str, blank_line: bool = False) -> Load:
    kt1, questions, texts = write_ednet(root, blank_line=blank_line)
    return lambda cache: load_ednet(
        kt1, questions, texts, missing_text=missing_text, cache_dir=cache, cold_start_items=2
    )


def _duolingo(root: Path, **options) -> Load:
    folder = write_duolingo(root)
    return lambda cache: load_duolingo(folder, "en_es", cache_dir=cache, max_seq_len=5, cold_start_items=3, **options)


def _kt_csv(root: Path, *, form: str) -> Load:
    interactions, items = write_kt_csv(root, form=form)
    unit = "s" if form == "iso" else "ms"
    return lambda cache: load_kt_csv(
        interactions, items, feature_columns=("skill",), timestamp_unit=unit, cache_dir=cache, cold_start_items=["it3"]
    )


def _movielens(root: Path, **options) -> Load:
    folder = write_movielens(root / "ml")
    return lambda cache: load_movielens(folder, cache_dir=str(cache), **options)


def _amazon(root: Path) -> Load:
    reviews, metadata = write_amazon(root / "amazon")
    return lambda cache: load_amazon(reviews, metadata, cache_dir=str(cache))


CASES: dict[str, Callable[[Path], Load]] = {
    "poj": _poj,
    "poj_gz_blank_line": lambda root: _poj(root, gz=True, blank_line=True),
    "ednet_part_and_tags": lambda root: _ednet(root, missing_text="part_and_tags"),
    "ednet_drop_blank_line": lambda root: _ednet(root, missing_text="drop", blank_line=True),
    "duolingo": _duolingo,
    "duolingo_slam_prompts": lambda root: _duolingo(root, split_by="slam", include_prompt=True),
    "kt_csv": lambda root: _kt_csv(root, form="csv"),
    "kt_csv_parquet": lambda root: _kt_csv(root, form="parquet"),
    "kt_csv_iso": lambda root: _kt_csv(root, form="iso"),
    "movielens": _movielens,
    "movielens_min_rating": lambda root: _movielens(root, min_rating=3.0),
    "amazon": _amazon,
}

# Taken with the loaders of commit 1ba5b08 (before the bulk Arrow writing of issue 17).
EXPECTED: dict[str, dict[str, str]] = {
    "amazon": {"splits": "9959ecda4ddc206e", "items": "2de534c6247dc4e7", "stats": "53c67fbf1572a04f"},
    "duolingo": {"splits": "c98ebd643bcb6d89", "items": "892dc84800f9a3bd", "stats": "28a0ebff21ef2fec"},
    "duolingo_slam_prompts": {"splits": "8df06e811020e7d6", "items": "d3a7ca410d77ff6e", "stats": "b4d9ade9fe82ee23"},
    "ednet_drop_blank_line": {"splits": "699e1af3bfdab3ab", "items": "13dfd85bbf08f1bd", "stats": "0c53c9f79ec2d8b2"},
    "ednet_part_and_tags": {"splits": "d4ede961a9be975f", "items": "af33758a8a17df23", "stats": "a7413ec41b6f37c9"},
    "kt_csv": {"splits": "c941e55e1d792dda", "items": "a4f797631f9adc20", "stats": "28d4be48f2c6410f"},
    "kt_csv_iso": {"splits": "9912ce3e42cc3754", "items": "a4f797631f9adc20", "stats": "28d4be48f2c6410f"},
    "kt_csv_parquet": {"splits": "c941e55e1d792dda", "items": "a4f797631f9adc20", "stats": "28d4be48f2c6410f"},
    "movielens": {"splits": "68085da96485141a", "items": "aff5ed778dd00bdf", "stats": "b25e2c5a02dcf5ee"},
    "movielens_min_rating": {"splits": "8403ca3e62bbbd5a", "items": "5db865a5fbf91970", "stats": "b557092a70104194"},
    "poj": {"splits": "6a828f7c86242d8e", "items": "d3d3c59d66510507", "stats": "1075f8e8044b124e"},
    "poj_gz_blank_line": {"splits": "6a828f7c86242d8e", "items": "d3d3c59d66510507", "stats": "7c9a0f76debc2fb4"},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_loader_output_is_pinned(case, tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    load = CASES[case](root)
    got = fingerprint(load(tmp_path / "cache"), root)
    if os.environ.get("GRAM_HF_PRINT_FINGERPRINTS"):
        print(f"\n    {case!r}: {got!r},")
    assert got == EXPECTED[case]
    # A cached load returns the same.
    assert fingerprint(load(tmp_path / "cache"), root) == got
