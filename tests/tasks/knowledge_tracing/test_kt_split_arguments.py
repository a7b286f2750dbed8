"""KnowledgeTracingSplitArguments: one definition of the split options for the loaders, recipes and dataset scripts."""

from __future__ import annotations

import dataclasses

import datasets
import pytest
from transformers import HfArgumentParser

from gram_hf.scripts import KnowledgeTracingArguments
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingSplitArguments, build_interaction_data, load_kt_csv
from gram_hf.tasks.knowledge_tracing.cli import parse_prepare_arguments, prepare_argument_parser

SPLIT_FIELDS = ["max_seq_len", "test_fraction", "validation_fraction", "cold_start_items", "split_seed",
                "min_interactions", "strict"]  # fmt: skip


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def test_fields_have_help_and_paper_defaults():
    fields = dataclasses.fields(KnowledgeTracingSplitArguments)
    assert [field.name for field in fields] == SPLIT_FIELDS
    assert all(field.metadata.get("help") for field in fields)
    split = KnowledgeTracingSplitArguments()
    assert (split.max_seq_len, split.test_fraction, split.validation_fraction) == (100, 0.2, 0.1)
    assert (split.cold_start_items, split.split_seed, split.min_interactions, split.strict) == (200, 0, 1, False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(150, 150), ("200", 200), (" 0 ", 0), ("id1,id2", ["id1", "id2"]), ("a, b,", ["a", "b"]), (["x", 3], ["x", "3"]),
     (("q1",), ["q1"]), ("", []), (None, 200)],
)  # fmt: skip
def test_cold_start_items_accepts_counts_lists_and_command_line_text(value, expected):
    assert KnowledgeTracingSplitArguments(cold_start_items=value).cold_start_items == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_seq_len": 0}, ValueError, "max_seq_len must be >= 1, got 0"),
        ({"test_fraction": 1.0}, ValueError, r"must be in \[0, 1\), got 1.0 and 0.1"),
        ({"validation_fraction": -0.1}, ValueError, "validation_fraction"),
        ({"min_interactions": 0}, ValueError, "min_interactions must be >= 1"),
        ({"cold_start_items": -3}, ValueError, "cold_start_items=-3 must be >= 0"),
        ({"cold_start_items": "-3"}, ValueError, "cold_start_items=-3 must be >= 0"),
        ({"cold_start_items": True}, TypeError, "count or a list of item ids"),
    ],
)
def test_invalid_values_fail_on_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        KnowledgeTracingSplitArguments(**kwargs)


def test_from_options_replaces_fields_maps_seed_and_names_unknown_keywords():
    base = KnowledgeTracingSplitArguments(max_seq_len=20, split_seed=5)
    merged = KnowledgeTracingSplitArguments.from_options(base, {"seed": 7, "cold_start_items": "3"}, caller="f")
    assert (merged.max_seq_len, merged.split_seed, merged.cold_start_items) == (20, 7, 3)
    assert base.split_seed == 5  # the given object is left as it is
    with pytest.raises(TypeError, match=r"f\(\) got an unexpected keyword argument 'max_len'.*max_seq_len"):
        KnowledgeTracingSplitArguments.from_options(None, {"max_len": 3}, caller="f")
    with pytest.raises(TypeError, match="'split_seed' twice: as 'seed' and as 'split_seed'"):
        KnowledgeTracingSplitArguments.from_options(None, {"seed": 1, "split_seed": 2}, caller="f")
    with pytest.raises(TypeError, match="split must be a KnowledgeTracingSplitArguments, got dict"):
        KnowledgeTracingSplitArguments.from_options({"max_seq_len": 3}, {}, caller="f")
    # A subclass (a recipe's arguments) gives its split fields only.
    recipe = KnowledgeTracingArguments(max_seq_len=30, features="part")
    assert type(KnowledgeTracingSplitArguments.from_options(recipe)) is KnowledgeTracingSplitArguments


def generic_files(tmp_path):
    rows = [f"u{user},i{(user * 3 + step) % 12},{step},{(user + step) % 2}" for user in range(20) for step in range(6)]
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp,correct\n" + "\n".join(rows) + "\n")
    (tmp_path / "items.csv").write_text("item_id,text\n" + "".join(f"i{i},text {i}\n" for i in range(12)))
    return str(tmp_path / "interactions.csv"), str(tmp_path / "items.csv")


def test_loaders_take_keywords_or_a_split_object_alike(tmp_path):
    interactions, items = generic_files(tmp_path)
    cache = tmp_path / "cache"
    by_keywords = load_kt_csv(interactions, items, cold_start_items=2, max_seq_len=4, seed=3, cache_dir=cache)
    split = KnowledgeTracingSplitArguments(cold_start_items=2, max_seq_len=4, split_seed=3)
    by_object = load_kt_csv(interactions, items, split=split, cache_dir=cache)
    for name in ("train", "validation", "test"):
        assert by_object[name].to_dict() == by_keywords[name].to_dict()
    assert by_object.stats == by_keywords.stats
    assert by_keywords.stats["split"]["seed"] == 3 and by_keywords.stats["max_seq_len"] == 4
    # Keywords replace the fields of `split`.
    replaced = load_kt_csv(interactions, items, split=split, max_seq_len=2, cache_dir=cache)
    assert replaced.stats["max_seq_len"] == 2 and replaced.stats["split"]["seed"] == 3


def test_loaders_reject_unknown_keywords_and_bad_values_before_reading(tmp_path):
    with pytest.raises(TypeError, match=r"load_kt_csv\(\) got an unexpected keyword argument 'max_seqlen'"):
        load_kt_csv(tmp_path / "absent.csv", tmp_path / "absent.csv", max_seqlen=5)
    with pytest.raises(ValueError, match="max_seq_len must be >= 1"):
        load_kt_csv(tmp_path / "absent.csv", tmp_path / "absent.csv", max_seq_len=0)
    with pytest.raises(TypeError, match=r"build_interaction_data\(\) got an unexpected keyword argument 'sead'"):
        build_interaction_data(datasets.Dataset.from_dict({"user_id": []}), sead=1)


def test_recipe_flags_parse_into_the_split():
    parser = HfArgumentParser(KnowledgeTracingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        ["--max_seq_len", "50", "--test_fraction", "0.3", "--validation_fraction", "0.2", "--cold_start_items",
         "q1,q2", "--split_seed", "4", "--min_interactions", "2", "--strict"]
    )  # fmt: skip
    kwargs = args.canonical_kwargs()
    assert set(kwargs) == {"split", "cache_dir"}
    assert kwargs["split"] == KnowledgeTracingSplitArguments(50, 0.3, 0.2, ["q1", "q2"], 4, 2, True)
    (default,) = parser.parse_args_into_dataclasses([])
    assert default.canonical_kwargs()["split"] == KnowledgeTracingSplitArguments()
    assert default.canonical_kwargs(cold_start_items=12)["split"].cold_start_items == 12
    (count,) = parser.parse_args_into_dataclasses(["--cold-start-items", "684"])
    assert count.canonical_kwargs()["split"].cold_start_items == 684
    with pytest.raises(ValueError, match="test_fraction"):
        parser.parse_args_into_dataclasses(["--test_fraction", "1"])


def test_dataset_script_parser_has_the_split_options_and_seed_alias():
    parser = prepare_argument_parser("prepare something")
    parser.add_argument("--data_dir", required=True)
    split, args = parse_prepare_arguments(
        parser, ["--data_dir", "d", "--output_dir", "o", "--seed", "9", "--cold_start_items", "a,b", "--strict"]
    )
    assert split == KnowledgeTracingSplitArguments(cold_start_items=["a", "b"], split_seed=9, strict=True)
    assert (args.data_dir, args.output_dir, args.cache_dir, args.push_to_hub) == ("d", "o", None, None)
    split, _ = parse_prepare_arguments(parser, ["--data_dir", "d", "--output_dir", "o", "--split_seed", "2"])
    assert split.split_seed == 2 and split.cold_start_items == 200
