"""The raw-format synthetic generators: determinism, the paper's presets under `scale`, the planted content signal."""

from __future__ import annotations

import filecmp
import math

import numpy as np
import pytest

from gram_hf.tasks.knowledge_tracing import (
    PRESETS,
    KTPreset,
    write_synthetic_duolingo,
    write_synthetic_ednet,
    write_synthetic_kt_csv,
    write_synthetic_poj,
)
from gram_hf.tasks.knowledge_tracing.synthetic import EASY_WORDS, HARD_WORDS


def test_presets_are_the_papers_counts():
    assert (PRESETS["en_es"].users, PRESETS["en_es"].items, PRESETS["en_es"].interactions) == (2643, 4628, 279_747)
    assert (PRESETS["fr_en"].users, PRESETS["fr_en"].items, PRESETS["fr_en"].interactions) == (1202, 4078, 174_749)
    assert (PRESETS["poj"].users, PRESETS["poj"].items, PRESETS["poj"].interactions) == (22_110, 2597, 898_384)
    toeic = PRESETS["toeic"]
    assert (toeic.users, toeic.items, toeic.interactions, toeic.cold_start_items) == (1_240_955, 9336, 94_300_000, 684)
    assert (
        PRESETS["en_es"].mean_text_tokens == 5.3
        and toeic.mean_text_tokens == 147
        and PRESETS["poj"].mean_text_tokens == 271
    )


def test_scaling_rules():
    preset = PRESETS["en_es"]
    assert preset.scaled(1.0) == (2643, 4628, 279_747, 200)
    users, items, interactions, cold = preset.scaled(0.01)
    assert users == 26 and interactions == 2797  # linear
    assert items == round(4628 * 0.1)  # sqrt(scale)
    assert cold == round(200 * items / 4628)
    assert PRESETS["toeic"].scaled(0.001)[3] == round(684 * PRESETS["toeic"].scaled(0.001)[1] / 9336)
    with pytest.raises(ValueError, match="scale"):
        preset.scaled(0)


@pytest.mark.parametrize(
    ("writer", "kwargs"),
    [
        (write_synthetic_duolingo, {"scale": 0.002}),
        (write_synthetic_ednet, {"scale": 0.00003, "text_tokens": 8}),
        (write_synthetic_poj, {"scale": 0.0003, "text_tokens": 12}),
        (write_synthetic_kt_csv, {"scale": 0.002}),
    ],
)
def test_deterministic_by_seed(tmp_path, writer, kwargs):
    first = writer(tmp_path / "a", seed=5, **kwargs)
    second = writer(tmp_path / "b", seed=5, **kwargs)
    third = writer(tmp_path / "c", seed=6, **kwargs)
    assert first.sequences == second.sequences and first.item_texts == second.item_texts
    assert third.sequences != first.sequences
    comparison = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only
    for sub in comparison.subdirs.values():
        assert not sub.diff_files


@pytest.mark.parametrize(
    ("writer", "preset", "scale", "kwargs"),
    [
        (write_synthetic_duolingo, "en_es", 0.01, {}),
        (write_synthetic_duolingo, "fr_en", 0.01, {}),
        (write_synthetic_poj, "poj", 0.001, {"text_tokens": 12}),
        (write_synthetic_ednet, "toeic", 0.00005, {"text_tokens": 8}),
    ],
)
def test_truth_matches_the_scaled_preset(tmp_path, writer, preset, scale, kwargs):
    truth = writer(tmp_path, preset, scale=scale, seed=0, **kwargs)
    users, items, interactions, cold = PRESETS[preset].scaled(scale)
    assert truth.num_users == users and truth.num_interactions == interactions
    assert len(truth.used_item_ids) <= items and truth.cold_start_items == cold
    assert min(truth.interactions_per_user.values()) >= 1
    for sequence in truth.sequences.values():
        assert sequence["timestamps"] == sorted(sequence["timestamps"])
        assert set(sequence["responses"]) <= {0, 1}
    if writer is not write_synthetic_ednet:
        assert len(truth.used_item_ids) == items  # every item occurs


def test_text_lengths_follow_the_preset(tmp_path):
    truth = write_synthetic_duolingo(tmp_path, "en_es", scale=0.01, seed=0)
    assert abs(np.mean([len(text.split()) for text in truth.item_texts]) - 5.3) < 0.6
    assert len(set(truth.item_texts)) == len(truth.item_texts)  # the sentence is the item id
    poj = write_synthetic_poj(tmp_path / "poj", scale=0.0002, seed=0)
    lengths = [len(text.split()) for text in poj.item_texts]
    assert 240 < np.mean(lengths) < 300


def test_planted_signal_difficulty_in_the_words_predicts_responses(tmp_path):
    truth = write_synthetic_kt_csv(tmp_path, "en_es", scale=0.05, seed=0)
    difficulty = truth.difficulty_of()
    for item_id, text in zip(truth.item_ids, truth.item_texts):
        words = text.replace('"', " ").replace(",", " ").split()
        hard = sum(word in HARD_WORDS for word in words)
        easy = sum(word in EASY_WORDS for word in words)
        assert difficulty[item_id] == pytest.approx((hard - easy) / (hard + easy))
    pairs = [(difficulty[item], response) for seq in truth.sequences.values()
             for item, response in zip(seq["item_ids"], seq["responses"])]  # fmt: skip
    easy = [response for value, response in pairs if value < -0.3]
    hard = [response for value, response in pairs if value > 0.3]
    assert len(easy) > 200 and len(hard) > 200
    assert np.mean(easy) - np.mean(hard) > 0.4
    # Ability is latent too: the learners' initial ability correlates with their success.
    ability = dict(zip(truth.user_ids, truth.user_ability))
    rates = [
        (ability[user], np.mean(seq["responses"]))
        for user, seq in truth.sequences.items()
        if len(seq["responses"]) > 20
    ]
    assert np.corrcoef(np.array(rates).T)[0, 1] > 0.3


def test_popularity_is_zipf_skewed(tmp_path):
    truth = write_synthetic_kt_csv(tmp_path, "poj", scale=0.005, seed=0, text_tokens=10)
    counts = {}
    for sequence in truth.sequences.values():
        for item in sequence["item_ids"]:
            counts[item] = counts.get(item, 0) + 1
    values = np.array(sorted(counts.values(), reverse=True))
    assert values[0] > 10 * np.median(values)


def test_custom_preset_and_bad_arguments(tmp_path):
    tiny = KTPreset("tiny", users=10, items=12, interactions=100, mean_text_tokens=6)
    truth = write_synthetic_kt_csv(tmp_path, tiny, scale=1.0, seed=0)
    assert truth.num_users == 10 and truth.num_interactions == 100 and len(truth.item_ids) == 12
    with pytest.raises(ValueError, match="Unknown preset"):
        write_synthetic_poj(tmp_path, "nope")
    with pytest.raises(ValueError, match="file_format"):
        write_synthetic_kt_csv(tmp_path, file_format="xlsx")
    assert math.isclose(truth.correct_rate, np.mean([r for s in truth.sequences.values() for r in s["responses"]]))
