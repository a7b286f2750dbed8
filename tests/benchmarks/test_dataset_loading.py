"""Smoke test of `benchmarks/dataset_loading.py` at tiny scale: every loader, its plain read, the JSON and markdown."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import dataset_loading  # noqa: E402

# Scales that write a few thousand rows per loader (MIND's and the next-item generators' minimum sizes apply).
TINY_SCALES = {
    "duolingo": 0.01,
    "ednet": 0.0001,
    "poj": 0.002,
    "kt_csv": 0.0001,
    "mind": 0.0005,
    "movielens": 0.001,
    "amazon": 0.01,
}


def test_every_loader_has_a_tiny_scale():
    assert set(TINY_SCALES) == set(dataset_loading.LOADERS) == set(dataset_loading.PLAIN_READS)


@pytest.mark.parametrize("name", list(TINY_SCALES))
def test_plain_read_reads_what_the_loader_reads(name, tmp_path):
    folder = tmp_path / name
    meta = dataset_loading.run_worker({"dataset": name, "task": "generate", "folder": str(folder),
                                       "scale": TINY_SCALES[name], "seed": 0})  # fmt: skip
    paths = dataset_loading.input_files(name, meta)
    assert paths and all(Path(path).is_file() for path in paths)
    base = {"dataset": name, "meta": meta, "cache_dir": str(folder / "cache")}
    plain = dataset_loading.run_worker({**base, "task": "plain"})
    first = dataset_loading.run_worker({**base, "task": "load"})
    cached = dataset_loading.run_worker({**base, "task": "load"})
    for run in (plain, first, cached):
        assert run["seconds"] > 0 and run["peak_rss_bytes"] >= run["rss_before_bytes"] > 0
        assert run["rss_added_bytes"] >= 0
    rows, loaded = plain["output"], first["output"]
    assert cached["output"] == loaded and loaded["items"] > 0 and all(loaded["splits"].values())
    # The plain read and the loader read the same raw rows (interactions, impressions, ratings or reviews).
    raw_rows = {"mind": "impressions", "movielens": "ratings", "amazon": "reviews"}.get(name, "interactions")
    if "rows_read" in loaded:
        assert loaded["rows_read"] == rows[raw_rows] > 0
    else:  # knowledge tracing before gram-hf counted the rows read: those in the splits are a lower bound
        assert 0 < loaded["rows_read_at_least"] <= rows[raw_rows]
    if name in dataset_loading.KT_PRESETS:
        assert rows["interactions"] == meta["generated"]["interactions"]
    assert rows.get("news", rows.get("metadata_records_parsed", loaded["items"])) >= loaded["items"]


def test_peak_rss_measures_from_the_reset():
    np = pytest.importorskip("numpy")
    if not dataset_loading.reset_peak_rss():
        pytest.skip("no /proc/self/clear_refs (not Linux)")
    before = dataset_loading._rss()
    block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
    del block
    peak, exact = dataset_loading.peak_rss_since_reset()
    assert exact and peak - before >= 150 * 2**20
    assert dataset_loading.reset_peak_rss()
    assert dataset_loading.peak_rss_since_reset()[0] - before < 100 * 2**20


def test_arguments():
    args = dataset_loading.parse_args(["--dataset", "ednet", "--scale", "0.01"])
    assert args.datasets == ["ednet"] and args.scale_of == {"ednet": 0.01}
    args = dataset_loading.parse_args(["--all", "--scales", "mind=0.02"])
    assert args.datasets == list(dataset_loading.LOADERS) and args.scale_of["mind"] == 0.02
    assert args.scale_of["poj"] == dataset_loading.LOADERS["poj"].default_scale
    assert dataset_loading.parse_args([]).datasets == ["duolingo"]  # the old default
    for argv in (["--dataset", "poj", "mind", "--scale", "1"], ["--scales", "nope=1"], ["--all", "--dataset", "poj"],
                 ["--dataset", "mind", "--preset", "toeic"]):  # fmt: skip
        with pytest.raises(SystemExit):
            dataset_loading.parse_args(argv)


def test_main_writes_results(tmp_path, monkeypatch):
    # The workers run in this process to keep the test fast (the subprocess only isolates the memory high-water
    # mark); the JSON round trip is kept, as the parent only ever sees a worker's JSON.
    def in_process(config, log_path):
        return json.loads(json.dumps(dataset_loading.run_worker(json.loads(json.dumps(config)))))

    monkeypatch.setattr(dataset_loading, "run_in_subprocess", in_process)
    out = tmp_path / "results"
    payload = dataset_loading.main(["--dataset", "kt_csv", "poj", "--scales", "kt_csv=0.0002", "poj=0.004",
                                    "--growth-fraction", "0.5", "--profile", "--target", "0", "--profile-top", "5",
                                    "--workdir", str(tmp_path / "work"), "--output-dir", str(out)])  # fmt: skip
    written = json.loads((out / "dataset_loading.json").read_text())
    assert written["config"]["scales"] == {"kt_csv": 0.0002, "poj": 0.004} and written["environment"]["command"]
    assert (
        [r["dataset"] for r in written["results"]] == ["kt_csv", "poj"] == [r["dataset"] for r in payload["results"]]
    )
    for result in written["results"]:
        assert result["input"]["bytes"] > 0 and result["input"]["files"] == 2
        for run in ("first_load", "cached_load", "plain_read"):
            assert result[run]["seconds"] > 0 and result[run]["peak_rss_bytes"] > 0
        assert result["ratio_first_to_plain"] == pytest.approx(
            result["first_load"]["seconds"] / result["plain_read"]["seconds"]
        )
        assert result["rss_ratio_added"] > 0 and result["plain_read"]["method"]
        growth = result["growth"]
        assert (
            growth["scale"] == pytest.approx(result["scale"] / 2) and growth["input_bytes"] < result["input"]["bytes"]
        )
        assert "first_load_time_slope" in growth and "first_load_rss_slope" in growth
        assert 0 < len(result["profile"]) <= 5 and result["profile"][0]["own_seconds"] >= 0
    markdown = (out / "dataset_loading.md").read_text()
    assert "| `load_kt_csv` | 0.0002 |" in markdown and "| `load_poj` | 0.004 |" in markdown
    assert "Growth with the input" in markdown and "Where the time goes" in markdown
    # Raw files are generated once per loader, scale and seed, and reused.
    assert sorted(p.name for p in (tmp_path / "work").iterdir() if p.name != "logs") == [
        "kt_csv-s0.0001-seed0", "kt_csv-s0.0002-seed0", "poj-s0.002-seed0", "poj-s0.004-seed0"]  # fmt: skip


def test_update_measures_some_loaders_and_keeps_the_others(tmp_path, monkeypatch):
    def in_process(config, log_path):
        return json.loads(json.dumps(dataset_loading.run_worker(json.loads(json.dumps(config)))))

    monkeypatch.setattr(dataset_loading, "run_in_subprocess", in_process)
    out = tmp_path / "results"
    common = ["--growth-fraction", "0", "--no-cached", "--workdir", str(tmp_path / "work"), "--output-dir", str(out)]
    earlier = dataset_loading.main(["--dataset", "poj", "kt_csv", "--scales", "poj=0.002", "kt_csv=0.0002", *common])
    with pytest.raises(SystemExit):
        dataset_loading.parse_args(["--update"])  # which loaders?
    payload = dataset_loading.main(["--dataset", "kt_csv", "--scale", "0.0001", "--update", *common])
    written = json.loads((out / "dataset_loading.json").read_text())
    assert [r["dataset"] for r in written["results"]] == ["poj", "kt_csv"]  # the loaders' order
    kept, measured = written["results"]
    assert kept["first_load"] == earlier["results"][0]["first_load"] and "run" not in measured
    assert kept["run"]["command"] == earlier["environment"]["command"] and kept["run"]["date_utc"]
    assert measured["scale"] == 0.0001 == payload["results"][1]["scale"]
    assert written["config"]["scales"] == {"poj": 0.002, "kt_csv": 0.0001}
    assert written["config"]["updated"] == ["kt_csv"]
    markdown = (out / "dataset_loading.md").read_text()
    assert "| `load_poj` | 0.002 |" in markdown and "| `load_kt_csv` | 0.0001 |" in markdown
    assert "Kept from an earlier run" in markdown and "`load_poj`; the others were measured again" in markdown
