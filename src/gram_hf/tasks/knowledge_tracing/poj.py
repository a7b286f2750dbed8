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

from ...data import InteractionData
from .builder import KnowledgeTracingRawBuilder, KnowledgeTracingRawConfig, group_by_user, load_with_builder
from .raw_io import iter_csv, read_text_table
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
"""Every `Result` of the log; only `Accepted` is a correct response. Any other value is an error (file:line)."""


@dataclass
class POJConfig(KnowledgeTracingRawConfig):
    """Reader options of [`POJBuilder`] (see [`load_poj`])."""

    log_csv: str = ""
    problem_text: str = ""
    text_id_column: str = "problem_id"
    text_column: str = "text"


class POJBuilder(KnowledgeTracingRawBuilder):
    """Reads `poj_log.csv` (columns `User`, `Problem`, `Result`, `Submit Time`) and a problem text table."""

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
        results = set(RESULTS)
        users, problems, responses, times, lines = [], [], [], [], []
        for line, row in iter_csv(path, POJ_COLUMNS):
            user, problem, result = row["User"].strip(), row["Problem"].strip(), row["Result"].strip()
            if not user or not problem:
                raise ValueError(f"{path}:{line}: empty {'User' if not user else 'Problem'}.")
            if result not in results:
                raise ValueError(f"{path}:{line}: unknown Result {result!r}; expected one of {list(RESULTS)}.")
            users.append(user)
            problems.append(problem)
            responses.append(result == ACCEPTED)
            times.append(row["Submit Time"].strip())
            lines.append(line)
        # One vectorised strptime instead of ~1M datetime.strptime calls; a failure is located afterwards.
        parsed = pc.strptime(pa.array(times, pa.string()), format=SUBMIT_TIME_FORMAT, unit="s", error_is_null=True)
        if parsed.null_count:
            bad = int(np.flatnonzero(parsed.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"{path}:{lines[bad]}: Submit Time {times[bad]!r} does not match {SUBMIT_TIME_FORMAT!r}.")
        # The log's times carry no zone; they are read as UTC, which keeps order and differences exact.
        seconds = parsed.cast(pa.int64()).to_numpy().astype(np.float64)
        columns = {
            "item_ids": problems,
            "timestamps": seconds,
            "responses": np.asarray(responses, dtype=np.int8),
        }
        yield from group_by_user(users, columns)


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

    One interaction per submission: item = `Problem`, response = 1 only for `Result == "Accepted"` (an unknown
    `Result` is a `ValueError` naming file and line), timestamp = `Submit Time` (`%Y-%m-%d %H:%M:%S`, read as UTC)
    in seconds. Rows may come in any order (the scraped log is newest-first); each learner's submissions are sorted
    by time, stably.

    Args:
        log_csv (`str` or `os.PathLike`): `poj_log.csv` (comma-separated, with header; other columns are ignored).
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


__all__ = ["POJ_COLUMNS", "RESULTS", "POJBuilder", "POJConfig", "load_poj"]
