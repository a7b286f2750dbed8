"""
Reading the raw files of the next-item datasets: MovieLens-20M (`ratings.csv`, `movies.csv`) and Amazon reviews
(JSON lines of reviews, metadata as Python literals or JSON; `.gz` read directly), and the item texts built from them.
Files are opened through the shared text layer ([`gram_hf.raw_files`]): malformed lines, invalid UTF-8 and cut-off
`.gz` files are reported as `file:line: problem`, the first few bad lines of a file together.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import zlib
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from ...raw_files import (
    PYTHON_WHITESPACE,
    BadLines,
    DataFileError,
    iter_lines,
    open_text,
    read_lines,
    reading,
    strip_strings,
)

MOVIELENS_RATINGS_HEADER = ["userId", "movieId", "rating", "timestamp"]
MOVIELENS_MOVIES_HEADER = ["movieId", "title", "genres"]
AMAZON_REVIEW_KEYS = ("reviewerID", "asin", "unixReviewTime")


def require_file(path: str | os.PathLike, what: str) -> str:
    """`path` as a string; `FileNotFoundError` naming `what` and the path when it is not a file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


# ---------------------------------------------------------------------------------------------------------- MovieLens


def read_movielens_ratings(path: str) -> pa.Table:
    """
    `ratings.csv` (`userId,movieId,rating,timestamp`) as an Arrow table of those columns (int64, int64, float64,
    int64), parsed by pyarrow's CSV reader, else (a value pyarrow does not take) by pandas' C reader. When both fail,
    a line-by-line scan finds what is wrong and raises one [`~gram_hf.raw_files.DataFileError`] listing the first bad
    lines (`<path>:<line>: ...`) and how many more there are.
    """
    dtypes = {"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"}
    with reading(path), open_text(path) as handle:
        header = handle.readline().strip().split(",")
    if header != MOVIELENS_RATINGS_HEADER:
        raise DataFileError(
            path, 1, f"expected the header {','.join(MOVIELENS_RATINGS_HEADER)}, got {','.join(header)}"
        )
    table = _read_ratings_fast(path)
    if table is not None:
        return table
    try:
        frame = pd.read_csv(path, dtype=dtypes, engine="c")
    except (ValueError, TypeError, pd.errors.ParserError, EOFError, OSError, zlib.error) as error:
        # Invalid UTF-8 and cut-off .gz files end here too; the scan names their lines.
        _check_rating_lines(path)
        raise DataFileError(path, None, f"could not be parsed as MovieLens ratings: {error}") from error
    if list(frame.columns) != MOVIELENS_RATINGS_HEADER or frame.isna().to_numpy().any():
        _check_rating_lines(path)
        raise DataFileError(path, None, "could not be parsed as MovieLens ratings")
    return pa.Table.from_pandas(frame, preserve_index=False)


_RATING_TYPES = {"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()}


def _read_ratings_fast(path: str) -> pa.Table | None:
    """
    The ratings through pyarrow (multi-threaded, reading the file itself, `.gz` included); `None` on anything pandas'
    reader or the scan should judge.
    """
    try:
        table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types=_RATING_TYPES))
    except (pa.ArrowException, OSError):
        return None
    if table.column_names != MOVIELENS_RATINGS_HEADER or any(column.null_count for column in table.columns):
        return None
    return table


def _check_rating_lines(path: str) -> None:
    """The slow path of [`read_movielens_ratings`]: every line checked, the bad ones raised together."""
    parsers = (int, int, float, int)
    bad = BadLines()
    for number, line in iter_lines(path, bad):
        if number == 1:
            continue
        fields = line.split(",")
        if len(fields) != 4:
            bad.add(path, number, f"expected 4 comma-separated fields, got {len(fields)}: {line!r}")
            continue
        for name, parse, value in zip(MOVIELENS_RATINGS_HEADER, parsers, fields):
            try:
                parse(value)
            except ValueError:
                bad.add(path, number, f"{name} {value!r} is not a valid {parse.__name__}")
                break
    bad.check()


def read_movielens_movies(path: str) -> dict[int, tuple[str, list[str]]]:
    """
    `movies.csv` (`movieId,title,genres`, titles quoted when they hold commas) as `{movieId: (title, genres)}`; every
    malformed line is reported, together.
    """
    movies: dict[int, tuple[str, list[str]]] = {}
    bad = BadLines()
    with reading(path, bad), open_text(path, newline="") as handle:
        reader = csv.reader(handle)
        for row in reader:
            number = reader.line_num
            if number == 1:
                if row != MOVIELENS_MOVIES_HEADER:
                    raise DataFileError(path, 1, f"expected the header {','.join(MOVIELENS_MOVIES_HEADER)}, got {row}")
                continue
            if len(row) != 3:
                bad.add(path, number, f"expected 3 fields (movieId,title,genres), got {len(row)}: {row}")
                continue
            try:
                movie_id = int(row[0])
            except ValueError:
                bad.add(path, number, f"movieId {row[0]!r} is not an integer")
                continue
            if movie_id in movies:
                bad.add(path, number, f"movieId {movie_id} appears twice")
                continue
            genres = [] if row[2] in ("", "(no genres listed)") else row[2].split("|")
            movies[movie_id] = (row[1].strip(), genres)
    bad.check()
    return movies


def movielens_text(title: str, genres: list[str]) -> str:
    """An item's text: its title and genres (`"Toy Story (1995). Adventure, Animation, Children"`)."""
    return f"{title}. {', '.join(genres)}" if genres else title


# ------------------------------------------------------------------------------------------------------------- Amazon

_ASIN_PATTERN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


def read_amazon_reviews(path: str) -> pa.Table:
    """
    Reviews as JSON lines (`reviewerID`, `asin`, `unixReviewTime`), e.g. the 5-core `reviews_Beauty_5.json(.gz)`, as
    an Arrow table of `user`, `item` (strings) and `timestamp` (int64); every malformed line is reported, together.
    Read by pyarrow's JSON reader unless anything is off, then line by line.
    """
    table = _read_reviews_fast(path)
    if table is not None:
        return table
    users, items, times = [], [], []
    bad = BadLines()
    for number, line in iter_lines(path, bad):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            bad.add(path, number, f"invalid JSON: {error.msg}")
            continue
        if not isinstance(record, dict):
            bad.add(path, number, f"expected a JSON object, got {type(record).__name__}")
            continue
        missing = [key for key in AMAZON_REVIEW_KEYS if key not in record]
        if missing:
            bad.add(path, number, f"missing {', '.join(missing)}")
            continue
        timestamp = record["unixReviewTime"]
        if isinstance(timestamp, bool) or not isinstance(timestamp, int):
            bad.add(path, number, f"unixReviewTime must be an integer, got {timestamp!r}")
            continue
        users.append(str(record["reviewerID"]))
        items.append(str(record["asin"]))
        times.append(timestamp)
    bad.check()
    return pa.table(
        {
            "user": pa.array(users, pa.string()),
            "item": pa.array(items, pa.string()),
            "timestamp": pa.array(times, pa.int64()),
        }
    )


def _read_reviews_fast(path: str) -> pa.Table | None:
    """
    The reviews through pyarrow (reading the file itself, `.gz` included); `None` when a line is not a one-line JSON
    object with a string `reviewerID` and `asin` and an integer `unixReviewTime` (the reader's own checks), or the
    file cannot be read plainly, so that the line-by-line reader names it.
    """
    try:
        table = pa_json.read_json(path)
    except (pa.ArrowException, OSError):
        return None
    types = {"reviewerID": pa.string(), "asin": pa.string(), "unixReviewTime": pa.int64()}
    for name, expected in types.items():
        if name not in table.column_names or table[name].type != expected or table[name].null_count:
            return None
    return pa.table({"user": table["reviewerID"], "item": table["asin"], "timestamp": table["unixReviewTime"]})


def _parse_metadata_line(line: str) -> Any:
    """One metadata record: the 2014 files hold Python literals (single quotes), later ones JSON."""
    try:
        # Python literals are parsed, never evaluated: ast.literal_eval accepts only literal syntax.
        return ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return json.loads(line)


def read_amazon_metadata(path: str, needed: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """
    Item metadata lines (`asin`, `title`, `description`, `categories`), Python literals (2014) or JSON (2018), as
    `{asin: record}`. With `needed`, lines whose `asin` is visibly not needed are skipped unparsed (the metadata files
    are an order of magnitude larger than the 5-core item sets).
    """
    if needed is not None:
        records = _read_needed_metadata(path, needed)
        if records is not None:
            return records
    records = {}
    bad = BadLines()
    for number, line in iter_lines(path, bad):
        if needed is not None:
            match = _ASIN_PATTERN.search(line)
            if match and match.group(1) not in needed:
                continue
        try:
            record = _parse_metadata_line(line)
        except (ValueError, SyntaxError) as error:
            bad.add(path, number, f"neither a Python literal nor JSON: {type(error).__name__}: {error}")
            continue
        if not isinstance(record, dict) or "asin" not in record:
            bad.add(path, number, f"expected a record with an 'asin', got {str(record)[:80]!r}")
            continue
        records[str(record["asin"])] = record
    bad.check()
    return records


# `_ASIN_PATTERN` for pyarrow's RE2, whose `\\s` is ASCII only: Python's `\\s` in a `str` pattern is any `isspace()`.
_PYTHON_SPACE = "[" + "".join(f"\\x{{{ord(character):x}}}" for character in PYTHON_WHITESPACE) + "]"
_ASIN_PATTERN_RE2 = rf"""['"]asin['"]{_PYTHON_SPACE}*:{_PYTHON_SPACE}*['"](?P<asin>[^'"]+)['"]"""


def _read_needed_metadata(path: str, needed: set[str]) -> dict[str, dict[str, Any]] | None:
    """
    [`read_amazon_metadata`] with `needed`, the lines whose `asin` is visibly not needed found by pyarrow at once;
    `None` when the file is not plainly readable or a kept line does not parse, for the line-by-line reader to name.
    """
    # The lines with their breaks, over the file's bytes: only the few kept lines are copied (without the breaks).
    lines = read_lines(path, keep_line_breaks=True)
    if lines is None:
        return None
    asin = pc.extract_regex(lines, _ASIN_PATTERN_RE2).field("asin")
    skipped = pc.and_(asin.is_valid(), pc.invert(pc.is_in(asin, value_set=pa.array(sorted(needed), pa.string()))))
    lines = pc.utf8_rtrim(lines.filter(pc.invert(skipped)), characters="\r\n")
    # `iter_lines` skips blank lines (looked for among the kept lines only, a few).
    lines = lines.filter(pc.not_equal(strip_strings(lines), ""))
    records: dict[str, dict[str, Any]] = {}
    for line in lines.to_pylist():
        try:
            record = _parse_metadata_line(line)
        except (ValueError, SyntaxError):
            return None
        if not isinstance(record, dict) or "asin" not in record:
            return None
        records[str(record["asin"])] = record
    return records


def amazon_text(record: dict[str, Any]) -> tuple[str, list[str], str, str]:
    """`(text, categories, title, description)` of a metadata record; text = title, categories and description."""
    title = str(record.get("title") or "").strip()
    raw_categories = record.get("categories", record.get("category")) or []
    categories: list[str] = []
    for entry in raw_categories:
        for name in entry if isinstance(entry, (list, tuple)) else [entry]:
            name = str(name).strip()
            if name and name not in categories:
                categories.append(name)
    description = record.get("description") or ""
    if isinstance(description, (list, tuple)):
        description = " ".join(str(part) for part in description)
    description = str(description).strip()
    parts = [part for part in (title, ", ".join(categories), description) if part]
    return ". ".join(parts), categories, title, description


__all__ = [
    "amazon_text",
    "movielens_text",
    "read_amazon_metadata",
    "read_amazon_reviews",
    "read_movielens_movies",
    "read_movielens_ratings",
    "require_file",
]
