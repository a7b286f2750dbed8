"""`InteractionData.save_to_hub_folder` / `push_to_hub` / `from_hub`: a folder `datasets.load_dataset` reads back."""

from __future__ import annotations

import json

import datasets
import pytest
import yaml

from gram_hf.data import STATS_FILENAME, InteractionData


def small_data() -> InteractionData:
    features = datasets.Features(
        {
            "user_id": datasets.Value("string"),
            "items": datasets.List(datasets.Value("int32")),
            "responses": datasets.List(datasets.Value("int8")),
            "timestamps": datasets.List(datasets.Value("int64")),
        }
    )
    rows = {
        "train": [
            {"user_id": "a", "items": [0, 1, 0], "responses": [1, 0, 1], "timestamps": [1, 2, 3]},
            {"user_id": "b", "items": [2], "responses": [0], "timestamps": [7]},
        ],
        "validation": [{"user_id": "c", "items": [1, 2], "responses": [1, 1], "timestamps": [4, 9]}],
        "test": [{"user_id": "d", "items": [0], "responses": [0], "timestamps": [5]}],
    }
    splits = datasets.DatasetDict(
        {name: datasets.Dataset.from_list(split, features=features) for name, split in rows.items()}
    )
    items = datasets.Dataset.from_dict(
        {"item_id": ["x", 'y, "quoted"', "z"], "text": ["one", 'two, "2"', ""], "cold_start": [False, True, False]}
    )
    return InteractionData(splits, items, {"interactions": {"train": 4}, "features": {}})


def test_folder_round_trips_through_load_dataset(tmp_path):
    data = small_data()
    folder = data.save_to_hub_folder(tmp_path / "hub", pretty_name="Tiny", license="cc-by-nc-4.0")
    card = (folder / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert [config["config_name"] for config in header["configs"]] == ["interactions", "items"]
    assert header["configs"][0]["default"] is True
    assert header["license"] == "cc-by-nc-4.0"
    assert json.loads((folder / STATS_FILENAME).read_text()) == data.stats

    loaded = datasets.load_dataset(str(folder))
    assert set(loaded) == {"train", "validation", "test"}
    for name in loaded:
        assert loaded[name].to_list() == data.splits[name].to_list()
        assert loaded[name].features == data.splits[name].features
    items = datasets.load_dataset(str(folder), "items", split="train")
    assert items.to_list() == data.items.to_list()

    again = InteractionData.from_hub(folder)
    assert again.stats == data.stats
    assert again.items.to_list() == data.items.to_list()
    assert again["train"].to_list() == data["train"].to_list()


def test_folder_shards_large_splits_and_refuses_to_clobber(tmp_path):
    data = small_data()
    folder = data.save_to_hub_folder(tmp_path / "hub", max_shard_size=1)
    assert len(list((folder / "data").glob("train-*.parquet"))) == 2  # one row per shard at most
    assert datasets.load_dataset(str(folder), split="train").to_list() == data["train"].to_list()
    with pytest.raises(FileExistsError, match="not empty"):
        data.save_to_hub_folder(folder)
    data.save_to_hub_folder(folder, card_text="# Custom card", overwrite=True)
    assert "# Custom card" in (folder / "README.md").read_text()
    assert len(list((folder / "data").glob("train-*.parquet"))) == 1


def test_push_to_hub_uploads_the_written_folder(tmp_path, monkeypatch):
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["create_repo"] = (repo_id, kwargs)

        def upload_folder(self, **kwargs):
            root = kwargs["folder_path"]
            calls["files"] = sorted(path.relative_to(root).as_posix() for path in _walk(root))
            calls["upload_folder"] = kwargs
            return "commit"

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    result = small_data().push_to_hub("someone/tiny", private=True, token="t")
    assert result == "commit"
    assert calls["token"] == "t"
    assert calls["create_repo"] == ("someone/tiny", {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert calls["upload_folder"]["repo_id"] == "someone/tiny"
    assert calls["upload_folder"]["repo_type"] == "dataset"
    assert "README.md" in calls["files"] and STATS_FILENAME in calls["files"]
    assert "items/items-00000-of-00001.parquet" in calls["files"]
    assert "data/train-00000-of-00001.parquet" in calls["files"]


def _walk(folder):
    from pathlib import Path

    return [path for path in Path(folder).rglob("*") if path.is_file()]


def test_same_named_folders_do_not_share_a_cache(tmp_path):
    # datasets keys local YAML-config folders on file patterns; the dataset_info sizes keep them apart.
    first, second = small_data(), small_data()
    second.splits["train"] = second.splits["train"].select([0])
    first.save_to_hub_folder(tmp_path / "a" / "out")
    second.save_to_hub_folder(tmp_path / "b" / "out")
    assert len(datasets.load_dataset(str(tmp_path / "a" / "out"), split="train")) == 2
    assert len(datasets.load_dataset(str(tmp_path / "b" / "out"), split="train")) == 1


def test_empty_splits_are_left_out(tmp_path):
    data = small_data()
    data.splits["validation"] = data.splits["validation"].select([])
    folder = data.save_to_hub_folder(tmp_path / "hub")
    assert set(datasets.load_dataset(str(folder))) == {"train", "test"}
    data.splits["train"] = data.splits["train"].select([])
    data.splits["test"] = data.splits["test"].select([])
    with pytest.raises(ValueError, match="Every split is empty"):
        data.save_to_hub_folder(tmp_path / "empty")
