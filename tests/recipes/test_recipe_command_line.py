"""
The programs at the command line: arguments checked before anything loads or is written, one-line errors with exit
statuses (2: the command line, 1: the data), checkpoint options that work together, the README's resume walk-through,
the dropped-row counts in the results and the embedded default's disk use.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_recipe_smoke import RECIPES_DIR, load_recipe, smoke_argv

from gram_hf.checkpointing import CHECKPOINT_COMPLETE_NAME
from gram_hf.scripts import RESULTS_NAME, format_results_table
from gram_hf.scripts.command_line import EXIT_FAILURE, EXIT_USAGE, UsageError, run_command_line


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def toeic(monkeypatch):
    """The toeic program, with its data loading replaced by one that fails the test if it is reached."""
    from gram_hf.scripts import toeic as program  # the recipe file's `main` is this module's

    def load(args):
        raise AssertionError("the data was loaded before the arguments were checked")

    monkeypatch.setattr(program, "load", load)
    return load_recipe("toeic")


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--per_device_train_batch_size", "0", "--per_device_train_batch_size must be a positive integer, got 0."),
        ("--gradient_accumulation_steps", "0", "--gradient_accumulation_steps must be a positive integer, got 0."),
        ("--early_stopping_patience", "-1", "--early_stopping_patience must be a non-negative integer"),
        ("--per_device_train_batch_size", "x", "invalid int value: 'x'"),
        ("--gram_interval", "two", "gram_interval must be a positive integer"),
    ],
)
def test_bad_values_are_refused_before_loading_and_writing(toeic, tmp_path, flag, value, message):
    out, synthetic = tmp_path / "out", tmp_path / "synthetic"
    with pytest.raises(UsageError) as error:
        toeic.main([flag, value, "--output_dir", str(out), "--synthetic_dir", str(synthetic)])
    assert message in str(error.value)
    assert not out.exists() and not synthetic.exists()  # nothing written, nothing generated


def test_command_line_prints_one_line_and_exits_2_for_usage_1_for_data(toeic, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GRAM_HF_DEBUG", raising=False)
    argv = ["--per_device_train_batch_size", "0", "--output_dir", str(tmp_path / "out")]
    assert run_command_line(toeic.main, argv, prog="toeic.py") == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == "toeic.py: error: --per_device_train_batch_size must be a positive integer, got 0.\n"
    assert run_command_line(toeic.main, ["--nope", "1"], prog="toeic.py") == EXIT_USAGE
    assert capsys.readouterr().err.startswith("toeic.py: error: Some specified arguments are not used")

    # A data error: one line naming the file, exit status 1; `--debug` (no value) adds the traceback.
    kt = load_recipe("knowledge_tracing")
    missing = tmp_path / "missing.csv"
    argv = ["--interactions", str(missing), "--items", str(missing), "--output_dir", str(tmp_path / "kt")]
    assert run_command_line(kt.main, argv, prog="knowledge_tracing.py") == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("knowledge_tracing.py: error: ") and str(missing) in err
    assert "Traceback" not in err and "--debug" in err
    assert run_command_line(kt.main, [*argv, "--debug"], prog="knowledge_tracing.py") == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.splitlines()[-1].startswith("knowledge_tracing.py: error: ")


def test_recipe_script_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GRAM_HF_DEBUG", None)
    completed = subprocess.run(
        [sys.executable, str(RECIPES_DIR / "toeic.py"), "--per_device_train_batch_size", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == EXIT_USAGE
    assert completed.stderr == "toeic.py: error: --per_device_train_batch_size must be a positive integer, got 0.\n"
    assert list(tmp_path.iterdir()) == []  # no outputs/ folder


@pytest.mark.parametrize("recipe", ["toeic", "mind", "next_item"])
def test_recipe_refuses_a_bad_value_before_torch_is_imported(recipe, tmp_path):
    """A usage error costs no torch/transformers import: the recipe checks its raw command line first."""
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{str(RECIPES_DIR / (recipe + '.py'))!r}, '--per_device_train_batch_size', '0']\n"
        f"sys.path.insert(0, {str(RECIPES_DIR)!r})\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    heavy = sorted(m for m in ('torch', 'transformers', 'gram_hf') if m in sys.modules)\n"
        "    print(exit.code, heavy)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )  # fmt: skip
    assert completed.stdout.strip() == "2 []", completed.stderr
    assert completed.stderr.strip().endswith("--per_device_train_batch_size must be a positive integer, got 0.")


def test_early_check_reads_raw_values_like_the_parser():
    from gram_hf.scripts.command_line import check_command_line_early, raw_argument_values

    values = raw_argument_values(["--learning_rate=1e-3", "--save_steps", "0", "--save_strategy", "steps", "--x", "1"])
    assert values == {"learning_rate": 1e-3, "save_steps": 0, "save_strategy": "steps"}
    check_command_line_early(["--learning_rate", "0.1", "--help", "--per_device_train_batch_size", "0"])  # --help wins
    check_command_line_early(["--per_device_train_batch_size", "4", "--max_steps", "3", "--num_train_epochs", "0"])
    with pytest.raises(SystemExit) as exit_info:
        check_command_line_early(["--save_strategy", "steps", "--save_steps", "0"], prog="x")
    assert exit_info.value.code == EXIT_USAGE


def test_save_steps_alone_saves_and_evaluates_at_those_steps(toeic, tmp_path):
    from gram_hf.scripts import parse_recipe_args

    def parse(argv):
        return parse_recipe_args(
            toeic.DataArguments, [*argv, "--output_dir", str(tmp_path)], defaults=toeic.DEFAULTS,
            demo_defaults=toeic.DEMO_DEFAULTS, uses_synthetic=lambda data: data.kt1_dir is None,
        )  # fmt: skip

    args = parse(["--save_steps", "20"])
    training = args.training
    assert str(training.save_strategy.value) == str(training.eval_strategy.value) == "steps"
    assert training.save_steps == training.eval_steps == 20 and training.load_best_model_at_end
    assert args.implied_settings == {"save_strategy": "steps", "eval_strategy": "steps", "eval_steps": 20}
    # A checkpoint option: the demo keeps every checkpoint.
    assert (
        args.keep_checkpoints and training.save_total_limit is None and args.demo_settings["save_total_limit"] is None
    )
    assert parse(["--save_steps", "20", "--save_total_limit", "3"]).training.save_total_limit == 3

    args = parse(["--eval_strategy", "steps", "--eval_steps", "5"])
    assert (str(args.training.save_strategy.value), args.training.save_steps) == ("steps", 5)
    args = parse(["--save_strategy", "no"])
    assert not args.training.load_best_model_at_end and str(args.training.eval_strategy.value) == "epoch"
    assert parse([]).implied_settings == {} and not parse([]).keep_checkpoints
    with pytest.raises(UsageError, match="load_best_model_at_end requires the save and eval strategy to match"):
        parse(["--save_strategy", "steps", "--eval_strategy", "epoch"])


def test_next_item_item_learning_rate_default_is_for_windows(tmp_path):
    """
    The program's eta (0.01) trains a hybrid's cached content vectors between fits; Single-step GRAM (exactly E2E at
    1.0) and content-only vectors keep 1.0.
    """
    from gram_hf.scripts import next_item, parse_recipe_args

    def eta(*argv):
        return parse_recipe_args(
            next_item.DataArguments, [*argv, "--output_dir", str(tmp_path)], defaults=next_item.DEFAULTS,
            demo_defaults=next_item.DEMO_DEFAULTS, uses_synthetic=lambda data: not data.has_data,
        ).training.item_learning_rate  # fmt: skip

    assert eta() == eta("--gram_interval", "3") == 0.01
    assert eta("--gram_interval", "1") == 1.0
    assert eta("--gram_interval", "1", "--item_learning_rate", "0.5") == 0.5
    assert eta("--gram_interval", "1", "--gram_mode", "e2e") == 0.01  # unused outside GRAM
    # Content-only vectors carry the collaborative signal themselves: the full rate.
    assert eta("--item_encoder", "content") == 1.0
    assert eta("--item_encoder", "content", "--item_learning_rate", "0.1") == 0.1


def test_next_item_negative_sharing_and_new_item_share_reach_the_head_config(tmp_path):
    from gram_hf.scripts import next_item, parse_recipe_args

    def data(*argv):
        return parse_recipe_args(
            next_item.DataArguments, [*argv, "--output_dir", str(tmp_path)], defaults=next_item.DEFAULTS,
            demo_defaults=next_item.DEMO_DEFAULTS, uses_synthetic=lambda data: not data.has_data,
        ).data  # fmt: skip

    shared = data("--loss_type", "cce_sampled", "--num_negatives", "512", "--negative_sharing", "sequence")
    assert shared.head_config()["negative_sharing"] == "sequence" and shared.head_config()["num_negatives"] == 512
    assert "negative_sharing" not in data("--loss_type", "cce_sampled").head_config()
    with pytest.raises((UsageError, ValueError), match="applies to the sampled softmax losses"):
        data("--loss_type", "cce", "--negative_sharing", "batch")
    with pytest.raises((UsageError, ValueError, SystemExit)):
        data("--loss_type", "cce_sampled", "--negative_sharing", "user")
    assert data("--new_item_share", "0.25").head_config()["new_item_share"] == 0.25
    assert "new_item_share" not in data().head_config()
    with pytest.raises((UsageError, ValueError), match="new_item_share must lie in"):
        data("--new_item_share", "1")


def test_readme_resume_walk_through(tiny_encoder, tmp_path, caplog):
    """README, "Resume": `--save_steps 20 --output_dir out`, then the same with `--resume_from_checkpoint
    out/checkpoint-20`; the smoke flags only make it small (tiny encoder, private caches)."""
    toeic = load_recipe("toeic")
    out = tmp_path / "out"
    small = [
        "--encoder_name_or_path", tiny_encoder, "--synthetic_dir", str(tmp_path / "synthetic"),
        "--dataset_cache_dir", str(tmp_path / "datasets"), "--disable_tqdm", "true",
    ]  # fmt: skip
    readme = ["--save_steps", "20", "--output_dir", str(out)]
    first = toeic.main([*small, *readme])
    assert first["steps"] > 20 and (out / "checkpoint-20" / CHECKPOINT_COMPLETE_NAME).is_file()
    assert str(out / "checkpoint-20") in first["checkpoints"]["kept"] and first["checkpoints"]["removed"] == 0
    evaluated = [log["step"] for log in json.loads((out / "trainer_state.json").read_text())["log_history"]
                 if "eval_auc" in log]  # fmt: skip
    assert evaluated[0] == 20  # evaluation follows the save steps, so the best checkpoint can be restored

    with pytest.raises(UsageError, match=r"No such checkpoint: .*checkpoint-3; the complete checkpoints in .*: "
                                         r"checkpoint-20, checkpoint-\d+"):  # fmt: skip
        toeic.main([*small, *readme, "--resume_from_checkpoint", str(out / "checkpoint-3")])

    with caplog.at_level(logging.INFO, logger="gram_hf"):
        resumed = toeic.main([*small, *readme, "--resume_from_checkpoint", str(out / "checkpoint-20")])
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Resumed from")]
    # toeic's demo: GRAM with one encoder fit per epoch; step 20 lies in the second epoch's window.
    assert len(lines) == 1 and lines[0].startswith("Resumed from step 20 (epoch 1.")
    assert ", window 2 of " in lines[0] and lines[0].endswith(str(out / "checkpoint-20"))
    assert resumed["steps"] == first["steps"]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gram_hf"):
        toeic.main([*small, *readme, "--resume_from_checkpoint", "True"])  # the last complete checkpoint
    assert any(record.getMessage().startswith(f"Resumed from step {first['steps']} ") for record in caplog.records)


def test_results_count_the_rows_read_dropped_and_removed_from_train(tiny_encoder, tmp_path):
    results = load_recipe("toeic").main(smoke_argv("toeic", tiny_encoder, tmp_path))
    data = results["data"]
    assert data["source"].startswith("synthetic")
    written = json.loads((tmp_path / "out" / RESULTS_NAME).read_text())["data"]
    assert written == data
    removed = sum(data["removed_from_train"].values())
    assert removed > 0  # the cold-start items' interactions
    table = format_results_table(results)
    assert re.search(rf"\ndata rows +{data['rows_read']:,} read; dropped \d", table)
    assert re.search(rf"\nremoved from train only +{removed:,} \(cold_start_items {removed:,}\)\n", table)


def test_embedded_default_keeps_the_model_and_export_not_the_checkpoints(tiny_encoder, tmp_path):
    results = load_recipe("toeic").main(
        [*smoke_argv("toeic", tiny_encoder, tmp_path), "--eval_strategy", "steps", "--eval_steps", "1"]
    )
    out = tmp_path / "out"
    assert results["checkpoints"] == {"kept": [], "removed": 1}
    assert not list(out.glob("checkpoint-*"))
    assert (out / "model.safetensors").is_file() and (out / "encoder" / "config.json").is_file()
    assert "1 removed after training" in format_results_table(results)


def test_gram_hf_command_exits_2_with_one_line(capsys, monkeypatch):
    from gram_hf import cli

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # cli.main rewrites sys.argv for the program
    assert cli.main(["toeic", "--per_device_eval_batch_size", "-3"]) == EXIT_USAGE
    assert (
        capsys.readouterr().err
        == "gram-hf toeic: error: --per_device_eval_batch_size must be a positive integer, got -3.\n"
    )


def test_dataset_script_errors_are_one_line(tmp_path, capsys):
    spec_path = Path(RECIPES_DIR).parent / "dataset_scripts" / "prepare_poj.py"
    import importlib.util

    spec = importlib.util.spec_from_file_location("gram_hf_prepare_poj_cli", spec_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--log_csv", str(tmp_path / "log.csv"), "--problem_text", str(tmp_path / "p.csv"), "--output_dir"]
    assert run_command_line(module.main, [*argv, str(tmp_path / "o"), "--max_seq_len", "0"], prog="p") == EXIT_USAGE
    assert capsys.readouterr().err == "p: error: max_seq_len must be >= 1, got 0.\n"
    assert run_command_line(module.main, [*argv, str(tmp_path / "o"), "--nope"], prog="p") == EXIT_USAGE
    assert capsys.readouterr().err == "p: error: unrecognized arguments: --nope\n"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert run_command_line(module.main, [*argv, str(tmp_path / "full")], prog="p") == EXIT_USAGE
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    assert run_command_line(module.main, [*argv, str(tmp_path / "o")], prog="p") == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "log.csv" in err
