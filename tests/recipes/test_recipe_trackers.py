"""The recipes report to the trackers users watch (`--report_to tensorboard trackio`, the Trainer's own integrations):
the `gram/*` counters, the window decisions and the evaluation metrics land there beside the Trainer's loss."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"

# `tensorboard`, not tensorboardX: the Trainer's callback then writes with torch's SummaryWriter, whose event file
# names hold the process id and a counter; tensorboardX names them by the second, so the writer the test evaluation
# reopens after training can overwrite the training's file (seen in CI).
pytest.importorskip("tensorboard")
pytest.importorskip("trackio")


def tensorboard_scalars(folder: Path) -> dict[str, list[float]]:
    """Every scalar in the TensorBoard event files under `folder`, by tag (the TFRecord framing read by hand)."""
    from tensorboard.compat.proto import event_pb2

    scalars: dict[str, list[float]] = {}
    for path in folder.rglob("events.out.tfevents.*"):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4  # length, its crc, the record, its crc
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(value.simple_value)
    return scalars


@pytest.fixture(scope="module")
def tracked_run(tiny_encoder, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("trackers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRACKIO_DIR": str(tmp_path / "trackio"), "OMP_NUM_THREADS": "1",
           "TENSORBOARD_LOGGING_DIR": str(tmp_path / "tensorboard")}  # fmt: skip
    command = [
        sys.executable, str(RECIPES_DIR / "knowledge_tracing.py"), "--synthetic_scale", "0.005",
        "--encoder_name_or_path", tiny_encoder, "--synthetic_dir", str(tmp_path / "synthetic"),
        "--dataset_cache_dir", str(tmp_path / "datasets"), "--output_dir", str(tmp_path / "out"),
        "--max_steps", "4", "--per_device_train_batch_size", "4", "--logging_steps", "1", "--eval_strategy", "steps",
        "--eval_steps", "2", "--save_strategy", "no", "--load_best_model_at_end", "false", "--disable_tqdm", "true",
        "--gram_interval", "auto", "--report_to", "tensorboard,trackio", "--project", "gram-hf-test",
        "--run_name", "tracked",
    ]  # fmt: skip
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return tmp_path, env


def test_tensorboard_events_hold_the_gram_counters_and_the_metrics(tracked_run):
    tmp_path, _ = tracked_run
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    for tag in ("train/loss", "train/gram/occurrences", "train/gram/encoder_items_backward", "train/gram/windows",
                "train/gram/drift", "eval/auc"):  # fmt: skip
        assert tag in scalars, sorted(scalars)
    occurrences = scalars["train/gram/occurrences"]
    assert len(occurrences) >= 4 and occurrences == sorted(occurrences) and occurrences[-1] > 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert occurrences[-1] == results["gram_counters"]["gram/occurrences"]


def test_trackio_store_holds_the_gram_counters_and_the_metrics(tracked_run):
    _, env = tracked_run
    read = (
        "import json; from trackio.sqlite_storage import SQLiteStorage as S; "
        "print(json.dumps(S.get_logs('gram-hf-test', 'tracked')))"
    )
    completed = subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    logs = json.loads(completed.stdout.strip().splitlines()[-1])
    keys = {key for log in logs for key in log}
    for key in ("train/loss", "train/gram/occurrences", "train/gram/windows", "eval/auc"):
        assert key in keys, sorted(keys)
