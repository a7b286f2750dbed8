"""load_mind: round trip with the synthetic generator, split schemas, layouts, carving, bodies and the cache key."""

from __future__ import annotations

import os
from datetime import datetime

import datasets
import pytest

from gram_hf.data import InteractionData
from gram_hf.tasks.news_recommendation import IMPRESSION_FEATURES, load_mind, make_synthetic_mind
from gram_hf.tasks.news_recommendation.mind_builder import sample_negatives
from gram_hf.tasks.news_recommendation.mind_files import find_mind_folders
from gram_hf.tasks.news_recommendation.mind_parsing import parse_mind_time

SMALL = {"num_users": 30, "num_news": 80, "train_impressions": 40, "dev_impressions": 20, "test_impressions": 15}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic_mind(tmp_path_factory.mktemp("mind"), "large", seed=1, with_body=True, **SMALL)


@pytest.fixture(scope="module")
def loaded(synthetic, tmp_path_factory):
    return load_mind(synthetic.path, cache_dir=tmp_path_factory.mktemp("cache"), text_fields=("title", "abstract"))


def news_ids_of(data: InteractionData, indices) -> list[str]:
    return [data.items[int(i)]["item_id"] for i in indices] if len(indices) else []


def test_splits_items_and_schema(loaded):
    assert isinstance(loaded, InteractionData)
    assert list(loaded.splits) == ["train", "validation", "test"]
    for split in loaded.splits.values():
        assert split.features == IMPRESSION_FEATURES
    assert set(loaded.items.column_names) == {
        "item_id", "text", "title", "abstract", "category", "subcategory", "url", "title_entities",
        "abstract_entities", "body",
    }  # fmt: skip
    assert loaded.num_items == loaded.stats["num_items"] == len(set(loaded.items["item_id"]))
    row = loaded.items[0]
    assert row["text"] == " ".join(part for part in (row["title"], row["abstract"]) if part)


def test_items_are_the_news_files_in_first_appearance_order(synthetic, loaded):
    expected: dict[str, None] = {}
    for role in ("train", "dev", "test"):
        with open(synthetic.splits[role].folder / "news.tsv", encoding="utf-8") as handle:
            for line in handle:
                expected.setdefault(line.split("\t")[0], None)
    assert loaded.items["item_id"] == list(expected)


def test_round_trip_of_evaluation_splits(synthetic, loaded):
    for split, role in (("validation", "dev"), ("test", "test")):
        truth = synthetic.splits[role]
        rows = loaded[split].to_list()
        assert len(rows) == truth.num_impressions
        assert [row["impression_id"] for row in rows] == truth.impression_ids
        assert [row["user_id"] for row in rows] == truth.user_ids
        for row, history, candidates, labels in zip(rows, truth.histories, truth.candidates, truth.labels):
            assert news_ids_of(loaded, row["history"]) == history[-50:]
            assert news_ids_of(loaded, row["candidates"]) == candidates
            assert row["labels"] == (labels if truth.has_labels else [-1] * len(labels))
            assert isinstance(row["time"], datetime)
    assert loaded.stats["splits"]["validation"]["clicks"] == synthetic.splits["dev"].num_clicks
    assert loaded.stats["splits"]["validation"]["has_labels"] is True
    assert loaded.stats["splits"]["test"]["has_labels"] is False


def test_round_trip_of_the_training_split(synthetic, loaded):
    truth = synthetic.splits["train"]
    rows = loaded["train"].to_list()
    assert len(rows) == truth.num_clicks == loaded.stats["splits"]["train"]["rows"]
    assert loaded.stats["splits"]["train"]["impressions"] == truth.num_impressions
    by_impression = dict(zip(truth.impression_ids, zip(truth.candidates, truth.labels)))
    clicks_seen: dict[int, list[str]] = {}
    positions = set()
    for row in rows:
        candidates, labels = by_impression[row["impression_id"]]
        clicked = {c for c, label in zip(candidates, labels) if label == 1}
        not_clicked = {c for c, label in zip(candidates, labels) if label == 0}
        shown = news_ids_of(loaded, row["candidates"])
        assert len(shown) == 5 and sum(row["labels"]) == 1  # 1 + npratio, one positive
        position = row["labels"].index(1)
        positions.add(position)
        assert shown[position] in clicked
        assert set(shown[:position] + shown[position + 1 :]) <= not_clicked
        clicks_seen.setdefault(row["impression_id"], []).append(shown[position])
    # one row per click, every click once, in the impression's order
    for impression_id, (candidates, labels) in by_impression.items():
        assert clicks_seen[impression_id] == [c for c, label in zip(candidates, labels) if label == 1]
    assert len(positions) > 1  # the positive is not always at the same slot


def test_body_column_and_body_in_text(synthetic, tmp_path):
    data = load_mind(synthetic.path, cache_dir=tmp_path, text_fields=("title", "body"))
    bodies = dict(
        line.rstrip("\n").split("\t", 1) for line in open(synthetic.path / "news_body.tsv", encoding="utf-8")
    )
    for row in data.items.select(range(10)):
        assert row["body"] == bodies[row["item_id"]]
        assert row["text"] == f"{row['title']} {row['body'].strip()}"


def test_deterministic_and_seeded(synthetic, tmp_path):
    first = load_mind(synthetic.path, cache_dir=tmp_path / "a", seed=3)["train"].to_list()
    again = load_mind(synthetic.path, cache_dir=tmp_path / "b", seed=3)["train"].to_list()
    other = load_mind(synthetic.path, cache_dir=tmp_path / "b", seed=4)["train"].to_list()
    assert first == again
    assert first != other
    assert [r["impression_id"] for r in first] == [r["impression_id"] for r in other]


def test_validation_carved_from_train_and_dev_kept(synthetic, tmp_path):
    data = load_mind(synthetic.path, cache_dir=tmp_path, validation_fraction=0.3, max_history=5, npratio=2)
    assert list(data.splits) == ["train", "validation", "dev", "test"]
    train_ids = set(data["train"]["impression_id"])
    validation_ids = data["validation"]["impression_id"]
    assert train_ids.isdisjoint(validation_ids)
    assert train_ids | set(validation_ids) == set(synthetic.splits["train"].impression_ids)
    assert 0 < len(validation_ids) < synthetic.splits["train"].num_impressions
    assert data["dev"]["impression_id"] == synthetic.splits["dev"].impression_ids
    assert all(len(row["candidates"]) == 3 for row in data["train"])
    assert max(len(history) for history in data["dev"]["history"]) == 5


def test_max_history_none_keeps_everything_and_test_can_be_left_out(synthetic, tmp_path):
    data = load_mind(synthetic.path, cache_dir=tmp_path, max_history=None, include_test=False)
    assert list(data.splits) == ["train", "validation"]
    assert "test" not in data.stats["folders"]
    longest = max(len(history) for history in synthetic.splits["dev"].histories)
    assert longest > 50
    assert max(len(history) for history in data["validation"]["history"]) == longest


def write_folder(folder, news_lines, behaviors_lines):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "news.tsv").write_text("".join(line + "\n" for line in news_lines), encoding="utf-8")
    (folder / "behaviors.tsv").write_text("".join(line + "\n" for line in behaviors_lines), encoding="utf-8")


NEWS = [f"N{i}\tsports\tfootball_nfl\tTitle {i}\tAbstract {i}\thttps://x/{i}.html\t[]\t[]" for i in range(1, 7)]
TIME = "11/11/2019 9:05:58 AM"


def test_cache_is_keyed_on_file_size_and_mtime(tmp_path):
    write_folder(tmp_path / "MINDsmall_train", NEWS, [f"1\tU1\t{TIME}\tN1\tN2-1 N3-0 N4-0"])
    write_folder(tmp_path / "MINDsmall_dev", NEWS, [f"1\tU1\t{TIME}\tN1 N2\tN5-1 N6-0"])
    cache = tmp_path / "cache"
    first = load_mind(tmp_path, cache_dir=cache)
    assert first["validation"]["labels"] == [[1, 0]]
    assert load_mind(tmp_path, cache_dir=cache)["validation"].cache_files == first["validation"].cache_files

    # The same size and only the modification time differs: the cache must still notice.
    behaviors = tmp_path / "MINDsmall_dev" / "behaviors.tsv"
    stat = behaviors.stat()
    behaviors.write_text(f"1\tU1\t{TIME}\tN1 N2\tN5-0 N6-1\n", encoding="utf-8")
    os.utime(behaviors, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert behaviors.stat().st_size == stat.st_size
    edited = load_mind(tmp_path, cache_dir=cache)
    assert edited["validation"]["labels"] == [[0, 1]]
    assert edited["validation"].cache_files != first["validation"].cache_files

    # An edited news.tsv reaches the items.
    news = tmp_path / "MINDsmall_train" / "news.tsv"
    news.write_text("".join(line.replace("Title 1", "Edited title") + "\n" for line in NEWS), encoding="utf-8")
    assert load_mind(tmp_path, cache_dir=cache).items[0]["title"] == "Edited title"


def test_plain_and_single_folder_layouts(tmp_path):
    write_folder(tmp_path / "plain" / "train", NEWS, [f"7\tU1\t{TIME}\tN1\tN2-1 N3-0"])
    write_folder(tmp_path / "plain" / "valid", NEWS, [f"8\tU1\t{TIME}\t\tN5-1 N6-0"])
    data = load_mind(tmp_path / "plain", cache_dir=tmp_path / "cache")
    assert list(data.splits) == ["train", "validation"]
    assert data["validation"][0]["history"] == []
    single = load_mind(tmp_path / "plain" / "valid", cache_dir=tmp_path / "cache")
    assert list(single.splits) == ["validation"]
    assert single["validation"]["impression_id"] == [8]


def test_several_variants_need_variant(tmp_path):
    write_folder(tmp_path / "MINDsmall_dev", NEWS, [f"1\tU1\t{TIME}\tN1\tN5-1 N6-0"])
    write_folder(tmp_path / "MINDlarge_dev", NEWS, [f"2\tU1\t{TIME}\tN1\tN5-1 N6-0"])
    with pytest.raises(ValueError, match="several MIND variants"):
        find_mind_folders(tmp_path)
    data = load_mind(tmp_path, variant="large", cache_dir=tmp_path / "cache")
    assert data["validation"]["impression_id"] == [2]
    assert data.stats["variant"] == "large"


def test_builder_can_be_used_directly(tmp_path):
    from gram_hf.tasks.news_recommendation import MIND

    write_folder(tmp_path / "MINDsmall_train", NEWS, [f"1\tU1\t{TIME}\tN1\tN2-1 N3-0 N4-0"])
    builder = MIND(config_name="behaviors", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"), npratio=1)
    builder.download_and_prepare()
    splits = builder.as_dataset()
    assert isinstance(splits, datasets.DatasetDict)
    assert len(splits["train"][0]["candidates"]) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("11/11/2019 9:05:58 AM", datetime(2019, 11, 11, 9, 5, 58)),
        ("11/13/2019 12:00:01 AM", datetime(2019, 11, 13, 0, 0, 1)),
        ("11/13/2019 12:30:00 PM", datetime(2019, 11, 13, 12, 30, 0)),
        ("1/2/2019 11:59:59 PM", datetime(2019, 1, 2, 23, 59, 59)),
    ],
)
def test_parse_mind_time(text, expected):
    assert parse_mind_time(text) == expected
    assert datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p") == expected


def test_sample_negatives_as_plm_nr():
    import random

    rng = random.Random(0)
    drawn = sample_negatives([1, 2, 3, 4, 5, 6], 4, rng)
    assert len(drawn) == len(set(drawn)) == 4  # enough negatives: without replacement
    few = sample_negatives([8, 9], 4, rng)
    assert len(few) == 4 and set(few) <= {8, 9}  # too few: from the repeated negatives
    assert sample_negatives([7], 3, rng) == [7, 7, 7]


def test_news_catalog_with_per_field_budgets(loaded, tokenizer):
    from gram_hf.tasks.news_recommendation import MIND_FIELD_MAX_LENGTHS, build_news_catalog

    catalog = build_news_catalog(loaded, tokenizer)  # the fields the data was loaded with: title + abstract
    assert catalog.text_fields == ("title", "abstract")
    assert catalog.field_max_lengths == (MIND_FIELD_MAX_LENGTHS["title"], MIND_FIELD_MAX_LENGTHS["abstract"])
    assert catalog.item_ids == loaded.items["item_id"]
    same = loaded.catalog(tokenizer, max_length=[24, 50], text_column=["title", "abstract"])
    assert same.flat_input_ids.tolist() == catalog.flat_input_ids.tolist()
    first = catalog.batch([0])["input_ids"][0].tolist()
    assert first.count(tokenizer.sep_token_id) == (2 if loaded.items[0]["abstract"] else 1)
    short = build_news_catalog(loaded, tokenizer, text_fields=["title"], max_lengths={"title": 3})
    assert int(short.lengths.max()) == 5
