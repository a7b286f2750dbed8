"""
Reading the raw files of the next-item datasets: MovieLens-20M (`ratings.csv`, `movies.csv`) and Amazon reviews
(JSON lines of reviews, metadata as Python literals or JSON; `.gz` read directly), with `file:line` errors, and the
item texts built from them.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import os
import re
from typing import Any

import numpy as np
import pandas as pd

MOVIELENS_RATINGS_HEADER = ["userId", "movieId", "rating", "timestamp"]
MOVIELENS_MOVIES_HEADER = ["movieId", "title", "genres"]
AMAZON_REVIEW_KEYS = ("reviewerID", "asin", "unixReviewTime")


def require_file(path: str | os.PathLike, what: str) -> str:
    """`path` as a string; `FileNotFoundError` naming `what` and the path when it is not a file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def open_text(path: str) -> io.TextIOBase:
    """Opens a text file, gzip-compressed when it ends in `.gz` (the form Amazon's files are distributed in)."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------- MovieLens


def read_movielens_ratings(path: str) -> pd.DataFrame:
    """
    `ratings.csv` (`userId,movieId,rating,timestamp`) as a DataFrame, parsed by pandas' C reader; a malformed line is
    reported as `ValueError("<path>:<line>: ...")`, found by a line-by-line scan only when the fast path fails.
    """
    dtypes = {"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"}
    with open_text(path) as handle:
        header = handle.readline().strip().split(",")
    if header != MOVIELENS_RATINGS_HEADER:
        raise ValueError(f"{path}:1: expected the header {','.join(MOVIELENS_RATINGS_HEADER)}, got {','.join(header)}")
    try:
        frame = pd.read_csv(path, dtype=dtypes, engine="c")
    except (ValueError, TypeError, pd.errors.ParserError) as error:
        _raise_first_bad_rating_line(path)
        raise ValueError(f"{path}: could not be parsed as MovieLens ratings: {error}") from error
    if list(frame.columns) != MOVIELENS_RATINGS_HEADER or frame.isna().to_numpy().any():
        _raise_first_bad_rating_line(path)
        raise ValueError(f"{path}: could not be parsed as MovieLens ratings.")
    return frame


def _raise_first_bad_rating_line(path: str) -> None:
    parsers = (int, int, float, int)
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if number == 1:
                continue
            fields = line.rstrip("\r\n").split(",")
            if len(fields) != 4:
                raise ValueError(f"{path}:{number}: expected 4 comma-separated fields, got {len(fields)}: {line!r}")
            for name, parse, value in zip(MOVIELENS_RATINGS_HEADER, parsers, fields):
                try:
                    parse(value)
                except ValueError:
                    raise ValueError(f"{path}:{number}: {name} {value!r} is not a valid {parse.__name__}") from None


def read_movielens_movies(path: str) -> dict[int, tuple[str, list[str]]]:
    """`movies.csv` (`movieId,title,genres`, titles quoted when they hold commas) as `{movieId: (title, genres)}`."""
    movies: dict[int, tuple[str, list[str]]] = {}
    with open_text(path) as handle:
        reader = csv.reader(handle)
        for row in reader:
            number = reader.line_num
            if number == 1:
                if row != MOVIELENS_MOVIES_HEADER:
                    raise ValueError(f"{path}:1: expected the header {','.join(MOVIELENS_MOVIES_HEADER)}, got {row}")
                continue
            if len(row) != 3:
                raise ValueError(f"{path}:{number}: expected 3 fields (movieId,title,genres), got {len(row)}: {row}")
            try:
                movie_id = int(row[0])
            except ValueError:
                raise ValueError(f"{path}:{number}: movieId {row[0]!r} is not an integer") from None
            if movie_id in movies:
                raise ValueError(f"{path}:{number}: movieId {movie_id} appears twice")
            genres = [] if row[2] in ("", "(no genres listed)") else row[2].split("|")
            movies[movie_id] = (row[1].strip(), genres)
    return movies


def movielens_text(title: str, genres: list[str]) -> str:
    """An item's text: its title and genres (`"Toy Story (1995). Adventure, Animation, Children"`)."""
    return f"{title}. {', '.join(genres)}" if genres else title


# ------------------------------------------------------------------------------------------------------------- Amazon

_ASIN_PATTERN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


def read_amazon_reviews(path: str) -> pd.DataFrame:
    """Reviews as JSON lines (`reviewerID`, `asin`, `unixReviewTime`), e.g. the 5-core `reviews_Beauty_5.json(.gz)`."""
    users, items, times = [], [], []
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: invalid JSON: {error.msg}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            missing = [key for key in AMAZON_REVIEW_KEYS if key not in record]
            if missing:
                raise ValueError(f"{path}:{number}: missing {', '.join(missing)}")
            timestamp = record["unixReviewTime"]
            if isinstance(timestamp, bool) or not isinstance(timestamp, int):
                raise ValueError(f"{path}:{number}: unixReviewTime must be an integer, got {timestamp!r}")
            users.append(str(record["reviewerID"]))
            items.append(str(record["asin"]))
            times.append(timestamp)
    return pd.DataFrame({"user": users, "item": items, "timestamp": np.asarray(times, dtype=np.int64)})


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
    records: dict[str, dict[str, Any]] = {}
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if needed is not None:
                match = _ASIN_PATTERN.search(line)
                if match and match.group(1) not in needed:
                    continue
            try:
                record = _parse_metadata_line(line)
            except (ValueError, SyntaxError) as error:
                raise ValueError(
                    f"{path}:{number}: neither a Python literal nor JSON: {type(error).__name__}: {error}"
                ) from None
            if not isinstance(record, dict) or "asin" not in record:
                raise ValueError(f"{path}:{number}: expected a record with an 'asin', got {str(record)[:80]!r}")
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
    "open_text",
    "read_amazon_metadata",
    "read_amazon_reviews",
    "read_movielens_movies",
    "read_movielens_ratings",
    "require_file",
]
