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
    payload = tiny_payload(results)
    markdown = speed.render_markdown(payload)
    assert "| GRAM 1E |" in markdown and "extrapolated" in markdown
    speed.render_chart(payload, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 0
    assert common.device_tag("cpu").startswith("cpu-")


def test_e2e_accumulation_options():
    def sweep(*argv):
        args = speed.parse_args(["--modes", "e2e", *argv])
        return args.e2e_accumulation_sweep, args.e2e_sweep_skipped, args.e2e_accumulation

    assert sweep() == ([1, 2, 4, 8], [], 1)  # the default: E2E's best is searched
    assert sweep("--batch-size", "12") == ([1, 2, 4], [8], 1)  # default values that do not divide are skipped
    assert sweep("--e2e-accumulation-sweep", "4", "2", "4") == ([2, 4], [], 2)
    assert sweep("--e2e-accumulation", "2") == ([2], [], 2)
    assert sweep("--no-e2e-sweep") == ([1], [], 1)
    with pytest.raises(SystemExit):  # an explicit value that does not divide the batch is an error, not dropped
        speed.parse_args(["--batch-size", "12", "--e2e-accumulation-sweep", "1", "8"])
    assert speed.parse_args([]).e2e_sweep_extend
    for argv in (["--e2e-accumulation-sweep", "1", "2"], ["--e2e-accumulation", "2"], ["--no-e2e-sweep"]):
        assert not speed.parse_args(argv).e2e_sweep_extend

    # The default sweep goes on past its list while the smallest micro-batch is the fastest, to micro-batch 1.
    def runs(*seconds):
        return [
            {"mode": "e2e", "gradient_accumulation_steps": 2**i, "epoch_seconds": t} for i, t in enumerate(seconds)
        ]

    assert speed.next_e2e_accumulation(runs(9, 8, 7, 6), 32) == 16
    assert speed.next_e2e_accumulation(runs(9, 8, 7, 6, 5), 32) == 32
    assert speed.next_e2e_accumulation(runs(9, 8, 7, 6, 5, 4), 32) is None  # micro-batch 1
    assert speed.next_e2e_accumulation(runs(9, 8, 5, 6), 32) is None  # micro-batch 8 beat micro-batch 4
    assert speed.next_e2e_accumulation(runs(9, 8, 7), 12) == 6  # the next divisor, not the double
    assert speed.next_e2e_accumulation(runs(9), 32) is None  # nothing searched


def test_derive_splits_speedup_into_e2e_memory_and_method(speed_results):
    # E2E at 2 micro-batches made 2.5x faster than with the whole batch: GRAM's speed-up vs E2E best must be 2.5x
    # smaller, whatever order the rows come in, and the markdown must say where the factor comes from.
    e2e, single, epoch = (dict(r) for r in speed_results)
    memory = {k: v // 3 for k, v in e2e["memory"].items()}
    split = {**e2e, "gradient_accumulation_steps": 2, "micro_batch_size": 2,
             "epoch_seconds": e2e["epoch_seconds"] / 2.5, "memory": memory}  # fmt: skip
    results = [epoch, split, single, e2e]
    sweep = speed.derive(results, batch_size=4)
    assert sweep["searched"] and sweep["best_accumulation"] == 2 and sweep["accumulations"] == [1, 2]
    assert sweep["best_speedup_vs_reference"] == pytest.approx(2.5) and sweep["best_at_sweep_edge"]
    assert e2e["e2e_reference"] and split["e2e_best"] and not e2e["e2e_best"]
    assert (e2e["label"], split["label"]) == ("E2E, micro-batch 4", "E2E, micro-batch 2 (2 accumulated)")
    for result in results:
        assert result["speedup_vs_e2e"] / result["speedup_vs_e2e_best"] == pytest.approx(2.5)
    assert split["speedup_vs_e2e_best"] == pytest.approx(1.0) and e2e["speedup_vs_e2e"] == pytest.approx(1.0)
    assert epoch["memory_ratio_vs_e2e_best"]["peak_rss"] > epoch["memory_ratio_vs_e2e"]["peak_rss"]
    payload = tiny_payload(results, e2e_sweep=sweep)
    markdown = speed.render_markdown(payload)
    assert "| Speed-up vs E2E (micro-batch 4) | vs E2E best (micro-batch 2) |" in markdown
    assert "| E2E, micro-batch 2 (2 accumulated) **best** |" in markdown
    assert f"= 2.50x (E2E's memory) x {epoch['speedup_vs_e2e_best']:.1f}x over E2E best" in markdown
    assert "a smaller one might be faster still" in markdown

    # The whole batch fastest: no memory factor to take out.
    split["epoch_seconds"] = e2e["epoch_seconds"] * 2
    speed.derive(results, batch_size=4)
    assert e2e["e2e_best"] and epoch["speedup_vs_e2e_best"] == pytest.approx(epoch["speedup_vs_e2e"])
    assert "owe nothing to E2E's memory" in speed.render_markdown(tiny_payload(results))


def tiny_payload(results, **extra):
    return {"data_description": "tiny", "data_summary": {"interactions": 10, "items": 2, "r_dataset": 5.0,
            "train_interactions": 8}, "config": {"encoder": "tiny-random", "batch_size": 4, "encoder_batch_size": 8,
            "item_max_length": 16, "bf16": False}, "environment": common.environment_info("cpu"),
            "results": results, **extra}  # fmt: skip


def test_speed_run_sweeps_e2e_accumulation(spec, workdir, tmp_path, monkeypatch):
    # The real `speed.py` run (options, sweep, JSON, markdown, chart) with E2E at micro-batch 4 and 2; the workers run
    # in this process to keep the test fast (the subprocess only isolates the memory high-water mark).
    calls = []

    def in_process(kind, config, log_dir=None, log_name=None):
        calls.append((config["mode"], config["gradient_accumulation_steps"], log_name))
        return common.WORKERS[kind](config)

    monkeypatch.setattr(common, "run_in_subprocess", in_process)
    args = speed.parse_args(["--encoder", "tiny-random", "--modes", "e2e", "gram-1e", "--batch-size", "4",
                             "--encoder-batch-size", "8", "--e2e-accumulation-sweep", "1", "2", "--warmup-steps", "1",
                             "--measure-steps", "1", "--threads", "1", "--item-max-length", "16",
                             "--max-seq-len", "20", "--workdir", str(workdir), "--output-dir", str(tmp_path),
                             "--name", "tiny"])  # fmt: skip
    speed.run(args, spec=spec)
    assert calls == [("e2e", 1, "e2e"), ("e2e", 2, "e2e-acc2"), ("gram-1e", 1, "gram-1e")]
    payload = json.loads((tmp_path / "speed_tiny.json").read_text())
    e2e = [r for r in payload["results"] if r["mode"] == "e2e"]
    assert [(r["gradient_accumulation_steps"], r["micro_batch_size"]) for r in e2e] == [(1, 4), (2, 2)]
    # Same effective batch, same encoder work: the two E2E configurations encode the same items and tokens (unique
    # items differ: they are counted per forward, i.e. per micro-batch).
    work = ("occurrences", "encoder_items_backward", "encoder_tokens_backward", "encoder_items_forward")
    assert [{k: r["counters_measured"][k] for k in work} for r in e2e] == [{k: e2e[0]["counters_measured"][k]
                                                                              for k in work}] * 2  # fmt: skip
    # Each micro-batch's forward pads to its own longest item, never beyond the whole batch's.
    padded = [r["encoder_grad_forward_padded_tokens_measured"] for r in e2e]
    assert e2e[0]["counters_measured"]["encoder_tokens_backward"] <= padded[1] <= padded[0]
    assert e2e[1]["encoder_padding_ratio"] == pytest.approx(padded[1] / e2e[1]["counters_measured"][work[2]])
    fastest = min(e2e, key=lambda r: r["epoch_seconds"])
    assert payload["e2e_best_accumulation"] == fastest["gradient_accumulation_steps"]
    assert payload["e2e_sweep"]["searched"] and len(payload["e2e_sweep"]["configs"]) == 2
    assert [c["best"] for c in payload["e2e_sweep"]["configs"]] == [r is fastest for r in e2e]
    gram = payload["results"][-1]
    assert gram["speedup_vs_e2e"] == pytest.approx(e2e[0]["epoch_seconds"] / gram["epoch_seconds"])
    assert gram["speedup_vs_e2e_best"] == pytest.approx(fastest["epoch_seconds"] / gram["epoch_seconds"])
    markdown = (tmp_path / "speed_tiny.md").read_text()
    header = f"| Speed-up vs E2E (micro-batch 4) | vs E2E best (micro-batch {fastest['micro_batch_size']}) |"
    assert header in markdown
    gram_row = next(line for line in markdown.splitlines() if line.startswith("| GRAM 1E |"))
    assert f"| {gram['speedup_vs_e2e']:.1f}x | {gram['speedup_vs_e2e_best']:.1f}x |" in gram_row
    assert "| E2E, micro-batch 2 (2 accumulated)" in markdown and (tmp_path / "speed_tiny.png").stat().st_size > 0

    # PERFORMANCE.md shows the new column and judges the targets against E2E best.
    lines = common.target_lines(tmp_path)
    assert any(line.startswith(f"E2E best (micro-batch {fastest['micro_batch_size']}) is ") for line in lines)
    performance = common.write_performance([tmp_path], tmp_path / "PERFORMANCE.md").read_text()
    assert header in performance and "was not searched" not in performance


def test_results_without_the_sweep_still_render(tmp_path):
    # Results written before the sweep (one E2E row, no `e2e_sweep`): they render and say the best was not searched.
    committed = common.RESULTS_DIR / "cpu-amd-epyc"
    payload = json.loads((committed / "speed_duolingo_en_es_tinybert-shape_s0.1.json").read_text())
    assert "e2e_sweep" not in payload
    markdown = speed.render_markdown(payload)
    assert "| Speed-up vs E2E (micro-batch 32) | Counted ideal |" in markdown and "vs E2E best" not in markdown
    assert "E2E's fastest micro-batch was not searched: E2E ran at micro-batch 32 only" in markdown
    assert any("not searched" in line for line in common.target_lines(committed))
    performance = common.write_performance([committed], tmp_path / "PERFORMANCE.md").read_text()
    assert "*E2E's fastest micro-batch was not searched for this result" in performance


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
