"""load_mind on bad input: malformed lines, missing files, unknown NewsIDs, empty impressions, quoting and JSON."""

from __future__ import annotations

import json
import logging

import pytest

from gram_hf.tasks.news_recommendation import load_mind

TIME = "11/11/2019 9:05:58 AM"


def news_line(news_id, title="A title", abstract="An abstract", title_entities="[]", abstract_entities="[]"):
    url = f"https://x/{news_id}.html"
    return "\t".join([news_id, "news", "newsus", title, abstract, url, title_entities, abstract_entities])


NEWS = [news_line(f"N{i}") for i in range(1, 9)]


def write_mind(root, train=None, dev=None, news=None, dev_news=None):
    """MINDsmall_train (and _dev) folders with the given behaviors lines; every folder gets `news`."""
    for role, behaviors, lines in (("train", train, news), ("dev", dev, dev_news if dev_news is not None else news)):
        if behaviors is None:
            continue
        folder = root / f"MINDsmall_{role}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "news.tsv").write_text("".join(f"{line}\n" for line in (lines or NEWS)), encoding="utf-8")
        (folder / "behaviors.tsv").write_text("".join(f"{line}\n" for line in behaviors), encoding="utf-8")
    return root


def load(root, **kwargs):
    return load_mind(root, cache_dir=root / "cache", **kwargs)


GOOD = f"1\tU1\t{TIME}\tN1 N2\tN3-1 N4-0 N5-0"


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        (f"2\tU1\t{TIME}\tN1", "expected 5 tab-separated columns"),
        (f"2\tU1\t{TIME}\tN1\tN3-1\textra", "expected 5 tab-separated columns"),
        (f"x2\tU1\t{TIME}\tN1\tN3-1 N4-0", "ImpressionID 'x2' is not an integer"),
        ("2\tU1\t2019-11-11 09:05:58\tN1\tN3-1 N4-0", "does not match '%m/%d/%Y %I:%M:%S %p'"),
        ("2\tU1\t11/11/2019 13:05:58 PM\tN1\tN3-1 N4-0", "does not match"),
        (f"2\tU1\t{TIME}\tN1\tN3-1 N4-2", "impression token 'N4-2'"),
        (f"2\tU1\t{TIME}\tN1\tN3-1 N4", "impression token 'N4'"),
        (f"2\tU1\t{TIME}\tN1\tN3-1 -0", "impression token '-0'"),
    ],
)
def test_malformed_behaviors_line_names_file_line_and_problem(tmp_path, bad_line, problem):
    write_mind(tmp_path, dev=[GOOD, bad_line])
    with pytest.raises(ValueError, match=problem) as info:
        load(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'MINDsmall_dev' / 'behaviors.tsv'}:2: ")


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("N9\tnews\tnewsus\tTitle\tAbstract\thttps://x\t[]", "expected 8 tab-separated columns"),
        ("N9\tnews\tnewsus\tTitle\twith\ttab\thttps://x\t[]\t[]", "expected 8 tab-separated columns"),
        ("\tnews\tnewsus\tTitle\tAbstract\thttps://x\t[]\t[]", "empty NewsID"),
        (news_line("N9", title_entities='[{"Label": "x"'), r"column TitleEntities \(7\) is not valid JSON"),
        (news_line("N9", abstract_entities='{"Label": "x"}'), r"AbstractEntities \(8\) must be a JSON list"),
    ],
)
def test_malformed_news_line_names_file_line_and_problem(tmp_path, bad_line, problem):
    write_mind(tmp_path, dev=[GOOD], news=[*NEWS[:2], bad_line, *NEWS[2:]])
    with pytest.raises(ValueError, match=problem) as info:
        load(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'MINDsmall_dev' / 'news.tsv'}:3: ")


def test_invalid_utf8_names_the_line(tmp_path):
    write_mind(tmp_path, dev=[GOOD])
    behaviors = tmp_path / "MINDsmall_dev" / "behaviors.tsv"
    behaviors.write_bytes(behaviors.read_bytes() + b"2\tU\xff1\t" + TIME.encode() + b"\tN1\tN3-1\n")
    with pytest.raises(ValueError, match=r"behaviors\.tsv:2: not valid UTF-8 \(byte 0xff at column 4"):
        load(tmp_path)


def test_missing_files_raise_file_not_found_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_mind(tmp_path / "nowhere")
    (tmp_path / "empty" / "something_else").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"No MIND split folders .* Found: \['something_else'\]"):
        load_mind(tmp_path / "empty")
    write_mind(tmp_path / "data", train=[GOOD], dev=[GOOD])
    (tmp_path / "data" / "MINDsmall_dev" / "behaviors.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="MINDsmall_dev/behaviors.tsv"):
        load(tmp_path / "data")
    write_mind(tmp_path / "data", train=[GOOD], dev=[GOOD])
    with pytest.raises(FileNotFoundError, match="bodies.tsv"):
        load(tmp_path / "data", body_file=tmp_path / "bodies.tsv")


def test_unknown_news_ids_are_dropped_with_one_summary_warning(tmp_path, caplog):
    write_mind(
        tmp_path,
        train=[f"1\tU1\t{TIME}\tN1 X1 N2 X2\tN3-1 X3-0 N4-0", f"2\tU2\t{TIME}\tX1\tX4-1 N5-0 N6-0"],
        dev=[f"1\tU1\t{TIME}\tX1 N1\tN3-1 X5-0 N4-0"],
    )
    with caplog.at_level(logging.WARNING, logger="gram_hf.tasks.news_recommendation.mind"):
        data = load(tmp_path)
    warnings = [r.getMessage() for r in caplog.records if r.name.endswith("news_recommendation.mind")]
    assert len(warnings) == 1
    assert "5 distinct NewsIDs" in warnings[0]
    assert "dropped 4 history and 3 candidate occurrences" in warnings[0]
    assert "train: dropped 1 impressions (1 no clicks)" in warnings[0]
    missing = data.stats["missing_news"]
    assert missing == {
        "distinct": 5,
        "examples": ["X1", "X2", "X3", "X4", "X5"],
        "history_occurrences": 4,
        "candidate_occurrences": 3,
    }
    assert data["train"]["history"] == [[0, 1]]  # N1, N2
    assert data["validation"][0]["candidates"] == [2, 3]  # N3, N4
    assert data["validation"][0]["labels"] == [1, 0]
    assert data.stats["splits"]["train"]["dropped_no_clicks"] == 1  # impression 2 lost its only click


def test_strict_raises_on_unknown_news_id(tmp_path):
    write_mind(tmp_path, dev=[GOOD, f"2\tU1\t{TIME}\tN1 X7\tN3-1 N4-0"])
    with pytest.raises(ValueError, match=r"behaviors\.tsv:2: NewsID 'X7' is in no news.tsv \(strict=True\)"):
        load(tmp_path, strict=True)


def test_impressions_without_candidates_clicks_or_negatives_are_dropped_and_counted(tmp_path):
    write_mind(
        tmp_path,
        train=[
            GOOD,
            f"2\tU1\t{TIME}\tN1\tX1-1 X2-0",  # no candidate left
            f"3\tU1\t{TIME}\tN1\tN3-0 N4-0",  # no click
            f"4\tU1\t{TIME}\tN1\tN3-1 N4-1",  # no negative: no training row possible
            f"5\tU1\t{TIME}\tN1\tN6-1 N7-0",  # one negative for npratio=4: sampled with repetition
        ],
        dev=[GOOD, f"2\tU1\t{TIME}\tN1\tN3-0 N4-0", f"3\tU1\t{TIME}\tN1\tN3-1 N4-1"],
    )
    data = load(tmp_path)
    train = data.stats["splits"]["train"]
    assert (train["impressions_read"], train["impressions"], train["rows"]) == (5, 2, 2)
    assert (train["dropped_no_candidates"], train["dropped_no_clicks"], train["dropped_no_negatives"]) == (1, 1, 1)
    assert data["train"]["impression_id"] == [1, 5]
    assert sorted(data["train"][1]["candidates"]) == [5, 6, 6, 6, 6]  # N6 and four copies of N7
    validation = data.stats["splits"]["validation"]
    assert validation["dropped_no_clicks"] == 1
    # an evaluation impression made only of clicks is kept (metrics skip it; the loss is 0 there)
    assert data["validation"]["impression_id"] == [1, 3]
    # The dropped-counts contract, in impressions: every behaviors line is kept or dropped for a reason.
    assert data.stats["rows_read"] == 5 + 3
    assert data.stats["dropped"] == {
        "impressions_without_candidates": 1,
        "impressions_without_clicks": 2,
        "impressions_without_negatives": 1,
    }
    kept = sum(split["impressions"] for split in data.stats["splits"].values())
    assert data.stats["rows_read"] == kept + sum(data.stats["dropped"].values())
    assert data.stats["removed_from_train"] == {}


def test_several_bad_lines_are_reported_together(tmp_path):
    news = [*NEWS[:2], "N9\tnews\tnewsus\tTitle\tAbstract\thttps://x\t[]", *NEWS[2:]]
    behaviors = [
        GOOD,
        f"2\tU1\t{TIME}\tN1",  # line 2: 4 columns
        f"x3\tU1\t{TIME}\tN1\tN3-1 N4-0",  # line 3: bad ImpressionID
        GOOD,
        "5\tU1\tyesterday\tN1\tN3-1 N4-0",  # line 5: bad time
        f"6\tU1\t{TIME}\tN1\tN3-1 N4-2",  # line 6: bad token
        f"7\tU1\t{TIME}\tN1\tN3-1 N4",  # line 7: unlabelled token
    ]
    write_mind(tmp_path, dev=behaviors, news=news)
    with pytest.raises(ValueError) as info:
        load(tmp_path)
    assert str(info.value) == f"{tmp_path / 'MINDsmall_dev' / 'news.tsv'}:3: expected 8 tab-separated columns " + (
        "(NewsID, Category, SubCategory, Title, Abstract, URL, TitleEntities, AbstractEntities), found 7"
    )
    write_mind(tmp_path, dev=behaviors)
    with pytest.raises(ValueError) as info:
        load(tmp_path)
    path = tmp_path / "MINDsmall_dev" / "behaviors.tsv"
    lines = str(info.value).split("\n")
    assert lines[0] == "5 bad lines:"
    assert [line.split(": ")[0].strip() for line in lines[1:]] == [f"{path}:{n}" for n in (2, 3, 5, 6, 7)]
    assert info.value.count == 5 and info.value.line == 2


def test_quotes_tabs_and_json_escapes_in_news(tmp_path):
    entities = [
        {
            "Label": 'The "Quoted" One',
            "Type": "P",
            "WikidataId": "Q42",
            "Confidence": 1.0,
            "OccurrenceOffsets": [4],
            "SurfaceForms": ['say "hi"\tthere'],
        }
    ]
    raw = json.dumps(entities)
    assert '\\"' in raw and "\\t" in raw and "\t" not in raw  # JSON escapes the quote and the tab
    lines = [
        news_line("N1", title="He said \"no\" to 'them'", abstract='"Quoted abstract', title_entities=raw),
        news_line("N2", abstract="", abstract_entities=""),
        news_line("N3", title='""', abstract_entities="[]"),
        *NEWS[3:],
    ]
    write_mind(tmp_path, dev=[GOOD], news=lines)
    items = load(tmp_path, text_fields=("title", "abstract")).items
    assert items[0]["title"] == "He said \"no\" to 'them'"
    assert items[0]["abstract"] == '"Quoted abstract'
    assert items[0]["title_entities"] == ["Q42"]
    assert items[1]["abstract"] == "" and items[1]["abstract_entities"] == []
    assert items[1]["text"] == "A title"
    assert items[2]["title"] == '""'


def test_crlf_line_endings_and_blank_lines(tmp_path):
    write_mind(tmp_path, dev=[GOOD])
    folder = tmp_path / "MINDsmall_dev"
    (folder / "news.tsv").write_bytes(b"".join(f"{line}\r\n".encode() for line in NEWS) + b"\r\n")
    (folder / "behaviors.tsv").write_bytes(f"{GOOD}\r\n\n".encode())
    data = load(tmp_path)
    assert data.items[7]["abstract_entities"] == []
    assert data["validation"][0]["labels"] == [1, 0, 0]


def test_labelless_and_labelled_tokens_cannot_mix(tmp_path):
    write_mind(tmp_path, dev=[f"1\tU1\t{TIME}\tN1\tN3 N4", f"2\tU1\t{TIME}\tN1\tN3-1 N4-0"])
    with pytest.raises(ValueError, match=r"behaviors\.tsv:2: impression token 'N3-1': expected a bare NewsID"):
        load(tmp_path)


def test_training_split_needs_labels(tmp_path):
    write_mind(tmp_path, train=[f"1\tU1\t{TIME}\tN1\tN3 N4"])
    with pytest.raises(ValueError, match="training split needs click labels"):
        load(tmp_path)


def test_conflicting_news_copies_keep_the_first(tmp_path, caplog):
    write_mind(tmp_path, train=[GOOD], dev=[GOOD], dev_news=[news_line("N1", title="Other title"), *NEWS[1:]])
    with caplog.at_level(logging.WARNING, logger="gram_hf.tasks.news_recommendation.mind"):
        data = load(tmp_path)
    assert data.items[0]["title"] == "A title"
    assert data.stats["news"]["conflicting_news"] == 1
    assert data.stats["news"]["repeated_news"] == 8
    assert any("differing copies" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text_fields": ("title", "summary")}, "text_fields"),
        ({"text_fields": ("body",)}, "no body_file"),
        ({"npratio": 0}, "npratio"),
        ({"max_history": -1}, "max_history"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, match):
    write_mind(tmp_path, train=[GOOD])
    with pytest.raises(ValueError, match=match):
        load(tmp_path, **kwargs)
