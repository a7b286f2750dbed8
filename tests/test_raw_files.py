"""
The shared reading layer of every loader (`gram_hf.raw_files`): plain and `.gz` text, invalid UTF-8 and cut-off or
corrupt compressed data named by file and line, several bad lines in one error, rows dropped on purpose.
"""

from __future__ import annotations

import gzip
import pickle

import pytest

from gram_hf.raw_files import (
    BadLines,
    DataFileError,
    DroppedRows,
    iter_csv,
    iter_lines,
    read_csv_header,
    reading,
)


def test_data_file_error_is_a_value_error_with_path_line_and_problem():
    error = DataFileError("data/log.csv", 7, "empty User")
    assert isinstance(error, ValueError)
    assert str(error) == "data/log.csv:7: empty User"
    assert (error.path, error.line, error.problem, error.count) == ("data/log.csv", 7, "empty User", 1)
    assert str(DataFileError("data/log.csv", None, "the file is empty")) == "data/log.csv: the file is empty"
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is DataFileError and str(again) == str(error) and again.line == 7


def test_bad_lines_lists_the_first_few_in_reading_order_and_counts_the_rest():
    bad = BadLines()
    bad.check()  # nothing collected: nothing raised
    for line in (9, 3, 4, 12, 5, 6, 7):
        bad.add("b.csv", line, f"problem {line}")
    bad.add("a.csv", 2, "in another file")
    assert len(bad) == 8
    with pytest.raises(DataFileError) as info:
        bad.check()
    error = info.value
    # The first five found, shown files in order of first mention and lines ascending.
    assert [(path, line) for path, line, _ in error.problems] == [
        ("b.csv", 3),
        ("b.csv", 4),
        ("b.csv", 5),
        ("b.csv", 9),
        ("b.csv", 12),
    ]
    assert str(error) == (
        "8 bad lines:\n  b.csv:3: problem 3\n  b.csv:4: problem 4\n  b.csv:5: problem 5\n  b.csv:9: problem 9\n"
        "  b.csv:12: problem 12\n  ... and 3 more bad lines"
    )
    assert (error.path, error.line, error.count) == ("b.csv", 3, 8)
    assert pickle.loads(pickle.dumps(error)).count == 8
    counted = BadLines(limit=2)
    counted.add_many([("c.csv", None, "row 1: x"), ("c.csv", None, "row 4: x")], 10)
    counted.add_error(DataFileError.several([("c.csv", 9, "y")], 3))
    assert len(counted) == 13 and len(counted.problems) == 2


def test_dropped_rows_round_trip_summary_and_strict_error():
    dropped = DroppedRows(limit=2)
    for line in (4, 5, 9):
        dropped.add("unjudged_submissions", "log.csv", line, f"Result 'Waiting' ({line})")
    dropped.add("empty_fields", "log.csv", 7, "empty User")
    assert dropped.counts == {"unjudged_submissions": 3, "empty_fields": 1} and dropped.total == 4
    stored = DroppedRows.from_dict(dropped.to_dict())
    assert stored.counts == dropped.counts and stored.examples == dropped.examples
    assert dropped.summary() == (
        "3 unjudged submissions (e.g. log.csv:4: Result 'Waiting' (4); log.csv:5: Result 'Waiting' (5)); "
        "1 empty fields (e.g. log.csv:7: empty User)"
    )
    error = dropped.error()
    assert error.count == 4 and [line for _, line, _ in error.problems] == [4, 5, 7]
    assert str(error).endswith("... and 1 more bad lines")
    assert DroppedRows.from_dict(None).total == 0


def test_iter_lines_plain_gzip_crlf_bom_and_blank_lines(tmp_path):
    text = "\ufefffirst\r\n\nsecond\tcol\rstill second\nthird"
    plain = tmp_path / "lines.tsv"
    plain.write_bytes(text.encode("utf-8"))
    compressed = tmp_path / "lines.tsv.gz"
    compressed.write_bytes(gzip.compress(text.encode("utf-8")))
    expected = [(1, "first"), (3, "second\tcol\rstill second"), (4, "third")]
    assert list(iter_lines(plain)) == expected
    assert list(iter_lines(compressed)) == expected
    assert list(iter_lines(plain, skip_blank=False))[1] == (2, "")


def test_invalid_utf8_names_every_bad_line_and_keeps_earlier_problems(tmp_path):
    path = tmp_path / "items.csv"
    # The bad bytes lie deep in the file, past the decoder's first chunk, as in the issue ("position 149").
    rows = [f"i{n},text number {n}" for n in range(3000)]
    rows[1500] = "i1500,caf\xe9"
    rows[2500] = "i2500,\xff"
    path.write_bytes(("id,text\n" + "\n".join(rows) + "\n").encode("latin-1"))
    bad = BadLines()
    bad.add(path, 2, "a problem found before")
    with pytest.raises(DataFileError) as info:
        for _ in iter_csv(path, ["id"], bad):
            pass
    error = info.value
    assert error.count == 3
    assert [line for _, line, _ in error.problems] == [2, 1502, 2502]
    assert f"{path}:1502: not valid UTF-8 (byte 0xe9 at column 10: invalid continuation byte)" in str(error)
    with pytest.raises(DataFileError, match=r"items\.csv:1502: not valid UTF-8"):
        list(iter_lines(path))
    assert read_csv_header(path) == ["id", "text"]
    path.write_bytes(b"id,t\xe9xt\n")
    with pytest.raises(DataFileError, match=r"items\.csv:1: not valid UTF-8"):
        read_csv_header(path)


def test_cut_off_corrupt_and_mislabelled_gzip(tmp_path):
    lines = [f'{{"reviewerID": "A{n}", "asin": "B{n % 97}", "unixReviewTime": {n}}}' for n in range(20000)]
    whole = gzip.compress(("\n".join(lines) + "\n").encode())
    cut = tmp_path / "reviews.json.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataFileError) as info:
        for _ in iter_lines(cut):
            pass
    error = info.value
    assert error.path == str(cut) and 1 < error.line < len(lines)
    assert str(error) == f"{cut}:{error.line}: the compressed data ends in this line; the file looks truncated " + (
        "(download it again)"
    )
    # Any reader wrapped in `reading` gets the same message, e.g. one reading all at once.
    with pytest.raises(DataFileError, match="the file looks truncated"), reading(cut), gzip.open(cut, "rt") as handle:
        handle.read()
    corrupt = tmp_path / "corrupt.json.gz"
    damaged = bytearray(whole)
    damaged[len(damaged) // 2 : len(damaged) // 2 + 8] = b"\x00" * 8
    corrupt.write_bytes(bytes(damaged))
    with pytest.raises(DataFileError, match=r"corrupt\.json\.gz:\d+: the compressed data is corrupt"):
        for _ in iter_lines(corrupt):
            pass
    not_gzip = tmp_path / "plain.json.gz"
    not_gzip.write_text("{}\n")
    with pytest.raises(DataFileError, match=r"plain\.json\.gz: is not gzip-compressed although its name ends in"):
        list(iter_lines(not_gzip))
    unnamed = tmp_path / "reviews.json"
    unnamed.write_bytes(whole)
    with pytest.raises(DataFileError, match=r"reviews\.json: holds gzip-compressed data: name it \*\.gz") as info:
        list(iter_lines(unnamed))
    assert info.value.count == 1


def test_iter_csv_reads_by_name_and_collects_bad_rows(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        'Extra,User,Problem\n1,alice,"A, quoted\nvalue"\n\n2,bob\n3,carol,P3\n4,dave,P4,more\n', encoding="utf-8"
    )
    bad = BadLines()
    rows = list(iter_csv(path, ["User", "Problem"], bad))
    assert rows == [
        (3, {"Extra": "1", "User": "alice", "Problem": "A, quoted\nvalue"}),
        (6, {"Extra": "3", "User": "carol", "Problem": "P3"}),
    ]
    assert [line for _, line, _ in bad.problems] == [5, 7]
    assert "expected 3 fields (Extra,User,Problem), got 2" in bad.problems[0][2]
    with pytest.raises(DataFileError, match=r"log\.csv:5: expected 3 fields") as info:
        list(iter_csv(path, ["User"]))  # without a collector: raised at the end of the file
    assert info.value.count == 2
    with pytest.raises(DataFileError, match=r"log\.csv:1: the header \['Extra', 'User', 'Problem'\] lacks"):
        list(iter_csv(path, ["Result"]))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataFileError, match=r"empty\.csv: the file is empty"):
        list(iter_csv(tmp_path / "empty.csv", ["User"]))
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        list(iter_csv(tmp_path / "nowhere.csv", ["User"]))
