"""`benchmarks/next_item_study.py` on tiny shapes (seconds; the runs in this process): the JSON and markdown structure,
CE reported as not fitting under a memory cap, the verdicts, and `--update`. RecBole never runs here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import next_item_study  # noqa: E402

TINY = ["--datasets", "ml-20m", "beauty", "--scale", "ml-20m=0.0003", "beauty=0.004", "--items", "ml-20m=40",
        "beauty=30", "--max-epochs", "1", "--patience", "1", "--batch-size", "16", "--max-length", "8",
        "--num-negatives", "8", "--threads", "1", "--losses", "ce", "ce_sampled", "cce", "cce_sampled"]  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study on two tiny shapes with a memory cap below CE's logits, each run in this process."""
    root = tmp_path_factory.mktemp("study")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(next_item_study, "run_in_subprocess", lambda config, log: next_item_study.run_worker(config))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(root / "hf-datasets"))
    try:
        payload = next_item_study.main([*TINY, "--memory-cap-gib", "1e-6", "--workdir", str(root / "work"),
                                        "--output-dir", str(root / "out")])  # fmt: skip
    finally:
        monkeypatch.undo()
    return root, payload


def test_json_structure_and_runs(study):
    root, payload = study
    written = json.loads((root / "out" / "next_item_study.json").read_text())
    assert [shape["name"] for shape in written["datasets"]] == ["ml-20m", "beauty"]
    assert (root / "out" / "next_item_study.png").stat().st_size > 0
    for shape in written["datasets"]:
        data = shape["data"]
        assert data["users"] > 0 and 0 < data["items"] <= shape["raw_items"] and data["interactions"] > 0
        assert shape["pilots"] and shape["settings"]["max_epochs"] == 1
        runs = {run["loss"]: run for run in shape["runs"]}
        assert set(runs) == {"ce", "ce_sampled", "cce", "cce_sampled"}
        for loss in ("ce_sampled", "cce", "cce_sampled"):
            run = runs[loss]
            assert run["status"] == "ok", run["status"]
            assert run["epochs"] == 1 and len(run["epoch_seconds"]) == 1 and run["time_per_epoch_seconds"] > 0
            assert run["peak_bytes"] >= 0 and run["peak_rss_bytes"] > 0
            assert set(run["metrics"]) == {"ndcg@10", "hr@10", "coverage@10", "surprisal@10"}
            assert 0 <= run["metrics"]["ndcg@10"] <= run["metrics"]["hr@10"] <= 1
            assert "--item_encoder" in run["argv"] and run["argv"][run["argv"].index("--loss_type") + 1] == loss
        assert "time_cce_over_cce_sampled" in shape["ratios"]
        assert shape["recbole"] is None


def test_ce_that_does_not_fit_is_reported_with_its_size(study):
    root, payload = study
    for shape in payload["datasets"]:
        [ce] = [run for run in shape["runs"] if run["loss"] == "ce"]
        expected = next_item_study.ce_logits_bytes(16, shape["data"]["sequence_length"], shape["data"]["items"])
        assert ce["status"] == "does not fit" and ce["needs_bytes"] == expected == shape["ce_logits_bytes"]
        assert "memory_ce_need_over_cce" in shape["ratios"]
    markdown = (root / "out" / "next_item_study.md").read_text()
    assert markdown.count("does not fit in 1e-06 GiB (logits need ~") == 2 and " MiB)" in markdown
    for heading in ("## ML-20M-shaped", "## Beauty-shaped", "## Verdicts"):
        assert heading in markdown
    assert "| loss | peak memory | time / epoch | epochs | NDCG@10 | HR@10 | Coverage@10 | Surprisal@10 |" in markdown
    assert "capped at 1" in markdown


def test_verdicts(study):
    _, payload = study
    verdicts = payload["verdicts"]
    assert verdicts[0].startswith("CCE vs CE at >= 100k items: not checked here")
    assert any("CCE's time per epoch is" in line and "CCE-'s" in line for line in verdicts)
    assert any("CCE-'s NDCG@10" in line for line in verdicts)
    assert all(line.endswith(".") for line in verdicts)


def test_large_catalog_verdicts_from_measurements():
    def run(loss, peak, seconds, ndcg, seed=0):
        return {"loss": loss, "item_encoder": "id", "seed": seed, "status": "ok", "peak_bytes": peak,
                "time_per_epoch_seconds": seconds, "epochs": 3,
                "metrics": {"ndcg@10": ndcg, "hr@10": 0.2, "coverage@10": 0.5, "surprisal@10": 9.0}}  # fmt: skip

    shape = {"name": "gowalla", "label": "Gowalla-shaped", "data": {"items": 200_000}, "ce_logits_bytes": 9 * 2**30,
             "settings": {"memory_cap_gib": 8.0},
             "runs": [run("ce", 20e9, 10.0, 0.100), run("ce", 20e9, 10.0, 0.104, seed=1), run("cce", 1e9, 10.5, 0.101),
                      run("cce", 1e9, 10.5, 0.099, seed=1), run("cce_sampled", 1e9, 5.0, 0.097)],
             "recbole": {"status": "ok", "test_ndcg@10": 0.090, "same_data": True}}  # fmt: skip
    lines = next_item_study.verdicts({"datasets": [shape]})
    assert lines[0].startswith("CCE vs CE at Gowalla-shaped (200,000 items): 20.0x less peak memory")
    assert lines[0].endswith(": met.")
    assert "CCE's time per epoch is 2.10x CCE-'s" in lines[1] and lines[1].endswith("met.")
    assert "run-to-run noise" in lines[2] and lines[2].endswith("met.")
    assert "-3.0% from CCE's" in lines[3] and lines[3].endswith("met.")
    assert "RecBole's SASRec 0.0900 (same users, items and split" in lines[4] and lines[4].endswith("met.")
    # CE not run: its logits' size against CCE's peak.
    shape["runs"] = [r for r in shape["runs"] if r["loss"] != "ce"] + [{"loss": "ce", "item_encoder": "id",
                                                                         "status": "does not fit"}]  # fmt: skip
    [line] = [v for v in next_item_study.verdicts({"datasets": [shape]}) if v.startswith("CCE vs CE")]
    assert "CE does not fit in 8 GiB" in line and "9.7x CCE's peak" in line and "missed" in line


def test_update_keeps_other_shapes(study, monkeypatch):
    root, _ = study
    monkeypatch.setattr(next_item_study, "run_in_subprocess", lambda config, log: next_item_study.run_worker(config))
    argv = [*TINY, "--datasets", "beauty", "--losses", "cce_sampled", "--update", "--workdir", str(root / "work"),
            "--output-dir", str(root / "out")]  # fmt: skip
    payload = next_item_study.main(argv)
    names = [shape["name"] for shape in payload["datasets"]]
    assert names == ["ml-20m", "beauty"]
    [beauty] = [shape for shape in payload["datasets"] if shape["name"] == "beauty"]
    assert [run["loss"] for run in beauty["runs"]] == ["cce_sampled"]


def test_per_dataset_values_and_skew_calibration():
    values = next_item_study.per_dataset(["0.1", "beauty=2"], ["ml-20m", "beauty"], float, {"ml-20m": 1, "beauty": 1})
    assert values == {"ml-20m": 0.1, "beauty": 2.0}
    skew, kept = next_item_study.calibrate_skew(interactions=1e7, items=1000)
    assert skew == next_item_study.REALISTIC_SKEW and kept > 0.98
    skew, kept = next_item_study.calibrate_skew(interactions=20 * 1000, items=1000)
    assert 0 <= skew < next_item_study.REALISTIC_SKEW and kept >= 0.98
    assert next_item_study.calibrate_skew(interactions=1000, items=1000)[0] == 0.0
