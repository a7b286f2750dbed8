"""`benchmarks/interval_front.py`: the interval study's points, front and verdicts from `quality.py` results with the
`gram-auto` mode, at tiny sizes (no quality asserts)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import common  # noqa: E402
import interval_front  # noqa: E402
import quality  # noqa: E402

TINY = ["--task", "kt", "--encoder", "tiny-random", "--max-epochs", "1", "--patience", "1", "--threads", "1",
        "--batch-size", "8", "--item-encoders", "content", "--noise-seeds", "--kt-users", "12", "--kt-items", "30",
        "--kt-interactions", "500", "--kt-cold-start", "4"]  # fmt: skip


@pytest.fixture(scope="module")
def quality_runs(tmp_path_factory):
    """A fixed-interval run and a gram-auto run of the same data, workers in this process."""
    root = tmp_path_factory.mktemp("interval")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(common, "run_in_subprocess", lambda kind, config, **_: common.WORKERS[kind](config))
    try:
        quality.main([*TINY, "--modes", "gram-1s", "gram-3s", "gram-1e", "--workdir", str(root / "work"),
                      "--output-dir", str(root / "fixed")])  # fmt: skip
        quality.main([*TINY, "--modes", "gram-auto", "--gram-auto-drift", "0.001", "--workdir", str(root / "work"),
                      "--output-dir", str(root / "auto")])  # fmt: skip
    finally:
        monkeypatch.undo()
    return root


def test_quality_records_the_auto_windows_and_the_drift_it_saw(quality_runs):
    payload = json.loads((quality_runs / "auto" / "quality_kt.json").read_text())
    [result] = payload["results"]
    assert result["mode"] == "gram-auto" and payload["config"]["gram_auto_drift"] == 0.001
    trace = result["drift_trace"]
    assert trace and [row[0] for row in trace] == list(range(1, len(trace) + 1))
    ends = [row[0] for row in trace if row[2]]
    assert result["windows"]["windows"] == len(ends) and ends[-1] == len(trace)
    # Every decision the drift forced ended a window; the last step always does. Systematic <= total drift.
    assert all(ended for _, drift, ended, _, _ in trace if drift >= 0.001)
    assert all(systematic <= total + 1e-12 for _, systematic, _, total, _ in trace)


def test_front_points_and_verdicts(quality_runs, tmp_path):
    sources = [quality_runs / "fixed" / "quality_kt.json", quality_runs / "auto" / "quality_kt.json"]
    interval_front.main([*map(str, sources), "--name", "interval_kt", "--output-dir", str(tmp_path)])
    payload = json.loads((tmp_path / "interval_kt.json").read_text())
    modes = [p["mode"] for p in payload["points"]]
    assert sorted(modes) == ["gram-1e", "gram-1s", "gram-3s", "gram-auto"] and modes[-1] == "gram-auto"
    by_mode = {p["mode"]: p for p in payload["points"]}
    # Encoder work per epoch from the counters: a one-epoch window fits each touched item once.
    assert by_mode["gram-1e"]["backward_items_per_epoch"] <= by_mode["gram-1s"]["backward_items_per_epoch"]
    assert by_mode["gram-1s"]["mean_window_steps"] == 1.0 and by_mode["gram-1e"]["windows_per_epoch"] == 1.0
    front = payload["front"]
    assert front and all(p["mode"] in common.FIXED_INTERVAL_MODES for p in front)
    [verdict] = payload["verdicts"]
    assert {"above_front", "auc_gap_to_1s", "cold_gap_to_1s", "work_vs_1e"} <= set(verdict)
    markdown = (tmp_path / "interval_kt.md").read_text()
    assert "GRAM auto (drift 0.001)" in markdown and "above the fixed front" in markdown
    assert (tmp_path / "interval_kt.png").stat().st_size > 0


def test_front_is_the_undominated_fixed_intervals():
    def p(mode, work, auc):
        return {"mode": mode, "backward_items_per_epoch": work, "auc": auc}

    points = [p("gram-1s", 800, 80.0), p("gram-10s", 160, 79.0), p("gram-0.5e", 230, 78.5), p("gram-1e", 120, 79.2),
              p("gram-auto", 150, 79.5)]  # fmt: skip
    assert [q["mode"] for q in interval_front.fixed_front(points)] == ["gram-1e", "gram-1s"]
    assert interval_front.beats_front(points[-1], points)  # nothing fixed has both <= 150 work and >= 79.5 AUC
    assert not interval_front.beats_front(p("gram-auto", 200, 79.1), points)  # 1E: less work, higher AUC
