"""MIND leaderboard submissions: `prediction.txt` (one ranking per impression) zipped as `prediction.zip`."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import datasets

PREDICTION_FILENAME = "prediction.txt"
ZIP_FILENAME = "prediction.zip"


def rank_candidates(scores: Sequence[float] | np.ndarray) -> list[int]:
    """
    The 1-based rank of each candidate, in the candidates' original order: the highest score gets rank 1. Ties are
    broken by the original order (the earlier candidate ranks higher), so the ranking is deterministic.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        raise ValueError("An impression needs at least one candidate score.")
    if not np.isfinite(scores).all():
        raise ValueError(f"Scores must be finite, got {scores[~np.isfinite(scores)][:5].tolist()}.")
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(scores.size, dtype=np.int64)
    ranks[order] = np.arange(1, scores.size + 1)
    return ranks.tolist()


def _read_impression_sizes(behaviors_file: str | os.PathLike) -> list[tuple[str, int]]:
    sizes = []
    with open(behaviors_file, encoding="utf-8", newline="\n") as handle:
        for line in handle:
            line = line.rstrip("\r\n")
            if line.strip():
                columns = line.split("\t")
                sizes.append((columns[0], len(columns[4].split()) if len(columns) == 5 else -1))
    return sizes


def _atomic_write(path: Path, write) -> None:
    # Written next to the target and renamed, so an interrupted run never leaves a truncated submission.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_mind_prediction(
    impression_ids: Sequence[int | str],
    scores_per_impression: Sequence[Sequence[float] | np.ndarray],
    output_dir: str | os.PathLike,
    behaviors_file: str | os.PathLike | None = None,
) -> Path:
    """
    Writes a MIND leaderboard submission: `output_dir/prediction.txt` with one line per impression,
    `ImpressionID [r1,r2,...]` where `r_k` is the 1-based rank of the impression's k-th candidate (original order;
    highest score = rank 1, ties broken by original order), and `output_dir/prediction.zip` holding it.

    The scorer reads the submission line by line against its truth file, so impressions must come in the order of
    `behaviors.tsv` with all their candidates: pass `behaviors_file` to check exactly that before writing (a loader
    that dropped candidates absent from `news.tsv` would otherwise yield a submission the scorer rejects).

    Args:
        impression_ids (`Sequence[int | str]`): the impressions' ids, in file order.
        scores_per_impression (`Sequence[Sequence[float]]`): per impression, the score of each candidate in its
            original order (no padding).
        output_dir (`str` or `os.PathLike`): created if needed.
        behaviors_file (`str` or `os.PathLike`, *optional*): the split's `behaviors.tsv` to validate against.

    Returns:
        `Path`: the path of `prediction.zip`.
    """
    if len(impression_ids) != len(scores_per_impression):
        raise ValueError(
            f"{len(impression_ids)} impression ids but {len(scores_per_impression)} score lists; they must align."
        )
    rankings = [rank_candidates(scores) for scores in scores_per_impression]
    if behaviors_file is not None:
        expected = _read_impression_sizes(behaviors_file)
        if len(expected) != len(rankings):
            raise ValueError(
                f"{behaviors_file} has {len(expected)} impressions, the prediction {len(rankings)}; the leaderboard "
                "needs every impression, in file order."
            )
        for position, ((expected_id, size), impression_id, ranking) in enumerate(
            zip(expected, impression_ids, rankings)
        ):
            if str(impression_id) != expected_id or size != len(ranking):
                raise ValueError(
                    f"Impression {position} of the prediction is {impression_id} with {len(ranking)} candidates, but "
                    f"line {position + 1} of {behaviors_file} is impression {expected_id} with {size} candidates."
                )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(
        f"{impression_id} [{','.join(map(str, ranking))}]\n"
        for impression_id, ranking in zip(impression_ids, rankings)
    )

    def write_text(path: str) -> None:
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)

    def write_zip(path: str) -> None:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(PREDICTION_FILENAME, text)

    _atomic_write(output_dir / PREDICTION_FILENAME, write_text)
    _atomic_write(output_dir / ZIP_FILENAME, write_zip)
    return output_dir / ZIP_FILENAME


def scores_from_predictions(
    predictions: Any, dataset: datasets.Dataset, candidates_column: str = "candidates"
) -> tuple[list[int], list[np.ndarray]]:
    """
    `(impression_ids, scores_per_impression)` from `trainer.predict(split)` on a whole-impression split (validation,
    dev or test).

    Args:
        predictions: the `PredictionOutput` of `GramTrainer.predict`, or its `predictions`: the pair `(scores,
            scored_items)`, both `[N, C]` padded (`scored_items` = catalog index of each scored candidate, -100 for
            padding).
        dataset (`datasets.Dataset`): the split that was predicted, in the same order (its `impression_id` and
            candidate columns); each impression must be one row.
        candidates_column (`str`, *optional*, defaults to `"candidates"`).
    """
    predictions = getattr(predictions, "predictions", predictions)
    if not (isinstance(predictions, (tuple, list)) and len(predictions) == 2):
        raise ValueError(
            "Expected the (scores, scored_items) pair GramTrainer.predict returns for the news-recommendation head."
        )
    scores, scored_items = (np.asarray(part) for part in predictions)
    impression_ids = list(dataset["impression_id"])
    if scores.shape != scored_items.shape or scores.shape[0] != len(impression_ids):
        raise ValueError(
            f"Predictions of shape {scores.shape} / {scored_items.shape} do not match the {len(impression_ids)} "
            "rows of the dataset."
        )
    if len(set(impression_ids)) != len(impression_ids):
        raise ValueError(
            "The dataset repeats impression ids: it is a training split (one row per click); predict on a "
            "whole-impression split (validation, dev or test)."
        )
    per_impression = []
    for row, candidates in enumerate(dataset[candidates_column]):
        mask = scored_items[row] != -100
        if mask.sum() != len(candidates) or not np.array_equal(scored_items[row][mask], np.asarray(candidates)):
            raise ValueError(
                f"Row {row} (impression {impression_ids[row]}): the scored candidates differ from the dataset's; "
                "predict the dataset in its order (no shuffling)."
            )
        per_impression.append(scores[row][mask])
    return impression_ids, per_impression


def write_mind_prediction_from_output(
    predictions: Any,
    dataset: datasets.Dataset,
    output_dir: str | os.PathLike,
    behaviors_file: str | os.PathLike | None = None,
) -> Path:
    """[`write_mind_prediction`] of `trainer.predict(dataset)` (see [`scores_from_predictions`])."""
    impression_ids, scores = scores_from_predictions(predictions, dataset)
    return write_mind_prediction(impression_ids, scores, output_dir, behaviors_file=behaviors_file)


__all__ = [
    "PREDICTION_FILENAME",
    "ZIP_FILENAME",
    "rank_candidates",
    "scores_from_predictions",
    "write_mind_prediction",
    "write_mind_prediction_from_output",
]
