"""MIND leaderboard files: ranks, prediction.txt / prediction.zip, and conversion of trainer.predict output."""

from __future__ import annotations

import zipfile

import datasets
import numpy as np
import pytest
from transformers.trainer_utils import PredictionOutput

from gram_hf.tasks.news_recommendation import (
    rank_candidates,
    scores_from_predictions,
    write_mind_prediction,
    write_mind_prediction_from_output,
)


def test_rank_candidates_highest_first_ties_by_original_order():
    assert rank_candidates([0.1, 0.9, 0.5]) == [3, 1, 2]
    assert rank_candidates([2.0, 2.0, 3.0, 2.0]) == [2, 3, 1, 4]
    assert rank_candidates(np.array([-1.0])) == [1]
    with pytest.raises(ValueError, match="at least one"):
        rank_candidates([])
    with pytest.raises(ValueError, match="finite"):
        rank_candidates([0.0, float("nan")])


def read_lines(output_dir):
    text = (output_dir / "prediction.txt").read_text(encoding="utf-8")
    with zipfile.ZipFile(output_dir / "prediction.zip") as archive:
        assert archive.namelist() == ["prediction.txt"]
        assert archive.read("prediction.txt").decode("utf-8") == text
    return text.splitlines()


def test_write_mind_prediction_one_permutation_per_impression(tmp_path):
    generator = np.random.default_rng(0)
    sizes = [1, 2, 5, 37, 3]
    scores = [generator.normal(size=size) for size in sizes]
    scores[2][[0, 3]] = 7.0  # a tie
    path = write_mind_prediction([1, 2, 3, 4, 5], scores, tmp_path / "submission")
    assert path == tmp_path / "submission" / "prediction.zip"
    lines = read_lines(tmp_path / "submission")
    assert len(lines) == 5
    for line, impression_id, impression_scores in zip(lines, [1, 2, 3, 4, 5], scores):
        head, ranks_text = line.split(" ")
        assert head == str(impression_id)
        assert ranks_text.startswith("[") and ranks_text.endswith("]")
        ranks = [int(r) for r in ranks_text[1:-1].split(",")]
        assert sorted(ranks) == list(range(1, len(impression_scores) + 1))
        assert ranks[int(np.argmax(impression_scores))] == 1
    assert lines[2].split(" ")[1].startswith("[1,") and lines[0] == "1 [1]"


def test_validation_against_behaviors_file(tmp_path):
    behaviors = tmp_path / "behaviors.tsv"
    behaviors.write_text("7\tU1\t11/15/2019 8:00:00 AM\tN1\tN2 N3\n9\tU2\t11/15/2019 9:00:00 AM\t\tN4 N5 N6\n")
    write_mind_prediction([7, 9], [[0.2, 0.1], [1, 3, 2]], tmp_path / "ok", behaviors_file=behaviors)
    assert read_lines(tmp_path / "ok") == ["7 [1,2]", "9 [3,1,2]"]
    with pytest.raises(ValueError, match="has 2 impressions, the prediction 1"):
        write_mind_prediction([7], [[0.2, 0.1]], tmp_path / "bad", behaviors_file=behaviors)
    with pytest.raises(ValueError, match="line 2 of .* is impression 9 with 3 candidates"):
        write_mind_prediction([7, 9], [[0.2, 0.1], [1, 3]], tmp_path / "bad", behaviors_file=behaviors)
    with pytest.raises(ValueError, match="must align"):
        write_mind_prediction([7, 9], [[0.2, 0.1]], tmp_path / "bad")
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def padded(rows, pad=-100):
    width = max(len(row) for row in rows)
    return np.array([list(row) + [pad] * (width - len(row)) for row in rows], dtype=np.float32)


def test_from_trainer_output(tmp_path):
    dataset = datasets.Dataset.from_dict(
        {"impression_id": [11, 12, 13], "candidates": [[4, 5, 6], [7], [1, 4]], "labels": [[-1] * 3, [-1], [-1] * 2]}
    )
    scores = padded([[0.5, 0.7, 0.1], [3.0], [0.0, 1.0]])
    scored_items = padded([[4, 5, 6], [7], [1, 4]]).astype(np.int64)
    output = PredictionOutput(
        predictions=(scores, scored_items), label_ids=padded([[-1] * 3, [-1], [-1] * 2]), metrics={}
    )
    ids, per_impression = scores_from_predictions(output, dataset)
    assert ids == [11, 12, 13]
    assert [list(s) for s in per_impression] == [[0.5, 0.7, 0.1], [3.0], [0.0, 1.0]]
    write_mind_prediction_from_output(output, dataset, tmp_path)
    assert read_lines(tmp_path) == ["11 [2,1,3]", "12 [1]", "13 [2,1]"]
    # the bare predictions pair works too
    assert scores_from_predictions(output.predictions, dataset)[0] == [11, 12, 13]


def test_from_trainer_output_rejects_mismatches():
    dataset = datasets.Dataset.from_dict({"impression_id": [1, 2], "candidates": [[4, 5], [6]]})
    scores = padded([[0.1, 0.2], [0.3]])
    with pytest.raises(ValueError, match="scored candidates differ"):
        scores_from_predictions((scores, padded([[5, 4], [6]]).astype(np.int64)), dataset)
    with pytest.raises(ValueError, match="do not match the 2 rows"):
        scores_from_predictions((scores[:1], padded([[4, 5]]).astype(np.int64)), dataset)
    with pytest.raises(ValueError, match="repeats impression ids"):
        scores_from_predictions(
            (scores, padded([[4, 5], [6]]).astype(np.int64)),
            datasets.Dataset.from_dict({"impression_id": [1, 1], "candidates": [[4, 5], [6]]}),
        )
    with pytest.raises(ValueError, match="scores, scored_items"):
        scores_from_predictions(scores, dataset)
