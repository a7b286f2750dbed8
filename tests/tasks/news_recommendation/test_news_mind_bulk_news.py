"""
load_mind's `news.tsv` bulk (pyarrow) path reads what its line-by-line path reads, or hands the file to it (issue
17): the columns, the entity lists (by pyarrow's JSON reader where it reads as `json.loads` does), the catalog and the
news stats.
"""

from __future__ import annotations

import json

import datasets
import pyarrow as pa
import pytest

from gram_hf.raw_files import DataFileError, iter_lines
from gram_hf.tasks.news_recommendation import load_mind, mind_builder, mind_parsing
from gram_hf.tasks.news_recommendation.mind_parsing import (
    parse_entities,
    parse_entity_column,
    parse_news_line,
    read_behaviors_table,
    read_news_columns,
    read_news_ids,
)


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def entity(wikidata_id, **fields):
    return {"Label": "A label", "Type": "P", "WikidataId": wikidata_id, "Confidence": 1.0, **fields}


# Entity columns as MIND writes them, and the other JSON `json.loads` reads (each read into WikidataIds).
ENTITY_COLUMNS = [
    json.dumps([entity("Q1", OccurrenceOffsets=[0, 7], SurfaceForms=['say "hi"\tthere'])]),
    json.dumps([entity("Q2"), entity("Q3", Label="A \\ backslash, a \u00e9 and a \U0001f600")]),
    "[]",
    "",
    "  ",
    ' [ {"WikidataId" : "Q4"} ] ',
    '[{"Label": "\\"WikidataId\\": \\"Q9\\"", "WikidataId": "Q5"}]',  # the key's name inside a value
    '[{"Label": "no id"}, {"WikidataId": "Q6"}]',  # a missing WikidataId reads as ""
    '[{"WikidataId": null}, {"WikidataId": 7}]',  # str() of other values
    '[{"Wikidata\\u0049d": "Q8"}]',  # an escaped key
    '[{"WikidataId": "Q1", "Confidence": NaN, "Nested": {"a": [1, [2]]}}]',  # JSON only Python reads
    '[{"WikidataId": "Q\\ud83d\\ude00"}]',  # a surrogate pair
]


def news_line(news_id, title_entities="[]", abstract_entities="[]", title=None):
    title = title if title is not None else f'Title "{news_id}"'
    fields = [news_id, "news", "newsus", title, f"Abstract of {news_id}", f"https://x/{news_id}", title_entities]
    return "\t".join([*fields, abstract_entities])


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])  # with a byte-order mark: dropped by both readers
def test_news_columns_and_entity_lists_read_as_the_line_reader(tmp_path, encoding):
    path = tmp_path / "news.tsv"
    lines = [news_line(f" N{i} ", value, ENTITY_COLUMNS[-1 - i]) for i, value in enumerate(ENTITY_COLUMNS)]
    path.write_text("\r\n".join(lines) + "\r\n", encoding=encoding)
    records = [parse_news_line(line, path, number) for number, line in iter_lines(path)]
    table = read_news_columns(path)
    assert table is not None
    assert table.column("NewsID").to_pylist() == [record["item_id"] for record in records]
    for column, key in (("Title", "title"), ("Abstract", "abstract"), ("URL", "url")):
        assert table.column(column).to_pylist() == [record[key] for record in records]
    for column, key in (("TitleEntities", "title_entities"), ("AbstractEntities", "abstract_entities")):
        parsed = parse_entity_column(table.column(column), path, column)
        assert parsed.to_pylist() == [record[key] for record in records]


@pytest.mark.parametrize(
    "value",
    [
        '[{"WikidataId": "Q1", "WikidataId": "Q2"}]',  # a repeated key: json.loads keeps the last
        '[{"WikidataId": "Q1", "Size": 1e400}]',  # out of pyarrow's range
        '[{"WikidataId": "Q1"}], "x": 1',  # more than one JSON value
        '[{"WikidataId": "Q1"}] [{"WikidataId": "Q2"}]',
        '[{"WikidataId": "Q1"}]]',
        "[1, 2]",
        '{"WikidataId": "Q1"}',
        "[{'WikidataId': 'Q1'}]",
        '[{"WikidataId": "a\x01"}]',  # a control character in a string
        "\x0b[]",  # whitespace str.strip() drops but JSON does not allow
        "not JSON",
    ],
)
def test_entity_lists_pyarrow_cannot_read_as_json_loads_does(value):
    """Read by json.loads, or left to the line reader (`None`): never read otherwise, never accepted if invalid."""
    result = parse_entity_column(pa.array(["[]", value]), "news.tsv", "TitleEntities (7)")
    try:
        expected = parse_entities(value, "news.tsv", 2, "TitleEntities (7)")
    except DataFileError:
        assert result is None
    else:
        assert result is None or result.to_pylist() == [[], expected]


@pytest.mark.parametrize(
    "content",
    [
        news_line("N1") + "\n\n" + news_line("N2") + "\n",  # a blank line: rows would not be lines
        news_line("N1") + "\n" + "\t".join(["N2", "a", "b"]) + "\n",  # a malformed line
        news_line("N1") + "\r" + news_line("N2") + "\n",  # a lone carriage return
        news_line(" ") + "\n",  # an empty NewsID
        news_line("N1", title="Am\udce9lie") + "\n",  # invalid UTF-8
    ],
)
def test_irregular_news_files_go_to_the_line_reader(tmp_path, content):
    path = tmp_path / "news.tsv"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert read_news_columns(path) is None


def write_folders(root):
    """Train and dev folders repeating news (one copy differs), with a body file and a blank news line."""
    news = {
        "train": [news_line("N1"), news_line("N2", title=" "), news_line("N3", ENTITY_COLUMNS[0])],
        "dev": [news_line("N3", ENTITY_COLUMNS[0]), news_line("N2", title="Another title"), news_line("N4")],
    }
    time = "11/11/2019 9:05:58 AM"
    for role, lines in news.items():
        folder = root / f"MINDsmall_{role}"
        folder.mkdir(parents=True)
        (folder / "news.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (folder / "behaviors.tsv").write_text(f"1\tU1\t{time}\tN1 N2\tN3-1 N4-0 N1-0\n", encoding="utf-8")
    (root / "news_body.tsv").write_text("N1\tBody\tof one\nN9\tNo such news\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("blank_line", [False, True])
def test_bulk_and_line_news_paths_give_the_same_items_and_stats(tmp_path, monkeypatch, blank_line):
    root = write_folders(tmp_path / "raw")
    if blank_line:  # the bulk path hands this file to the line reader (the line numbers of the examples)
        dev_news = root / "MINDsmall_dev" / "news.tsv"
        dev_news.write_text("\n" + dev_news.read_text(), encoding="utf-8")
    options = {"text_fields": ("title", "abstract", "body")}
    bulk = load_mind(root, cache_dir=tmp_path / "bulk", **options)
    for module in (mind_builder, mind_parsing):
        monkeypatch.setattr(module, "read_news_columns", lambda path: None)
    lines = load_mind(root, cache_dir=tmp_path / "lines", **options)
    assert bulk.items.to_list() == lines.items.to_list()
    assert bulk.items.features == lines.items.features
    assert bulk.stats == lines.stats
    news = bulk.stats["news"]
    assert (news["num_news"], news["repeated_news"], news["conflicting_news"]) == (4, 2, 1)
    line = 3 if blank_line else 2
    assert news["conflicting_examples"] == [f"N2 ({root / 'MINDsmall_dev' / 'news.tsv'}, line {line})"]
    assert (news["empty_titles"], news["missing_bodies"], news["bodies_without_news"]) == (1, 3, 1)
    assert bulk.items["text"] == [
        'Title "N1" Abstract of N1 Body\tof one',
        "Abstract of N2",
        'Title "N3" Abstract of N3',
        'Title "N4" Abstract of N4',
    ]
    assert bulk.items["title_entities"][2] == ["Q1"]


def test_read_news_ids_is_first_appearance_order(tmp_path, monkeypatch):
    root = write_folders(tmp_path)
    files = [root / "MINDsmall_train" / "news.tsv", root / "MINDsmall_dev" / "news.tsv"]
    assert read_news_ids(files).to_pylist() == ["N1", "N2", "N3", "N4"]
    monkeypatch.setattr(mind_parsing, "read_news_columns", lambda path: None)
    assert read_news_ids(files).to_pylist() == ["N1", "N2", "N3", "N4"]  # line by line


def test_behaviors_tokens_are_read_whatever_dictionaries_pyarrow_gives(tmp_path, monkeypatch):
    """The chunks of a dictionary-encoded column share one dictionary; were they not, they are unified."""
    time = "11/11/2019 9:05:58 AM"
    history = " ".join(f"N{i}" for i in range(40))
    lines = [f"{i}\tU{i % 7}\t{time}\t{history} N{i % 3}\tN{i}-1 N{i + 1}-0" for i in range(1, 8000)]
    path = tmp_path / "behaviors.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = read_behaviors_table(path)
    assert len(expected.impression_codes) > 1  # pyarrow's CSV reader cuts 1 MiB blocks
    dictionary_encode = pa.compute.dictionary_encode

    def per_chunk(column):  # each chunk with a dictionary of its own
        return pa.chunked_array([dictionary_encode(chunk) for chunk in column.chunks])

    monkeypatch.setattr(mind_parsing.pc, "dictionary_encode", per_chunk)
    table = read_behaviors_table(path)
    assert table.impressions() == expected.impressions() == [line.split("\t")[4].split() for line in lines]
    assert table.histories() == [line.split("\t")[3].split() for line in lines]
