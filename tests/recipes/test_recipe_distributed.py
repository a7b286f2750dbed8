"""A recipe under `accelerate launch --multi_gpu --num_processes 2` (CPU, gloo): it completes, the main process alone
writes the results and prints the table, and the results equal one process with the combined batch."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gram_hf.scripts import RESULTS_NAME

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"
TABLE_TITLE = " gram-hf mind results "


def recipe_argv(encoder: str, root: Path, output_dir: Path, per_device_batch_size: int) -> list[str]:
    # No dropout anywhere and sequential sampling: 2 processes with batch b see exactly the examples 1 process with
    # batch 2b sees, step by step.
    return [
        "--encoder_name_or_path", encoder,
        "--synthetic_scale", "0.0005",
        "--synthetic_dir", str(root / "synthetic"),
        "--dataset_cache_dir", str(root / "datasets"),
        "--output_dir", str(output_dir),
        "--max_steps", "3",
        "--per_device_train_batch_size", str(per_device_batch_size),
        "--per_device_eval_batch_size", "8",
        "--train_sampling_strategy", "sequential",
        "--head_dropout", "0",
        "--learning_rate", "1e-3",
        "--seed", "0",
        "--disable_tqdm", "true",
    ]  # fmt: skip


def test_mind_recipe_under_two_processes_equals_one_process(tiny_encoder, tmp_path):
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(RECIPES_DIR / "mind.py"), *recipe_argv(tiny_encoder, tmp_path, tmp_path / "ddp", 2),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    assert completed.stdout.count(TABLE_TITLE) == 1  # printed by the main process only
    two = json.loads((tmp_path / "ddp" / RESULTS_NAME).read_text())
    assert two["world_size"] == 2 and two["steps"] == 3
    assert (tmp_path / "ddp" / "encoder" / "config.json").is_file()

    spec = importlib.util.spec_from_file_location("gram_hf_recipe_mind_ddp", RECIPES_DIR / "mind.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = module.main(recipe_argv(tiny_encoder, tmp_path, tmp_path / "single", 4))
    finally:
        torch.set_num_threads(threads)
    assert one["world_size"] == 1 and one["steps"] == 3
    # Occurrences add up to the combined batch's; the item table's work is split between the processes, not repeated
    # (unique items are counted per process batch, so they and R_batch legitimately differ).
    for key in ("occurrences", "encoder_items_forward", "encoder_items_backward"):
        assert two["gram_counters"][f"gram/{key}"] == one["gram_counters"][f"gram/{key}"], key
    # The ranking metrics are per impression; the loss is a mean of per-batch means, which depend on how the
    # evaluation batches are split between processes.
    for key in ("test_auc", "test_mrr", "test_ndcg@5", "test_ndcg@10"):
        assert two["test_metrics"][key] == pytest.approx(one["test_metrics"][key], abs=1e-4), key
    assert two["test_metrics"]["test_num_impressions"] == one["test_metrics"]["test_num_impressions"]
    assert two["best_validation"]["value"] == pytest.approx(one["best_validation"]["value"], abs=1e-4)
