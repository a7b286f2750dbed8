"""Smoke test of the benchmark harness at tiny scale: real loader, speed and quality workers, reports."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import common  # noqa: E402
import speed  # noqa: E402

TINY_PRESET = {"users": 10, "items": 24, "interactions": 400, "cold_start_items": 4}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def spec(workdir):
    spec = common.DataSpec(dataset="duolingo", preset="en_es", scale=1.0, item_max_length=16, max_seq_len=20,
                           preset_overrides=TINY_PRESET)  # fmt: skip
    common.prepare_data(spec, workdir)
    return spec


def config(spec, workdir, mode, **extra):
    return {"mode": mode, "data": vars(spec), "workdir": str(workdir), "encoder": "tiny-random", "batch_size": 4,
            "encoder_batch_size": 8, "device": "cpu", "seed": 0, "warmup_steps": 1, "measure_steps": 1,
            "full_epoch": mode == "gram-1e", **extra}  # fmt: skip


@pytest.fixture(scope="module")
def speed_results(spec, workdir):
    return [common.run_speed_worker(config(spec, workdir, mode)) for mode in ("e2e", "gram-1s", "gram-1e")]


def test_prepare_data_is_cached_and_summarised(spec, workdir):
    folder = workdir / spec.key()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["loader"]["cold_start_items"] == TINY_PRESET["cold_start_items"]
    summary = common.data_summary(common.load_data(spec, workdir), spec)
    assert summary["items"] <= TINY_PRESET["items"]
    assert summary["r_dataset"] == pytest.approx(summary["interactions"] / summary["items"])


def test_speed_worker_counts_and_times(speed_results):
    e2e, single, epoch = speed_results
    assert not e2e["full_epoch"] and "extrapolated from 1 steps" in e2e["measurement"]
    assert epoch["full_epoch"] and epoch["measured_steps"] == epoch["steps_per_epoch"]
    for result in speed_results:
        assert result["epoch_seconds"] > 0 and result["memory"]["peak_rss_during_train_bytes"] > 0
        assert speed.accounting(result)["ok"] is True
    measured = e2e["counters_measured"]
    assert measured["encoder_items_backward"] == measured["occurrences"] > 0
    assert single["counters_measured"]["encoder_items_backward"] == single["counters_measured"]["unique_items"]
    assert epoch["phase_seconds_measured"]["encoder_fit"] > 0


def test_speed_reports(speed_results, tmp_path):
    results = [dict(r) for r in speed_results]
    speed.derive(results)
    assert results[0]["speedup_vs_e2e"] == pytest.approx(1.0)
    assert results[1]["counted_ideal_speedup_items"] == pytest.approx(results[1]["r_batch"])
    payload = {"data_description": "tiny", "data_summary": {"interactions": 10, "items": 2, "r_dataset": 5.0,
               "train_interactions": 8}, "config": {"encoder": "tiny-random", "batch_size": 4, "encoder_batch_size": 8,
               "item_max_length": 16, "bf16": False}, "environment": common.environment_info("cpu"),
               "results": results}  # fmt: skip
    markdown = speed.render_markdown(payload)
    assert "| GRAM 1E |" in markdown and "extrapolated" in markdown
    speed.render_chart(payload, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 0
    assert common.device_tag("cpu").startswith("cpu-")


def test_quality_worker_reports_best_epoch(spec, workdir):
    result = common.run_quality_worker(config(spec, workdir, "gram-1e", max_epochs=1, patience=1))
    assert result["epochs_run"] == 1
    assert 0.0 <= result["test_at_best"]["auc"] <= 1.0 or math.isnan(result["test_at_best"]["auc"])
    assert result["curve"][0]["train_seconds"] > 0
