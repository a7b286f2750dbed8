"""GramTrainer failure behaviour and precision: NaN stops, crash-safe checkpoints, gradient accumulation, bf16."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from gram_hf.checkpointing import CHECKPOINT_COMPLETE_NAME

sys.path.insert(0, str(Path(__file__).parent / "scripts"))

import kill_during_save  # noqa: E402

import test_trainer  # noqa: E402

# the KT fixtures and helpers of the trainer tests
kt_data, catalog, base_model = test_trainer.kt_data, test_trainer.catalog, test_trainer.base_model
assert_same_parameters, make_trainer, train = (
    test_trainer.assert_same_parameters,
    test_trainer.make_trainer,
    test_trainer.train,
)


class PoisonHeadAtStep(TrainerCallback):
    """Sets the head's output weights to NaN when step `step + 1` begins (after checkpoint-`step` was saved)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            model.head.output.weight.data.fill_(float("nan"))


@pytest.mark.parametrize("mode", ["e2e", "gram", "nofinetune"])
def test_nan_loss_stops_training_naming_the_step(base_model, catalog, kt_data, tmp_path, mode):
    model = copy.deepcopy(base_model)
    trainer = make_trainer(
        model, catalog, kt_data, tmp_path, gram_mode=mode, gram_interval="2", max_steps=5,
        save_strategy="steps", save_steps=2, callbacks=[PoisonHeadAtStep(2)],
    )  # fmt: skip
    with pytest.raises(FloatingPointError, match=r"step 3 .*checkpoint-2"):
        trainer.train()
    checkpoint = tmp_path / "out" / "checkpoint-2"
    assert (checkpoint / CHECKPOINT_COMPLETE_NAME).is_file()
    # the last good checkpoint resumes (and the poison is gone with the restored weights)
    resumed = make_trainer(copy.deepcopy(base_model), catalog, kt_data, tmp_path, gram_mode=mode, gram_interval="2",
                           max_steps=4, save_strategy="no")  # fmt: skip
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert all(torch.isfinite(p).all() for p in resumed.gram_model.parameters())


def test_incomplete_checkpoint_is_skipped_and_refused(base_model, catalog, kt_data, tmp_path):
    settings = {"gram_mode": "gram", "gram_interval": "3", "max_steps": 4, "save_strategy": "steps", "save_steps": 2}
    train(base_model, catalog, kt_data, tmp_path, **settings)
    incomplete = tmp_path / "out" / "checkpoint-4"
    (incomplete / CHECKPOINT_COMPLETE_NAME).unlink()
    trainer = make_trainer(copy.deepcopy(base_model), catalog, kt_data, tmp_path, **settings)
    with pytest.raises(ValueError, match="not a complete GramTrainer checkpoint.*checkpoint-2"):
        trainer.train(resume_from_checkpoint=str(incomplete))
    trainer = make_trainer(copy.deepcopy(base_model), catalog, kt_data, tmp_path, **{**settings, "max_steps": 4})
    trainer.train(resume_from_checkpoint=True)  # picks checkpoint-2, then rewrites checkpoint-4 completely
    assert trainer.state.global_step == 4
    assert (incomplete / CHECKPOINT_COMPLETE_NAME).is_file()


def test_save_total_limit_keeps_complete_checkpoints(base_model, catalog, kt_data, tmp_path):
    train(base_model, catalog, kt_data, tmp_path, gram_mode="gram", max_steps=6, save_strategy="steps", save_steps=2,
          save_total_limit=1)  # fmt: skip
    assert sorted(os.listdir(tmp_path / "out")) == ["checkpoint-6"]


def test_process_killed_while_saving_leaves_the_previous_checkpoint_resumable(tmp_path):
    killed_dir = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    script = Path(kill_during_save.__file__)
    completed = subprocess.run(
        [sys.executable, str(script), str(killed_dir), "4"], env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == -signal.SIGKILL, completed.stderr[-3000:]
    assert (killed_dir / "checkpoint-2" / CHECKPOINT_COMPLETE_NAME).is_file()
    partial = killed_dir / "checkpoint-4"
    assert partial.is_dir() and not (partial / CHECKPOINT_COMPLETE_NAME).exists()  # the kill hit mid-save

    resumed = kill_during_save.make_trainer(str(killed_dir))
    resumed.train(resume_from_checkpoint=True)
    straight = kill_during_save.make_trainer(str(tmp_path / "straight"))
    straight.train()
    assert resumed.state.global_step == straight.state.global_step == kill_during_save.MAX_STEPS
    assert_same_parameters(resumed.gram_model, straight.gram_model, atol=1e-6)
    torch.testing.assert_close(resumed.item_table.vectors, straight.item_table.vectors, atol=1e-6, rtol=0)


@pytest.mark.parametrize("interval", ["1", "3"])
def test_gradient_accumulation_equals_the_larger_batch(base_model, catalog, kt_data, tmp_path, interval):
    # batch 6 with 2 accumulation steps of 3 learners each; KT losses are per-batch means, so batches are cut to
    # equal numbers of positions for the comparison to be exact
    rows = [row for row in kt_data.train.to_list()]
    for row in rows:
        row["items"], row["responses"] = row["items"][:4], row["responses"][:4]
    data = copy.copy(kt_data)
    data.train = kt_data.train.from_list(rows)
    settings = {"gram_mode": "gram", "gram_interval": interval, "gram_recompute": True, "max_steps": 4}
    big, _ = train(base_model, catalog, data, tmp_path / "a", per_device_train_batch_size=6, **settings)
    accumulated, _ = train(base_model, catalog, data, tmp_path / "b", per_device_train_batch_size=3,
                           gradient_accumulation_steps=2, **settings)  # fmt: skip
    assert_same_parameters(big, accumulated, atol=2e-6)


@pytest.mark.parametrize("mode", ["e2e", "gram"])
def test_gradient_accumulation_weighs_micro_batches_by_their_scored_positions(base_model, catalog, kt_data, tmp_path,
                                                                             mode):  # fmt: skip
    # Learner sequences of different lengths: micro-batches score unequally many positions, and a mean of their means
    # would differ from the whole batch's mean. Weighted by positions, accumulation equals the whole batch.
    lengths = [len(row["items"]) for row in kt_data.train.to_list()[:6]]
    assert sum(lengths[:3]) != sum(lengths[3:])
    settings = {"gram_mode": mode, "gram_interval": "1", "max_steps": 3, "logging_steps": 1}
    big, big_trainer = train(base_model, catalog, kt_data, tmp_path / "a", per_device_train_batch_size=6, **settings)
    accumulated, accumulated_trainer = train(
        base_model,
        catalog,
        kt_data,
        tmp_path / "b",
        per_device_train_batch_size=3,
        gradient_accumulation_steps=2,
        **settings,
    )
    assert_same_parameters(big, accumulated, atol=2e-6)
    big_losses = [log["loss"] for log in big_trainer.state.log_history if "loss" in log]
    accumulated_losses = [log["loss"] for log in accumulated_trainer.state.log_history if "loss" in log]
    assert big_losses == pytest.approx(accumulated_losses, rel=1e-4)  # the logged loss is the whole batch's mean


@pytest.mark.bf16
def test_bf16_trains_with_an_fp32_item_table(base_model, catalog, kt_data, tmp_path):
    _, trainer = train(base_model, catalog, kt_data, tmp_path, gram_mode="gram", gram_interval="3", bf16=True,
                       use_cpu=True, max_steps=24, learning_rate=0.1)  # fmt: skip
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6
    assert trainer.item_table.vectors.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in trainer.gram_model.parameters())


def test_resume_names_a_missing_checkpoint_and_logs_where_it_starts(base_model, catalog, kt_data, tmp_path, caplog):
    settings = {"gram_mode": "gram", "gram_interval": "3", "max_steps": 6, "save_strategy": "steps", "save_steps": 2}
    train(base_model, catalog, kt_data, tmp_path, **settings)
    out = tmp_path / "out"
    trainer = make_trainer(copy.deepcopy(base_model), catalog, kt_data, tmp_path, **settings)
    with pytest.raises(FileNotFoundError, match=r"No such checkpoint: .*checkpoint-3; the complete checkpoints in "
                                                r".*out: checkpoint-2, checkpoint-4, checkpoint-6"):  # fmt: skip
        trainer.train(resume_from_checkpoint=str(out / "checkpoint-3"))
    with pytest.raises(
        FileNotFoundError, match="No checkpoint to resume from: .*empty/out holds no complete checkpoint"
    ):
        make_trainer(copy.deepcopy(base_model), catalog, kt_data, tmp_path / "empty").train(
            resume_from_checkpoint=True
        )

    with caplog.at_level("INFO", logger="gram_hf.trainer"):
        trainer.train(resume_from_checkpoint=str(out / "checkpoint-4"))
    (line,) = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Resumed")]
    # windows of 3 steps end at 3 and 6: step 4 is one step into the second
    assert line.startswith("Resumed from step 4 (epoch ") and line.endswith(
        f"of 6, window 2 of 2 (steps 4-6, 1 done): {out / 'checkpoint-4'}"
    )


def test_save_total_limit_keeps_the_best_checkpoint_and_the_latest(base_model, catalog, kt_data, tmp_path):
    scores = iter([0.9, 0.1, 0.2])  # the first evaluation is the best

    def compute_metrics(prediction):
        return {"score": next(scores)}

    listings = []

    class ListCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            listings.append(sorted(os.listdir(args.output_dir)))

    _, trainer = train(
        base_model, catalog, kt_data, tmp_path, gram_mode="gram", max_steps=6, save_strategy="steps", save_steps=2,
        eval_strategy="steps", eval_steps=2, save_total_limit=1, load_best_model_at_end=True,
        metric_for_best_model="score", eval_dataset=kt_data.test, compute_metrics=compute_metrics,
        callbacks=[ListCheckpoints()],
    )  # fmt: skip
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-2")
    # while training: the best and the latest (rotation waits for the new checkpoint to be complete)
    assert listings[-1] == ["checkpoint-2", "checkpoint-6"]
    # at the end, with save_total_limit=1, the Trainer keeps the best alone
    assert sorted(os.listdir(tmp_path / "out")) == ["checkpoint-2"]
