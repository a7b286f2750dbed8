"""
Raw-file reading of the knowledge-tracing readers beyond the shared text layer ([`gram_hf.raw_files`]: plain or
gzip text, CSV rows by name, `file:line` errors): Parquet columns, and the `id,text` tables that give items their
text. Every error names the file and, for text files, the line; bad lines are reported together.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from ...raw_files import BadLines, DataFileError, check_files_exist, excerpt, iter_csv, read_csv_header


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
        raise DataFileError(path, None, f"not a readable parquet file ({err})") from None
    missing = [column for column in required_columns if column not in table.column_names]
    if missing:
        raise DataFileError(path, None, f"the columns {table.column_names} lack {missing}")
    return table


def read_text_table(
    source: str | os.PathLike | Mapping[str, str],
    id_column: str,
    text_column: str = "text",
    what: str = "item",
) -> dict[str, str]:
    """
    Item texts `{item_id: text}` from a CSV or Parquet file with columns `id_column,text_column` (or exactly two
    columns, taken as id then text), or from a mapping. Empty and repeated ids are [`DataFileError`]s naming file and
    line (Parquet: row), all of them reported together.
    """
    if isinstance(source, Mapping):
        return {str(key): "" if value is None else str(value) for key, value in source.items()}
    path = os.fspath(source)
    check_files_exist([path])
    texts: dict[str, str] = {}
    bad = BadLines()
    if is_parquet(path):
        table = read_parquet_columns(path, [])
        names = (id_column, text_column) if {id_column, text_column} <= set(table.column_names) else None
        if names is None and table.num_columns == 2:
            names = tuple(table.column_names)
        if names is None:
            raise DataFileError(
                path, None, f"expected columns {id_column!r} and {text_column!r}, got {table.column_names}"
            )
        ids = table[names[0]].cast(pa.string()).to_pylist()
        values = table[names[1]].cast(pa.string()).to_pylist()
        for row, (item_id, text) in enumerate(zip(ids, values)):
            if item_id is None or item_id == "":
                bad.add(path, None, f"row {row}: empty {what} id")
            elif item_id in texts:
                bad.add(path, None, f"row {row}: {what} id {item_id!r} appears twice")
            else:
                texts[item_id] = "" if text is None else text
        bad.check()
        return texts
    header = read_csv_header(path) or []
    if {id_column, text_column} <= set(header):
        names = (id_column, text_column)
    elif len(header) == 2:
        names = (header[0], header[1])
    else:
        raise DataFileError(path, 1, f"expected columns {id_column!r} and {text_column!r} in the header, got {header}")
    for line, row in iter_csv(path, names, bad):
        item_id = row[names[0]].strip()
        if not item_id:
            bad.add(path, line, f"empty {what} id")
        elif item_id in texts:
            bad.add(path, line, f"{what} id {item_id!r} appears twice")
        else:
            texts[item_id] = row[names[1]]
    bad.check()
    return texts


def examples(values: Iterable[Any], limit: int = 5) -> str:
    """The first `limit` of `values`, shortened, for an error or warning message (`'a', 'b', ...`)."""
    shown = [excerpt(value, 60) for value in list(values)[:limit]]
    return ", ".join(shown)


__all__ = ["examples", "is_parquet", "read_parquet_columns", "read_text_table"]
