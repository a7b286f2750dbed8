"""Round trips: each synthetic raw format, read back by its loader, matches the generator's ground truth."""

from __future__ import annotations

import os
import time

import datasets
import numpy as np
import pytest

from gram_hf.data import InteractionData
from gram_hf.tasks.knowledge_tracing import (
    KnowledgeTracingCollator,
    SyntheticKTTruth,
    load_duolingo,
    load_ednet,
    load_kt_csv,
    load_poj,
    write_synthetic_duolingo,
    write_synthetic_ednet,
    write_synthetic_kt_csv,
    write_synthetic_poj,
)

SPLITS = ("train", "validation", "test")


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def sequences(data: InteractionData) -> dict[str, dict[str, list]]:
    """Per-learner sequences with item ids, concatenated over windows and splits (in split order)."""
    ids = data.items["item_id"]
    result: dict[str, dict[str, list]] = {}
    for name in SPLITS:
        for row in data[name]:
            sequence = result.setdefault(row["user_id"], {"item_ids": [], "responses": [], "timestamps": []})
            sequence["item_ids"] += [ids[index] for index in row["items"]]
            sequence["responses"] += row["responses"]
            sequence["timestamps"] += row["timestamps"]
    return result


def assert_counts_add_up(data: InteractionData) -> None:
    """The dropped-counts contract: every raw row read is in a split, dropped (by reason) or removed from train."""
    stats = data.stats
    assert all(isinstance(count, int) and count > 0 for count in stats["dropped"].values())
    assert all(isinstance(count, int) and count > 0 for count in stats["removed_from_train"].values())
    in_splits = sum(len(items) for name in SPLITS for items in data[name]["items"])
    assert in_splits == stats["interactions"]["total"]
    assert stats["rows_read"] == in_splits + sum(stats["dropped"].values()) + sum(stats["removed_from_train"].values())


def assert_round_trip(truth: SyntheticKTTruth, data: InteractionData, max_seq_len: int = 100) -> None:
    assert_counts_add_up(data)
    assert data.stats["rows_read"] == truth.num_interactions and data.stats["dropped"] == {}
    assert data.stats["users"]["total"] == truth.num_users
    assert data.stats["interactions"]["total"] == truth.num_interactions
    assert data.stats["items"]["total"] == len(truth.used_item_ids)
    assert set(data.items["item_id"]) == truth.used_item_ids
    got = sequences(data)
    assert got.keys() == truth.sequences.keys()
    for user, expected in truth.sequences.items():
        assert got[user] == expected, user
    for name in SPLITS:
        assert all(1 <= len(row) <= max_seq_len for row in data[name]["items"])
    users = [set(data[name]["user_id"]) for name in SPLITS]
    assert not (users[0] & users[1]) and not (users[0] & users[2]) and not (users[1] & users[2])
    texts = dict(zip(truth.item_ids, truth.item_texts))
    assert all(texts[item] == text for item, text in zip(data.items["item_id"], data.items["text"]))
    assert data.items.column_names[:3] == ["item_id", "text", "cold_start"] or {
        "item_id",
        "text",
        "cold_start",
    } <= set(data.items.column_names)


def test_duolingo_round_trip(tmp_path):
    truth = write_synthetic_duolingo(tmp_path / "slam", "en_es", scale=0.005, seed=1)
    data = load_duolingo(tmp_path / "slam", "en_es", cold_start_items=0, cache_dir=tmp_path / "cache")
    assert_round_trip(truth, data)
    assert data.stats["features"] == {"format": 4, "client": 4, "session": 4, "elapsed_time": 25}
    row = data["train"][0]
    assert set(row) == {"user_id", "items", "responses", "timestamps", "format", "client", "session", "elapsed_time"}
    assert set(row["format"]) <= {1, 2, 3} and set(row["client"]) <= {1, 2, 3}
    # Items are the sentences: their text is their id; mean length is the preset's ~5.3 tokens.
    assert data.items["item_id"] == data.items["text"]
    assert 4.0 < np.mean([len(text.split()) for text in data.items["text"]]) < 7.0


def test_duolingo_slam_split_and_prompts(tmp_path):
    truth = write_synthetic_duolingo(tmp_path / "slam", "fr_en", scale=0.004, seed=2)
    assert truth.files["track"] == "fr_en"
    data = load_duolingo(tmp_path / "slam", "fr_en", split_by="slam", cold_start_items=0, cache_dir=tmp_path / "cache")
    # The release's own split: every learner in train, later exercises in dev/test.
    assert data.stats["users"]["train"] == truth.num_users
    assert data.stats["interactions"]["total"] == truth.num_interactions
    num_dev = sum(int(round(0.1 * n)) for n in truth.interactions_per_user.values())
    assert data.stats["interactions"]["validation"] == num_dev
    prompted = load_duolingo(
        tmp_path / "slam", "fr_en", include_prompt=True, cold_start_items=0, cache_dir=tmp_path / "cache"
    )
    with_prompt = [text for text in prompted.items["text"] if " | " in text]
    assert with_prompt and all(text.startswith("Nota: ") for text in with_prompt)
    assert prompted.stats["interactions"]["total"] == truth.num_interactions


def test_ednet_round_trip(tmp_path):
    truth = write_synthetic_ednet(tmp_path / "ednet", scale=0.0001, seed=0, text_tokens=12)
    files = truth.files
    data = load_ednet(
        files["kt1_dir"], files["questions_csv"], files["item_text"], cold_start_items=0, cache_dir=tmp_path / "c"
    )
    assert_round_trip(truth, data)
    assert data.stats["features"] == {"part": 8, "elapsed_time": 25}
    assert data.stats["dropped_items"]["unused"] > 0  # questions listed but never answered
    assert {"part", "tags", "bundle_id", "correct_answer"} <= set(data.items.column_names)
    parts = dict(zip(range(data.num_items), data.items["part"]))
    for row in data["train"]:
        assert row["part"] == [parts[item] for item in row["items"]]
        assert all(1 <= bucket <= 24 for bucket in row["elapsed_time"])
    # Bundles share a timestamp; the stable sort kept their file order (checked by the round trip above).
    assert any(len(set(row["timestamps"])) < len(row["timestamps"]) for row in data["train"])


def test_poj_round_trip(tmp_path):
    truth = write_synthetic_poj(tmp_path / "poj", scale=0.001, seed=0, text_tokens=30)
    data = load_poj(truth.files["log_csv"], truth.files["problem_text"], cold_start_items=0, cache_dir=tmp_path / "c")
    assert_round_trip(truth, data)
    assert all("\n" in text and '"n, m"' in text for text in data.items["text"])  # quoted commas, quotes, newlines


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_generic_round_trip(tmp_path, file_format):
    truth = write_synthetic_kt_csv(tmp_path / "generic", scale=0.005, seed=0, file_format=file_format)
    data = load_kt_csv(truth.files["interactions"], truth.files["items"], cold_start_items=0, cache_dir=tmp_path / "c")
    assert_round_trip(truth, data)


def test_windows_cold_start_and_collator(tmp_path):
    truth = write_synthetic_kt_csv(tmp_path / "generic", scale=0.005, seed=0)
    data = load_kt_csv(
        truth.files["interactions"], truth.files["items"], cold_start_items=truth.cold_start_items or 3,
        max_seq_len=20, cache_dir=tmp_path / "c",
    )  # fmt: skip
    cold = {index for index, flag in enumerate(data.items["cold_start"]) if flag}
    assert cold and not cold & {item for row in data["train"]["items"] for item in row}
    removed = data.stats["cold_start_interactions"]["removed_from_train"]
    assert data.stats["interactions"]["total"] + removed == truth.num_interactions
    assert data.stats["removed_from_train"] == {"cold_start_items": removed} and removed > 0
    assert_counts_add_up(data)
    collator = KnowledgeTracingCollator(max_seq_len=20)
    batch = collator([data["train"][i] for i in range(min(8, len(data["train"])))])
    assert batch["item_ref"].shape[1] <= 20


def test_cache_is_reused_but_edits_are_seen(tmp_path):
    truth = write_synthetic_kt_csv(tmp_path / "generic", scale=0.002, seed=0)
    interactions, items = truth.files["interactions"], truth.files["items"]
    load = lambda: load_kt_csv(interactions, items, cold_start_items=0, cache_dir=tmp_path / "c")  # noqa: E731
    first = load()
    caches = set(os.listdir(tmp_path / "c" / "gram_hf_kt_csv"))
    assert load().stats == first.stats
    assert set(os.listdir(tmp_path / "c" / "gram_hf_kt_csv")) == caches  # served from the cache
    # Edit the raw files: rename one item's text and flip every response; the next load must see both.
    time.sleep(0.01)  # distinct modification time even on coarse clocks
    text = open(items, encoding="utf-8").read().replace('item-0,"', 'item-0,"EDITED ', 1)
    with open(items, "w", encoding="utf-8") as handle:
        handle.write(text)
    rows = open(interactions, encoding="utf-8").read().splitlines()
    flipped = [rows[0]] + [line[:-1] + ("0" if line.endswith("1") else "1") for line in rows[1:]]
    with open(interactions, "w", encoding="utf-8") as handle:
        handle.write("\n".join(flipped) + "\n")
    edited = load()
    texts = dict(zip(edited.items["item_id"], edited.items["text"]))
    assert texts["item-0"].startswith("EDITED ")
    before = sum(sum(r) for name in SPLITS for r in first[name]["responses"])
    after = sum(sum(r) for name in SPLITS for r in edited[name]["responses"])
    assert after == truth.num_interactions - before
