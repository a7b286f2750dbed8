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
from ...raw_files import BadLines, DroppedRows, check_files_exist, iter_csv, read_raw_bytes
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


@dataclass
class POJConfig(KnowledgeTracingRawConfig):
    """Reader options of [`POJBuilder`] (see [`load_poj`])."""

    log_csv: str = ""
    problem_text: str = ""
    text_id_column: str = "problem_id"
    text_column: str = "text"


@dataclass
class _Submissions:
    """The judged submissions of the log, in file order."""

    users: Any
    problems: Any
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

    def generate_users(self) -> Iterator[dict[str, Any]]:
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
        yield from group_by_user(submissions.users, columns)


def _parse_times(times: pa.Array) -> pa.Array:
    """`Submit Time` strings -> seconds (int64; null where the format does not match). One vectorised strptime."""
    parsed = pc.strptime(times, format=SUBMIT_TIME_FORMAT, unit="s", error_is_null=True)
    # The log's times carry no zone; they are read as UTC, which keeps order and differences exact.
    return parsed.cast(pa.int64())


def _read_log_fast(path: str, dropped: DroppedRows) -> _Submissions | None:
    """
    The log through pyarrow's CSV reader (only the four columns, by name). Returns `None` when anything is off: the
    file does not parse, a `Result` is unknown, a time is malformed, or rows must be dropped but a row's line number
    is not certain (blank lines or line breaks inside quoted fields), so that the line-by-line reader reports it.
    """
    data = read_raw_bytes(path)  # a cut-off .gz is reported here, naming the line
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            convert_options=pa_csv.ConvertOptions(
                include_columns=list(POJ_COLUMNS),
                column_types=dict.fromkeys(POJ_COLUMNS, pa.string()),
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowException:  # invalid UTF-8, a missing column, a short row, ...
        return None
    columns = {name: pc.utf8_trim_whitespace(table[name].combine_chunks()) for name in POJ_COLUMNS}
    empty = np.zeros(table.num_rows, dtype=bool)
    for values in columns.values():
        empty |= pc.equal(values, "").to_numpy(zero_copy_only=False)
    result = columns["Result"]
    unjudged = pc.is_in(result, value_set=pa.array(UNJUDGED_RESULTS)).to_numpy(zero_copy_only=False) & ~empty
    known = pc.is_in(result, value_set=pa.array(RESULTS)).to_numpy(zero_copy_only=False)
    if (~known & ~unjudged & ~empty).any():
        return None
    keep = ~(empty | unjudged)
    keep_arrow = pa.array(keep)
    seconds = _parse_times(columns["Submit Time"].filter(keep_arrow))
    if seconds.null_count:
        return None
    if not keep.all():
        # Row i is line i + 2 only when every row is one line and no line is blank: one newline per row.
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        if lines != table.num_rows + 1:
            return None
        for reason, mask in ((DROP_EMPTY_FIELDS, empty), (DROP_UNJUDGED, unjudged)):
            rows = np.flatnonzero(mask)
            examples = []
            for row in rows[: dropped.limit].tolist():
                values = {name: columns[name][row].as_py() for name in POJ_COLUMNS}
                problem = (
                    _empty_fields_problem(values)
                    if reason == DROP_EMPTY_FIELDS
                    else _unjudged_problem(values["Result"])
                )
                examples.append((path, row + 2, problem))
            dropped.add_many(reason, len(rows), examples)
    return _Submissions(
        users=columns["User"].filter(keep_arrow).to_numpy(zero_copy_only=False),
        problems=columns["Problem"].filter(keep_arrow).to_numpy(zero_copy_only=False),
        responses=pc.equal(result.filter(keep_arrow), ACCEPTED).to_numpy(zero_copy_only=False).astype(np.int8),
        seconds=seconds.to_numpy().astype(np.float64),
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
