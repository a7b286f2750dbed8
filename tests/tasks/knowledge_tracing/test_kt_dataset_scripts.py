"""dataset_scripts/prepare_*.py: raw files in, a folder `datasets.load_dataset` reads (splits + items) out."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import datasets
import pytest
import yaml

from gram_hf.data import InteractionData
from gram_hf.tasks.knowledge_tracing import (
    write_synthetic_duolingo,
    write_synthetic_ednet,
    write_synthetic_kt_csv,
    write_synthetic_poj,
)

SCRIPTS = Path(__file__).resolve().parents[3] / "dataset_scripts"


def script(name: str):
    spec = importlib.util.spec_from_file_location(f"kt_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def check_folder(folder: Path, num_interactions: int, item_columns: set[str]) -> None:
    splits = datasets.load_dataset(str(folder))
    assert set(splits) == {"train", "validation", "test"}  # (an empty split would be left out)
    assert {"user_id", "items", "responses", "timestamps"} <= set(splits["train"].column_names)
    stats = json.loads((folder / "gram_hf_stats.json").read_text())
    loaded = sum(len(items) for name in splits for items in splits[name]["items"])
    assert loaded == stats["interactions"]["total"]
    assert loaded + stats["cold_start_interactions"]["removed_from_train"] == num_interactions
    items = datasets.load_dataset(str(folder), "items", split="train")
    assert {"item_id", "text", "cold_start"} | item_columns <= set(items.column_names)
    assert max(max(row) for row in splits["train"]["items"]) < len(items)
    card = (folder / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert [config["config_name"] for config in header["configs"]] == ["interactions", "items"]
    assert "## Statistics" in card
    data = InteractionData.from_hub(folder)
    assert data.stats["features"] == stats["features"]


def test_prepare_duolingo(tmp_path):
    truth = write_synthetic_duolingo(tmp_path / "raw", "en_es", scale=0.003, seed=0)
    out = script("prepare_duolingo").main(
        ["--data_dir", str(tmp_path / "raw"), "--output_dir", str(tmp_path / "out"), "--cold_start_items", "5",
         "--cache_dir", str(tmp_path / "cache")]
    )  # fmt: skip
    check_folder(out, truth.num_interactions, set())
    assert "cc-by-nc-4.0" in (out / "README.md").read_text()


def test_prepare_ednet(tmp_path):
    truth = write_synthetic_ednet(tmp_path / "raw", scale=0.00005, seed=0, text_tokens=10)
    out = script("prepare_ednet").main(
        ["--kt1_dir", truth.files["kt1_dir"], "--questions_csv", truth.files["questions_csv"], "--item_text",
         truth.files["item_text"], "--output_dir", str(tmp_path / "out"), "--cold_start_items", "3",
         "--cache_dir", str(tmp_path / "cache")]
    )  # fmt: skip
    check_folder(out, truth.num_interactions, {"part", "tags"})


def test_prepare_poj(tmp_path):
    truth = write_synthetic_poj(tmp_path / "raw", scale=0.0005, seed=0, text_tokens=20)
    out = script("prepare_poj").main(
        ["--log_csv", truth.files["log_csv"], "--problem_text", truth.files["problem_text"], "--output_dir",
         str(tmp_path / "out"), "--cold_start_items", "0", "--cache_dir", str(tmp_path / "cache")]
    )  # fmt: skip
    check_folder(out, truth.num_interactions, set())


def test_prepare_kt_csv_and_push(tmp_path, monkeypatch):
    truth = write_synthetic_kt_csv(tmp_path / "raw", scale=0.005, seed=0, file_format="parquet")
    uploads = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            pass

        def upload_folder(self, **kwargs):
            uploads.append(kwargs)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = script("prepare_kt_csv").main(
        ["--interactions", truth.files["interactions"], "--items", truth.files["items"], "--output_dir",
         str(tmp_path / "out"), "--cold_start_items", "item-1,item-2", "--cache_dir", str(tmp_path / "cache"),
         "--push_to_hub", "someone/kt", "--license", "cc-by-4.0"]
    )  # fmt: skip
    check_folder(out, truth.num_interactions, set())
    assert uploads and uploads[0]["repo_id"] == "someone/kt" and uploads[0]["folder_path"] == str(out)
    items = datasets.load_dataset(str(out), "items", split="train")
    assert sorted(item for item, cold in zip(items["item_id"], items["cold_start"]) if cold) == ["item-1", "item-2"]
