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
            assert set(run["metrics"]) == {"ndcg@10", "hr@10", "coverage@10", "surprisal@10", "cold_users",
                                           "warm_ndcg@10", "warm_hr@10"}  # fmt: skip
            # No new releases by default: no cold-start test user, warm = all.
            assert run["metrics"]["cold_users"] == 0 and run["metrics"]["warm_ndcg@10"] == run["metrics"]["ndcg@10"]
            assert 0 <= run["metrics"]["ndcg@10"] <= run["metrics"]["hr@10"] <= 1
            assert "--item_encoder" in run["argv"] and run["argv"][run["argv"].index("--loss_type") + 1] == loss
        assert "time_cce_over_cce_sampled" in shape["ratios"]
        assert shape["recbole"] is None
        assert shape["new_item_fraction"] == 0 and shape["data"]["cold_start_items"] == 0
        assert 0 <= shape["popularity"]["ndcg@10"] <= shape["popularity"]["hr@10"] <= 1
    assert not (root / "out" / "next_item_study.partial.json").exists()  # only while the study runs
    assert (root / "out" / "next_item_study.md").read_text().count("| Popularity (train counts, no training) |") == 2


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


def test_merge_puts_studies_run_side_by_side_into_one_table(study, tmp_path):
    root, _ = study
    whole = json.loads((root / "out" / "next_item_study.json").read_text())
    parts = []
    for losses in (("ce", "ce_sampled"), ("cce", "cce_sampled")):
        part = json.loads(json.dumps(whole))
        for shape in part["datasets"]:
            shape["runs"] = [run for run in shape["runs"] if run["loss"] in losses]
        part["environment"]["command"] = f"study of {' '.join(losses)}"
        for shape in part["datasets"]:
            shape["command"] = part["environment"]["command"]
        parts.append(tmp_path / f"{losses[0]}.json")
        parts[-1].write_text(json.dumps(part))
    payload = next_item_study.main(["--merge", *map(str, parts), "--output-dir", str(tmp_path / "out")])
    assert [[run["loss"] for run in shape["runs"]] for shape in payload["datasets"]] == [
        [run["loss"] for run in shape["runs"]] for shape in whole["datasets"]
    ]
    assert payload["verdicts"] == whole["verdicts"]
    assert payload["datasets"][0]["command"] == "study of ce ce_sampled + study of cce cce_sampled"
    markdown = (tmp_path / "out" / "next_item_study.md").read_text()
    assert "Measured by `study of ce ce_sampled + study of cce cce_sampled`" in markdown
    # Runs on other data, a run measured twice, or another new-release share do not share a table.
    with pytest.raises(ValueError, match="also in"):
        next_item_study.merge_studies([parts[0], parts[0]], "merge")
    other = json.loads(parts[1].read_text())
    other["datasets"][0]["data"]["items"] += 1
    parts[1].write_text(json.dumps(other))
    with pytest.raises(ValueError, match="data differ"):
        next_item_study.merge_studies(parts, "merge")
    other["datasets"][0]["data"]["items"] -= 1
    other["datasets"][0]["settings"]["program_args"] = "--new_item_share 0.1"
    parts[1].write_text(json.dumps(other))
    with pytest.raises(ValueError, match="new_item_share 0.1"):
        next_item_study.merge_studies(parts, "merge")


def test_time_per_epoch_counts_the_fit_of_windows_of_several_epochs():
    # Every third epoch carries the encoder's fit: the median would report an epoch without it.
    seconds = [60.0, 60.0, 600.0, 60.0, 60.0, 600.0]
    assert next_item_study.time_per_epoch(seconds, ["--gram_interval", "3epoch"]) == 240.0
    assert next_item_study.time_per_epoch(seconds, ["--gram_interval=3epoch"]) == 240.0
    assert next_item_study.time_per_epoch(seconds, ["--gram_interval", "3epoch", "--gram_interval", "1epoch"]) == 60.0
    assert next_item_study.time_per_epoch(seconds, ["--gram_interval", "100"]) == 60.0
    assert next_item_study.time_per_epoch(seconds, []) == 60.0
    assert next_item_study.time_per_epoch([], []) is None


def test_per_dataset_values_and_skew_calibration():
    values = next_item_study.per_dataset(["0.1", "beauty=2"], ["ml-20m", "beauty"], float, {"ml-20m": 1, "beauty": 1})
    assert values == {"ml-20m": 0.1, "beauty": 2.0}
    skew, kept = next_item_study.calibrate_skew(interactions=1e7, items=1000)
    assert skew == next_item_study.REALISTIC_SKEW and kept > 0.98
    skew, kept = next_item_study.calibrate_skew(interactions=20 * 1000, items=1000)
    assert 0 <= skew < next_item_study.REALISTIC_SKEW and kept >= 0.98
    assert next_item_study.calibrate_skew(interactions=1000, items=1000)[0] == 0.0


def test_new_items_are_cold_start_and_keyed_apart(tmp_path, monkeypatch):
    """`--new-item-fraction`: its own data folder (the key and manifest say it), new releases only as test targets
    (cold-start), and the popularity floor reports them apart; the default keeps the earlier folders' keys."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    args = next_item_study.parse_args(["--datasets", "beauty", "--new-item-fraction", "0.05", "--program-args",
                                       "--encoder_epochs 1 --item_max_length 16"])  # fmt: skip
    assert args.new_item_fraction == 0.05 and args.extra_program_args == ["--encoder_epochs", "1", "--item_max_length",
                                                                          "16"]  # fmt: skip
    shape = next_item_study.SHAPES["beauty"]
    old = next_item_study.plan(shape, 0.03, 200, 0.5, 0)
    new = next_item_study.plan(shape, 0.03, 200, 0.5, 0, new_item_fraction=0.05)
    assert old.key == "beauty-u671-i200-len5-13-skew0.5-seed0"  # as before the option
    assert new.key != old.key and "new0.05" in new.key
    manifest = next_item_study.generate(new, tmp_path)
    assert manifest["new_item_fraction"] == 0.05 and manifest["generated"]["new_items"] > 0
    assert next_item_study.generate(old, tmp_path)["generated"]["new_items"] == 0
    data = next_item_study.recbole_reference.load_with_gram_hf("amazon", manifest["files"], str(tmp_path / "cache"))
    stats = next_item_study.data_stats(data, 50)
    assert 0 < stats["cold_start_items"] <= manifest["generated"]["new_items"]
    cold = [bool(flag) for flag in data.items["cold_start"]]
    assert not any(cold[item] for items in data["train"]["items"] for item in items)
    popularity = next_item_study.popularity_metrics(data)
    assert popularity["cold_users"] > 0 and popularity["cold_hr@10"] == 0  # popularity never ranks an unseen item
    assert popularity["warm_hr@10"] > popularity["hr@10"]
    # The extra program options come last, so that they override the study's own.
    argv = next_item_study.program_argv(args, manifest["files"], "amazon", tmp_path, "cce", "content+id", 0, 1, "o")
    assert argv[-4:] == ["--encoder_epochs", "1", "--item_max_length", "16"]


def test_negative_sharing_reaches_the_sampled_runs_and_their_labels():
    files = {"data_dir": "d"}
    for sharing in ("sequence", "batch"):
        args = next_item_study.parse_args(["--datasets", "ml-20m", "--negative-sharing", sharing])
        for loss, shared in (("cce_sampled", True), ("ce_sampled", True), ("cce", False)):
            argv = next_item_study.program_argv(args, files, "movielens", Path("c"), loss, "id", 0, 1, "o")
            assert (
                (argv[argv.index("--negative_sharing") + 1] == sharing) if shared else "--negative_sharing" not in argv
            )
    plain = next_item_study.program_argv(next_item_study.parse_args([]), files, "movielens", Path("c"), "cce_sampled",
                                         "id", 0, 1, "o")  # fmt: skip
    assert "--negative_sharing" not in plain
    assert next_item_study._row_label("cce_sampled", "id", False, 256, "batch") == (
        "CCE- (`cce_sampled`, 256 negatives shared per batch)"
    )
    assert next_item_study._row_label("cce_sampled", "id", False, 256, "sequence") == (
        "CCE- (`cce_sampled`, 256 negatives shared per sequence)"
    )
    # Results written before --negative-sharing said `shared_negatives`.
    assert next_item_study.negative_sharing({"shared_negatives": True}) == "batch"
    assert next_item_study.negative_sharing({"negative_sharing": "sequence"}) == "sequence"


def test_warm_metrics_and_content_verdicts():
    # 10 users, 4 of them cold with NDCG 0.1: the 6 warm ones' mean follows.
    warm = next_item_study.with_warm_metrics({"ndcg@10": 0.4, "hr@10": 0.5, "cold_users": 4, "cold_ndcg@10": 0.1,
                                              "cold_hr@10": 0.25}, users=10)  # fmt: skip
    assert warm["warm_ndcg@10"] == pytest.approx((4.0 - 0.4) / 6) and warm["warm_hr@10"] == pytest.approx(4 / 6)

    def run(encoder, seconds, ndcg, warm_ndcg, cold_hr, work=None):
        metrics = {"ndcg@10": ndcg, "hr@10": 0.3, "coverage@10": 0.5, "surprisal@10": 9.0, "warm_ndcg@10": warm_ndcg,
                   "cold_ndcg@10": cold_hr / 2, "cold_hr@10": cold_hr, "cold_users": 500}  # fmt: skip
        return {"loss": "cce", "item_encoder": encoder, "seed": 0, "status": "ok", "peak_bytes": 1e9,
                "time_per_epoch_seconds": seconds, "epochs": 2, "metrics": metrics,
                "encoder_per_epoch": work}  # fmt: skip

    work = {"encoder_items_forward": 100_000, "encoder_items_backward": 300_000, "encoder_tokens_forward": 2e6,
            "encoder_tokens_backward": 6e6}  # fmt: skip
    shape = {"name": "ml-20m", "label": "ML-20M-shaped", "data": {"items": 100_000, "cold_start_items": 900},
             "popularity": {"ndcg@10": 0.05}, "new_item_fraction": 0.01,
             "runs": [run("id", 10.0, 0.10, 0.12, 0.0), run("content+id", 40.0, 0.09, 0.11, 0.08, work)]}  # fmt: skip
    [line] = next_item_study.content_verdicts(shape)
    assert line.startswith("Content-based next-item at ML-20M-shaped (100,000 items), content+id CCE: ")
    assert "-8.3%; target: within 10%): met" in line and "vs popularity's 0.0500 (target: above): met" in line
    assert "cold-start HR@10 0.0800 over 500 users, the ID model's 0.0000" in line
    assert "100,000 items no-grad + 300,000 forward+backward (8,000,000 tokens), 40.0 s per epoch (4.0x" in line
    assert line.endswith("Overall: met.")
    shape["runs"][1]["metrics"]["warm_ndcg@10"] = 0.10  # -16.7%
    assert next_item_study.content_verdicts(shape)[0].endswith("Overall: missed.")
    # With a new-release share the ID model's lists hold new releases too (random ones): content must beat that.
    shape["runs"][1]["metrics"]["warm_ndcg@10"] = 0.11
    shape["runs"][0]["metrics"]["cold_hr@10"] = 0.09
    assert next_item_study.content_verdicts(shape)[0].endswith("Overall: met.")  # no share: chance is the bar
    shape["settings"] = {"program_args": "--encoder_epochs 1 --new_item_share 0.3"}
    assert next_item_study.new_item_share(shape) == 0.3
    [line] = next_item_study.content_verdicts(shape)
    assert "the ID model's 0.0900 (target: well above 0, here >= 10x a random ranking's 0.00010 and above the" in line
    assert "at the same share 0.3" in line and line.endswith("Overall: missed.")
    shape["runs"][0]["metrics"]["cold_hr@10"] = 0.02
    assert next_item_study.content_verdicts(shape)[0].endswith("Overall: met.")
    assert next_item_study.new_item_share({"settings": {"program_args": "--new_item_share=0.05"}}) == 0.05


def test_chart_draws_the_content_model_beside_the_id_model(tmp_path, monkeypatch):
    # One loss with two item encoders: both get bars (the chart used to draw the ID model's only).
    from matplotlib.axes import Axes

    def run(encoder, seconds, ndcg):
        return {"loss": "cce_sampled", "item_encoder": encoder, "seed": 0, "status": "ok", "peak_bytes": 2**20,
                "time_per_epoch_seconds": seconds, "epochs": 2,
                "metrics": {"ndcg@10": ndcg, "hr@10": 0.3, "coverage@10": 0.5, "surprisal@10": 9.0}}  # fmt: skip

    shape = {"label": "ML-20M-shaped", "data": {"items": 100}, "ce_logits_bytes": 2**30,
             "runs": [run("id", 10.0, 0.17), run("content+id", 40.0, 0.16)]}  # fmt: skip
    payload = {"datasets": [shape], "config": {"losses": ["cce_sampled"], "encoders": ["id", "content+id"],
                                               "device": "cpu"}, "environment": {"cpu": "test"}}  # fmt: skip
    drawn = []
    bar = Axes.bar
    monkeypatch.setattr(Axes, "bar", lambda self, x, height, *a, **k: drawn.append((k["label"], list(height)))
                        or bar(self, x, height, *a, **k))  # fmt: skip
    next_item_study.render_chart(payload, tmp_path / "chart.png")
    ndcg = [(label, height) for label, height in drawn if height in ([0.17], [0.16])]
    assert ndcg == [("CCE-, id", [0.17]), ("CCE-, content+id", [0.16])]
    assert ("CCE-, content+id", [40.0]) in drawn and (tmp_path / "chart.png").stat().st_size > 0


def test_data_only_generates_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setattr(next_item_study, "run_in_subprocess", lambda config, log: pytest.fail("no run expected"))
    argv = [*TINY, "--datasets", "beauty", "--scale", "beauty=0.03", "--items", "beauty=200", "--new-item-fraction",
            "0.05", "--data-only", "--workdir", str(tmp_path / "work"),
            "--output-dir", str(tmp_path / "out")]  # fmt: skip
    payload = next_item_study.main(argv)
    [shape] = payload["datasets"]
    assert shape["runs"] == [] and shape["data"]["items"] > 0 and shape["popularity"]["cold_users"] > 0
    assert not (tmp_path / "out").exists()
    assert any("new0.05" in path.name for path in (tmp_path / "work" / "next_item_study").iterdir())
