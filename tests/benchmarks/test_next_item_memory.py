"""benchmarks/next_item_memory.py: the loss-layer benchmark's inputs and report, shared negatives included."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import next_item_memory  # noqa: E402


@pytest.mark.parametrize(("sharing", "shape"), [("position", (2, 3, 5)), ("sequence", (2, 5)), ("batch", (5,))])
def test_negatives_are_a_set_per_position_sequence_or_batch(sharing, shape):
    cpu = next_item_memory.torch.device("cpu")
    argv = ["--batch", "2", "--seq", "3", "--num-negatives", "5", "--negative-sharing", sharing]
    args = next_item_memory.parse_args(argv)
    hidden, catalog, targets, negatives = next_item_memory.make_inputs(args, 40, cpu)
    assert negatives.shape == shape
    assert ("--negative-sharing" in next_item_memory.forwarded(args)) == (sharing != "position")
    for method in ("ce_sampled", "cce_sampled"):
        value = next_item_memory.loss_step(method, hidden, catalog, targets, negatives, None)
        assert value > 0 and hidden.grad is not None


def test_report_says_how_the_negatives_are_shared(tmp_path):
    argv = ["--items", "60", "--batch", "2", "--seq", "3", "--num-negatives", "4", "--repeats", "1", "--threads", "1",
            "--methods", "cce_sampled", "--negative-sharing", "sequence", "--output-dir", str(tmp_path)]  # fmt: skip
    next_item_memory.main(argv)
    report = json.loads((tmp_path / "next_item_memory.json").read_text())
    assert report["settings"]["negative_sharing"] == "sequence"
    [row] = report["results"]
    assert row["method"] == "cce_sampled" and row["num_items"] == 60
    assert "4 negatives per sequence, shared by its positions" in (tmp_path / "next_item_memory.md").read_text()
    # Reports written before --negative-sharing said `shared_negatives`.
    assert next_item_memory.negative_sharing({"shared_negatives": True}) == "batch"
    assert next_item_memory.negative_sharing({}) == "position"
