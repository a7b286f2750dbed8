"""Integration: a recipe's embedded default (synthetic data, the shipped MiniLM, its demo settings) learns the planted
signal, on cold-start items too."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"


def test_toeic_embedded_default_learns(tmp_path):
    spec = importlib.util.spec_from_file_location("gram_hf_recipe_toeic_demo", RECIPES_DIR / "toeic.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steady on a busy CI machine
    try:
        argv = ["--output_dir", str(tmp_path / "out"), "--synthetic_dir", str(tmp_path / "synthetic"),
                "--disable_tqdm", "true"]  # fmt: skip
        results = module.main(argv)
    finally:
        torch.set_num_threads(threads)
    assert results["synthetic"] and results["encoder"].endswith("model")  # the shipped MiniLM folder
    assert results["epochs"] == 3 and results["demo_settings"]["num_train_epochs"] == 3
    metrics = results["test_metrics"]
    assert metrics["test_auc"] > 0.7
    assert metrics["test_cold_start_auc"] > 0.55
    counters = results["gram_counters"]
    # One encoder fit per epoch over the touched items: far fewer encodes than the occurrences E2E would run.
    assert counters["gram/occurrences"] > 50 * counters["gram/encoder_items_backward"]
