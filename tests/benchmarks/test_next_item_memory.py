"""benchmarks/next_item_memory.py: the loss-layer benchmark's inputs and report, shared negatives included."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import next_item_memory  # noqa: E402


def test_shared_negatives_are_one_set_per_batch():
    cpu = next_item_memory.torch.device("cpu")
    args = next_item_memory.parse_args(["--batch", "2", "--seq", "3", "--num-negatives", "5"])
    *_, negatives = next_item_memory.make_inputs(args, 40, cpu)
    assert negatives.shape == (2, 3, 5)
    shared = next_item_memory.parse_args(["--batch", "2", "--seq", "3", "--num-negatives", "5", "--shared-negatives"])
    hidden, catalog, targets, negatives = next_item_memory.make_inputs(shared, 40, cpu)
    assert negatives.shape == (5,) and "--shared-negatives" in next_item_memory.forwarded(shared)
    for method in ("ce_sampled", "cce_sampled"):
        value = next_item_memory.loss_step(method, hidden, catalog, targets, negatives, None)
        assert value > 0 and hidden.grad is not None


def test_report_says_the_negatives_are_shared(tmp_path):
    argv = ["--items", "60", "--batch", "2", "--seq", "3", "--num-negatives", "4", "--repeats", "1", "--threads", "1",
            "--methods", "cce_sampled", "--shared-negatives", "--output-dir", str(tmp_path)]  # fmt: skip
    next_item_memory.main(argv)
    report = json.loads((tmp_path / "next_item_memory.json").read_text())
    assert report["settings"]["shared_negatives"] is True
    [row] = report["results"]
    assert row["method"] == "cce_sampled" and row["num_items"] == 60
    assert "4 negatives shared by every position" in (tmp_path / "next_item_memory.md").read_text()
