"""ItemCatalog: ids <-> indices, ragged tokens, per-batch padding and length-sorted passes."""

from __future__ import annotations

import logging

import datasets
import pytest
import torch

from gram_hf import ItemCatalog
from gram_hf.items import special_token_template

MAX_LENGTH = 12
ITEM_IDS = ["q0", "q1", "q2", "q3", "q4", "q5"]
TEXTS = [
    "a short one",
    "a considerably longer question about rivers, markets and the weather in the city this morning",
    "",
    "medium length text about a garden",
    "x",
    "another fairly long item text that certainly needs truncation to twelve tokens",
]


@pytest.fixture
def catalog(tokenizer):
    return ItemCatalog(ITEM_IDS, TEXTS, tokenizer, max_length=MAX_LENGTH, tokenize_batch_size=4)


def reference_ids(tokenizer, text: str, max_length: int = MAX_LENGTH) -> list[int]:
    return tokenizer(text, truncation=True, max_length=max_length)["input_ids"]


def test_ids_and_indices(catalog):
    assert len(catalog) == catalog.num_items == 6
    assert catalog.item_ids == ITEM_IDS
    assert catalog.indices(["q3", "q0", "q3"]).tolist() == [3, 0, 3]
    assert catalog.indices(["q3"]).dtype == torch.long
    assert [catalog.item_ids[i] for i in catalog.indices(["q5", "q1"])] == ["q5", "q1"]


def test_non_string_ids_are_stringified(tokenizer):
    catalog = ItemCatalog([10, 20], ["a", "b"], tokenizer)
    assert catalog.item_ids == ["10", "20"]
    assert catalog.indices([20, "10"]).tolist() == [1, 0]


def test_unknown_id_raises_key_error_naming_it(catalog):
    with pytest.raises(KeyError, match="'nope'"):
        catalog.indices(["q1", "nope", "q2"])


def test_duplicate_ids_raise(tokenizer):
    with pytest.raises(ValueError, match="not unique") as info:
        ItemCatalog(["a", "b", "a"], ["x", "y", "z"], tokenizer)
    assert "'a'" in str(info.value)


def test_mismatched_lengths_raise(tokenizer):
    with pytest.raises(ValueError, match="differ in length"):
        ItemCatalog(["a", "b"], ["x"], tokenizer)


def test_too_small_max_length_raises(tokenizer):
    with pytest.raises(ValueError, match="max_length"):
        ItemCatalog(["a"], ["x"], tokenizer, max_length=1)


def test_tokens_match_the_tokenizer(catalog, tokenizer):
    for index, text in enumerate(TEXTS):
        expected = reference_ids(tokenizer, text)
        assert catalog.lengths[index].item() == len(expected)
        start = catalog.offsets[index].item()
        assert catalog.flat_input_ids[start : start + len(expected)].tolist() == expected


def test_batch_reproduces_tokenizer_ids_and_pads_to_batch_longest(catalog, tokenizer):
    indices = [0, 3, 4]
    expected = [reference_ids(tokenizer, TEXTS[i]) for i in indices]
    longest = max(len(ids) for ids in expected)
    assert longest < int(catalog.lengths.max())  # the batch is narrower than the catalog's longest item
    batch = catalog.batch(torch.tensor(indices))
    assert batch["input_ids"].shape == (3, longest)
    assert batch["attention_mask"].shape == (3, longest)
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.long
    for row, ids in enumerate(expected):
        assert batch["input_ids"][row, : len(ids)].tolist() == ids
        assert batch["attention_mask"][row].tolist() == [1] * len(ids) + [0] * (longest - len(ids))
        assert (batch["input_ids"][row, len(ids) :] == tokenizer.pad_token_id).all()


def test_batch_matches_tokenizer_padding(catalog, tokenizer):
    indices = [5, 2, 1, 0]
    batch = catalog.batch(indices)
    reference = tokenizer(
        [TEXTS[i] for i in indices], truncation=True, max_length=MAX_LENGTH, padding="longest", return_tensors="pt"
    )
    assert torch.equal(batch["input_ids"], reference["input_ids"])
    assert torch.equal(batch["attention_mask"], reference["attention_mask"])


def test_batch_allows_repeats(catalog):
    batch = catalog.batch([1, 4, 1, 1])
    assert batch["input_ids"].shape[0] == 4
    assert torch.equal(batch["input_ids"][0], batch["input_ids"][2])
    assert torch.equal(batch["input_ids"][0], batch["input_ids"][3])
    assert torch.equal(batch["input_ids"][1, :3], catalog.batch([4])["input_ids"][0])


def test_batch_of_last_item_alone(catalog, tokenizer):
    batch = catalog.batch([len(TEXTS) - 1])
    assert batch["input_ids"][0].tolist() == reference_ids(tokenizer, TEXTS[-1])
    assert batch["attention_mask"].all()


def test_empty_batch(catalog):
    batch = catalog.batch([])
    assert batch["input_ids"].shape[0] == 0
    assert batch["attention_mask"].shape[0] == 0


def test_truncation_to_max_length(catalog, tokenizer):
    assert int(catalog.lengths.max()) == MAX_LENGTH
    for index in (1, 5):
        assert catalog.lengths[index] == MAX_LENGTH
        ids = catalog.batch([index])["input_ids"][0].tolist()
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert ids == reference_ids(tokenizer, TEXTS[index])
        assert len(reference_ids(tokenizer, TEXTS[index], max_length=512)) > MAX_LENGTH


def test_num_tokens(catalog):
    assert catalog.num_tokens(torch.tensor([0, 1])) == int(catalog.lengths[0] + catalog.lengths[1])
    assert catalog.num_tokens(torch.tensor([2, 2])) == 2 * int(catalog.lengths[2])


def test_empty_texts_are_allowed_counted_and_warned(tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger="gram_hf.items"):
        catalog = ItemCatalog(["a", "b", "c", "d"], ["some text", "", "   ", None], tokenizer)
    assert catalog.num_empty_texts == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "gram_hf.items"]
    assert len(warnings) == 1
    assert "3 of 4 items have empty text" in warnings[0].getMessage()
    # an empty text is its special tokens only
    special_only = [tokenizer.cls_token_id, tokenizer.sep_token_id]
    assert catalog.batch([1])["input_ids"][0].tolist() == special_only
    assert catalog.batch([3])["input_ids"][0].tolist() == special_only


def test_no_warning_without_empty_texts(tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger="gram_hf.items"):
        catalog = ItemCatalog(["a", "b"], ["one", "two"], tokenizer)
    assert catalog.num_empty_texts == 0
    assert not [r for r in caplog.records if r.name == "gram_hf.items"]


def check_cover_and_order(catalog, batches, expected_indices, batch_size):
    flat = torch.cat(list(batches))
    assert sorted(flat.tolist()) == sorted(expected_indices)
    lengths = catalog.lengths[flat]
    assert (lengths[:-1] >= lengths[1:]).all()
    assert all(0 < len(b) <= batch_size for b in batches)
    assert all(len(b) == batch_size for b in batches[:-1])


@pytest.mark.parametrize("batch_size", [1, 2, 4, 100])
def test_length_sorted_batches_cover_catalog_longest_first(catalog, batch_size):
    batches = catalog.length_sorted_batches(batch_size=batch_size)
    check_cover_and_order(catalog, batches, list(range(len(TEXTS))), batch_size)


def test_length_sorted_batches_of_a_subset(catalog):
    subset = [4, 0, 3, 0]
    batches = catalog.length_sorted_batches(subset, batch_size=3)
    check_cover_and_order(catalog, batches, subset, 3)


def test_length_sorted_batches_rejects_non_positive_batch_size(catalog):
    with pytest.raises(ValueError, match="batch_size"):
        catalog.length_sorted_batches(batch_size=0)


def test_sorted_batches_yield_tokens_of_their_indices(catalog):
    seen = []
    widths = []
    for batch_indices, tokens in catalog.sorted_batches(batch_size=2):
        assert torch.equal(tokens["input_ids"], catalog.batch(batch_indices)["input_ids"])
        assert tokens["input_ids"].shape[1] == int(catalog.lengths[batch_indices].max())
        widths.append(tokens["input_ids"].shape[1])
        seen.extend(batch_indices.tolist())
    assert sorted(seen) == list(range(len(TEXTS)))
    assert widths == sorted(widths, reverse=True)
    lengths = catalog.lengths[torch.tensor(seen)]
    assert (lengths[:-1] >= lengths[1:]).all()


def test_from_dataset_equals_constructor(catalog, tokenizer):
    dataset = datasets.Dataset.from_dict({"item_id": ITEM_IDS, "text": TEXTS, "extra": list(range(len(TEXTS)))})
    from_dataset = ItemCatalog.from_dataset(dataset, tokenizer, max_length=MAX_LENGTH)
    assert from_dataset.item_ids == catalog.item_ids
    assert from_dataset.index == catalog.index
    assert from_dataset.max_length == catalog.max_length
    assert from_dataset.num_empty_texts == catalog.num_empty_texts == 1
    assert torch.equal(from_dataset.lengths, catalog.lengths)
    assert torch.equal(from_dataset.offsets, catalog.offsets)
    assert torch.equal(from_dataset.flat_input_ids, catalog.flat_input_ids)
    indices = [5, 0, 2]
    for key, value in catalog.batch(indices).items():
        assert torch.equal(from_dataset.batch(indices)[key], value)


def test_from_dataset_custom_columns_and_none_text(tokenizer):
    dataset = datasets.Dataset.from_dict({"qid": [7, 8], "body": ["hello", None]})
    from_dataset = ItemCatalog.from_dataset(dataset, tokenizer, id_column="qid", text_column="body")
    direct = ItemCatalog([7, 8], ["hello", None], tokenizer)
    assert from_dataset.item_ids == direct.item_ids == ["7", "8"]
    assert torch.equal(from_dataset.flat_input_ids, direct.flat_input_ids)
    assert from_dataset.num_empty_texts == direct.num_empty_texts == 1


@pytest.mark.parametrize("missing", ["item_id", "text"])
def test_from_dataset_missing_column_raises(tokenizer, missing):
    columns = {"item_id": ["a"], "text": ["x"]}
    del columns[missing]
    columns["other"] = ["y"]
    dataset = datasets.Dataset.from_dict(columns)
    with pytest.raises(ValueError, match=f"no column '{missing}'"):
        ItemCatalog.from_dataset(dataset, tokenizer)


# ------------------------------------------------------------------------------- multi-field text (news title, ...)

TITLES = ["a short title", "a considerably longer title about rivers, markets and the weather", "", "x"]
ABSTRACTS = ["an abstract", "", "", None]
BODIES = ["body text here that goes on and on and on", "b", "", "y"]


def field_ids(tokenizer, text, length):
    return tokenizer(text or "", add_special_tokens=False, truncation=True, max_length=length)["input_ids"]


def test_multi_field_per_field_truncation_and_special_tokens(tokenizer):
    lengths = (4, 3, 5)
    catalog = ItemCatalog.from_fields(
        ["n0", "n1", "n2", "n3"],
        {"title": TITLES, "abstract": ABSTRACTS, "body": BODIES},
        tokenizer,
        max_length=lengths,
    )
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for index in range(4):
        segments = [
            field_ids(tokenizer, text, length)
            for text, length in zip((TITLES[index], ABSTRACTS[index], BODIES[index]), lengths)
        ]
        expected = [cls]
        for segment in (s for s in segments if s):  # empty fields are skipped, no empty [SEP] [SEP] segment
            expected += segment + [sep]
        if expected == [cls]:
            expected = [cls, sep]
        assert catalog.batch([index])["input_ids"][0].tolist() == expected
    # the title is cut to 4 tokens even though the total budget is larger
    title, body = field_ids(tokenizer, TITLES[1], 4), field_ids(tokenizer, BODIES[1], 5)
    assert catalog.batch([1])["input_ids"][0].tolist() == [cls, *title, sep, *body, sep]
    assert catalog.max_length == sum(lengths) + 4  # [CLS] + 3 x [SEP]
    assert catalog.text_fields == ("title", "abstract", "body")
    assert catalog.field_max_lengths == lengths
    assert catalog.num_empty_texts == 1  # n2: every field empty


def test_multi_field_from_dataset_equals_from_fields(tokenizer):
    dataset = datasets.Dataset.from_dict(
        {"item_id": ["n0", "n1", "n2", "n3"], "title": TITLES, "abstract": ABSTRACTS, "body": BODIES}
    )
    from_dataset = ItemCatalog.from_dataset(dataset, tokenizer, text_column=["title", "abstract"], max_length=[5, 2])
    direct = ItemCatalog.from_fields(
        dataset["item_id"], {"title": TITLES, "abstract": ABSTRACTS}, tokenizer, max_length=[5, 2]
    )
    assert torch.equal(from_dataset.flat_input_ids, direct.flat_input_ids)
    assert torch.equal(from_dataset.lengths, direct.lengths)
    assert from_dataset.max_length == direct.max_length == 5 + 2 + 3
    assert from_dataset.text_fields == ("title", "abstract")
    # one int: the same budget for every field
    same = ItemCatalog.from_dataset(dataset, tokenizer, text_column=("title", "abstract"), max_length=3)
    assert same.field_max_lengths == (3, 3)
    # a one-element sequence is the per-field path: the budget excludes special tokens
    title_only = ItemCatalog.from_dataset(dataset, tokenizer, text_column=["title"], max_length=4)
    assert int(title_only.lengths.max()) == 6
    assert title_only.batch([1])["input_ids"][0].tolist() == [101, *field_ids(tokenizer, TITLES[1], 4), 102]


def test_single_column_path_is_unchanged(tokenizer):
    dataset = datasets.Dataset.from_dict({"item_id": ["a", "b"], "text": ["hello there world", "x"]})
    catalog = ItemCatalog.from_dataset(dataset, tokenizer, max_length=4)
    assert catalog.text_fields is None and catalog.field_max_lengths is None
    assert catalog.batch([0])["input_ids"][0].tolist() == reference_ids(tokenizer, "hello there world", 4)


@pytest.mark.parametrize(
    ("text_column", "max_length", "match"),
    [
        ("text", [4, 5], "With one text column max_length is one int"),
        (["title", "abstract"], [4], "1 max lengths for 2 text fields"),
        (["title", "abstract"], [4, 0], "positive integers"),
        (["title", "missing"], 4, "no column 'missing'"),
        ([], 4, "at least one column"),
    ],
)
def test_multi_field_invalid_arguments(tokenizer, text_column, max_length, match):
    dataset = datasets.Dataset.from_dict({"item_id": ["a"], "text": ["t"], "title": ["t"], "abstract": ["a"]})
    with pytest.raises(ValueError, match=match):
        ItemCatalog.from_dataset(dataset, tokenizer, text_column=text_column, max_length=max_length)


def test_from_fields_checks_lengths(tokenizer):
    with pytest.raises(ValueError, match="Field 'abstract' has 1 texts for 2 item_ids"):
        ItemCatalog.from_fields(["a", "b"], {"title": ["x", "y"], "abstract": ["z"]}, tokenizer, max_length=4)


def test_special_token_template_of_bert(tokenizer):
    template = special_token_template(tokenizer)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert template.join([]) == [cls, sep]
    assert template.join([[7]]) == [cls, 7, sep]
    assert template.join([[7], [8, 9], [10]]) == [cls, 7, sep, 8, 9, sep, 10, sep]
    # two fields are wrapped exactly as the tokenizer wraps a text pair
    pair = tokenizer("first words", "second")["input_ids"]
    first, second = field_ids(tokenizer, "first words", 10), field_ids(tokenizer, "second", 10)
    assert template.join([first, second]) == pair
    assert template.max_length([24, 50]) == 24 + 50 + 3
