"""Invariant 5: two processes (gloo, CPU) with per-device batch b end where one process with batch 2b ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import ddp_equivalence  # noqa: E402

# fp32 on CPU; the two runs sum the same gradients in different orders and encode items in different batches.
PARAMETER_ATOL = 2e-5
ITEM_TABLE_ATOL = 2e-4


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("ddp")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(SCRIPTS / "ddp_equivalence.py"), "--per_device_batch_size", "2", "--output_dir", str(output_dir),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    return [torch.load(output_dir / f"rank{rank}.pt", weights_only=False) for rank in range(2)]


@pytest.fixture(scope="module")
def single_process_results(tmp_path_factory):
    return ddp_equivalence.run(4, str(tmp_path_factory.mktemp("single")))


@pytest.mark.parametrize("name", list(ddp_equivalence.CONFIGS))
def test_two_processes_equal_one_process_with_the_combined_batch(name, two_process_results, single_process_results):
    rank0, rank1 = (results[name] for results in two_process_results)
    single = single_process_results[name]
    assert rank0["world_size"] == 2 and single["world_size"] == 1
    initial = dict(ddp_equivalence.make_model(ddp_equivalence.CONFIGS[name]["gram_mode"]).named_parameters())
    assert max((single["parameters"][k] - initial[k]).abs().max().item() for k in initial) > 1e-4, "nothing trained"
    for key, value in single["parameters"].items():
        # every process holds exactly the same model
        assert torch.equal(rank0["parameters"][key], rank1["parameters"][key]), key
        torch.testing.assert_close(rank0["parameters"][key], value, atol=PARAMETER_ATOL, rtol=0, msg=key)
    if single["item_table"] is not None:
        assert torch.equal(rank0["item_table"], rank1["item_table"])
        torch.testing.assert_close(rank0["item_table"], single["item_table"], atol=ITEM_TABLE_ATOL, rtol=0)
    # counters are global and identical everywhere; occurrences add up to the combined batch's
    assert rank0["counters"] == rank1["counters"]
    assert rank0["counters"]["occurrences"] == single["counters"]["occurrences"]


def test_auto_windows_are_decided_alike_on_every_process(two_process_results, single_process_results):
    rank0, rank1 = (results["gram_auto"]["windows"] for results in two_process_results)
    assert rank0 == rank1
    # The same decisions as one process with the combined batch: a window ended by the drift, then the last step's.
    single = single_process_results["gram_auto"]["windows"]
    assert rank0["windows"] == single["windows"] == 2 and rank0["start_step"] == single["start_step"] == 4
    assert rank0["last_window_steps"] == single["last_window_steps"] == 1


@pytest.mark.parametrize("name", ["gram_3", "gram_3_per_batch", "nofinetune"])
def test_item_table_work_is_split_not_repeated(name, two_process_results, single_process_results):
    # Lazy encodes and the encoder fit go over the union of the processes' items once, shared between them.
    two, single = two_process_results[0][name]["counters"], single_process_results[name]["counters"]
    assert two["encoder_items_forward"] == single["encoder_items_forward"]
    assert two["encoder_items_backward"] == single["encoder_items_backward"]
