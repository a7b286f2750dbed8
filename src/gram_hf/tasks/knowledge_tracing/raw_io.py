"""
Raw-file reading shared by the knowledge-tracing readers: CSV with a header (proper quoting, file:line errors),
Parquet columns, and the `id,text` tables that give items their text. Every error names the file and, for text
files, the line.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa


def check_files_exist(paths: Iterable[str | os.PathLike]) -> None:
    """Raises `FileNotFoundError` naming the first path that does not exist."""
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such file or directory: {os.fspath(path)!r}")


def iter_csv(path: str | os.PathLike, required_columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """
    Yields `(line number, row)` of a comma-separated file with a header, with proper CSV quoting (commas, quotes and
    newlines inside quoted fields). Raises `FileNotFoundError` naming a missing file and `ValueError` naming file and
    line for a missing column, a row with the wrong number of fields or undecodable bytes.
    """
    path = os.fspath(path)
    check_files_exist([path])
    # utf-8-sig: files saved by spreadsheet programs start with a byte-order mark that would glue onto the first name.
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise ValueError(
                    f"{path}: the file is empty; expected a header with columns {list(required_columns)}."
                )
            header = [name.strip() for name in header]
            missing = [column for column in required_columns if column not in header]
            if missing:
                raise ValueError(f"{path}:1: the header {header} lacks the column(s) {missing}.")
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise ValueError(
                        f"{path}:{reader.line_num}: expected {len(header)} fields ({','.join(header)}), got "
                        f"{len(row)}: {excerpt(row)} (quote fields that contain commas)."
                    )
                yield reader.line_num, dict(zip(header, row))
        except csv.Error as err:
            raise ValueError(f"{path}:{reader.line_num}: malformed CSV: {err}.") from None
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not valid UTF-8 ({err}).") from None


def excerpt(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters, for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_parquet(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith((".parquet", ".pq"))


def read_parquet_columns(path: str | os.PathLike, required_columns: Sequence[str]) -> pa.Table:
    """A parquet file as an Arrow table, with a `ValueError` naming the file and the missing columns."""
    import pyarrow.parquet as pq

    path = os.fspath(path)
    check_files_exist([path])
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"{path}: not a readable parquet file ({err}).") from None
    missing = [column for column in required_columns if column not in table.column_names]
    if missing:
        raise ValueError(f"{path}: the columns {table.column_names} lack {missing}.")
    return table


def read_text_table(
    source: str | os.PathLike | Mapping[str, str],
    id_column: str,
    text_column: str = "text",
    what: str = "item",
) -> dict[str, str]:
    """
    Item texts `{item_id: text}` from a CSV or Parquet file with columns `id_column,text_column` (or exactly two
    columns, taken as id then text), or from a mapping. A repeated id is a `ValueError` naming file and line.
    """
    if isinstance(source, Mapping):
        return {str(key): "" if value is None else str(value) for key, value in source.items()}
    path = os.fspath(source)
    check_files_exist([path])
    texts: dict[str, str] = {}
    if is_parquet(path):
        table = read_parquet_columns(path, [])
        names = (id_column, text_column) if {id_column, text_column} <= set(table.column_names) else None
        if names is None and table.num_columns == 2:
            names = tuple(table.column_names)
        if names is None:
            raise ValueError(f"{path}: expected columns {id_column!r} and {text_column!r}, got {table.column_names}.")
        ids = table[names[0]].cast(pa.string()).to_pylist()
        values = table[names[1]].cast(pa.string()).to_pylist()
        for row, (item_id, text) in enumerate(zip(ids, values)):
            if item_id is None or item_id == "":
                raise ValueError(f"{path}: row {row}: empty {what} id.")
            if item_id in texts:
                raise ValueError(f"{path}: row {row}: {what} id {item_id!r} appears twice.")
            texts[item_id] = "" if text is None else text
        return texts
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None) or []
    header = [name.strip() for name in header]
    if {id_column, text_column} <= set(header):
        names = (id_column, text_column)
    elif len(header) == 2:
        names = (header[0], header[1])
    else:
        raise ValueError(f"{path}:1: expected columns {id_column!r} and {text_column!r} in the header, got {header}.")
    for line, row in iter_csv(path, names):
        item_id = row[names[0]].strip()
        if not item_id:
            raise ValueError(f"{path}:{line}: empty {what} id.")
        if item_id in texts:
            raise ValueError(f"{path}:{line}: {what} id {item_id!r} appears twice.")
        texts[item_id] = row[names[1]]
    return texts


def examples(values: Iterable[Any], limit: int = 5) -> str:
    """The first `limit` of `values`, shortened, for an error or warning message (`'a', 'b', ...`)."""
    shown = [excerpt(value, 60) for value in list(values)[:limit]]
    return ", ".join(shown)


__all__ = [
    "check_files_exist",
    "examples",
    "excerpt",
    "is_parquet",
    "iter_csv",
    "read_parquet_columns",
    "read_text_table",
]
