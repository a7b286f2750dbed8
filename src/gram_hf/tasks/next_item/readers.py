"""
Reading the raw files of the next-item datasets: MovieLens-20M (`ratings.csv`, `movies.csv`), Amazon reviews (JSON
lines of reviews, metadata as Python literals or JSON), Gowalla check-ins (tab-separated, no header) and the generic
tables (interactions `user_id,item_id,timestamp` and items `item_id,text`, CSV or Parquet), and the item texts built
from them; `.gz` text files are read directly. Files are opened through the shared text layer ([`gram_hf.raw_files`]):
malformed lines, invalid UTF-8 and cut-off `.gz` files are reported as `file:line: problem` (Parquet: `file: row N:
problem`), the first few bad lines of a file together with the count of the rest.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from ...raw_files import (
    PYTHON_WHITESPACE,
    BadLines,
    DataFileError,
    DroppedRows,
    excerpt,
    is_gzip,
    iter_csv,
    iter_lines,
    open_text,
    read_csv_columns_fast,
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


# -------------------------------------------------------------------------------------------------------- values

_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SECOND = timedelta(seconds=1)


def parse_integer(value: str) -> int:
    """A decimal integer that fits in int64 (a sign allowed; no spaces, underscores or decimals); `ValueError` else."""
    if not _INTEGER.fullmatch(value) or not _INT64_MIN <= int(value) <= _INT64_MAX:
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def parse_number(value: str) -> float:
    """A decimal number (`float`, without Python's digit underscores); `ValueError` otherwise."""
    if "_" in value:
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def parse_iso_seconds(value: str) -> int:
    """
    An ISO-8601 date-time -> Unix seconds, fractions of a second dropped (rounded down): `2010-10-19T23:55:27Z`, with
    an offset (`+02:00`) or naive (read as UTC); a date alone is its midnight. `ValueError` otherwise.
    """
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // _SECOND


def parse_timestamp(value: str) -> int:
    """
    A timestamp of the generic interaction table: an integer, taken as it is (Unix seconds, or any unit the whole
    file shares), or an ISO-8601 date-time, as Unix seconds ([`parse_iso_seconds`]). `ValueError` otherwise.
    """
    if _INTEGER.fullmatch(value):
        return parse_integer(value)
    return parse_iso_seconds(value)


def _timestamps_fast(values: pa.Array) -> np.ndarray | None:
    """
    Stripped timestamp strings as int64, as [`parse_timestamp`] reads them, when pyarrow reads them all one way: all
    integers, or all ISO-8601 date-times to the second with a zone (or all naive); `None` otherwise, for the
    value-by-value path to read (mixed or fractional values) or name the bad ones.
    """
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    for target in (pa.int64(), pa.timestamp("s", tz="UTC"), pa.timestamp("s")):
        try:
            converted = pc.cast(values, target)
        except pa.ArrowException:
            continue
        return converted.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return None


def _add_rows(bad: BadLines, path: str, rows: np.ndarray, problem: Any) -> None:
    """Bad Parquet rows (0-based: Parquet has no lines) recorded in `bad`: the first few described, all counted."""
    described = ((path, None, f"row {row}: {problem(row)}") for row in rows[: bad.limit].tolist())
    bad.add_many(described, len(rows))


# ------------------------------------------------------------------------------------------------------------- Gowalla

GOWALLA_FIELDS = ("user", "check-in time", "latitude", "longitude", "location id")
"""The five tab-separated fields of a line of `loc-gowalla_totalCheckins.txt`, in order."""
_GOWALLA_PARSERS = (parse_integer, parse_iso_seconds, parse_number, parse_number, parse_integer)
_GOWALLA_EXPECTED = {
    "user": "is not an integer",
    "check-in time": "is not an ISO-8601 date-time (like 2010-10-19T23:55:27Z)",
    "latitude": "is not a number",
    "longitude": "is not a number",
    "location id": "is not an integer",
}
_GOWALLA_NAMES = ["user", "time", "latitude", "longitude", "item"]
_GOWALLA_TYPES = {
    "user": pa.int64(),
    "time": pa.timestamp("s", tz="UTC"),
    "latitude": pa.float64(),
    "longitude": pa.float64(),
    "item": pa.int64(),
}


def read_gowalla_checkins(path: str) -> tuple[pa.Table, DroppedRows]:
    """
    Gowalla check-ins (SNAP's `loc-gowalla_totalCheckins.txt`, or `.txt.gz` read directly): tab-separated, no header,
    one check-in a line, `user \\t check-in time \\t latitude \\t longitude \\t location id`, e.g.
    `0\\t2010-10-19T23:55:27Z\\t30.2359091167\\t-97.7951395833\\t22847`. User and location ids are integers; the time
    is ISO 8601 (`Z`, an offset, or naive = UTC).

    Returns an Arrow table of `user`, `timestamp` (Unix seconds), `latitude`, `longitude` (float64) and `item` (the
    location id), all the file's check-ins in file order but those with a latitude outside [-90, 90] or a longitude
    outside [-180, 180] (or not finite), which are returned as `invalid_coordinates` [`DroppedRows`] with their lines.
    Read by pyarrow unless anything is off, then line by line: a malformed line (not five fields, a value that does
    not parse) is a [`DataFileError`] naming file and line, every bad line reported together (the first few and the
    count of the rest); an empty file is one too.
    """
    read = _read_checkins_fast(path)
    table, dropped = read if read is not None else _read_checkin_lines(path)
    if not table.num_rows and not dropped.total:
        raise DataFileError(path, None, "holds no check-ins (the file is empty)")
    return table, dropped


def _read_checkins_fast(path: str) -> tuple[pa.Table, DroppedRows] | None:
    """
    The check-ins through pyarrow (multi-threaded, `.gz` decompressed as a stream); `None` on anything the line-by-line
    reader should judge: a value pyarrow does not parse, a missing value, a coordinate out of range (whose lines the
    drop names), invalid UTF-8, a cut-off `.gz`, an empty file.
    """
    try:
        with pa.input_stream(path, compression="gzip" if is_gzip(path) else None) as stream:
            table = pa_csv.read_csv(
                stream,
                read_options=pa_csv.ReadOptions(column_names=_GOWALLA_NAMES),
                parse_options=pa_csv.ParseOptions(delimiter="\t", quote_char=False),
                convert_options=pa_csv.ConvertOptions(column_types=_GOWALLA_TYPES),
            )
    except (pa.ArrowException, OSError, EOFError, ValueError, zlib.error):
        return None
    if not table.num_rows or any(column.null_count for column in table.columns):
        return None
    latitude, longitude = table["latitude"], table["longitude"]
    valid = pc.and_(
        pc.and_(pc.greater_equal(latitude, -90.0), pc.less_equal(latitude, 90.0)),
        pc.and_(pc.greater_equal(longitude, -180.0), pc.less_equal(longitude, 180.0)),
    )
    if not pc.all(valid).as_py():
        return None
    columns = {
        "user": table["user"],
        "timestamp": table["time"].cast(pa.int64()),
        "latitude": latitude,
        "longitude": longitude,
        "item": table["item"],
    }
    return pa.table(columns), DroppedRows()


def _read_checkin_lines(path: str) -> tuple[pa.Table, DroppedRows]:
    """The slow path of [`read_gowalla_checkins`]: every line checked, the bad ones raised together."""
    bad = BadLines()
    dropped = DroppedRows()
    users, times, latitudes, longitudes, items = [], [], [], [], []
    for number, line in iter_lines(path, bad):
        fields = [field.strip() for field in line.split("\t")]
        if len(fields) != len(GOWALLA_FIELDS):
            bad.add(
                path,
                number,
                f"expected {len(GOWALLA_FIELDS)} tab-separated fields ({', '.join(GOWALLA_FIELDS)}), got "
                f"{len(fields)}: {excerpt(line)}",
            )
            continue
        values = []
        for name, parse, value in zip(GOWALLA_FIELDS, _GOWALLA_PARSERS, fields):
            try:
                values.append(parse(value))
            except (ValueError, OverflowError):
                hint = " (the check-in file has no header line)" if number == 1 else ""
                bad.add(path, number, f"{name} {excerpt(value)} {_GOWALLA_EXPECTED[name]}{hint}")
                break
        if len(values) < len(GOWALLA_FIELDS):
            continue
        user, seconds, latitude, longitude, item = values
        if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):  # NaN fails both
            dropped.add(
                "invalid_coordinates",
                path,
                number,
                f"latitude {fields[2]} / longitude {fields[3]} outside [-90, 90] / [-180, 180]",
            )
            continue
        users.append(user)
        times.append(seconds)
        latitudes.append(latitude)
        longitudes.append(longitude)
        items.append(item)
    bad.check()
    table = pa.table(
        {
            "user": pa.array(users, pa.int64()),
            "timestamp": pa.array(times, pa.int64()),
            "latitude": pa.array(latitudes, pa.float64()),
            "longitude": pa.array(longitudes, pa.float64()),
            "item": pa.array(items, pa.int64()),
        }
    )
    return table, dropped


# ------------------------------------------------------------------------------------------------------ generic tables


def is_parquet(path: str | os.PathLike) -> bool:
    """Whether a generic table is read as Parquet: its name ends in `.parquet` or `.pq` (else it is CSV)."""
    return os.fspath(path).lower().endswith((".parquet", ".pq"))


def read_parquet(path: str, columns: Sequence[str]) -> pa.Table:
    """
    The `columns` of a Parquet file (others are not read); a [`DataFileError`] naming the file when it is not
    readable Parquet or lacks a column.
    """
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        missing = [column for column in columns if column not in names]
        if missing:
            raise DataFileError(path, None, f"the columns {names} lack {missing}")
        return pq.read_table(path, columns=list(dict.fromkeys(columns)))
    except (pa.ArrowException, OSError) as err:
        raise DataFileError(path, None, f"not a readable Parquet file ({err})") from None


def read_interaction_table(
    path: str, user_column: str = "user_id", item_column: str = "item_id", timestamp_column: str = "timestamp"
) -> pa.Table:
    """
    A generic interaction table, CSV with a header (plain or `.gz`; proper quoting) or Parquet (`.parquet`, `.pq`):
    one interaction a row, its columns read by name (others ignored). Ids are strings (stripped; Parquet numbers
    written as text); a timestamp is an integer, taken as it is, or an ISO-8601 date-time, as Unix seconds
    ([`parse_timestamp`]; Parquet timestamp columns too).

    Returns an Arrow table of `user`, `item` (strings) and `timestamp` (int64) in file order. Read by pyarrow unless
    anything is off, then row by row: a missing column, an empty id, a timestamp that does not parse or a row with the
    wrong number of fields is a [`DataFileError`] naming file and line (Parquet: row), every bad line reported
    together; an empty file, or one without rows, is one too.
    """
    columns = (user_column, item_column, timestamp_column)
    if is_parquet(path):
        table = _read_interactions_parquet(path, columns)
    else:
        table = _read_interactions_csv_fast(path, columns)
        if table is None:
            table = _read_interactions_csv(path, columns)
    if not table.num_rows:
        raise DataFileError(path, None, "holds no interactions (a header but no rows)")
    return table


def _interaction_table(users: Any, items: Any, timestamps: Any) -> pa.Table:
    return pa.table(
        {
            "user": pa.array(users, pa.string()) if isinstance(users, list) else users,
            "item": pa.array(items, pa.string()) if isinstance(items, list) else items,
            "timestamp": pa.array(timestamps, pa.int64()),
        }
    )


def _read_interactions_csv_fast(path: str, columns: tuple[str, str, str]) -> pa.Table | None:
    """The interactions through pyarrow, read exactly as [`_read_interactions_csv`] reads them; `None` on any doubt."""
    read = read_csv_columns_fast(path, columns)
    if read is None:
        return None
    user_column, item_column, timestamp_column = columns
    users, items = read[user_column], read[item_column]
    if pc.any(pc.equal(users, "")).as_py() or pc.any(pc.equal(items, "")).as_py():
        return None
    timestamps = _timestamps_fast(read[timestamp_column])
    if timestamps is None:
        return None
    return _interaction_table(users, items, timestamps)


def _read_interactions_csv(path: str, columns: tuple[str, str, str]) -> pa.Table:
    """The slow path of [`read_interaction_table`] for CSV: every row checked, the bad ones raised together."""
    user_column, item_column, timestamp_column = columns
    users, items, timestamps = [], [], []
    bad = BadLines()
    for line, row in iter_csv(path, columns, bad):
        user, item, raw_time = row[user_column].strip(), row[item_column].strip(), row[timestamp_column].strip()
        if not user or not item:
            bad.add(path, line, f"empty {user_column if not user else item_column}")
            continue
        try:
            timestamp = parse_timestamp(raw_time)
        except ValueError:
            bad.add(
                path, line, f"{timestamp_column} {excerpt(raw_time)} is neither an integer nor an ISO-8601 date-time"
            )
            continue
        users.append(user)
        items.append(item)
        timestamps.append(timestamp)
    bad.check()
    return _interaction_table(users, items, timestamps)


def _read_interactions_parquet(path: str, columns: tuple[str, str, str]) -> pa.Table:
    """[`read_interaction_table`] for Parquet: missing values, empty ids and bad timestamps named by row, together."""
    table = read_parquet(path, columns)
    user_column, item_column, timestamp_column = columns
    bad = BadLines()
    for name in dict.fromkeys(columns):
        if table[name].null_count:
            rows = np.flatnonzero(table[name].is_null().to_numpy(zero_copy_only=False))
            _add_rows(bad, path, rows, lambda row, name=name: f"{name} is missing")
    bad.check()
    ids = {}
    for name in (user_column, item_column):
        try:
            values = strip_strings(table[name].combine_chunks().cast(pa.string()))
        except pa.ArrowException:
            raise DataFileError(path, None, f"the column {name!r} of type {table[name].type} is not an id") from None
        empty = np.flatnonzero(pc.equal(values, "").to_numpy(zero_copy_only=False))
        _add_rows(bad, path, empty, lambda row, name=name: f"empty {name}")
        ids[name] = values
    timestamps = _parquet_timestamps(path, table[timestamp_column].combine_chunks(), timestamp_column, bad)
    bad.check()
    return _interaction_table(ids[user_column], ids[item_column], timestamps)


_TIME_UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _parquet_timestamps(path: str, values: pa.Array, name: str, bad: BadLines) -> np.ndarray:
    """A Parquet timestamp column as int64: integers as they are, timestamps and ISO strings as Unix seconds."""
    kind = values.type
    if pa.types.is_integer(kind):
        return values.cast(pa.int64()).to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(kind):  # naive ones read as UTC; fractions of a second dropped (rounded down)
        return values.cast(pa.int64()).to_numpy(zero_copy_only=False) // _TIME_UNITS[kind.unit]
    if pa.types.is_floating(kind):
        numbers = values.to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(numbers) & (numbers == np.floor(numbers)) & (np.abs(numbers) < 2.0**63)
        wrong = np.flatnonzero(~whole)
        _add_rows(bad, path, wrong, lambda row: f"{name} {numbers[row]!r} is not an integer")
        return np.where(whole, numbers, 0).astype(np.int64)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        stripped = strip_strings(values)
        fast = _timestamps_fast(stripped)
        if fast is not None:
            return fast
        timestamps = np.zeros(len(stripped), dtype=np.int64)
        for row, value in enumerate(stripped.to_pylist()):
            try:
                timestamps[row] = parse_timestamp(value)
            except ValueError:
                problem = f"{name} {excerpt(value)} is neither an integer nor an ISO-8601 date-time"
                bad.add(path, None, f"row {row}: {problem}")
        return timestamps
    raise DataFileError(
        path, None, f"the column {name!r} has type {kind}: expected integers, ISO-8601 strings or timestamps"
    )


def read_item_texts(
    path: str, item_column: str = "item_id", text_columns: Sequence[str] = ("text",)
) -> dict[str, str]:
    """
    An item-text table, CSV with a header (plain or `.gz`; texts with commas, quotes or newlines CSV-quoted) or
    Parquet, as `{item_id: text}`: the column `item_column` and the `text_columns`, read by name (others ignored).
    An item's text is its non-empty text fields, stripped, joined by `". "` (`"Blue Bottle. Coffee shop"`); missing
    Parquet values are empty. A missing column is a [`DataFileError`] at once; empty and repeated item ids are bad
    lines (Parquet: rows), all of them reported together.
    """
    columns = [item_column, *text_columns]
    texts: dict[str, str] = {}
    bad = BadLines()

    if is_parquet(path):
        table = read_parquet(path, columns)
        ids = table[item_column].cast(pa.string()).to_pylist()
        fields = [table[name].cast(pa.string()).to_pylist() for name in text_columns]
        for row, item_id in enumerate(ids):
            item_id = (item_id or "").strip()
            values = [column[row] for column in fields]
            if not item_id:
                bad.add(path, None, f"row {row}: empty {item_column}")
            elif item_id in texts:
                bad.add(path, None, f"row {row}: {item_column} {item_id!r} appears twice")
            else:
                texts[item_id] = _join_text(values)
    else:
        for line, row in iter_csv(path, columns, bad):
            item_id = row[item_column].strip()
            if not item_id:
                bad.add(path, line, f"empty {item_column}")
            elif item_id in texts:
                bad.add(path, line, f"{item_column} {item_id!r} appears twice")
            else:
                texts[item_id] = _join_text([row[name] for name in text_columns])
    bad.check()
    return texts


def _join_text(fields: Sequence[str | None]) -> str:
    """An item's text from its text fields: the non-empty ones, stripped, joined by `". "`."""
    return ". ".join(part for part in ((field or "").strip() for field in fields) if part)


__all__ = [
    "GOWALLA_FIELDS",
    "amazon_text",
    "is_parquet",
    "movielens_text",
    "parse_integer",
    "parse_iso_seconds",
    "parse_number",
    "parse_timestamp",
    "read_amazon_metadata",
    "read_amazon_reviews",
    "read_gowalla_checkins",
    "read_interaction_table",
    "read_item_texts",
    "read_movielens_movies",
    "read_movielens_ratings",
    "read_parquet",
    "require_file",
]
