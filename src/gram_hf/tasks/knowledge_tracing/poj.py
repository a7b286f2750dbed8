"""
POJ (Peking Online Judge) submissions as knowledge tracing: the `poj_log.csv` circulated with pyKT, plus a
user-supplied `problem_id,text` table of problem statements (the log has none).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ...data import InteractionData
from ...raw_files import BadLines, DroppedRows, check_files_exist, iter_csv, read_raw_bytes, strip_strings
from .builder import KnowledgeTracingRawBuilder, KnowledgeTracingRawConfig, group_by_user, load_with_builder
from .raw_io import read_text_table
from .split_arguments import KnowledgeTracingSplitArguments

POJ_COLUMNS = ("User", "Problem", "Result", "Submit Time")
SUBMIT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ACCEPTED = "Accepted"
RESULTS = (
    "Accepted",
    "Wrong Answer",
    "Compile Error",
    "Time Limit Exceeded",
    "Memory Limit Exceeded",
    "Output Limit Exceeded",
    "Runtime Error",
    "Presentation Error",
    "System Error",
    "Validator Error",
)
"""Every verdict of the log; only `Accepted` is a correct response."""

UNJUDGED_RESULTS = ("Waiting", "Running & Judging", "Compiling")
"""`Result`s of submissions the judge never finished: dropped (counted, warned), as pyKT drops them silently."""

DROP_UNJUDGED = "unjudged_submissions"
DROP_EMPTY_FIELDS = "empty_fields"

# What the fast path makes of a (stripped) `Result`.
_EMPTY, _ACCEPTED, _JUDGED, _UNJUDGED, _UNKNOWN = range(5)
_RESULT_KINDS = {"": _EMPTY, **{result: _JUDGED for result in RESULTS}, ACCEPTED: _ACCEPTED}
_RESULT_KINDS.update(dict.fromkeys(UNJUDGED_RESULTS, _UNJUDGED))


@dataclass
class POJConfig(KnowledgeTracingRawConfig):
    """Reader options of [`POJBuilder`] (see [`load_poj`])."""

    log_csv: str = ""
    problem_text: str = ""
    text_id_column: str = "problem_id"
    text_column: str = "text"


@dataclass
class _Submissions:
    """The judged submissions of the log, in file order (`users`, `problems`: Arrow strings or lists of str)."""

    users: pa.Array | list[str]
    problems: pa.Array | list[str]
    responses: np.ndarray
    seconds: np.ndarray


def _empty_fields_problem(values: dict[str, str]) -> str:
    return "empty " + ", ".join(name for name in POJ_COLUMNS if not values[name])


def _unjudged_problem(result: str) -> str:
    return f"Result {result!r}: the submission was never judged"


class POJBuilder(KnowledgeTracingRawBuilder):
    """
    Reads `poj_log.csv` (columns `User`, `Problem`, `Result`, `Submit Time`, found by name; other columns ignored) and
    a problem text table. Unjudged submissions and rows with an empty field are recorded as dropped rows.
    """

    BUILDER_CONFIG_CLASS = POJConfig
    BUILDER_CONFIGS = [POJConfig(name="interactions"), POJConfig(name="items")]
    DATASET_NAME = "poj"

    def generate_items(self) -> Iterator[dict[str, Any]]:
        texts = read_text_table(
            self.config.problem_text, self.config.text_id_column, self.config.text_column, "problem"
        )
        for problem, text in texts.items():
            yield {"item_id": problem, "text": text}

    def generate_users(self) -> Iterator[pa.Table]:
        path = self.config.log_csv
        check_files_exist([path])
        # pyarrow reads the ~1M rows in a fraction of the csv module's time; any doubt (a malformed row, a drop whose
        # line number is not certain) sends the file to the line-by-line reader, which names every line.
        submissions = _read_log_fast(path, self.dropped_rows)
        if submissions is None:
            submissions = _read_log_by_line(path, self.dropped_rows)
        columns = {
            "item_ids": submissions.problems,
            "timestamps": submissions.seconds,
            "responses": submissions.responses,
        }
        yield group_by_user(submissions.users, columns)


def _parse_times(times: pa.Array) -> pa.Array:
    """`Submit Time` strings -> seconds (int64; null where the format does not match). One vectorised strptime."""
    parsed = pc.strptime(times, format=SUBMIT_TIME_FORMAT, unit="s", error_is_null=True)
    # The log's times carry no zone; they are read as UTC, which keeps order and differences exact.
    return parsed.cast(pa.int64())


def _read_log_fast(path: str, dropped: DroppedRows) -> _Submissions | None:
    """
    The log through pyarrow's CSV reader (only the four columns, by name; `Submit Time` parsed by the reader, `Result`
    read as a dictionary of its few values). Returns `None` when anything is off: the file does not parse, a time is
    malformed, a `Result` is unknown, or rows must be dropped but a row's line number is not certain (blank lines or
    line breaks inside quoted fields), so that the line-by-line reader reports it.
    """
    data = read_raw_bytes(path)  # a cut-off .gz is reported here, naming the line
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            convert_options=pa_csv.ConvertOptions(
                include_columns=list(POJ_COLUMNS),
                column_types={
                    "User": pa.string(),
                    "Problem": pa.string(),
                    "Result": pa.dictionary(pa.int32(), pa.string()),
                    "Submit Time": pa.timestamp("s"),
                },
                timestamp_parsers=[SUBMIT_TIME_FORMAT],
                null_values=[""],  # only an empty time is missing ("NULL" is malformed, as for the csv path)
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowException:  # invalid UTF-8, a missing column, a short row, a malformed time, ...
        return None
    users = strip_strings(table["User"].combine_chunks())
    problems = strip_strings(table["Problem"].combine_chunks())
    # Each chunk's few distinct results are classified once, then looked up by their codes.
    kinds, chunk_results = [], []
    for chunk in table["Result"].chunks:
        distinct = ["" if value is None else value.strip() for value in chunk.dictionary.to_pylist()]
        kind = np.asarray([_RESULT_KINDS.get(value, _UNKNOWN) for value in distinct], dtype=np.int8)
        kinds.append(kind[chunk.indices.to_numpy(zero_copy_only=False)])
        chunk_results.append((len(chunk), distinct, chunk.indices))
    kind = np.concatenate(kinds) if kinds else np.zeros(0, dtype=np.int8)
    times = table["Submit Time"].combine_chunks()
    empty = (
        pc.equal(users, "").to_numpy(zero_copy_only=False)
        | pc.equal(problems, "").to_numpy(zero_copy_only=False)
        | (kind == _EMPTY)
        | times.is_null().to_numpy(zero_copy_only=False)
    )
    unjudged = (kind == _UNJUDGED) & ~empty
    if ((kind == _UNKNOWN) & ~empty).any():
        return None

    def result(row: int) -> str:
        for size, distinct, indices in chunk_results:
            if row < size:
                return distinct[indices[row].as_py()]
            row -= size
        raise IndexError(row)

    keep = ~(empty | unjudged)
    seconds = times.cast(pa.int64())
    if not keep.all():
        # Row i is line i + 2 only when every row is one line and no line is blank: one newline per row.
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        if lines != table.num_rows + 1:
            return None
        for reason, mask in ((DROP_EMPTY_FIELDS, empty), (DROP_UNJUDGED, unjudged)):
            rows = np.flatnonzero(mask)
            examples = []
            for row in rows[: dropped.limit].tolist():
                values = {
                    "User": users[row].as_py(),
                    "Problem": problems[row].as_py(),
                    "Result": result(row),
                    "Submit Time": "" if times[row].as_py() is None else "given",
                }
                problem = (
                    _empty_fields_problem(values)
                    if reason == DROP_EMPTY_FIELDS
                    else _unjudged_problem(values["Result"])
                )
                examples.append((path, row + 2, problem))
            dropped.add_many(reason, len(rows), examples)
        keep_arrow = pa.array(keep)
        users, problems, seconds = users.filter(keep_arrow), problems.filter(keep_arrow), seconds.filter(keep_arrow)
    # The log's times carry no zone; they are read as UTC, which keeps order and differences exact.
    return _Submissions(
        users=users,
        problems=problems,
        responses=(kind[keep] == _ACCEPTED).astype(np.int8),
        seconds=seconds.to_numpy(zero_copy_only=False).astype(np.float64),
    )


def _read_log_by_line(path: str, dropped: DroppedRows) -> _Submissions:
    """The log with the csv module, row by row: every malformed row is reported (file:line), every drop recorded."""
    results = set(RESULTS)
    unjudged = set(UNJUDGED_RESULTS)
    bad = BadLines()
    users, problems, responses, times, lines = [], [], [], [], []
    for line, row in iter_csv(path, POJ_COLUMNS, bad):
        values = {name: row[name].strip() for name in POJ_COLUMNS}
        result = values["Result"]
        if not all(values.values()):
            dropped.add(DROP_EMPTY_FIELDS, path, line, _empty_fields_problem(values))
        elif result in unjudged:
            dropped.add(DROP_UNJUDGED, path, line, _unjudged_problem(result))
        elif result not in results:
            bad.add(path, line, f"unknown Result {result!r}; expected one of {[*RESULTS, *UNJUDGED_RESULTS]}")
        else:
            users.append(values["User"])
            problems.append(values["Problem"])
            responses.append(result == ACCEPTED)
            times.append(values["Submit Time"])
            lines.append(line)
    seconds = _parse_times(pa.array(times, pa.string()))
    if seconds.null_count:
        for index in np.flatnonzero(seconds.is_null().to_numpy(zero_copy_only=False)).tolist():
            bad.add(path, lines[index], f"Submit Time {times[index]!r} does not match {SUBMIT_TIME_FORMAT!r}")
    bad.check()
    return _Submissions(
        users=users,
        problems=problems,
        responses=np.asarray(responses, dtype=np.int8),
        seconds=seconds.to_numpy().astype(np.float64),
    )


def load_poj(
    log_csv: str | os.PathLike,
    problem_text: str | os.PathLike,
    *,
    text_id_column: str = "problem_id",
    text_column: str = "text",
    split: KnowledgeTracingSplitArguments | None = None,
    cache_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
    **split_options: Any,
) -> InteractionData:
    """
    Loads the POJ submission log as knowledge tracing.

    One interaction per judged submission: item = `Problem`, response = 1 only for `Result == "Accepted"`,
    timestamp = `Submit Time` (`%Y-%m-%d %H:%M:%S`, read as UTC) in seconds. Rows may come in any order (the scraped
    log is newest-first); each learner's submissions are sorted by time, stably.

    The real log holds submissions that were never judged (`Result` `Waiting`, `Running & Judging`, `Compiling`)
    and rows with an empty `User`, `Problem`, `Result` or `Submit Time`. As pyKT does, they are dropped, but counted
    (`stats["dropped"]["unjudged_submissions"]`, `["empty_fields"]`, with examples in `stats["dropped_examples"]`)
    and named in the one summary warning; `strict=True` raises instead, naming file and line of the first few. Any
    other `Result`, or a malformed time, is bad input: a `DataFileError` (a `ValueError`) listing the first bad lines
    (`file:line: problem`) and how many more there are.

    Args:
        log_csv (`str` or `os.PathLike`): `poj_log.csv` (comma-separated, with header; the four columns are found
            by name, other columns are ignored; `.gz` is read directly).
        problem_text (`str` or `os.PathLike`): a CSV/Parquet `problem_id,text` (or any two columns) of statements.
            Submissions on problems without a row are dropped with one summary warning (`strict=True` raises).
        split, split_options, cache_dir, rebuild: see [`load_kt_csv`].
    """
    split = KnowledgeTracingSplitArguments.from_options(split, split_options, caller="load_poj")
    options = {
        "log_csv": os.path.abspath(log_csv),
        "problem_text": os.path.abspath(problem_text),
        "text_id_column": text_id_column,
        "text_column": text_column,
    }
    return load_with_builder(
        POJBuilder,
        [log_csv, problem_text],
        options,
        split,
        cache_dir=cache_dir,
        rebuild=rebuild,
    )


__all__ = ["POJ_COLUMNS", "RESULTS", "UNJUDGED_RESULTS", "POJBuilder", "POJConfig", "load_poj"]
