"""
The POJ log as users download it (issue 17): unjudged submissions and rows with empty fields are dropped, counted and
named in one warning (`strict=True` raises, naming file and line); columns are read by name among extra ones; several
bad lines are reported together; a cut-off `.gz` names the file and line. Both readers (pyarrow, line by line) agree.
"""

from __future__ import annotations

import gzip
import logging
import re

import datasets
import pytest

from gram_hf.raw_files import DataFileError
from gram_hf.tasks.knowledge_tracing import load_poj, poj

# The real log's columns, in another order than POJ_COLUMNS, with more of them.
HEADER = "Run ID,Submit Time,User,Problem,Result,Memory,Time,Language,Code Length"


def row(run: int, user: str, problem: str, result: str, minute: int) -> str:
    return f"{run},2008-01-01 10:{minute:02d}:00,{user},{problem},{result},400K,16MS,G++,512B"


# Line 1 is the header, so LOG[i] is line i + 2.
LOG = [
    row(1, "alice", "1000", "Accepted", 1),  # line 2
    row(2, "alice", "1001", "Wrong Answer", 2),  # line 3
    row(3, "alice", "1001", "Waiting", 3),  # line 4: unjudged
    row(4, "bob", "1000", "Running & Judging", 4),  # line 5: unjudged
    row(5, "bob", "1000", "Compile Error", 5),  # line 6
    "6,2008-01-01 10:06:00,,1001,Accepted,400K,16MS,G++,512B",  # line 7: empty User
    row(7, "bob", "1001", "Accepted", 7),  # line 8
    row(8, "carol", "1000", "Compiling", 8),  # line 9: unjudged
    "9,,carol,1001,Accepted,400K,16MS,G++,512B",  # line 10: empty Submit Time
    row(10, "carol", "1001", "Time Limit Exceeded", 10),  # line 11
]
KEPT = 5
UNJUDGED_LINES = (4, 5, 9)
EMPTY_LINES = (7, 10)


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


@pytest.fixture
def line_reads(monkeypatch):
    """How often the line-by-line reader ran (the fast reader hands over to it when it cannot vouch for lines)."""
    calls = []
    original = poj._read_log_by_line

    def spy(*args):
        calls.append(args[0])
        return original(*args)

    monkeypatch.setattr(poj, "_read_log_by_line", spy)
    return calls


@pytest.fixture
def problems(tmp_path):
    path = tmp_path / "problems.csv"
    path.write_text("problem_id,text\n1000,A plus B\n1001,Sort the numbers\n", encoding="utf-8")
    return path


def write_log(path, lines, opener=open):
    with opener(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write("\n".join([HEADER, *lines]) + "\n")
    return path


def by_line(lines):
    """The same log, but with a blank line at the end: the fast reader cannot vouch for line numbers any more."""
    return [*lines, ""]


@pytest.mark.parametrize("variant", ["fast", "line_by_line"])
def test_unjudged_and_empty_rows_are_dropped_counted_and_warned_once(tmp_path, problems, caplog, line_reads, variant):
    log = write_log(tmp_path / "poj_log.csv", LOG if variant == "fast" else by_line(LOG))
    with caplog.at_level(logging.WARNING):
        data = load_poj(log, problems, cold_start_items=0, test_fraction=0.0, cache_dir=tmp_path / "cache")
    assert len(line_reads) == (variant == "line_by_line")
    assert data.stats["interactions"]["total"] == KEPT
    assert data.stats["rows_read"] == len(LOG)
    assert data.stats["dropped"] == {"empty_fields": 2, "unjudged_submissions": 3}
    assert data.stats["rows_read"] == KEPT + sum(data.stats["dropped"].values())
    unjudged = data.stats["dropped_examples"]["unjudged_submissions"]
    assert unjudged == [
        f"{log}:4: Result 'Waiting': the submission was never judged",
        f"{log}:5: Result 'Running & Judging': the submission was never judged",
        f"{log}:9: Result 'Compiling': the submission was never judged",
    ]
    assert data.stats["dropped_examples"]["empty_fields"] == [f"{log}:7: empty User", f"{log}:10: empty Submit Time"]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "3 unjudged submissions" in warnings[0] and "2 empty fields" in warnings[0]
    assert f"{log}:4:" in warnings[0] and f"{log}:7: empty User" in warnings[0]
    # The extra columns were skipped by name: responses and order come from Result and Submit Time.
    rows = {row["user_id"]: row for row in data["train"]}
    assert rows["alice"]["responses"] == [1, 0] and rows["bob"]["responses"] == [0, 1]
    assert rows["carol"]["responses"] == [0]
    # A cached load reports the same.
    assert load_poj(log, problems, cold_start_items=0, test_fraction=0.0, cache_dir=tmp_path / "cache").stats == (
        data.stats
    )


@pytest.mark.parametrize("variant", ["fast", "line_by_line"])
def test_strict_raises_naming_file_and_lines(tmp_path, problems, variant):
    log = write_log(tmp_path / "poj_log.csv", LOG if variant == "fast" else by_line(LOG))
    with pytest.raises(DataFileError) as info:
        load_poj(log, problems, strict=True, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert info.value.count == 5 and isinstance(info.value, ValueError)
    for line in (*UNJUDGED_LINES, *EMPTY_LINES):
        assert f"{log}:{line}: " in message
    assert (info.value.path, info.value.line) == (str(log), 4)  # listed in line order, whatever the reason


def test_several_bad_lines_are_reported_together(tmp_path, problems):
    lines = list(LOG)
    for index in (0, 4, 6, 7, 9):  # lines 2, 6, 8, 9, 11
        lines[index] = lines[index].replace(lines[index].split(",")[4], "Judged Maybe")
    lines[1] = "2,2008-01-01 10:02:00,alice,1001"  # line 3: too few fields
    lines[2] = "3,2008-01-01 10:03,alice,1001,Accepted,400K,16MS,G++,512B"  # line 4: a bad time
    log = write_log(tmp_path / "poj_log.csv", lines)
    with pytest.raises(DataFileError) as info:
        load_poj(log, problems, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert info.value.count == 7 and len(info.value.problems) == 5
    assert message.startswith("7 bad lines:\n")
    assert re.search(re.escape(f"{log}:2: unknown Result 'Judged Maybe'"), message)
    assert f"{log}:3: expected 9 fields" in message  # a short row is reported among the others
    assert message.endswith("... and 2 more bad lines")
    assert [line for _, line, _ in info.value.problems] == sorted(line for _, line, _ in info.value.problems)


def test_gzip_log_and_truncated_gzip(tmp_path, problems):
    log = write_log(tmp_path / "poj_log.csv.gz", LOG * 400, opener=gzip.open)
    data = load_poj(log, problems, cold_start_items=0, cache_dir=tmp_path / "cache")
    assert data.stats["rows_read"] == len(LOG) * 400
    raw = log.read_bytes()
    cut = tmp_path / "cut_poj_log.csv.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFileError, match=r"the file looks truncated") as info:
        load_poj(cut, problems, cold_start_items=0, cache_dir=tmp_path / "cache")
    assert info.value.path == str(cut) and info.value.line > 1
    assert str(info.value).startswith(f"{cut}:{info.value.line}: ")
