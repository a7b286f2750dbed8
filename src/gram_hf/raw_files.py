"""
The one reading layer under every loader's raw text files (knowledge-tracing CSVs and logs, EdNet, Duolingo SLAM,
MIND TSVs, MovieLens, Amazon JSON lines, item-text tables), so that bad input reads the same everywhere:

- [`open_text`]: plain or gzip-compressed (`.gz`) UTF-8 text; a byte-order mark is dropped;
- [`reading`]: wraps a read so that an invalid byte becomes `<file>:<line>: not valid UTF-8 (...)` and a cut-off or
  corrupt `.gz` becomes `<file>:<line>: the compressed data ends in this line; the file looks truncated (...)`. The
  happy path costs nothing: the file is scanned line by line, to find the lines, only once the fast read failed;
- [`DataFileError`]: the error of bad data, a `ValueError` whose message is `<file>:<line>: <problem>` and which
  keeps `path`, `line` and `problem`; with several bad lines it lists the first few and how many more there are;
- [`BadLines`]: collects the problems of malformed lines so that a reader keeps going and one run reports several;
- [`DroppedRows`]: rows a reader leaves out on purpose (counted per reason, a few kept as examples) for the loader's
  stats, its one summary warning, and the error `strict=True` raises instead;
- [`iter_lines`], [`iter_csv`], [`read_raw_bytes`] and [`read_lines`]: numbered lines, CSV rows by column name, a
  whole file's bytes and its lines as one Arrow array, built on the pieces above;
- for the readers' fast (pyarrow) paths, which hand any doubtful file to their line-by-line path for the messages:
  [`strip_strings`] (`str.strip()` over an Arrow array, so that both paths read fields alike) and
  [`stable_argsort`] (rows grouped by learner and time, by 16-bit radix passes; [`in_order`] when they are already).

This module is engine level: it imports no task.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

MAX_REPORTED_PROBLEMS = 5
"""How many bad lines an error lists (the rest are counted), and how many examples of each drop are kept."""

Problem = tuple[str, "int | None", str]
"""`(path, line, problem)` of one bad or dropped line; `line` is `None` for a problem of the whole file."""

# What `gzip` raises for a cut-off or damaged stream: EOFError ("Compressed file ended before the end-of-stream
# marker was reached"), BadGzipFile (bad header, CRC or length check) and zlib.error (a corrupt deflate block).
_COMPRESSION_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)
_GZIP_MAGIC = b"\x1f\x8b"


PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
"""The characters `str.strip()` removes: those for which `str.isspace()` holds."""


def strip_strings(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """
    `str.strip()` of every string of an Arrow array, vectorised: a reader's fast (pyarrow) path strips fields exactly
    as its line-by-line path does, so both give the same data.
    """
    return pc.utf8_trim(values, characters=PYTHON_WHITESPACE)


def stable_argsort(*keys: np.ndarray) -> np.ndarray:
    """
    The stable sort order of rows by `keys`, the last key first (as `np.lexsort`): integer or float arrays (no NaN),
    as the readers group rows by learner and time. Each key is sorted by 16-bit digits, least significant first:
    numpy's stable sort of 16-bit integers is a radix sort, several times faster than its sort of wider keys, and
    integer-valued keys (ids, seconds) need few digits.
    """
    size = len(keys[0]) if keys else 0
    if in_order(*keys):  # files often come sorted already (MovieLens by user and time): one pass to see it
        return np.arange(size)
    order = None  # the identity until the first pass: its digits are read from the key itself, not gathered
    for key in keys:
        key = _sortable(np.asarray(key))
        top = int(key.max()) if size else 0
        for shift in range(0, top.bit_length(), 16):
            digits = key if order is None else key[order]
            # The cast to 16 bits keeps the low 16 bits of each value: the digit.
            digit = (digits >> key.dtype.type(shift) if shift else digits).astype(np.uint16)
            step = np.argsort(digit, kind="stable")
            order = step if order is None else order[step]
    return np.arange(size) if order is None else order


def in_order(*keys: np.ndarray) -> bool:
    """
    Whether rows are already in the order of `keys` (the last key first), as [`stable_argsort`] would put them: a
    reader then skips reordering its columns.
    """
    ties = None
    for key in reversed(keys):
        key = np.asarray(key)
        later, earlier = key[1:], key[:-1]
        if ties is None:
            if (later < earlier).any():
                return False
            ties = later == earlier
        else:
            if (ties & (later < earlier)).any():
                return False
            ties &= later == earlier
    return True


def _digits(value: int) -> int:
    """The 16-bit digits (radix passes) of a non-negative integer."""
    return (value.bit_length() + 15) // 16


def _sortable(key: np.ndarray) -> np.ndarray:
    """
    `key` as unsigned integers in the same order (equal values equal): integers as offsets from their minimum (as
    they are, their bits read unsigned, when that takes no more digits), floats by their bits.
    """
    if not len(key):
        return key.astype(np.uint64)
    if key.dtype.kind == "f":
        if np.abs(key).max() < 2.0**53 and (key == np.floor(key)).all():
            key = key.astype(np.int64)  # exact: integer-valued floats (seconds, days) need few digits
        else:
            # IEEE bits ordered as the numbers: flip the sign bit of positives, every bit of negatives (+0.0 for -0.0).
            bits = (key + 0.0).view(np.uint64)
            return np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))
    if key.dtype.kind == "b":
        return key.view(np.uint8)
    if key.dtype.kind in "iu":
        low, high = int(key.min()), int(key.max())
        if low >= 0 and _digits(high) == _digits(high - low):  # codes, ids: their own bits, no copy
            return key.view(key.dtype.str.replace("i", "u"))
        if key.dtype.kind == "u":
            return key - key.dtype.type(low)
        return (key.astype(np.int64) - np.int64(low)).astype(np.uint64)
    raise TypeError(f"stable_argsort sorts integer or float keys, got {key.dtype}.")


def location(path: str | os.PathLike, line: int | None) -> str:
    """`path:line`, or `path` for a problem of the whole file."""
    return f"{os.fspath(path)}:{line}" if line is not None else os.fspath(path)


class DataFileError(ValueError):
    """
    A raw data file that cannot be read as it is. The message is `<path>:<line>: <problem>` (`<path>: <problem>` for
    a problem of the whole file); with several bad lines, one such line per problem for the first few, then
    `... and N more bad lines`. A `ValueError`, so that callers catching that keep working.

    Args:
        path (`str` or `os.PathLike`): the file.
        line (`int`, *optional*): the 1-based line number; `None` for the whole file.
        problem (`str`): what is wrong, e.g. `"expected 4 fields, got 3"`.

    Attributes:
        path, line, problem: those of the first problem.
        problems (`list[tuple[str, int | None, str]]`): the problems listed in the message, in reading order (files
            in order of first mention, lines ascending).
        count (`int`): how many problems there were in all (`count - len(problems)` are only counted).
    """

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        self._set([(os.fspath(path), line, problem)], 1)

    @classmethod
    def several(cls, problems: Sequence[Problem], count: int | None = None) -> DataFileError:
        """The error of several problems: `problems` (the first few) out of `count` (default: as many)."""
        if not problems:
            raise ValueError("DataFileError.several needs at least one problem.")
        listed = [(os.fspath(path), line, problem) for path, line, problem in problems]
        # Listed in reading order (files in order of first mention, lines ascending), however they were found.
        file_rank = {path: rank for rank, path in enumerate(dict.fromkeys(path for path, _, _ in listed))}
        listed.sort(key=lambda item: (file_rank[item[0]], -1 if item[1] is None else item[1]))
        error = cls.__new__(cls)
        error._set(listed, count or len(listed))
        return error

    def _set(self, problems: list[Problem], count: int) -> None:
        self.problems = problems
        self.count = max(count, len(problems))
        self.path, self.line, self.problem = problems[0]
        lines = [f"{location(path, line)}: {problem}" for path, line, problem in problems]
        if self.count == 1:
            message = lines[0]
        else:
            message = f"{self.count} bad lines:\n" + "\n".join(f"  {line}" for line in lines)
            if self.count > len(problems):
                message += f"\n  ... and {self.count - len(problems)} more bad lines"
        ValueError.__init__(self, message)

    def __reduce__(self):
        # The constructor's arguments are not the message (the default pickling would pass the message back in).
        return _rebuild_data_file_error, (self.problems, self.count)


def _rebuild_data_file_error(problems: list[Problem], count: int) -> DataFileError:
    return DataFileError.several(problems, count)


class BadLines:
    """
    Collects the problems of malformed lines, so that a reader keeps going after one and a single run reports the
    first [`MAX_REPORTED_PROBLEMS`] (with the count of the rest) instead of only the first. Keeping the list costs
    nothing until a problem occurs.

    ```python
    bad = BadLines()
    for line, row in iter_csv(path, columns, bad):
        if not row["user_id"]:
            bad.add(path, line, "empty user_id")
            continue
        ...
    bad.check()  # raises one DataFileError listing them
    ```
    """

    def __init__(self, limit: int = MAX_REPORTED_PROBLEMS):
        self.limit = limit
        self.problems: list[Problem] = []
        self.count = 0

    def add(self, path: str | os.PathLike, line: int | None, problem: str) -> None:
        """Records one problem (kept for the message while fewer than `limit` are, counted always)."""
        self.count += 1
        if len(self.problems) < self.limit:
            self.problems.append((os.fspath(path), line, problem))

    def add_many(self, problems: Iterable[Problem], count: int) -> None:
        """Records `count` problems found at once (e.g. by a vectorised check), of which `problems` are the first."""
        listed = 0
        for problem in problems:
            if listed == count:
                break
            self.add(*problem)
            listed += 1
        self.count += count - listed

    def add_error(self, error: DataFileError) -> None:
        """Records the problems of a [`DataFileError`] raised by a parsing helper."""
        for problem in error.problems:
            self.add(*problem)
        self.count += error.count - len(error.problems)

    def __len__(self) -> int:
        return self.count

    def error(self) -> DataFileError:
        """The [`DataFileError`] of what was collected (call only when something was)."""
        return DataFileError.several(self.problems, self.count)

    def check(self) -> None:
        """Raises the [`DataFileError`] of what was collected, if anything was."""
        if self.count:
            raise self.error()


class DroppedRows:
    """
    Raw rows a reader leaves out on purpose (e.g. POJ submissions that were never judged): counted per reason, the
    first few of each kept as `(path, line, problem)` examples. The loader puts the counts in its stats, names the
    drops in its one summary warning ([`DroppedRows.summary`]) and, under `strict=True`, raises
    [`DroppedRows.error`] instead. [`DroppedRows.to_dict`] / [`DroppedRows.from_dict`] keep it beside a cache.
    """

    def __init__(self, limit: int = MAX_REPORTED_PROBLEMS):
        self.limit = limit
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[Problem]] = {}

    def add(self, reason: str, path: str | os.PathLike, line: int | None, problem: str) -> None:
        """One dropped row: `reason` is the stats key (snake_case), `problem` what is wrong with the row."""
        self.add_many(reason, 1, [(os.fspath(path), line, problem)])

    def add_many(self, reason: str, count: int, examples: Iterable[Problem]) -> None:
        """`count` dropped rows of one `reason`, of which `examples` (the first ones) are kept up to `limit`."""
        if count <= 0:
            return
        self.counts[reason] = self.counts.get(reason, 0) + int(count)
        kept = self.examples.setdefault(reason, [])
        for path, line, problem in examples:
            if len(kept) >= self.limit:
                break
            kept.append((os.fspath(path), None if line is None else int(line), problem))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """`"3 unjudged submissions (e.g. log.csv:5: ...; log.csv:9: ...)"`, one part per reason, `"; "`-joined."""
        parts = []
        for reason, count in self.counts.items():
            examples = "; ".join(f"{location(path, line)}: {problem}" for path, line, problem in self.examples[reason])
            parts.append(f"{count} {reason.replace('_', ' ')} (e.g. {examples})")
        return "; ".join(parts)

    def error(self) -> DataFileError:
        """The error `strict=True` raises: the examples of every reason, out of all the dropped rows."""
        examples = [example for reason in self.counts for example in self.examples[reason]]
        return DataFileError.several(examples, self.total)

    def to_dict(self) -> dict[str, Any]:
        """`{"dropped": counts, "dropped_examples": {reason: [[path, line, problem], ...]}}` (JSON-ready)."""
        return {
            "dropped": dict(self.counts),
            "dropped_examples": {
                reason: [list(example) for example in rows] for reason, rows in self.examples.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, limit: int = MAX_REPORTED_PROBLEMS) -> DroppedRows:
        """The inverse of [`DroppedRows.to_dict`] (`None` or `{}`: nothing dropped)."""
        dropped = cls(limit)
        examples = (data or {}).get("dropped_examples", {})
        for reason, count in (data or {}).get("dropped", {}).items():
            dropped.add_many(reason, count, [tuple(example) for example in examples.get(reason, [])])
        return dropped


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether `path` is read through gzip: its name ends in `.gz` (how Amazon's and other dumps are shipped)."""
    return os.fspath(path).lower().endswith(".gz")


def open_text(path: str | os.PathLike, newline: str | None = None) -> IO[str]:
    """
    Opens a UTF-8 text file, gzip-compressed when its name ends in `.gz`; a leading byte-order mark (spreadsheet
    programs write one) is dropped. `newline` as for `open`: `""` for the `csv` module, `"\\n"` to split lines on
    `\\n` only (a stray `\\r` inside a title is no line break). Read it inside [`reading`] to get errors that name
    the line.
    """
    path = os.fspath(path)
    if is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=newline)
    return open(path, encoding="utf-8-sig", newline=newline)


@contextlib.contextmanager
def reading(path: str | os.PathLike, bad: BadLines | None = None) -> Iterator[None]:
    """
    Runs a read of `path` (through [`open_text`], pandas, ...) and turns what the decoders raise into a
    [`DataFileError`] naming the file and the line: invalid UTF-8 (every such line, up to the limit) and compressed
    data that ends early or is corrupt. The lines are found by scanning the file again, so the read itself pays
    nothing for this. Problems already collected in `bad` are reported with them.
    """
    try:
        yield
    except UnicodeDecodeError as err:
        bad = bad if bad is not None else BadLines()
        before = bad.count
        scan_raw_lines(path, bad)
        if bad.count == before:  # the scan found no invalid line: report what the decoder said
            bad.add(path, None, f"not valid UTF-8 ({err}); save the file as UTF-8")
        raise bad.error() from None
    except _COMPRESSION_ERRORS as err:
        bad = bad if bad is not None else BadLines()
        before = bad.count
        scan_raw_lines(path, bad)
        if bad.count == before:
            bad.add(path, None, f"cannot be decompressed ({type(err).__name__}: {err})")
        raise bad.error() from None


def scan_raw_lines(path: str | os.PathLike, bad: BadLines) -> None:
    """
    Scans `path` line by line as bytes (through gzip for `.gz`) and records in `bad` every line that is not valid
    UTF-8, then, if the compressed stream breaks off, where. The slow path of [`reading`].
    """
    path = os.fspath(path)
    number = 0
    try:
        with gzip.open(path, "rb") if is_gzip(path) else open(path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                if number == 1 and raw.startswith(_GZIP_MAGIC) and not is_gzip(path):
                    bad.add(path, None, "holds gzip-compressed data: name it *.gz (read as such) or decompress it")
                    return
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    bad.add(
                        path,
                        number,
                        f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}: {err.reason}); save "
                        "the file as UTF-8",
                    )
    except EOFError:
        bad.add(
            path, number + 1, "the compressed data ends in this line; the file looks truncated (download it again)"
        )
    except (gzip.BadGzipFile, zlib.error) as err:
        if number == 0 and _starts_without_gzip_magic(path):
            bad.add(path, None, "is not gzip-compressed although its name ends in .gz; rename or compress it")
        else:
            bad.add(
                path,
                number + 1,
                f"the compressed data is corrupt ({err}), noticed in this line; download the file again",
            )


def _starts_without_gzip_magic(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) != _GZIP_MAGIC


def read_raw_bytes(path: str | os.PathLike) -> bytes:
    """
    The whole content of a file, decompressed when its name ends in `.gz`, for readers that parse bytes at once
    (pyarrow); a cut-off or corrupt `.gz` is a [`DataFileError`] naming the line reached.
    """
    path = os.fspath(path)
    with reading(path), open(path, "rb") as handle:
        # One-shot decompression: `gzip.open(...).read()` decompresses in small pieces and joins them (some 30%
        # slower); the errors of a cut-off or corrupt stream are the same.
        return gzip.decompress(handle.read()) if is_gzip(path) else handle.read()


def read_lines(
    path: str | os.PathLike, reject: Callable[[bytes], bool] | None = None, *, keep_line_breaks: bool = False
) -> pa.Array | None:
    """
    The lines of a text file (plain or `.gz`) as [`iter_lines`] gives them with `skip_blank=False` (split on `\\n`
    only, line breaks dropped, a leading byte-order mark dropped), as one Arrow string array over the file's bytes:
    the way in for readers that parse lines with pyarrow. `None` when the file cannot be read so plainly (invalid
    UTF-8, a cut-off or corrupt `.gz`, or bytes that `reject(data)` turns down): the reader then goes through
    [`iter_lines`], which names the lines.

    With `keep_line_breaks=True` each line keeps its `\\n` (or `\\r\\n`) and the array is the file's bytes as
    they are, without a copy: for a reader that looks at every line but keeps few, and drops their breaks itself
    (`pyarrow.compute.utf8_rtrim(lines, "\\r\\n")` on the kept ones).
    """
    try:
        data = read_raw_bytes(path)
    except DataFileError:
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if reject is not None and reject(data):
        return None
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")) + 1
    if len(data) and not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    # One string per line, each with its line break, over the bytes as they are (no copy).
    lines = pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(offsets), pa.py_buffer(data))
    try:
        lines.validate(full=True)  # the UTF-8
    except pa.ArrowInvalid:
        return None
    return lines if keep_line_breaks else pc.utf8_rtrim(lines, characters="\r\n")  # `line.rstrip("\r\n")`


def iter_lines(
    path: str | os.PathLike, bad: BadLines | None = None, *, skip_blank: bool = True
) -> Iterator[tuple[int, str]]:
    """
    `(line number, line)` of a text file (plain or `.gz`), 1-based, without the line break (`\\n` or `\\r\\n`; lines
    are split on `\\n` only). Blank lines are skipped unless `skip_blank=False`. Undecodable bytes and cut-off
    compressed data raise a [`DataFileError`] naming the lines (with the problems already in `bad`).
    """
    path = os.fspath(path)
    with reading(path, bad), open_text(path, newline="\n") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\r\n")
            if skip_blank and (not line or line.isspace()):
                continue
            yield number, line


def check_files_exist(paths: Iterable[str | os.PathLike]) -> None:
    """Raises `FileNotFoundError` naming the first path that does not exist."""
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such file or directory: {os.fspath(path)!r}")


def excerpt(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters, for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_csv_header(path: str | os.PathLike) -> list[str] | None:
    """The stripped column names of a CSV file's first row (`None` for an empty file)."""
    path = os.fspath(path)
    check_files_exist([path])
    with reading(path), open_text(path, newline="") as handle:
        try:
            header = next(csv.reader(handle), None)
        except csv.Error as err:
            raise DataFileError(path, 1, f"malformed CSV header: {err}") from None
    return None if header is None else [name.strip() for name in header]


def read_csv_columns_fast(path: str | os.PathLike, columns: Sequence[str]) -> dict[str, pa.Array] | None:
    """
    The named columns of a CSV file with a header (plain or `.gz`) through pyarrow, as stripped strings, read exactly
    as [`iter_csv`] reads them: header names stripped, a name that occurs twice read from its last column. `None` on
    any doubt (a missing column, invalid UTF-8, a row with the wrong number of fields, a header pyarrow reads
    otherwise than the csv module), for the caller to read the file again line by line and name the bad lines.
    """
    path = os.fspath(path)
    header = read_csv_header(path)
    if not header or not set(columns) <= set(header):
        return None
    # Every column read as strings, the header as a row, so that the names are stripped as the csv path strips them.
    names = [f"column_{index}" for index in range(len(header))]
    column_of = {name: names[index] for index, name in enumerate(header)}
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(read_raw_bytes(path)),
            read_options=pa_csv.ReadOptions(column_names=names),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                include_columns=sorted({column_of[name] for name in columns}),
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, DataFileError):
        return None
    # The first row is the header: what pyarrow read there must be what the csv module read.
    if not table.num_rows or any(
        table[name][0].as_py().strip() != header[int(name.rsplit("_", 1)[1])] for name in table.column_names
    ):
        return None
    table = table.slice(1)
    return {name: strip_strings(table[column_of[name]].combine_chunks()) for name in dict.fromkeys(columns)}


def iter_csv(
    path: str | os.PathLike, required_columns: Sequence[str], bad: BadLines | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """
    `(line number, row)` of a comma-separated file with a header (plain or `.gz`), rows as `{column: value}` over
    every column of the header (extra columns are fine; read them by name), with proper CSV quoting (commas, quotes
    and newlines inside quoted fields). Blank lines are skipped.

    A missing file is a `FileNotFoundError`; an empty file or a header without `required_columns` a
    [`DataFileError`] at once. A row with the wrong number of fields is recorded in `bad` and skipped, so the caller
    can go on and report several; without `bad` the rows are checked here and the error raised at the end of the
    file. Invalid UTF-8 and cut-off compressed data raise a [`DataFileError`] naming the lines (see [`reading`]).
    """
    path = os.fspath(path)
    check_files_exist([path])
    own = bad is None
    if own:
        bad = BadLines()
    with reading(path, bad), open_text(path, newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise DataFileError(
                    path, None, f"the file is empty; expected a header with columns {list(required_columns)}"
                )
            header = [name.strip() for name in header]
            missing = [column for column in required_columns if column not in header]
            if missing:
                raise DataFileError(path, 1, f"the header {header} lacks the column(s) {missing}")
            width = len(header)
            for row in reader:
                if len(row) != width:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue  # blank line
                    bad.add(
                        path,
                        reader.line_num,
                        f"expected {width} fields ({','.join(header)}), got {len(row)}: {excerpt(row)} (quote "
                        "fields that contain commas)",
                    )
                    continue
                yield reader.line_num, dict(zip(header, row))
        except csv.Error as err:
            # A broken quote or an oversized field leaves the reader out of step with the lines: stop this file.
            bad.add(path, reader.line_num, f"malformed CSV: {err}")
    if own:
        bad.check()


__all__ = [
    "MAX_REPORTED_PROBLEMS",
    "PYTHON_WHITESPACE",
    "BadLines",
    "DataFileError",
    "DroppedRows",
    "check_files_exist",
    "excerpt",
    "in_order",
    "is_gzip",
    "iter_csv",
    "iter_lines",
    "location",
    "open_text",
    "read_csv_header",
    "read_lines",
    "read_raw_bytes",
    "reading",
    "scan_raw_lines",
    "stable_argsort",
    "strip_strings",
]
