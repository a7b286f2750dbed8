"""dataset_scripts/prepare_mind.py: a MIND folder in, a Hub-ready folder (parquet splits, items, card) out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import datasets
import pytest
import yaml

from gram_hf.data import InteractionData
from gram_hf.tasks.news_recommendation import load_mind, make_synthetic_mind

SCRIPT = Path(__file__).resolve().parents[3] / "dataset_scripts" / "prepare_mind.py"


@pytest.fixture(scope="module")
def prepare_mind():
    spec = importlib.util.spec_from_file_location("prepare_mind", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    make_synthetic_mind(root, "large", num_users=20, num_news=60, train_impressions=15, dev_impressions=8,
                        test_impressions=6, seed=0)  # fmt: skip
    return root


def test_prepare_mind_writes_a_loadable_folder(prepare_mind, raw, tmp_path):
    out = prepare_mind.main(
        ["--data_dir", str(raw), "--output_dir", str(tmp_path / "out"), "--text_fields", "title", "abstract",
         "--npratio", "3", "--cache_dir", str(tmp_path / "cache")]
    )  # fmt: skip
    expected = load_mind(raw, cache_dir=tmp_path / "cache", text_fields=("title", "abstract"), npratio=3)
    splits = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert list(splits) == ["train", "validation", "test"]
    for name in splits:
        assert splits[name].to_list() == expected[name].to_list()
    items = datasets.load_dataset(str(out), "items", split="train", cache_dir=str(tmp_path / "hf"))
    assert items.to_list() == expected.items.to_list()
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert [config["config_name"] for config in header["configs"]] == ["interactions", "items"]
    assert header["license"] == "other"
    assert "Microsoft Research License Terms" in card and "| train |" in card
    restored = InteractionData.from_hub(out, cache_dir=str(tmp_path / "hf"))
    assert restored.stats["splits"]["train"]["rows"] == len(expected["train"])
    assert restored.stats["npratio"] == 3


def test_prepare_mind_push_to_hub(prepare_mind, raw, tmp_path, monkeypatch):
    calls = []

    def fake_push(self, repo_id, card_text=None, **kwargs):
        calls.append((repo_id, card_text, kwargs))

    monkeypatch.setattr(InteractionData, "push_to_hub", fake_push)
    prepare_mind.main(
        ["--data_dir", str(raw), "--output_dir", str(tmp_path / "out"), "--push_to_hub", "me/mind", "--private",
         "--validation_fraction", "0.25", "--skip_test", "--cache_dir", str(tmp_path / "cache")]
    )  # fmt: skip
    ((repo_id, card_text, kwargs),) = calls
    assert repo_id == "me/mind" and kwargs["private"] is True and kwargs["folder"] == str(tmp_path / "out")
    assert kwargs["license"] == "other"
    assert "`dev`: `*_dev`" in card_text and "25% share" in card_text
    assert "`test`" not in card_text
