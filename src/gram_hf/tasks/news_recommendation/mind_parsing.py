"""
Line-level reading of MIND's raw files: `news.tsv` records, `behaviors.tsv` lines and impression tokens,
`news_body.tsv` bodies and MIND's time format, on the shared text layer ([`gram_hf.raw_files`]: UTF-8 lines of plain
or `.gz` files, `file:line: problem` errors, several bad lines reported together). No state: what a split keeps or
drops is the builder's business ([`~gram_hf.tasks.news_recommendation.mind_builder.MIND`]).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ...raw_files import PYTHON_WHITESPACE, BadLines, DataFileError, iter_lines, read_raw_bytes

TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
NEWS_COLUMNS = ("NewsID", "Category", "SubCategory", "Title", "Abstract", "URL", "TitleEntities", "AbstractEntities")
BEHAVIORS_COLUMNS = ("ImpressionID", "UserID", "Time", "History", "Impressions")


def malformed(path: Path | str, line_number: int, problem: str) -> DataFileError:
    """The error of a malformed line: `<path>:<n>: <problem>`."""
    return DataFileError(path, line_number, problem)


def parse_entities(text: str, path: Path, line_number: int, column: str) -> list[str]:
    """The WikidataIds of a MIND entity column (a JSON list of objects; `[]` or empty when none)."""
    if not text.strip():
        return []
    try:
        entities = json.loads(text)
    except json.JSONDecodeError as err:
        problem = f"column {column} is not valid JSON ({err.msg} at char {err.pos})"
        raise malformed(path, line_number, problem) from None
    if not isinstance(entities, list) or not all(isinstance(entity, dict) for entity in entities):
        raise malformed(path, line_number, f"column {column} must be a JSON list of entity objects")
    return [str(entity.get("WikidataId", "")) for entity in entities]


def split_news_line(line: str, path: Path, line_number: int) -> list[str]:
    """The 8 columns of a `news.tsv` line (quoting off: titles hold `"` and the entity columns raw JSON)."""
    columns = line.split("\t")
    if len(columns) != len(NEWS_COLUMNS):
        raise malformed(
            path,
            line_number,
            f"expected {len(NEWS_COLUMNS)} tab-separated columns ({', '.join(NEWS_COLUMNS)}), found {len(columns)}",
        )
    if not columns[0].strip():
        raise malformed(path, line_number, "empty NewsID")
    return columns


def read_news_ids(news_files: Sequence[Path]) -> list[str]:
    """
    The catalog order of the news: first appearance over `news_files` (train, dev, test folder order). Every loader
    pass uses this one function, so item row `i` and the catalog index `i` in the interaction splits always agree.
    Malformed lines of every file are reported together.
    """
    ids: dict[str, None] = {}
    bad = BadLines()
    for path in news_files:
        for line_number, line in iter_lines(path, bad):
            try:
                ids.setdefault(split_news_line(line, path, line_number)[0].strip(), None)
            except DataFileError as err:
                bad.add_error(err)
    bad.check()
    return list(ids)


def read_bodies(body_files: Sequence[Path]) -> dict[str, str]:
    """
    NewsID -> article body from `NewsID<TAB>body` files (the body may hold further tabs); first file wins. Malformed
    lines of every file are reported together.
    """
    bodies: dict[str, str] = {}
    bad = BadLines()
    for path in body_files:
        for line_number, line in iter_lines(path, bad):
            news_id, tab, body = line.partition("\t")
            if not tab or not news_id.strip():
                bad.add(path, line_number, "expected NewsID<TAB>body")
                continue
            bodies.setdefault(news_id.strip(), body)
    bad.check()
    return bodies


def parse_mind_time(text: str, path: Path | str = "<string>", line_number: int = 0) -> datetime:
    """
    A MIND time (`%m/%d/%Y %I:%M:%S %p`, not zero-padded: `11/11/2019 9:05:58 AM`), parsed without `strptime`'s
    per-call overhead (millions of lines in MIND-large); a malformed value raises `ValueError` naming file and line.
    """
    try:
        date, clock, half = text.strip().split(" ")
        month, day, year = date.split("/")
        hour_text, minute, second = clock.split(":")
        hour = int(hour_text)
        half = half.upper()
        if not 1 <= hour <= 12 or half not in ("AM", "PM"):
            raise ValueError
        hour = hour % 12 + (12 if half == "PM" else 0)
        return datetime(int(year), int(month), int(day), hour, int(minute), int(second))
    except ValueError:
        raise malformed(path, line_number, f"time {text!r} does not match {TIME_FORMAT!r}") from None


def parse_news_line(line: str, path: Path, line_number: int) -> dict[str, Any]:
    """
    A `news.tsv` line as an item record: `item_id`, `title`, `abstract`, `category`, `subcategory`, `url` and the
    WikidataIds of `title_entities` / `abstract_entities`.
    """
    columns = split_news_line(line, path, line_number)
    return {
        "item_id": columns[0].strip(),
        "title": columns[3],
        "abstract": columns[4],
        "category": columns[1],
        "subcategory": columns[2],
        "url": columns[5],
        "title_entities": parse_entities(columns[6], path, line_number, "TitleEntities (7)"),
        "abstract_entities": parse_entities(columns[7], path, line_number, "AbstractEntities (8)"),
    }


def split_behaviors_line(line: str, path: Path, line_number: int) -> tuple[int, str, datetime, str, str]:
    """A `behaviors.tsv` line as `(impression id, user id, time, history text, impressions text)`."""
    columns = line.split("\t")
    if len(columns) != len(BEHAVIORS_COLUMNS):
        raise malformed(
            path,
            line_number,
            f"expected {len(BEHAVIORS_COLUMNS)} tab-separated columns ({', '.join(BEHAVIORS_COLUMNS)}), "
            f"found {len(columns)}",
        )
    impression_text, user_id, time_text, history_text, impressions_text = columns
    try:
        impression_id = int(impression_text)
    except ValueError:
        raise malformed(path, line_number, f"ImpressionID {impression_text!r} is not an integer") from None
    return impression_id, user_id, parse_mind_time(time_text, path, line_number), history_text, impressions_text


def is_labelled_token(token: str) -> bool:
    """Whether an impression token carries a click label (`N55689-1`); MINDlarge_test's bare `N55689` do not."""
    return "-" in token


def parse_impression_token(token: str, path: Path, line_number: int, labelled: bool) -> tuple[str, int]:
    """
    `(NewsID, label)` of an impression token of a file whose tokens are `labelled` (`N55689-1` / `N55689-0`) or not
    (a bare `N55689`, label -1): a file mixes no forms.
    """
    news_id, dash, label = token.rpartition("-")
    if bool(dash) != labelled:
        expected = "NewsID-0/1 like the file's first impression" if labelled else "a bare NewsID"
        raise malformed(path, line_number, f"impression token {token!r}: expected {expected}")
    if not labelled:
        return label, -1
    if label not in ("0", "1") or not news_id:
        raise malformed(path, line_number, f"impression token {token!r}: expected NewsID-0 or NewsID-1")
    return news_id, int(label)


# ----------------------------------------------------------------------------------------- the bulk (pyarrow) path

# The time form of every real MIND line. Other forms Python's parser accepts too (`am`, spaces around, years before
# 1000) go through the line reader, so both paths parse the same lines the same way.
_TIME_FORM = r"^\d{1,2}/\d{1,2}/[1-9]\d{3} \d{1,2}:[0-5]\d:[0-5]\d [AP]M$"
# strptime rolls a day the month lacks over into the next month (2/31 -> 3/3) where Python raises: the dates whose day
# or month could be such (0, 29..39) are checked against `parse_mind_time`, one by one (none in MIND's November).
_ROLLOVER_CANDIDATE = r"^(0?0/|\d{1,2}/(0?0|29|3\d)/)"
# Values are split on single spaces in bulk, where `str.split()` splits on runs of any whitespace: a file holding
# other whitespace goes to the line reader (runs of spaces are caught after the split, as empty tokens).
_OTHER_WHITESPACE = [char.encode() for char in PYTHON_WHITESPACE if char not in " \t\n\r"]


def read_behaviors_table(path: Path | str) -> pa.Table | None:
    """
    A `behaviors.tsv` read in bulk by pyarrow: `impression_id` (int64), `user_id`, `time` (timestamp[s]) and the
    space-split `history` and `impressions` tokens (lists of strings, empty for an empty value), one row per
    non-blank line in file order, as [`split_behaviors_line`] and `str.split()` read them.

    `None` when the file is anything but the regular form (a malformed line, invalid UTF-8, a time or spacing form
    only the line reader handles, a lone `\\r`): the caller then reads it line by line with
    [`split_behaviors_line`], which names every bad line, so this path never needs line numbers. A truncated or
    corrupt `.gz` raises the [`~gram_hf.raw_files.DataFileError`] of [`~gram_hf.raw_files.read_raw_bytes`].
    """
    data = read_raw_bytes(path)
    if data.startswith(codecs.BOM_UTF8):  # the line reader drops it too (utf-8-sig)
        data = data[len(codecs.BOM_UTF8) :]
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None  # pyarrow breaks lines at a lone \r, the line reader does not
    ascii_only = data.isascii()
    if any(char in data for char in _OTHER_WHITESPACE if len(char) == 1 or not ascii_only):
        return None
    names = ["impression_id", "user_id", "time", "history", "impressions"]
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(data),
            read_options=pa_csv.ReadOptions(column_names=names),
            parse_options=pa_csv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False),
            convert_options=pa_csv.ConvertOptions(
                column_types={"impression_id": pa.int64(), **dict.fromkeys(names[1:], pa.string())},
                null_values=[],
                strings_can_be_null=False,
            ),
        ).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a malformed line or invalid UTF-8: the line reader names it
        return None
    del data
    if table.num_rows == 0 or table.column("impression_id").null_count:
        return None
    time = _parse_times(table.column("time").chunk(0))
    if time is None:
        return None
    columns = {}
    for name in ("history", "impressions"):
        values = table.column(name).chunk(0)
        tokens = pc.split_pattern(values, " ")
        # An empty value splits into one empty token (a row without tokens); any other empty token is a run of
        # spaces or one at an edge, which the line reader handles.
        empty_tokens = np.count_nonzero(pc.binary_length(tokens.flatten()).to_numpy() == 0)
        if empty_tokens != np.count_nonzero(pc.binary_length(values).to_numpy() == 0):
            return None
        columns[name] = tokens
    return pa.table(
        {
            "impression_id": table.column("impression_id").chunk(0),
            "user_id": table.column("user_id").chunk(0),
            "time": time,
            **columns,
        }
    )


def _parse_times(values: pa.Array) -> pa.Array | None:
    """MIND times as timestamp[s], exactly as [`parse_mind_time`] reads them; `None` unless every one is regular."""
    if not pc.all(pc.match_substring_regex(values, _TIME_FORM)).as_py():
        return None
    times = pc.strptime(values, format=TIME_FORMAT, unit="s", error_is_null=True)
    if times.null_count:
        return None
    suspect = pc.match_substring_regex(values, _ROLLOVER_CANDIDATE)
    for text, parsed in zip(values.filter(suspect).to_pylist(), times.filter(suspect).to_pylist()):
        try:
            if parse_mind_time(text) != parsed:
                return None
        except DataFileError:  # a day the month lacks: the line reader names the line
            return None
    return times


__all__ = [
    "BEHAVIORS_COLUMNS",
    "NEWS_COLUMNS",
    "TIME_FORMAT",
    "is_labelled_token",
    "malformed",
    "parse_impression_token",
    "parse_mind_time",
    "parse_news_line",
    "read_behaviors_table",
    "read_bodies",
    "read_news_ids",
    "split_behaviors_line",
]
