"""The shared knowledge-tracing canonical step: ids -> catalog, stable time order, user split, cold start, windows."""

from __future__ import annotations

import logging

import datasets
import numpy as np
import pytest
import torch

from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, build_interaction_data
from gram_hf.tasks.knowledge_tracing.builder import log_time_bucket

RAW = datasets.Features(
    {
        "user_id": datasets.Value("string"),
        "item_ids": datasets.List(datasets.Value("string")),
        "timestamps": datasets.List(datasets.Value("float64")),
        "responses": datasets.List(datasets.Value("int8")),
    }
)


def raw(rows: list[dict], extra: dict | None = None) -> datasets.Dataset:
    features = RAW.copy()
    features.update(extra or {})
    return datasets.Dataset.from_list(rows, features=features)


def items(ids: list[str], texts: list[str | None] | None = None) -> datasets.Dataset:
    texts = texts if texts is not None else [f"text of {item}" for item in ids]
    return datasets.Dataset.from_dict({"item_id": ids, "text": texts})


def many_users(num_users: int = 50, length: int = 7, num_items: int = 20, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        rows.append(
            {
                "user_id": f"u{user:03d}",
                "item_ids": [f"i{item}" for item in rng.integers(0, num_items, size=length)],
                "timestamps": rng.uniform(0, 1000, size=length).tolist(),
                "responses": rng.integers(0, 2, size=length).tolist(),
            }
        )
    return raw(rows)


def concat_user(split: datasets.Dataset, user: str) -> dict[str, list]:
    rows = [row for row in split if row["user_id"] == user]
    return {key: [value for row in rows for value in row[key]] for key in ("items", "responses", "timestamps")}


def test_sorted_by_time_stably_and_chunked():
    users = raw(
        [
            # ties at t=5 keep file order (b before c), as EdNet bundles need.
            {"user_id": "u1", "item_ids": ["a", "b", "c", "d", "e"], "timestamps": [9.9, 5.0, 5.0, 1.2, 7.0],
             "responses": [1, 0, 1, 0, 1]},
        ]
    )  # fmt: skip
    data = build_interaction_data(
        users, items(["e", "d", "c", "b", "a"]), max_seq_len=2, test_fraction=0.0, cold_start_items=0
    )
    train = data["train"]
    assert [row["items"] for row in train] == [[1, 3], [2, 0], [4]]  # catalog in item-table order: e d c b a
    assert [row["timestamps"] for row in train] == [[1, 5], [5, 7], [9]]  # floored to integer seconds
    assert [row["responses"] for row in train] == [[0, 0], [1, 1], [1]]
    assert set(train["user_id"]) == {"u1"}
    assert data.items["item_id"] == ["e", "d", "c", "b", "a"]
    assert data.stats["sequences"]["train"] == 3
    assert data.stats["interactions"]["total"] == 5
    assert data.stats["timestamp_unit"] == "seconds"


def test_user_split_is_seeded_disjoint_and_paper_sized():
    users = many_users(num_users=100)
    data = build_interaction_data(users, None, cold_start_items=0, seed=3)
    split_users = {name: set(data[name]["user_id"]) for name in ("train", "validation", "test")}
    assert len(split_users["test"]) == 20  # 8:2 ...
    assert len(split_users["validation"]) == 8  # ... then 10% of the 80 training learners
    assert len(split_users["train"]) == 72
    assert not (split_users["train"] & split_users["test"]) and not (split_users["train"] & split_users["validation"])
    assert data.stats["users"] == {"train": 72, "validation": 8, "test": 20, "total": 100}
    again = build_interaction_data(users, None, cold_start_items=0, seed=3)
    other = build_interaction_data(users, None, cold_start_items=0, seed=4)
    assert again["test"]["user_id"] == data["test"]["user_id"]
    assert other["test"]["user_id"] != data["test"]["user_id"]
    custom = build_interaction_data(users, None, cold_start_items=0, test_fraction=0.5, validation_fraction=0.0)
    assert custom.stats["users"] == {"train": 50, "validation": 0, "test": 50, "total": 100}


def test_every_interaction_is_kept_exactly_once():
    users = many_users(num_users=30, length=23)
    data = build_interaction_data(users, None, cold_start_items=0, max_seq_len=5)
    for row in users:
        split = next(name for name in ("train", "validation", "test") if row["user_id"] in data[name]["user_id"])
        got = concat_user(data[split], row["user_id"])
        order = np.argsort(row["timestamps"], kind="stable")
        catalog = {item_id: index for index, item_id in enumerate(data.items["item_id"])}
        assert got["items"] == [catalog[row["item_ids"][i]] for i in order]
        assert got["responses"] == [row["responses"][i] for i in order]
        assert all(len(chunk) <= 5 for chunk in data[split]["items"])
    assert data.stats["interactions"]["total"] == 30 * 23


def test_cold_start_items_leave_train_only():
    users = many_users(num_users=60, length=15, num_items=30)
    data = build_interaction_data(users, None, cold_start_items=5, seed=1)
    cold = {index for index, flag in enumerate(data.items["cold_start"]) if flag}
    assert len(cold) == 5 and data.stats["items"]["cold_start"] == 5
    assert not cold & {item for row in data["train"]["items"] for item in row}
    held_out = [item for name in ("validation", "test") for row in data[name]["items"] for item in row]
    assert cold & set(held_out)
    stats = data.stats["cold_start_interactions"]
    assert stats["test"] + stats["validation"] == sum(item in cold for item in held_out)
    assert stats["removed_from_train"] > 0
    total = 60 * 15
    assert data.stats["interactions"]["total"] + stats["removed_from_train"] == total
    # The cold-start draw has its own generator: the user split does not move when the count changes.
    other = build_interaction_data(users, None, cold_start_items=2, seed=1)
    assert other["test"]["user_id"] == data["test"]["user_id"]


def test_explicit_cold_start_list_and_bad_counts():
    users = many_users(num_users=20, num_items=10)
    data = build_interaction_data(users, None, cold_start_items=["i1", "i2"])
    flagged = [item for item, flag in zip(data.items["item_id"], data.items["cold_start"]) if flag]
    assert sorted(flagged) == ["i1", "i2"]
    with pytest.raises(ValueError, match="do not occur"):
        build_interaction_data(users, None, cold_start_items=["i1", "nope"])
    with pytest.raises(ValueError, match="smaller than the 10 items"):
        build_interaction_data(users, None, cold_start_items=10)


def test_unknown_items_dropped_with_one_warning_or_strict(caplog):
    users = raw(
        [
            {"user_id": "u1", "item_ids": ["a", "x", "b"], "timestamps": [1, 2, 3], "responses": [1, 0, 1]},
            {"user_id": "u2", "item_ids": ["y", "x"], "timestamps": [1, 2], "responses": [1, 1]},
        ]
    )
    with caplog.at_level(logging.WARNING):
        data = build_interaction_data(users, items(["a", "b"]), cold_start_items=0, test_fraction=0.0)
    warnings = [record for record in caplog.records if "absent from the item table" in record.getMessage()]
    assert len(warnings) == 1
    assert "3 of 5 interactions name 2 item ids" in warnings[0].getMessage()
    assert data.stats["dropped"]["unknown_items"] == 3
    assert data.stats["dropped_learners"]["without_interactions"] == 1  # u2 had only unknown items
    assert data["train"]["user_id"] == ["u1"]
    with pytest.raises(ValueError, match="3 of 5 interactions name 2 item ids absent"):
        build_interaction_data(users, items(["a", "b"]), cold_start_items=0, strict=True)


def test_missing_text_raises_or_drops():
    users = raw([{"user_id": "u1", "item_ids": ["a", "b", "b"], "timestamps": [1, 2, 3], "responses": [1, 0, 1]}])
    table = items(["a", "b", "unused"], ["alpha", None, None])
    with pytest.raises(ValueError, match=r"1 items used by 2 interactions have no text \(e.g. 'b'\)"):
        build_interaction_data(users, table, cold_start_items=0)
    data = build_interaction_data(users, table, cold_start_items=0, missing_text="drop", test_fraction=0.0)
    assert data.items["item_id"] == ["a"]
    assert data.stats["dropped"]["items_without_text"] == 2


def test_duplicate_item_ids_raise():
    users = raw([{"user_id": "u1", "item_ids": ["a"], "timestamps": [1], "responses": [1]}])
    with pytest.raises(ValueError, match="repeats 1 item ids"):
        build_interaction_data(users, items(["a", "a"]))


def test_min_interactions_drops_short_learners():
    users = raw(
        [
            {"user_id": "u1", "item_ids": ["a", "b"], "timestamps": [1, 2], "responses": [1, 0]},
            {"user_id": "u2", "item_ids": ["a"], "timestamps": [1], "responses": [1]},
        ]
    )
    data = build_interaction_data(users, None, cold_start_items=0, min_interactions=2, test_fraction=0.0)
    assert data["train"]["user_id"] == ["u1"]
    assert data.stats["dropped_learners"]["below_min_interactions"] == 1


def test_every_reason_is_counted_and_the_counts_add_up(caplog):
    """stats["rows_read"] = interactions in splits + sum(dropped) + sum(removed_from_train), each reason counted."""
    rows = [
        {"user_id": "u1", "item_ids": ["a", "x", "b", "n"], "timestamps": [1, 2, 3, 4], "responses": [1, 0, 1, 1]},
        {"user_id": "u2", "item_ids": ["a"], "timestamps": [1], "responses": [1]},  # short learner
        *[
            {"user_id": f"v{user}", "item_ids": ["a", "b", "c"], "timestamps": [1, 2, 3], "responses": [1, 0, 1]}
            for user in range(8)
        ],
    ]
    read_stats = {
        "rows_read": 29 + 4,
        "dropped": {"unjudged_submissions": 4},
        "dropped_examples": {"unjudged_submissions": [["log.csv", 3, "Result 'Waiting'"], ["log.csv", 8, "..."]]},
    }
    table = items(["a", "b", "c", "n"], ["alpha", "beta", "gamma", None])
    with caplog.at_level(logging.WARNING):
        data = build_interaction_data(
            raw(rows), table, missing_text="drop", min_interactions=2, cold_start_items=["c"], test_fraction=0.3,
            validation_fraction=0.0, read_stats=read_stats,
        )  # fmt: skip
    stats = data.stats
    assert stats["dropped"] == {
        "unjudged_submissions": 4,
        "unknown_items": 1,
        "items_without_text": 1,
        "short_learners": 1,
    }
    removed = stats["removed_from_train"]["cold_start_items"]
    assert removed == stats["cold_start_interactions"]["removed_from_train"] > 0
    kept = sum(len(row) for name in ("train", "validation", "test") for row in data[name]["items"])
    assert kept == stats["interactions"]["total"] == 29 - 3 - removed
    assert stats["rows_read"] == 33 == kept + sum(stats["dropped"].values()) + removed
    assert stats["dropped_examples"] == {"unjudged_submissions": ["log.csv:3: Result 'Waiting'", "log.csv:8: ..."]}
    assert stats["dropped_items"] == {"unknown_ids": 1, "without_text": 1, "unused": 1}
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "4 unjudged submissions (e.g. log.csv:3: Result 'Waiting'" in warnings[0]
    assert "1 of 29 interactions name 1 item ids absent" in warnings[0]
    with pytest.raises(
        ValueError, match=r"4 bad lines:\n  log.csv:3: Result 'Waiting'\n  log.csv:8: ...\n  ... and 2 more"
    ):
        build_interaction_data(raw(rows), table, missing_text="drop", read_stats=read_stats, strict=True)


def test_features_are_encoded_and_sized():
    extra = {"part": datasets.List(datasets.Value("int32")), "level": datasets.List(datasets.Value("string"))}
    users = raw(
        [{"user_id": "u1", "item_ids": ["a", "b", "c"], "timestamps": [3, 2, 1], "responses": [1, 0, 1],
          "part": [1, 2, 3], "level": ["hi", "", "lo"]}],
        extra,
    )  # fmt: skip
    data = build_interaction_data(users, None, cold_start_items=0, test_fraction=0.0, feature_vocab_sizes={"part": 8})
    row = data["train"][0]
    assert row["part"] == [3, 2, 1]
    assert row["level"] == [2, 0, 1]  # sorted vocabulary hi=1, lo=2; empty = 0
    assert data.stats["features"] == {"part": 8, "level": 3}
    assert data.stats["feature_vocabularies"] == {"level": ["hi", "lo"]}


def test_predefined_splits():
    extra = {"splits": datasets.List(datasets.Value("int8"))}
    users = raw(
        [{"user_id": "u1", "item_ids": ["a", "b", "c"], "timestamps": [1, 2, 3], "responses": [1, 0, 1],
          "splits": [0, 1, 2]}],
        extra,
    )  # fmt: skip
    data = build_interaction_data(users, None, cold_start_items=0, split_by="predefined")
    assert data.stats["interactions"] == {"train": 1, "validation": 1, "test": 1, "total": 3}
    with pytest.raises(ValueError, match="predefined"):
        build_interaction_data(many_users(5), None, split_by="predefined")


def test_collator_consumes_split_rows():
    data = build_interaction_data(many_users(num_users=10, length=30), None, cold_start_items=0, max_seq_len=8)
    batch = KnowledgeTracingCollator(max_seq_len=8)([data["train"][i] for i in range(4)])
    assert batch["item_ref"].shape[0] == 4
    assert batch["item_index"].dtype == torch.long
    assert int(batch["item_index"].max()) < data.num_items


def test_log_time_bucket():
    buckets = log_time_bucket(np.array([np.nan, -1.0, 0.0, 1.0, 3.0, 60.0, 1e9]), num_buckets=24)
    assert buckets.tolist() == [0, 0, 1, 3, 5, 12, 24]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_seq_len": 0}, "max_seq_len"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"split_by": "time"}, "split_by"),
        ({"missing_text": "ignore"}, "missing_text"),
        ({"min_interactions": 0}, "min_interactions"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_interaction_data(many_users(4), None, **kwargs)
