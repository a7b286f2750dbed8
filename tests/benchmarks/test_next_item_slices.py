"""`benchmarks/next_item_slices.py` without training: the summary over seeds, the verdicts against RecBole's row and
the table (its training runs and RecBole never run here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import next_item_slices  # noqa: E402


def _run(variant, seed, ndcg):
    return {"variant": variant, "seed": seed, "ndcg@10": ndcg, "hr@10": 2 * ndcg, "epochs": 10 + seed, "steps": 5,
            "train_seconds": 60.0}  # fmt: skip


def test_summary_verdicts_and_table():
    runs = [_run("last", 0, 0.20), _run("last", 1, 0.22), _run("disjoint", 0, 0.24), _run("disjoint", 1, 0.24),
            _run("recbole", 0, 0.238)]  # fmt: skip
    summary = {name: next_item_slices.summarize([r for r in runs if r["variant"] == name])
               for name in ("last", "disjoint", "recbole")}  # fmt: skip
    assert summary["last"]["ndcg@10"]["mean"] == pytest.approx(0.21)
    assert summary["last"]["ndcg@10"]["std"] == pytest.approx(0.0141421, rel=1e-4)
    assert summary["recbole"]["ndcg@10"]["std"] == 0.0
    verdicts = next_item_slices.verdicts(summary)
    assert len(verdicts) == 2
    assert verdicts[0].endswith("below the reference.")  # 0.21 - 0.238 is beyond the noise (0.014)
    assert verdicts[1].endswith("at or above the reference.")
    payload = {"environment": {"command": "python benchmarks/next_item_slices.py", "cpu": "CPU", "cpu_count": 2,
                               "torch_threads": 1, "memory_total_bytes": 2**30, "versions": {"torch": "2"},
                               "device": "cpu"},
               "data": "tiny", "max_length": 50, "patience": 3, "summary": summary, "verdicts": verdicts}  # fmt: skip
    table = next_item_slices.render(payload)
    assert "| last slice only (the original SASRec) | 0, 1 | 0.2100 +- 0.0141 |" in table
    assert "RecBole SASRec (every prefix; reference)" in table


def test_without_recbole_the_verdicts_say_so():
    summary = {"disjoint": next_item_slices.summarize([_run("disjoint", 0, 0.24)])}
    assert next_item_slices.verdicts(summary) == [
        "every target, disjoint slices (default): NDCG@10 0.2400 (no RecBole reference run)."
    ]
