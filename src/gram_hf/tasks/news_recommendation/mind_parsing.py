"""
Line-level reading of MIND's raw files: `news.tsv` records, `behaviors.tsv` lines and impression tokens,
`news_body.tsv` bodies and MIND's time format, on the shared text layer ([`gram_hf.raw_files`]: UTF-8 lines of plain
or `.gz` files, `file:line: problem` errors, several bad lines reported together). No state: what a split keeps or
drops is the builder's business ([`~gram_hf.tasks.news_recommendation.mind_builder.MIND`]).
"""

from __future__ import annotations

import codecs
import json
import mmap
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from ...raw_files import (
    PYTHON_WHITESPACE,
    BadLines,
    DataFileError,
    is_gzip,
    iter_lines,
    read_raw_bytes,
    strip_strings,
)

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


def read_news_ids(news_files: Sequence[Path]) -> pa.Array:
    """
    The catalog order of the news: first appearance over `news_files` (train, dev, test folder order), as an Arrow
    string array. Every loader pass uses this one function, so item row `i` and the catalog index `i` in the
    interaction splits always agree. Read in bulk ([`read_news_columns`]) unless a file is irregular; then line by
    line, malformed lines of every file reported together.
    """
    tables = [read_news_columns(path) for path in news_files]
    if all(table is not None for table in tables):
        ids = [table.column("NewsID") for table in tables]
        return pc.unique(pa.chunked_array(ids, pa.string()).combine_chunks())  # in order of first appearance
    ids: dict[str, None] = {}
    bad = BadLines()
    for path in news_files:
        for line_number, line in iter_lines(path, bad):
            try:
                ids.setdefault(split_news_line(line, path, line_number)[0].strip(), None)
            except DataFileError as err:
                bad.add_error(err)
    bad.check()
    return pa.array(list(ids), pa.string())


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
# Unicode whitespace, or History / Impressions values holding other ASCII whitespace, go to the line reader (runs of
# spaces are caught while splitting, as empty tokens). Elsewhere ASCII whitespace is read alike by both readers (kept
# in UserID, refused in ImpressionID and Time by pyarrow and the time check).
_OTHER_WHITESPACE = [char.encode() for char in PYTHON_WHITESPACE if char not in " \t\n\r"]
_ASCII_WHITESPACE = np.array([ord(char) for char in PYTHON_WHITESPACE if ord(char) < 32], np.uint8)


@dataclass
class BehaviorsTable:
    """
    A `behaviors.tsv` read in bulk ([`read_behaviors_table`]): one entry per non-blank line, in file order, in
    `impression_id` (int64), `user_id` and `time` (timestamp[s]), and the space-split History and Impressions as
    codes into a dictionary of their distinct tokens (an entry may be there twice; an empty value has no token):

    - History, per distinct value (MIND repeats a user's history in each of their impressions): the tokens of every
      distinct value, flat (`history_codes`), how many each has (`history_lengths`), and the distinct value of each
      line (`history_rows`);
    - Impressions, per line: the tokens flat, in the pieces pyarrow read (`impression_codes`: concatenated, the
      tokens in file order), and how many each line has (`impression_lengths`).
    """

    impression_id: pa.ChunkedArray
    user_id: pa.ChunkedArray
    time: pa.ChunkedArray
    history_dictionary: pa.Array
    history_codes: np.ndarray
    history_lengths: np.ndarray
    history_rows: np.ndarray
    impression_dictionary: pa.Array
    impression_codes: list[np.ndarray]
    impression_lengths: np.ndarray

    @property
    def num_rows(self) -> int:
        return len(self.history_rows)

    def histories(self) -> list[list[str]]:
        """The History tokens of each line (for inspection and tests)."""
        values = _token_lists(self.history_dictionary, self.history_codes, self.history_lengths)
        return [values[row] for row in self.history_rows.tolist()]

    def impressions(self) -> list[list[str]]:
        """The Impressions tokens of each line (for inspection and tests)."""
        codes = np.concatenate(self.impression_codes) if self.impression_codes else np.zeros(0, np.int32)
        return _token_lists(self.impression_dictionary, codes, self.impression_lengths)


def _token_lists(dictionary: pa.Array, codes: np.ndarray, lengths: np.ndarray) -> list[list[str]]:
    tokens = dictionary.take(pa.array(codes, pa.int32())).to_pylist()
    ends = np.cumsum(lengths).tolist()
    return [tokens[end - length : end] for end, length in zip(ends, np.asarray(lengths).tolist())]


def read_behaviors_table(path: Path | str) -> BehaviorsTable | None:
    """
    A `behaviors.tsv` read in bulk by pyarrow into a [`BehaviorsTable`], one entry per non-blank line in file order,
    as [`split_behaviors_line`] and `str.split()` read them.

    `None` when the file is anything but the regular form (a malformed line, invalid UTF-8, a time or spacing form
    only the line reader handles, a lone `\\r`): the caller then reads it line by line with
    [`split_behaviors_line`], which names every bad line, so this path never needs line numbers. A truncated or
    corrupt `.gz` raises the [`~gram_hf.raw_files.DataFileError`] of [`~gram_hf.raw_files.read_raw_bytes`].
    """
    source, regular = _bulk_source(path, _regular_bytes)
    if not regular:
        return None
    names = ["impression_id", "user_id", "time", "history", "impressions"]
    try:
        table = pa_csv.read_csv(
            source,
            read_options=pa_csv.ReadOptions(column_names=names),
            parse_options=pa_csv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False),
            convert_options=pa_csv.ConvertOptions(
                column_types={"impression_id": pa.int64(), **dict.fromkeys(names[1:], pa.string())},
                null_values=[],
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a malformed line or invalid UTF-8: the line reader names it
        return None
    del source
    if table.num_rows == 0 or table.column("impression_id").null_count:
        return None
    time = _parse_times(table.column("time"))
    if time is None:
        return None
    # A user's history repeats in each of their impressions (MIND holds it per user): it is split once per distinct
    # value, and each line keeps the number of its value.
    histories = _dictionary_encode(table.column("history"))
    history = _split_tokens(pa.chunked_array([histories.chunk(0).dictionary]))
    impressions = _split_tokens(table.column("impressions"))
    if history is None or impressions is None:
        return None
    history_dictionary, history_codes, history_lengths = history
    impression_dictionary, impression_codes, impression_lengths = impressions
    return BehaviorsTable(
        impression_id=table.column("impression_id"),
        user_id=table.column("user_id"),
        time=time,
        history_dictionary=history_dictionary,
        history_codes=np.concatenate(history_codes) if history_codes else np.zeros(0, np.int32),
        history_lengths=history_lengths,
        history_rows=np.concatenate([chunk.indices.to_numpy() for chunk in histories.chunks]),
        impression_dictionary=impression_dictionary,
        impression_codes=impression_codes,
        impression_lengths=impression_lengths,
    )


def _bulk_source(path: Path | str, check: Callable[[Any], Any]) -> tuple[Any, Any]:
    """
    What pyarrow's CSV reader is to read of a raw file, and `check(data)` of the file's bytes (an object with `find`
    and the buffer protocol). A plain file is memory-mapped for the check alone (no copy into fresh memory) and read
    by pyarrow from its path; a `.gz` file, or one opening with a byte-order mark (the line reader drops it too), is
    read into memory ([`read_raw_bytes`]) and given as a buffer, without the mark.
    """
    if is_gzip(path):
        data = read_raw_bytes(path)
        return _without_bom(data), check(data)
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return os.fspath(path), check(b"")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            result = check(data)
            bom = data[: len(codecs.BOM_UTF8)] == codecs.BOM_UTF8
    return (_without_bom(read_raw_bytes(path)) if bom else os.fspath(path)), result


def _without_bom(data: bytes) -> pa.Buffer:
    """`data` as an Arrow buffer (no copy), without a leading byte-order mark."""
    buffer = pa.py_buffer(data)
    return buffer.slice(len(codecs.BOM_UTF8)) if data.startswith(codecs.BOM_UTF8) else buffer


def _regular_bytes(data: Any) -> bool:
    """
    Whether pyarrow splits `data` ([`_bulk_source`]) into the lines the line reader sees (no lone `\\r`), with no
    Unicode whitespace (values are split on single spaces in bulk, where `str.split()` splits on runs of any
    whitespace; [`_split_tokens`] looks for the ASCII whitespace in the values it splits).
    """
    if _has_lone_return(data):
        return False
    codes = np.frombuffer(data, np.uint8)
    ascii_only = not len(codes) or int(codes.max()) < 128
    return ascii_only or not any(data.find(char) >= 0 for char in _OTHER_WHITESPACE if len(char) > 1)


def _count_lines(data: Any) -> int | None:
    """The lines of a file's bytes (the last one may lack its `\\n`); `None` if there is a lone `\\r`."""
    if _has_lone_return(data):
        return None
    codes = np.frombuffer(data, np.uint8)
    text = len(codes) - (len(codecs.BOM_UTF8) if data[: len(codecs.BOM_UTF8)] == codecs.BOM_UTF8 else 0)
    return int(np.count_nonzero(codes == 10)) + (1 if text and codes[-1] != 10 else 0)


def _has_lone_return(data: Any) -> bool:
    """Whether `data` holds a `\\r` that is not part of a `\\r\\n`: pyarrow breaks lines there, the line reader not."""
    if data.find(b"\r") < 0:
        return False
    codes = np.frombuffer(data, np.uint8)
    returns = np.flatnonzero(codes == 13)
    return bool(returns[-1] + 1 == len(codes) or (codes[returns + 1] != 10).any())


def _slices(column: pa.ChunkedArray, size: int = 1 << 20) -> Iterator[pa.Array]:
    """The chunks of a string column, cut into slices of about `size` bytes (numpy's temporaries stay in cache)."""
    for chunk in column.chunks:
        rows = max(1, len(chunk) * size // max(chunk.nbytes, 1))
        for start in range(0, len(chunk), rows):
            yield chunk.slice(start, rows)


def _split_tokens(column: pa.ChunkedArray) -> tuple[pa.Array, list[np.ndarray], np.ndarray] | None:
    """
    `str.split()` of every value, for values without empty tokens (no run of spaces, none at an edge: else `None`):
    `(dictionary of the distinct tokens, the dictionary code of every token in pieces, the tokens of each value)`, an
    empty value without a token. Each chunk's bytes are cut at their spaces by numpy and the tokens hashed where they
    lie, so that no token is copied and a reader maps the few distinct tokens (the dictionary) instead of every token.
    """
    pieces, lengths = [], []
    for values in _slices(column):
        offsets = np.frombuffer(values.buffers()[1], np.int32, len(values) + 1, values.offset * 4)
        low, high = int(offsets[0]), int(offsets[-1])
        buffer = values.buffers()[2] if high > low else pa.py_buffer(b"")
        data = np.frombuffer(buffer, np.uint8, high - low, low)
        spaces = np.flatnonzero(data <= 32)  # spaces, unless a value holds other whitespace (or control) bytes
        if len(spaces) and (data[spaces] != 32).any():
            if np.isin(data[spaces], _ASCII_WHITESPACE).any():
                return None
            spaces = spaces[data[spaces] == 32]
        spaces += low
        starts, ends = offsets[:-1], offsets[1:]
        filled = ends > starts
        if len(spaces) and (
            (np.diff(spaces) == 1).any()
            or (data[starts[filled] - low] == 32).any()
            or (data[ends[filled] - 1 - low] == 32).any()
        ):
            return None
        # A token starts at a (non-empty) value's start or after a space, and runs to the next token's start: with
        # the space that follows it, dropped from the dictionary below (tokens hold no other spaces).
        spaces_before = np.searchsorted(spaces, starts)
        firsts = spaces_before[filled]
        firsts += np.arange(len(firsts))  # where each value's first token goes among the tokens
        token_offsets = np.empty(len(spaces) + len(firsts) + 1, np.int32)
        after_space = np.ones(len(token_offsets) - 1, bool)
        after_space[firsts] = False
        token_offsets[firsts] = starts[filled]
        token_offsets[:-1][after_space] = spaces + 1
        token_offsets[-1] = high
        pieces.append(pa.StringArray.from_buffers(len(token_offsets) - 1, pa.py_buffer(token_offsets), buffer))
        counts = np.diff(np.append(spaces_before, len(spaces))) + 1  # a value's spaces + 1
        counts[~filled] = 0
        lengths.append(counts)
    lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    encoded = _dictionary_encode(pa.chunked_array(pieces, pa.string()))
    if not encoded.num_chunks:
        return pa.array([], pa.string()), [], lengths
    # The chunks share one dictionary; its entries lose the space they may end with (so a token can be there twice).
    dictionary = pc.utf8_rtrim(encoded.chunk(0).dictionary, characters=" ")
    return dictionary, [chunk.indices.to_numpy() for chunk in encoded.chunks], lengths


def run_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """
    The positions of runs of entries, one after the other: `lengths[i]` from `starts[i]`, for numpy to gather parts
    of lists at once (`values[run_positions(...)]`, e.g. the last entries of each). Built as the running sum of steps
    (1 within a run, the jump to the next run's start between runs): one array written.
    """
    starts, lengths = np.asarray(starts), np.asarray(lengths)
    total = int(lengths.sum())
    dtype = np.int32 if total < 2**31 and (not len(starts) or starts.max() < 2**31) else np.int64  # less to write
    runs = lengths > 0
    starts, lengths = starts[runs].astype(dtype), lengths[runs].astype(dtype)
    steps = np.ones(total, dtype)
    if len(starts):
        steps[0] = starts[0]
        steps[np.cumsum(lengths[:-1])] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)
    return np.cumsum(steps, out=steps)


def _dictionary_encode(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """`column` dictionary-encoded, every chunk with the one dictionary of all (as pyarrow gives it; else unified)."""
    encoded = pc.dictionary_encode(column)
    shared = {tuple(buffer.address for buffer in chunk.dictionary.buffers() if buffer) for chunk in encoded.chunks}
    return encoded if len(shared) <= 1 else encoded.unify_dictionaries()


def read_news_columns(path: Path | str) -> pa.Table | None:
    """
    A `news.tsv` read in bulk by pyarrow: its 8 columns ([`NEWS_COLUMNS`]) as strings, one row per line, the NewsID
    stripped and the other columns as they are (the entity columns unparsed: [`parse_entity_column`]), as
    [`split_news_line`] reads them.

    `None` when the file is anything but the regular form (a malformed or blank line, invalid UTF-8, a lone `\\r`,
    an empty NewsID): the caller then reads it line by line, which names every bad line. Without blank lines, row
    `i` is line `i + 1`. A truncated or corrupt `.gz` raises the [`~gram_hf.raw_files.DataFileError`] of
    [`~gram_hf.raw_files.read_raw_bytes`].
    """
    source, lines = _bulk_source(path, _count_lines)
    if lines is None:
        return None
    try:
        table = pa_csv.read_csv(
            source,
            read_options=pa_csv.ReadOptions(column_names=list(NEWS_COLUMNS)),
            parse_options=pa_csv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(NEWS_COLUMNS, pa.string()), null_values=[], strings_can_be_null=False
            ),
        ).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a malformed line or invalid UTF-8: the line reader names it
        return None
    if table.num_rows != lines:  # pyarrow skipped blank lines: rows would not be lines
        return None
    ids = strip_strings(table.column("NewsID"))
    if len(ids) and not pc.all(pc.not_equal(ids, "")).as_py():
        return None
    return table.set_column(0, "NewsID", ids)


# One MIND entity list, as JSON: `[{"Label": ..., "WikidataId": ..., "OccurrenceOffsets": [0], ...}, ...]`, objects
# of scalars and lists of scalars, keys without escapes. What matches is a single JSON array of objects that
# `json.loads` reads too (strict JSON: no NaN, no control characters in strings), so pyarrow can parse it embedded in
# a JSON line; anything else (other JSON, invalid text) goes to `parse_entities`, one value at a time.
_JSON_SPACE = r"[ \t\n\r]*"
_JSON_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_JSON_SCALAR = rf"(?:{_JSON_STRING}|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)"
_JSON_SCALARS = rf"\[{_JSON_SPACE}(?:{_JSON_SCALAR}(?:{_JSON_SPACE},{_JSON_SPACE}{_JSON_SCALAR})*)?{_JSON_SPACE}\]"
_JSON_MEMBER = rf'"[^"\\\x00-\x1f]*"{_JSON_SPACE}:{_JSON_SPACE}(?:{_JSON_SCALAR}|{_JSON_SCALARS})'
_JSON_OBJECT = rf"\{{{_JSON_SPACE}(?:{_JSON_MEMBER}(?:{_JSON_SPACE},{_JSON_SPACE}{_JSON_MEMBER})*)?{_JSON_SPACE}\}}"
_ENTITY_LIST = (
    rf"^{_JSON_SPACE}\[{_JSON_SPACE}(?:{_JSON_OBJECT}(?:{_JSON_SPACE},{_JSON_SPACE}{_JSON_OBJECT})*)?"
    rf"{_JSON_SPACE}\]{_JSON_SPACE}$"
)
# In such a list these match keys only (a string value is followed by `,`, `}` or `]`, and keys hold no `\"`): each
# object's WikidataId, and those whose value is a string, the one form pyarrow reads as `json.loads` does.
_WIKIDATA_KEY = rf'"WikidataId"{_JSON_SPACE}:'
_WIKIDATA_STRING = rf'"WikidataId"{_JSON_SPACE}:{_JSON_SPACE}"'
_ENTITY_SCHEMA = pa.schema([("e", pa.list_(pa.struct([("WikidataId", pa.string())])))])


def parse_entity_column(values: pa.Array, path: Path | str, column: str) -> pa.ListArray | None:
    """
    [`parse_entities`] of a whole entity column of a [`read_news_columns`] table (row `i` = line `i + 1`): the
    WikidataIds of each row, as a list<string> column. The regular lists (every object with one string WikidataId)
    are parsed by pyarrow at once, the others by `json.loads`; `None` when a value is not a valid entity list, for
    the line reader to name with the others.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    blank = pc.equal(strip_strings(values), "").to_numpy(zero_copy_only=False)
    keys = pc.count_substring_regex(values, _WIKIDATA_KEY).to_numpy()
    regular = (
        ~blank
        & pc.match_substring_regex(values, _ENTITY_LIST).to_numpy(zero_copy_only=False)
        & (keys == pc.count_substring_regex(values, _WIKIDATA_STRING).to_numpy())
    )
    lists = pa.array([], _ENTITY_SCHEMA.field("e").type)
    if regular.any():
        # One JSON line per regular list, `{"e": <list>}`, over which pyarrow reads only the WikidataIds.
        embedded = pc.binary_join_element_wise('{"e":', values.filter(pa.array(regular)), "}\n", "")
        end = int(np.frombuffer(embedded.buffers()[1], np.int32, len(embedded) + 1, embedded.offset * 4)[-1])
        try:
            parsed = pa_json.read_json(
                pa.BufferReader(embedded.buffers()[2].slice(0, end)),
                parse_options=pa_json.ParseOptions(explicit_schema=_ENTITY_SCHEMA, unexpected_field_behavior="ignore"),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. a number out of range: the line reader judges
            return None
        lists = parsed.column("e").combine_chunks()
    lengths = np.zeros(len(values), dtype=np.int32)
    lengths[regular] = pc.list_value_length(lists).to_numpy()
    ids = pc.struct_field(lists.flatten(), "WikidataId")
    # A list whose objects do not each hold one WikidataId (a missing one, a repeated one) is read by json.loads.
    rows_with_null = np.zeros(len(values), dtype=bool)
    if ids.null_count:
        owner = np.repeat(np.flatnonzero(regular), lengths[regular])
        rows_with_null[owner[ids.is_null().to_numpy(zero_copy_only=False)]] = True
    irregular = ~blank & (~regular | (lengths != keys) | rows_with_null)
    if not irregular.any():
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), ids)
    # Rare: some lists by json.loads, row by row.
    by_row: list[list[str]] = [[] for _ in range(len(values))]
    for row, entities in zip(np.flatnonzero(regular).tolist(), lists.to_pylist()):
        by_row[row] = [entity["WikidataId"] for entity in entities]
    try:
        for row in np.flatnonzero(irregular).tolist():
            by_row[row] = parse_entities(values[row].as_py(), Path(path), row + 1, column)
    except DataFileError:
        return None
    return pa.array(by_row, pa.list_(pa.string()))


def _parse_times(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
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
    "BehaviorsTable",
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
    "run_positions",
    "split_behaviors_line",
]
