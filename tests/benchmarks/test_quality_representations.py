"""Smoke and unit tests of `benchmarks/quality.py`'s representation axis (ID-only, content, hybrid), its no-training
floors, the warm / cold-start metrics and the verdicts, at tiny sizes (no quality asserts)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import common  # noqa: E402
import quality  # noqa: E402

from gram_hf.scripts.next_item import DEFAULTS as NEXT_ITEM_DEFAULTS  # noqa: E402

TINY = ["--encoder", "tiny-random", "--max-epochs", "1", "--patience", "1", "--threads", "1", "--batch-size", "8",
        "--modes", "gram-1e", "--kt-users", "12", "--kt-items", "30", "--kt-interactions", "500",
        "--kt-cold-start", "4", "--news-users", "30", "--news-items", "60", "--news-train-impressions", "40",
        "--news-dev-impressions", "20", "--next-item-users", "40", "--next-item-items", "40"]  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("quality")


@pytest.mark.parametrize("task", quality.TASKS)
def test_quality_run_writes_representation_rows_and_floor(task, workdir, tmp_path, monkeypatch):
    # The real run (options, data, floors, workers, JSON, markdown, chart) with the workers in this process.
    calls = []

    def in_process(kind, config, log_dir=None, log_name=None):
        calls.append((config["mode"], config["item_encoder"], config["seed"], config.get("encoder_update")))
        return common.WORKERS[kind](config)

    monkeypatch.setattr(common, "run_in_subprocess", in_process)
    argv = ["--task", task, *TINY, "--workdir", str(workdir), "--output-dir", str(tmp_path)]
    quality.main(argv)
    # ID once (NoContent), each content representation under the mode, then the reruns of ID and hybrid GRAM 1E.
    update = "per_batch" if task == "next_item" else "accumulate"
    assert calls == [("nocontent", "id", 0, None), ("gram-1e", "content", 0, update),
                     ("gram-1e", "content+id", 0, update), ("nocontent", "id", 1, None),
                     ("gram-1e", "content+id", 1, update)]  # fmt: skip
    payload = json.loads((tmp_path / f"quality_{task}.json").read_text())
    assert payload["data_spec"]["structure"] == "realistic"
    [floor] = payload["floors"]
    assert floor["name"] == "popularity" and quality.HEADLINE[task] in floor["test"]
    assert quality.WARM[task] in floor["test"] and quality.HEADLINE[task] in floor["validation"]
    labels = [r["label"] for r in payload["results"]]
    assert labels == ["ID (NoContent)", "Content GRAM 1E", "Hybrid GRAM 1E", "ID (NoContent) (seed 1)",
                      "Hybrid GRAM 1E (seed 1)"]  # fmt: skip
    for result in payload["results"]:
        assert result["metric"] == quality.HEADLINE[task] and result["epochs_run"] == 1
        assert {quality.HEADLINE[task], quality.WARM[task]} <= set(result["test_at_best"])
        assert result["loss_curve"] and all(math.isfinite(point["loss"]) for point in result["loss_curve"])
    assert any(line.startswith("Hybrid GRAM 1E - ID-only on warm items") for line in payload["verdicts"])
    assert any("vs the floor" in line for line in payload["verdicts"])
    markdown = (tmp_path / f"quality_{task}.md").read_text()
    assert f"| {quality.FLOOR_LABELS[task]}, no training |" in markdown and "| Hybrid GRAM 1E (seed 1) |" in markdown
    assert "capped at 1 epochs" in markdown and "synthetic structure `realistic`" in markdown
    assert (tmp_path / f"quality_{task}.png").stat().st_size > 0
    # --extend keeps those rows and trains only what the new options add (content-only GRAM 1E, seed 1).
    calls.clear()
    earlier = tmp_path / "earlier.json"
    earlier.write_text((tmp_path / f"quality_{task}.json").read_text())
    quality.main([*argv, "--extend", str(earlier), "--noise-item-encoders", "content", "content+id"])
    assert calls == [("gram-1e", "content", 1, update)]
    payload = json.loads((tmp_path / f"quality_{task}.json").read_text())
    assert [r["label"] for r in payload["results"]] == [*labels[:4], "Content GRAM 1E (seed 1)", labels[4]]
    assert payload["extended"]["rows_trained"] == ["Content GRAM 1E (seed 1)"]
    assert payload["extended"]["rows_kept"] == labels
    assert "Extended run (`--extend" in (tmp_path / f"quality_{task}.md").read_text()
    # Rows of other data do not mix with these.
    other = {"kt": "--kt-users", "news": "--news-users", "next_item": "--next-item-users"}[task]
    with pytest.raises(SystemExit, match="its data differ"):
        quality.main([*argv, other, "33", "--extend", str(earlier)])
    with pytest.raises(SystemExit, match="other options .*learning_rate=0.001, here 0.002"):
        quality.main([*argv, "--learning-rate", "0.002", "--extend", str(earlier)])
    # Results written before an option existed ranked at its default: a run with another value does not extend them.
    older = json.loads(earlier.read_text())
    del older["config"]["next_item_new_item_share"]
    earlier.write_text(json.dumps(older))
    with pytest.raises(SystemExit, match="next_item_new_item_share=0.0, here 0.2"):
        quality.main([*argv, "--next-item-new-item-share", "0.2", "--extend", str(earlier)])


def args(*argv):
    return quality.parse_args(list(argv))


def test_planned_runs():
    assert quality.planned_runs(args()) == [
        ("nocontent", "id", 0),
        ("e2e", "content", 0), ("gram-1s", "content", 0), ("gram-1e", "content", 0),
        ("e2e", "content+id", 0), ("gram-1s", "content+id", 0), ("gram-1e", "content+id", 0),
        ("nocontent", "id", 1), ("gram-1e", "content+id", 1),
    ]  # fmt: skip
    # The planted tables' mode axis: NoContent where --modes has it, no reruns.
    planted = args("--item-encoders", "content", "--noise-seeds", "--modes", "e2e", "nocontent", "gram-1e")
    assert quality.planned_runs(planted) == [("e2e", "content", 0), ("nocontent", "id", 0), ("gram-1e", "content", 0)]
    # A content-only mode table with noise seeds reruns every mode (the interval study's noise).
    intervals = args("--item-encoders", "content", "--noise-seeds", "1", "--modes", "gram-1s", "gram-auto")
    assert quality.planned_runs(intervals) == [("gram-1s", "content", 0), ("gram-auto", "content", 0),
                                               ("gram-1s", "content", 1), ("gram-auto", "content", 1)]  # fmt: skip
    assert quality.planned_runs(args("--item-encoders", "content+id", "--modes", "gram-1s", "--noise-seeds", "2", "3"))
    assert quality.planned_runs(args("--item-encoders", "id", "--noise-seeds")) == [("nocontent", "id", 0)]
    both = args("--item-encoders", "content", "content+id", "--modes", "gram-1e", "--noise-item-encoders", "content",
                "content+id")  # fmt: skip
    assert quality.planned_runs(both) == [("gram-1e", "content", 0), ("gram-1e", "content+id", 0),
                                          ("gram-1e", "content", 1), ("gram-1e", "content+id", 1)]  # fmt: skip
    # --noise-modes reruns the hybrid rows of those modes that run.
    e2e_noise = args("--item-encoders", "content+id", "--modes", "e2e", "gram-1e", "--noise-seeds", "2",
                     "--noise-modes", "e2e", "gram-1e", "gram-1s")  # fmt: skip
    assert quality.planned_runs(e2e_noise) == [("e2e", "content+id", 0), ("gram-1e", "content+id", 0),
                                               ("e2e", "content+id", 2), ("gram-1e", "content+id", 2)]  # fmt: skip
    with pytest.raises(SystemExit):  # a rerun with the seed of the first run measures no noise
        args("--noise-seeds", "0")


PLANTED = (
    "--structure planted --item-encoders content --noise-seeds --modes e2e gram-1s gram-10s gram-0.5e gram-1e "
    "nofinetune nocontent --max-epochs 20 --batch-size 32 --kt-users 200 --kt-items 400 "
    "--kt-interactions 16000 --kt-cold-start 40 --kt-validation-fraction 0.1 --kt-test-fraction 0.2 "
    "--news-users 400 --news-items 800 --news-train-impressions 500 --news-dev-impressions 200 "
    "--news-history 15 --news-validation-fraction 0.1"
)


@pytest.mark.parametrize("task", ["kt", "news"])
def test_planted_command_names_the_committed_data(task):
    # The docstring's planted command rebuilds the committed tables' specifications, whose folder (and loader cache)
    # names did not change when fields were added (left out of the key at their defaults).
    committed = json.loads((common.RESULTS_DIR / "cpu-amd-epyc" / f"quality_{task}.json").read_text())["data_spec"]
    assert " ".join(PLANTED.split()) in " ".join(quality.__doc__.replace("\\", " ").split())  # the documented one
    spec = quality.data_spec(task, args(*PLANTED.split()))
    assert spec.key() == common.DataSpec(**committed).key()
    assert {k: v for k, v in vars(spec).items() if k in committed} == committed
    assert spec.structure == "planted" and not spec.split_overrides and not spec.movielens_overrides
    realistic = quality.data_spec(task, args())
    assert realistic.key() != spec.key() and "realistic structure" in realistic.describe()
    assert common.DataSpec(dataset="movielens", preset="ml").task == "next_item"


def test_kt_floor_is_the_items_train_correct_rate():
    import datasets

    from gram_hf.data import InteractionData

    # Item 0: 2 of 2 right in train; item 1: 0 of 2; item 2 is cold-start (never in train). Overall train rate 0.5, so
    # the rates with one pseudo-answer at it are 2.5/3, 0.5/3 and 0.5.
    train = datasets.Dataset.from_dict({"items": [[0, 1], [0, 1]], "responses": [[1, 0], [1, 0]]})
    test = datasets.Dataset.from_dict({"items": [[0, 2, 1], [1]], "responses": [[1, 0, 0], [1]]})
    items = datasets.Dataset.from_dict({"item_id": ["a", "b", "c"], "text": ["x", "y", "z"],
                                        "cold_start": [False, False, True]})  # fmt: skip
    data = InteractionData(splits=datasets.DatasetDict({"train": train, "test": test}), items=items, stats={})
    (scores, scored_items), labels = quality.floor_prediction("kt", data, "test")
    rate = 1 / (1 + np.exp(-scores[labels != -100]))
    np.testing.assert_allclose(rate, [2.5 / 3, 0.5, 0.5 / 3, 0.5 / 3])
    assert scored_items.tolist() == [[0, 2, 1], [1, -100, -100]]
    spec = common.DataSpec(dataset="duolingo")
    metrics = quality.floor_metrics("kt", data, spec, "test")
    # Warm: item 0 (right, 0.83) and item 1 twice (wrong and right, both 0.17): AUC = (1 + 0.5) / 2.
    assert metrics["warm_auc"] == pytest.approx(0.75) and math.isnan(metrics["cold_start_auc"])


def test_news_warm_and_cold_auc():
    import datasets
    from transformers import EvalPrediction

    from gram_hf.data import InteractionData

    # News 0 and 1 occur in train, 2 and 3 do not. The impression ranks the warm pair right and the cold pair wrong.
    train = datasets.Dataset.from_dict({"history": [[0]], "candidates": [[1]], "labels": [[1]]})
    items = datasets.Dataset.from_dict({"item_id": list("abcd"), "text": list("abcd")})
    data = InteractionData(splits=datasets.DatasetDict({"train": train}), items=items, stats={})
    spec = common.DataSpec(dataset="mind", preset="small")
    assert common.cold_start_mask(data, spec) == [False, False, True, True]
    scores = np.array([[0.9, 0.1, 0.2, 0.8, 0.0]])
    scored = np.array([[0, 1, 2, 3, -100]])
    labels = np.array([[1, 0, 1, 0, -100]], dtype=float)
    metrics = common.quality_metrics(data, spec)(EvalPrediction(predictions=(scores, scored), label_ids=labels))
    assert metrics["warm_auc"] == pytest.approx(1.0) and metrics["cold_auc"] == pytest.approx(0.0)
    assert metrics["auc"] == pytest.approx(0.75) and metrics["warm_impressions"] == metrics["cold_impressions"] == 1


def result(mode, item_encoder, seed=0, **test):
    return {"mode": mode, "item_encoder": item_encoder, "seed": seed, "test_at_best": test}


def test_representation_verdicts_say_by_how_much():
    results = [
        result("nocontent", "id", auc=0.80, warm_auc=0.82, cold_start_auc=0.50),
        result("nocontent", "id", seed=1, auc=0.80, warm_auc=0.80, cold_start_auc=0.50),
        result("e2e", "content", auc=0.70, warm_auc=0.70, cold_start_auc=0.66),
        result("gram-1e", "content", auc=0.69, warm_auc=0.69, cold_start_auc=0.65),
        result("e2e", "content+id", auc=0.82, warm_auc=0.84, cold_start_auc=0.665),
        result("gram-1e", "content+id", auc=0.80, warm_auc=0.78, cold_start_auc=0.62),
        result("gram-1e", "content+id", seed=1, auc=0.80, warm_auc=0.77, cold_start_auc=0.62),
    ]
    floors = [{"label": "Item correct rate (train)", "test": {"auc": 0.695, "warm_auc": 0.83}}]
    lines = quality.representation_verdicts("kt", results, floors)
    by_start = {line.split(":")[0]: line for line in lines}

    def verdict(start):
        return next(line for key, line in by_start.items() if key.startswith(start))

    # ID warm mean 0.81; noise = the largest seed spread, 2 points (ID). Hybrid E2E +3.00: met; hybrid 1E (mean 0.775)
    # -3.50: 1.50 points beyond the noise.
    assert "+3.00 points" in verdict("Hybrid E2E - ID-only on warm")
    assert verdict("Hybrid E2E - ID-only on warm").endswith("met")
    assert "-3.50 points" in verdict("Hybrid GRAM 1E - ID-only on warm")
    assert "missed (by 1.50 points beyond the noise)" in verdict("Hybrid GRAM 1E - ID-only on warm")
    assert verdict("Hybrid E2E - content-only on warm").endswith("met")
    assert verdict("Hybrid E2E - content-only on cold").endswith("met")  # +0.50 points
    assert "missed (by 2.00 points)" in verdict("Hybrid GRAM 1E - content-only on cold")  # -3 points
    assert verdict("Hybrid GRAM 1E - ID-only on cold").endswith("met")  # +12 points
    # Content GRAM 1E (0.69) is the one row under the floor (0.695).
    floor, warm_floor = (line for line in lines if "vs the floor" in line)
    assert "lowest Content GRAM 1E at -0.50 points" in floor and "missed (1 below: Content GRAM 1E)" in floor
    # On warm items (floor 0.83) only hybrid E2E (0.84) is above; hybrid GRAM 1E is judged on its mean of 2 seeds.
    assert "warm_auc 83.00): lowest Content GRAM 1E at -14.00 points" in warm_floor
    assert "missed (3 below: Content E2E, Content GRAM 1E, Hybrid GRAM 1E (mean of 2 seeds))" in warm_floor
    assert "-2.44%" in verdict("Hybrid GRAM 1E auc relative") and "missed (by 1.44%)" in verdict("Hybrid GRAM 1E auc")
    # With E2E rerun too, the means are compared: E2E (0.82, 0.80) 0.81 against GRAM 1E 0.80: -1.23%.
    rerun = [*results, result("e2e", "content+id", seed=1, auc=0.80, warm_auc=0.84, cold_start_auc=0.665)]
    relative = next(line for line in quality.representation_verdicts("kt", rerun, floors)
                    if line.startswith("Hybrid GRAM 1E auc relative"))  # fmt: skip
    assert "-1.23% (means over seeds, E2E 81.00 (spread 2.00), GRAM 1E 80.00 (spread 0.00)" in relative
    # A planted run does not judge hybrid against content on warm items (text is not weak there); NaN is not a miss.
    planted = quality.representation_verdicts("kt", results, floors, structure="planted")
    assert not any("content-only on warm" in line for line in planted)
    # Above content-only on cold-start items is no miss: the target is that the ID part costs at most a point there.
    results[4]["test_at_best"]["cold_start_auc"] = 0.70
    above = quality.representation_verdicts("kt", results, floors)
    cold = next(line for line in above if line.startswith("Hybrid E2E - content-only on cold"))
    assert "+4.00 points" in cold and cold.endswith("met")
    results[4]["test_at_best"]["cold_start_auc"] = math.nan
    nan = quality.representation_verdicts("kt", results, floors)
    assert any("content-only on cold" in line and "not measured" in line for line in nan)


def test_item_id_dropout_reaches_hybrid_models_only():
    options = args("--item-id-dropout", "0.5")
    spec = quality.data_spec("next_item", options)
    hybrid = quality.run_config("next_item", options, spec, "gram-1e", "content+id", 0)
    assert hybrid["item_id_dropout"] == 0.5 and hybrid["encoder_update"] == "per_batch"
    assert "item_id_dropout" not in quality.run_config("next_item", options, spec, "gram-1e", "content", 0)
    assert "encoder_update" not in quality.run_config("next_item", options, spec, "gram-1s", "content", 0)
    model = common.build_model("tiny-random", "gram-1e", "next_item", 6, item_encoder="content+id", item_dim=8,
                               cold_start_items=[False] * 5 + [True], item_id_dropout=0.5)  # fmt: skip
    assert model.config.item_id_dropout == 0.5 and model.item_dim == 8
    assert model.cold_start_items.tolist() == [False] * 5 + [True]


def test_item_id_dropout_defaults_to_each_program_default():
    options = args()
    dropouts = {}
    for task in ("kt", "news", "next_item"):
        spec = quality.data_spec(task, options)
        dropouts[task] = quality.run_config(task, options, spec, "gram-1e", "content+id", 0)["item_id_dropout"]
    assert dropouts == {"kt": 0.5, "news": 0.5, "next_item": 0.3}
    assert dropouts["next_item"] == NEXT_ITEM_DEFAULTS["item_id_dropout"]


def test_next_item_loss_trend_verdict_names_the_epoch_that_rose():
    falling = {"mode": "gram-1e", "item_encoder": "content", "seed": 0,
               "loss_curve": [{"epoch": 0.5, "loss": 8.0}, {"epoch": 1.0, "loss": 7.0}, {"epoch": 1.5, "loss": 7.2},
                              {"epoch": 2.0, "loss": 6.6}, {"epoch": 3.0, "loss": 6.5}]}  # fmt: skip
    assert quality.epoch_mean_losses(falling["loss_curve"]) == pytest.approx([7.5, 6.9, 6.5])
    (line,) = quality.loss_trend_verdicts([falling])
    assert line.endswith("met") and "over 1 runs" in line
    # The divergence: 7.90 -> 7.71 -> 7.72 -> 7.90 is within 1% until the last epoch.
    rising = {
        **falling,
        "item_encoder": "content+id",
        "loss_curve": [{"epoch": e, "loss": v} for e, v in zip((1.0, 2.0, 3.0, 4.0), (7.90, 7.71, 7.72, 7.90))],
    }
    (line,) = quality.loss_trend_verdicts([falling, rising])
    assert "missed (Hybrid GRAM 1E epoch 4 7.720 -> 7.900)" in line
    assert quality.loss_trend_verdicts([{**falling, "loss_curve": falling["loss_curve"][:2]}]) == []


def test_floor_and_far_above_verdicts_judge_a_model_by_its_mean_over_seeds():
    # Content GRAM 1E: 0.88 and 0.84 (mean 0.86) against a warm floor of 0.85: one seed is below, the model is not.
    results = [
        result("nocontent", "id", auc=0.80, warm_auc=0.86, cold_start_auc=0.45),
        result("nocontent", "id", seed=1, auc=0.80, warm_auc=0.86, cold_start_auc=0.59),
        result("gram-1e", "content", auc=0.80, warm_auc=0.88, cold_start_auc=0.70),
        result("gram-1e", "content", seed=1, auc=0.80, warm_auc=0.84, cold_start_auc=0.70),
        result("gram-1e", "content+id", auc=0.80, warm_auc=0.87, cold_start_auc=0.62),
        result("gram-1e", "content+id", seed=1, auc=0.80, warm_auc=0.87, cold_start_auc=0.54),
    ]
    floors = [{"label": "Item correct rate (train)", "test": {"auc": 0.70, "warm_auc": 0.85}}]
    lines = quality.representation_verdicts("kt", results, floors)
    warm_floor = next(line for line in lines if "vs the floor" in line and "warm_auc" in line)
    assert "lowest Content GRAM 1E (mean of 2 seeds) at +1.00 points" in warm_floor
    assert "lowest single run Content GRAM 1E (seed 1) at -1.00" in warm_floor and warm_floor.endswith("met")
    results[2]["test_at_best"]["warm_auc"] = 0.85  # mean 0.845
    warm_floor = next(line for line in quality.representation_verdicts("kt", results, floors)
                      if "vs the floor" in line and "warm_auc" in line)  # fmt: skip
    assert warm_floor.endswith("missed (1 below: Content GRAM 1E (mean of 2 seeds))")
    # Far above ID-only on cold-start items: hybrid mean 0.58 against the ID mean 0.52 is +6, although the hybrid's
    # second seed alone (0.54) is +2.
    far = next(line for line in lines if line.startswith("Hybrid GRAM 1E - ID-only on cold"))
    assert "+6.00 points (means over 2 and 2 seeds" in far and far.endswith("met")
    # A metric nobody measured is no verdict either way.
    for row in results[2:]:
        row["test_at_best"]["warm_auc"] = math.nan
    warm_floor = next(line for line in quality.representation_verdicts("kt", results, floors)
                      if "vs the floor" in line and "warm_auc" in line)  # fmt: skip
    assert warm_floor.endswith("not measured (a metric is NaN: no such items or interactions in the test split)")


def test_hybrid_cold_start_verdict_compares_means_when_both_rows_have_seeds():
    results = [result("gram-1e", "content", cold_start_auc=0.76), result("gram-1e", "content+id", cold_start_auc=0.74)]
    line = next(line for line in quality.representation_verdicts("kt", results) if "content-only on cold" in line)
    assert "-2.00 points (target" in line and line.endswith("missed (by 1.00 points)")
    results += [result("gram-1e", "content", seed=1, cold_start_auc=0.74),
                result("gram-1e", "content+id", seed=1, cold_start_auc=0.75)]  # fmt: skip
    line = next(line for line in quality.representation_verdicts("kt", results) if "content-only on cold" in line)
    assert "-0.50 points (means over 2 and 2 seeds, target" in line and line.endswith("met")


def test_next_item_cold_start_ceilings_order_random_text_behaviour(workdir):
    # Latent factors that interactions reveal predict the chosen new release far better than chance; the planted data
    # (no latent factors) have no ceilings.
    options = args("--next-item-users", "300", "--next-item-items", "60")
    spec = quality.data_spec("next_item", options)
    common.prepare_data(spec, workdir)
    data = common.load_data(spec, workdir)
    ceilings = quality.next_item_cold_start_ceilings(spec, data)
    cold = sum(bool(flag) for flag in data.items["cold_start"])
    assert cold > 1 and ceilings["random"] == pytest.approx(quality.random_ranking_ndcg(cold))
    assert ceilings["behaviour_oracle"] > ceilings["random"] + 0.1
    assert 0.0 <= ceilings["text_oracle"] <= 1.0
    planted = quality.data_spec("next_item", args("--next-item-users", "300", "--next-item-items", "60",
                                                   "--structure", "planted"))  # fmt: skip
    common.prepare_data(planted, workdir)
    assert quality.next_item_cold_start_ceilings(planted, common.load_data(planted, workdir)) == {}
    rows = [{**result("gram-1e", "content+id", **{"cold_only_ndcg@10": 0.3}), "label": "Hybrid GRAM 1E"}]
    (line,) = quality.cold_start_ceiling_lines(rows, {"random": 0.25, "text_oracle": 0.3, "behaviour_oracle": 0.7})
    assert "random ranking 25.00" in line and "text oracle" in line and "Hybrid GRAM 1E, 30.00" in line
    assert line.endswith("+5.00 points from random here.")
    assert quality.cold_start_ceiling_lines(rows, {}) == []


def test_next_item_cold_start_verdicts_give_a_random_rankings_level():
    results = [
        result("nocontent", "id", **{"ndcg@10": 0.3, "warm_ndcg@10": 0.4, "cold_ndcg@10": 0.0}),
        result("gram-1e", "content+id", **{"ndcg@10": 0.3, "warm_ndcg@10": 0.4, "cold_ndcg@10": 0.03}),
    ]
    # Results without the metric among new items: judged on the full-catalog one, against all 200 items.
    line = next(line for line in quality.representation_verdicts("next_item", results, num_items=200)
                if "ID-only on cold-start" in line)  # fmt: skip
    assert "(cold_ndcg@10)" in line and "a random ranking of 200 items: 2.27" in line
    assert line.endswith("missed (by 2.00 points)")
    assert not any("random ranking" in line for line in quality.representation_verdicts("kt", results))
    # With it: judged among the 16 new items, whose random level is given.
    among_new = {"cold_only_ndcg@10": 0.0, "cold_items": 16}
    results[0]["test_at_best"].update(among_new)
    results[1]["test_at_best"].update({**among_new, "cold_only_ndcg@10": 0.41})
    line = next(line for line in quality.representation_verdicts("next_item", results, num_items=200)
                if "ID-only on cold-start" in line)  # fmt: skip
    assert "(cold_only_ndcg@10)" in line and "+41.00 points" in line and line.endswith("met")
    assert f"a random ranking of 16 items: {100 * quality.random_ranking_ndcg(16):.2f}" in line
