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


def test_history_only_cold_start_reference():
    import datasets
    import quality

    from gram_hf.data import InteractionData

    # Item 1 is cold. Learner a (all right) answers it at position 2 with score (2+1)/(2+2) = 0.75 and gets it
    # right; learner b (all wrong) at position 1 with score (0+1)/(1+2) = 1/3 and gets it wrong; learner c at
    # position 0 with the prior 0.5, right. Ranking by past accuracy: positives {0.75, 0.5} vs negative {1/3} -> 1.0.
    test = datasets.Dataset.from_dict({
        "items": [[0, 2, 1], [0, 1], [1, 0]],
        "responses": [[1, 1, 1], [0, 0], [1, 0]],
    })  # fmt: skip
    items = datasets.Dataset.from_dict({"item_id": ["a", "b", "c"], "text": ["x", "y", "z"],
                                        "cold_start": [False, True, False]})  # fmt: skip
    data = InteractionData(splits=datasets.DatasetDict({"test": test}), items=items, stats={})
    assert quality.history_only_cold_start_auc(data) == pytest.approx(1.0)
    # The strong learner now gets the cold item wrong: positive {0.5} vs negatives {0.75, 1/3}, one pair of two right.
    responses = [[1, 1, 0], [0, 0], [1, 0]]
    data.splits["test"] = datasets.Dataset.from_dict({"items": test["items"], "responses": responses})
    assert quality.history_only_cold_start_auc(data) == pytest.approx(0.5)

    verdict = quality.verdicts("kt", [{"mode": "e2e", "test_at_best": {"auc": 0.8}},
                                      {"mode": "nocontent", "test_at_best": {"auc": 0.7, "cold_start_auc": 0.6}}],
                               {"history_only_cold_start_auc": 0.61})  # fmt: skip
    assert any("NoContent cold-start AUC = 0.6000" in line and "-0.0100" in line and "(at that level)" in line
               for line in verdict)  # fmt: skip
