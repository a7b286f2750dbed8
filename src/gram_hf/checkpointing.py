"""
Crash-safe checkpoints for [`GramTrainer`]: GRAM's own state, completeness markers, and finding what to resume from.

A `transformers.Trainer` checkpoint holds the model, the CF optimizer and scheduler, RNG and trainer state. GRAM adds
`gram_state.pt` (the encoder's optimizer and scheduler, the [`ItemTable`] with the open window, the cost counters), so
that a resumed run continues exactly, also from inside a window. Every process writes its part of a checkpoint; a
process killed while saving would leave a folder that looks like a checkpoint but mixes old and missing files. So a
folder counts only once `gram_checkpoint_complete.json` is written into it, after every process has finished, and the
rotation of older checkpoints (`save_total_limit`) waits until then, so the last complete checkpoint always survives.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints
from transformers.utils import logging

if TYPE_CHECKING:
    from transformers import TrainerState, TrainingArguments

    from .item_table import ItemTable
    from .windows import GramWindowLog

logger = logging.get_logger(__name__)

GRAM_STATE_NAME = "gram_state.pt"
# Written last into a checkpoint folder, after every process has saved its part: a folder without it was interrupted
# while saving (a killed process) and is never resumed from.
CHECKPOINT_COMPLETE_NAME = "gram_checkpoint_complete.json"


@dataclass
class GramState:
    """
    GRAM's part of a checkpoint, `gram_state.pt`, beside the Trainer's own files. It holds the trainer's objects by
    reference, so [`GramState.load`] restores them in place; the encoder's optimizer and scheduler and the item table
    are `None` in the modes that have none.
    """

    counters: MutableMapping[str, int]
    encoder_optimizer: torch.optim.Optimizer | None = None
    encoder_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    item_table: ItemTable | None = None
    window_log: GramWindowLog | None = None

    def save(self, output_dir: str | os.PathLike) -> str:
        """Writes `gram_state.pt` into `output_dir` atomically (a temporary file renamed into place); its path."""
        state: dict[str, Any] = {"counters": dict(self.counters)}
        if self.encoder_optimizer is not None:
            state["encoder_optimizer"] = self.encoder_optimizer.state_dict()
            state["encoder_lr_scheduler"] = self.encoder_lr_scheduler.state_dict()
        if self.item_table is not None:
            state["item_table"] = {k: v.cpu() for k, v in self.item_table.state_dict().items()}
        if self.window_log is not None:
            state["window_log"] = self.window_log.state_dict()
        path = os.path.join(output_dir, GRAM_STATE_NAME)
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)
        return path

    def load(self, checkpoint: str | os.PathLike) -> None:
        """
        Restores what [`GramState.save`] wrote into `checkpoint`. A checkpoint without `gram_state.pt` is refused:
        resuming without it would silently restart the encoder's optimizer and the open window.
        """
        path = os.path.join(checkpoint, GRAM_STATE_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: the checkpoint holds no GRAM state (encoder optimizer, item table), so training "
                "cannot resume exactly from it."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.counters.update(state["counters"])
        if self.encoder_optimizer is not None:
            self.encoder_optimizer.load_state_dict(state["encoder_optimizer"])
            self.encoder_lr_scheduler.load_state_dict(state["encoder_lr_scheduler"])
        if self.item_table is not None:
            self.item_table.load_state_dict(state["item_table"])
        if self.window_log is not None and "window_log" in state:  # checkpoints before gram-hf 0.x have none
            self.window_log.load_state_dict(state["window_log"])


def is_complete_checkpoint(folder: str | os.PathLike) -> bool:
    """Whether `folder` is a checkpoint every process finished writing (it has the completeness marker)."""
    return os.path.isfile(os.path.join(folder, CHECKPOINT_COMPLETE_NAME))


def mark_checkpoint_complete(folder: str | os.PathLike, global_step: int) -> None:
    """Writes the completeness marker (the step and the folder's files), synced to disk before it is renamed in."""
    marker = os.path.join(folder, CHECKPOINT_COMPLETE_NAME)
    with open(marker + ".tmp", "w") as file:
        json.dump({"global_step": global_step, "files": sorted(os.listdir(folder))}, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(marker + ".tmp", marker)


def _checkpoint_folders(output_dir: str | os.PathLike) -> dict[int, str]:
    """The `checkpoint-<step>` folders in `output_dir` by step, complete or not."""
    if not os.path.isdir(output_dir):
        return {}
    steps = {}
    for name in os.listdir(output_dir):
        prefix, _, step = name.rpartition("-")
        if prefix == PREFIX_CHECKPOINT_DIR and step.isdigit() and os.path.isdir(os.path.join(output_dir, name)):
            steps[int(step)] = os.path.join(output_dir, name)
    return steps


def complete_checkpoints(output_dir: str | os.PathLike) -> list[str]:
    """The complete checkpoints in `output_dir`, by ascending step."""
    return [folder for _, folder in sorted(_checkpoint_folders(output_dir).items()) if is_complete_checkpoint(folder)]


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The highest-step complete checkpoint in `output_dir`, warning about newer incomplete ones it skips."""
    steps = _checkpoint_folders(output_dir)
    skipped = []
    for step in sorted(steps, reverse=True):
        if is_complete_checkpoint(steps[step]):
            if skipped:
                logger.warning(f"Skipping incomplete checkpoint(s) {skipped}; resuming from {steps[step]}.")
            return steps[step]
        skipped.append(steps[step])
    return None


def _what_can_resume(folder: str | os.PathLike) -> str:
    """Where one can resume from instead: the complete checkpoints in `folder`, or that there are none."""
    complete = complete_checkpoints(folder)
    if not complete:
        return f"{folder} holds no complete checkpoint"
    names = ", ".join(os.path.basename(path) for path in complete)
    return f"the complete checkpoints in {folder}: {names} (--resume_from_checkpoint True takes the last)"


def resolve_resume_checkpoint(
    resume_from_checkpoint: str | os.PathLike | bool | None, output_dir: str | os.PathLike
) -> str | os.PathLike | bool | None:
    """
    `resume_from_checkpoint` as `Trainer.train` should see it: `True` becomes the last complete checkpoint in
    `output_dir`, an explicit path must be a complete checkpoint, anything else is returned unchanged.

    Raises:
        `FileNotFoundError`: `True` and `output_dir` holds no complete checkpoint, or the path does not exist.
        `ValueError`: the path is a checkpoint interrupted while saving (or not a GramTrainer checkpoint).
        Each message names the complete checkpoints there are.
    """
    if resume_from_checkpoint is True:
        checkpoint = last_complete_checkpoint(output_dir)
        if checkpoint is None:
            raise FileNotFoundError(f"No checkpoint to resume from: {_what_can_resume(output_dir)}.")
        return checkpoint
    if isinstance(resume_from_checkpoint, str | os.PathLike):
        parent = os.path.dirname(os.path.normpath(resume_from_checkpoint)) or "."
        if not os.path.isdir(resume_from_checkpoint):
            raise FileNotFoundError(f"No such checkpoint: {resume_from_checkpoint}; {_what_can_resume(parent)}.")
        if not is_complete_checkpoint(resume_from_checkpoint):
            raise ValueError(
                f"{resume_from_checkpoint} is not a complete GramTrainer checkpoint (no {CHECKPOINT_COMPLETE_NAME}): "
                f"it was interrupted while saving or written by another trainer; {_what_can_resume(parent)}."
            )
    return resume_from_checkpoint


def save_checkpoint_crash_safe(
    save: Callable[[], None],
    run_dir: str | os.PathLike,
    args: TrainingArguments,
    state: TrainerState,
    barrier: Callable[[], None],
) -> None:
    """
    Runs `save` (the Trainer's own `_save_checkpoint`, which writes `checkpoint-<global_step>` in `run_dir`) so that an
    interruption never costs the last complete checkpoint: a folder of the same step (left incomplete by an
    interrupted save, or complete from a run this one resumed) is removed first; the folder is marked complete only
    after every process has written its part; and older checkpoints are rotated out (`args.save_total_limit`, the
    best checkpoint kept as the Trainer keeps it) only after that.

    Args:
        save (`Callable[[], None]`): writes the checkpoint; called on every process.
        run_dir (`str` or `os.PathLike`): the folder holding the checkpoints.
        args ([`~transformers.TrainingArguments`]): `should_save` and `save_total_limit` are read (the latter is
            switched off while `save` runs and restored afterwards).
        state ([`~transformers.TrainerState`]): `global_step` and `best_model_checkpoint` (which `save` may update).
        barrier (`Callable[[], None]`): waits for every process.
    """
    folder = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
    if args.should_save and os.path.isdir(folder):
        # Written over in place, a complete folder (from a run this one resumed) would keep its marker over a mix of
        # old and new files if this save were interrupted.
        how = "from an earlier run" if is_complete_checkpoint(folder) else "left incomplete by an interrupted save"
        logger.warning(f"Replacing {folder}, {how}.")
        shutil.rmtree(folder)
    barrier()
    save_total_limit = args.save_total_limit
    # Rotation must not delete the last complete checkpoint before this one is complete.
    args.save_total_limit = None
    try:
        save()
    finally:
        args.save_total_limit = save_total_limit
    barrier()
    if args.should_save:
        mark_checkpoint_complete(folder, state.global_step)
        if save_total_limit:
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=save_total_limit,
                best_model_checkpoint=state.best_model_checkpoint,
                use_mtime=True,
            )
    barrier()


__all__ = [
    "CHECKPOINT_COMPLETE_NAME",
    "GRAM_STATE_NAME",
    "GramState",
    "complete_checkpoints",
    "is_complete_checkpoint",
    "last_complete_checkpoint",
    "mark_checkpoint_complete",
    "resolve_resume_checkpoint",
    "save_checkpoint_crash_safe",
]
