"""
The synthetic structure option family (`gram_hf.tasks.synthetic_structure`): its validation and named settings, the
helpers every generator draws with, and the planted default, which must write byte for byte what every generator
wrote before the option existed.

The reference hashes below were computed from the generators before `structure` was added (same arguments, same
hashing). numpy's `Generator` streams are stable across its releases in practice; should a numpy release change a
distribution's stream, these hashes, not the generators, need regenerating.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from transformers import HfArgumentParser

from gram_hf.tasks.knowledge_tracing import (
    make_synthetic_knowledge_tracing,
    write_synthetic_duolingo,
    write_synthetic_ednet,
    write_synthetic_kt_csv,
    write_synthetic_poj,
)
from gram_hf.tasks.news_recommendation import make_synthetic_mind
from gram_hf.tasks.next_item import make_synthetic_amazon, make_synthetic_movielens
from gram_hf.tasks.synthetic_structure import (
    SYNTHETIC_STRUCTURES,
    ItemStructure,
    SyntheticStructure,
    choose_weak,
    mix_factors,
    resolve_structure,
    share_texts,
    top_share,
)

# ---------------------------------------------------------------------------------------------------------------------
# The option family
# ---------------------------------------------------------------------------------------------------------------------


def test_named_settings():
    planted, realistic = resolve_structure("planted"), resolve_structure("realistic")
    assert planted == SyntheticStructure() and planted.is_planted and planted.name == "planted"
    assert resolve_structure(None) == planted
    assert realistic.name == "realistic" and not realistic.is_planted
    assert realistic.text_signal < 1 and realistic.latent_dim > 0 and realistic.popularity_skew is not None
    assert realistic.shared_text_fraction > 0 and realistic.weak_text_fraction > 0
    custom = dataclasses.replace(realistic, text_signal=0.5)
    assert resolve_structure(custom) is custom and custom.name == "custom"
    assert planted.popularity_exponent(1.1) == 1.1 and realistic.popularity_exponent(1.1) == realistic.popularity_skew
    assert SyntheticStructure(**realistic.to_dict()) == realistic
    for item in dataclasses.fields(SyntheticStructure):
        assert item.metadata["help"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text_signal": 0.0, "latent_dim": 4}, "text_signal"),
        ({"text_signal": 1.5}, "text_signal"),
        ({"shared_text_fraction": 1.0}, "shared_text_fraction"),
        ({"weak_text_fraction": -0.1}, "weak_text_fraction"),
        ({"latent_dim": -1}, "latent_dim"),
        ({"latent_dim": 2.5}, "latent_dim"),
        ({"popularity_skew": -1.0}, "popularity_skew"),
        ({"text_signal": 0.5}, "needs latent_dim >= 1"),
    ],
)
def test_invalid_settings_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticStructure(**kwargs)


def test_parsed_from_the_command_line():
    parser = HfArgumentParser(SyntheticStructure)
    (parsed,) = parser.parse_args_into_dataclasses(["--text_signal", "0.4", "--latent_dim", "4"])
    assert parsed == SyntheticStructure(text_signal=0.4, latent_dim=4)
    assert parser.parse_args_into_dataclasses([])[0].is_planted


def test_unknown_name_lists_the_settings():
    with pytest.raises(ValueError, match="'planted', 'realistic'"):
        resolve_structure("strong")


# ---------------------------------------------------------------------------------------------------------------------
# The helpers
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_share_texts_groups(fraction):
    rng = np.random.default_rng(0)
    strata = rng.integers(0, 5, size=400)
    source = share_texts(400, fraction, rng, strata)
    counts = np.bincount(source, minlength=400)
    shared = counts[source] > 1
    assert shared.sum() == round(fraction * 400)  # exactly the asked share
    groups = [np.flatnonzero(source == leader) for leader in np.flatnonzero(counts > 1)]
    assert all(2 <= len(group) <= 5 for group in groups)  # pairs to fours (one group may take a last item)
    assert all(len(set(strata[group].tolist())) == 1 for group in groups)  # never across strata
    assert all(source[leader] == leader for leader in np.flatnonzero(counts > 1))


def test_helpers_draw_nothing_when_planted():
    rng = np.random.default_rng(0)
    part = rng.normal(size=(50, 3))
    state = rng.bit_generator.state
    assert (share_texts(50, 0.0, rng) == np.arange(50)).all()
    assert not choose_weak(50, 0.0, rng).any()
    factors, text_factors = mix_factors(part, 1.0, np.zeros(50, dtype=bool), rng)
    assert rng.bit_generator.state == state
    np.testing.assert_array_equal(factors, part)
    np.testing.assert_array_equal(text_factors, part)


def test_mixed_factors_keep_the_scale_and_the_text_share():
    rng = np.random.default_rng(0)
    topics = rng.integers(0, 10, size=20_000)
    part = rng.normal(size=(10, 4))[topics]
    weak = choose_weak(20_000, 0.2, rng)
    factors, text_factors = mix_factors(part, 0.3, weak, rng)
    planted = ItemStructure(
        SYNTHETIC_STRUCTURES["realistic"], factors, text_factors, np.arange(20_000), weak, np.zeros(20_000)
    )
    assert factors.std(axis=0) == pytest.approx(part.std(axis=0), rel=0.05)
    assert planted.text_explained_share == pytest.approx(0.8 * 0.3, abs=0.02)
    one_hot = np.eye(10)[topics]
    assert planted.explained_by(one_hot, ~weak) == pytest.approx(0.3, abs=0.02)  # the text's share where it speaks
    assert planted.explained_by(one_hot, weak) == pytest.approx(0.0, abs=0.02)  # nothing where it is generic
    assert (text_factors[weak] == 0).all()


def test_top_share():
    assert top_share(np.array([90, 5, 5] + [0] * 7)) == pytest.approx(0.9)
    assert top_share(np.ones(100)) == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------------------------------------
# Planted = the generators' historical output, byte for byte
# ---------------------------------------------------------------------------------------------------------------------


def tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def values_hash(*values) -> str:
    digest = hashlib.sha256()
    for value in values:
        if isinstance(value, np.ndarray):
            digest.update(np.ascontiguousarray(value).tobytes() + str(value.dtype).encode())
        else:
            digest.update(json.dumps(value, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


KT_REFERENCES = {
    "duolingo": (write_synthetic_duolingo, {"scale": 0.002, "seed": 5}, "f5b92b34c98feaf8", "b065ab5161f39d1f"),
    "duolingo_2017": (
        write_synthetic_duolingo,
        {"preset": "fr_en", "scale": 0.002, "seed": 1, "date": "20171218"},
        "64ca142e89ccd652",
        "8dba869b6526072e",
    ),
    "ednet": (write_synthetic_ednet, {"scale": 0.00003, "text_tokens": 8, "seed": 5}, "a83e62eb9d7a9a19",
              "9a071d3fa878c363"),
    "poj": (write_synthetic_poj, {"scale": 0.0003, "text_tokens": 12, "seed": 5}, "7b6d9cfe45cf7806",
            "77a928cd11eaa16f"),
    "kt_csv": (write_synthetic_kt_csv, {"scale": 0.002, "seed": 5}, "ae0547ba44fa6fa8", "e6be0b14945a79c1"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(KT_REFERENCES))
@pytest.mark.parametrize("structure", [None, "planted", SyntheticStructure()])
def test_planted_kt_raw_files_are_unchanged(tmp_path, name, structure):
    writer, kwargs, files_hash, truth_hash = KT_REFERENCES[name]
    options = {} if structure is None else {"structure": structure}
    truth = writer(tmp_path, **kwargs, **options)
    assert tree_hash(tmp_path) == files_hash
    assert (
        values_hash(
            truth.item_ids,
            truth.item_texts,
            truth.item_difficulty,
            truth.user_ids,
            truth.user_ability,
            truth.sequences,
        )
        == truth_hash
    )
    planted = truth.item_structure
    assert planted.structure.is_planted and planted.shared_text_fraction == 0.0
    assert planted.text_explained_share == 1.0 and planted.factors.shape == (len(truth.item_ids), 1)
    np.testing.assert_array_equal(planted.factors[:, 0], truth.item_difficulty)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"seed": 3}, "d64844eeec88071a"),
        ({"num_users": 30, "num_items": 24, "min_length": 4, "max_length": 12, "seed": 3}, "9dfaa451286489eb"),
    ],
)
def test_planted_in_memory_kt_is_unchanged(kwargs, expected):
    data = make_synthetic_knowledge_tracing(**kwargs)
    assert (
        values_hash(data.item_ids, data.texts, data.difficulty, data.train.to_list(), data.test.to_list()) == expected
    )
    assert data.item_structure.structure.is_planted and data.item_structure.text_explained_share == 1.0


def test_planted_mind_is_unchanged(tmp_path):
    truth = make_synthetic_mind(
        tmp_path, "large", seed=2, num_users=40, num_news=120, train_impressions=30, dev_impressions=10,
        test_impressions=10, with_body=True, structure="planted",
    )  # fmt: skip
    assert tree_hash(tmp_path) == "3fe9049aef4890d9"
    assert values_hash(truth.news_ids, truth.news_topics, truth.user_ids, truth.user_preferences) == "683b68944105d56f"
    planted = truth.item_structure
    np.testing.assert_array_equal(planted.factors.argmax(axis=1), truth.news_topics)
    assert planted.text_explained_share == 1.0 and truth.user_tastes is None


@pytest.mark.parametrize(
    ("generator", "files_hash", "truth_hash"),
    [
        (make_synthetic_movielens, "038596c2ae1b8d8e", "862e6a5a38c9c8c0"),
        (make_synthetic_amazon, "ea1804483fca089a", "01e892fb59a865fc"),
    ],
)
def test_planted_next_item_is_unchanged(tmp_path, generator, files_hash, truth_hash):
    truth = generator(tmp_path, num_users=60, num_items=50, seed=2, structure="planted")
    assert tree_hash(tmp_path) == files_hash
    assert values_hash(truth.item_ids, truth.topics, truth.new_items) == truth_hash
    np.testing.assert_array_equal(truth.item_structure.factors.argmax(axis=1), truth.topics)


@pytest.mark.parametrize(
    ("generator", "kwargs"),
    [
        (write_synthetic_duolingo, {"scale": 0.002}),
        (write_synthetic_ednet, {"scale": 0.00003, "text_tokens": 8}),
        (write_synthetic_poj, {"scale": 0.0003, "text_tokens": 12}),
        (write_synthetic_kt_csv, {"scale": 0.002}),
        (make_synthetic_mind, {"num_users": 30, "num_news": 80, "train_impressions": 20, "dev_impressions": 10}),
        (make_synthetic_movielens, {"num_users": 40, "num_items": 40}),
        (make_synthetic_amazon, {"num_users": 40, "num_items": 40}),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_realistic_is_deterministic_and_differs_from_planted(tmp_path, generator, kwargs):
    hashes = []
    for name, structure, seed in (("a", "realistic", 4), ("b", "realistic", 4), ("c", "realistic", 5), ("p", None, 4)):
        generator(tmp_path / name, seed=seed, **kwargs, **({"structure": structure} if structure else {}))
        hashes.append(tree_hash(tmp_path / name))
    assert hashes[0] == hashes[1] and len(set(hashes)) == 3
