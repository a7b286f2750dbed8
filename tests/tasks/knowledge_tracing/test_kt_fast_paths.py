"""
The knowledge-tracing readers' pyarrow paths read exactly what their line-by-line paths read, and hand everything
doubtful to them (so that errors still name file and line); the bulk grouping and ordering equal the plain ones.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from gram_hf.raw_files import BadLines, DataFileError, DroppedRows
from gram_hf.tasks.knowledge_tracing import csv as kt_csv
from gram_hf.tasks.knowledge_tracing import duolingo, ednet, load_duolingo, poj
from gram_hf.tasks.knowledge_tracing.builder import group_by_user
from gram_hf.tasks.knowledge_tracing.canonical import _learner_time_order


def plain(values) -> list:
    """Arrow arrays, numpy arrays and lists as lists (NaN as None), to compare the two paths' columns."""
    values = values.to_pylist() if isinstance(values, (pa.Array, pa.ChunkedArray)) else list(np.asarray(values))
    return [None if isinstance(value, float) and value != value else value for value in values]


def assert_same_columns(fast: dict, slow: dict) -> None:
    assert fast.keys() == slow.keys()
    for name in slow:
        assert plain(fast[name]) == plain(slow[name]), name


# ------------------------------------------------------------------------------------------------------------- POJ

POJ_LOG = """User,Problem,Result,Language,Submit Time
u1,1000,Accepted,C,2010-01-02 03:04:05
 u2 ,1001 ,Wrong Answer,C,2010-01-02 03:04:06
u1,1002,Waiting,C,2010-01-02 03:04:07
u3,,Accepted,C,2010-01-02 03:04:08
u2,1000,Accepted,C,2009-12-31 23:59:59
"""


def test_poj_fast_read_equals_the_line_reader(tmp_path):
    log = tmp_path / "poj_log.csv"
    log.write_text(POJ_LOG, encoding="utf-8")
    fast_drops, slow_drops = DroppedRows(), DroppedRows()
    fast = poj._read_log_fast(str(log), fast_drops)
    slow = poj._read_log_by_line(str(log), slow_drops)
    assert fast is not None
    assert_same_columns(vars(fast), vars(slow))
    assert plain(fast.users) == ["u1", "u2", "u2"]  # stripped as the csv path strips
    assert fast_drops.to_dict() == slow_drops.to_dict() and fast_drops.total == 2


# ----------------------------------------------------------------------------------------------------------- EdNet

HEADER = "timestamp,solving_id,question_id,user_answer,elapsed_time\n"


def write_user_files(folder, bodies: list[str]) -> list[str]:
    paths = []
    for number, body in enumerate(bodies, 1):
        path = folder / f"u{number}.csv"
        path.write_text(HEADER + body, encoding="utf-8")
        paths.append(str(path))
    return paths


def test_ednet_fast_read_equals_the_csv_reader(tmp_path):
    paths = write_user_files(
        tmp_path,
        ["1000,1,q1,a,2000\n1000,1, q2 ,,\n2000,2,q3,b ,15\n", "", "5,1,q9,d,1.5"],  # an empty user, no final \n
    )
    fast = ednet._parse_user_files_fast(paths)
    slow = ednet._parse_user_files_slow(paths, BadLines())
    assert fast is not None
    assert_same_columns(fast, slow)
    assert plain(fast["counts"]) == [3, 0, 1]


def test_ednet_fast_read_of_files_without_rows(tmp_path):
    fast = ednet._parse_user_files_fast(write_user_files(tmp_path, ["", ""]))
    assert plain(fast["counts"]) == [0, 0] and len(fast["question_id"]) == 0


@pytest.mark.parametrize("body", ["1000,1,q1,a,5\n\n", "1000,1,q1,e,5\n", "x,1,q1,a,5\n", "1000,1,,a,5\n"])
def test_ednet_fast_read_leaves_doubtful_files_to_the_csv_reader(tmp_path, body):
    assert ednet._parse_user_files_fast(write_user_files(tmp_path, [body])) is None


# ----------------------------------------------------------------------------------------------------- generic CSV


def csv_reader(tmp_path, content: str):
    """`read(fast)`: the interactions `content` through the fast or the csv-module path (feature `skill`)."""
    path = tmp_path / "interactions.csv"
    path.write_text(content, encoding="utf-8")
    builder = kt_csv.KnowledgeTracingCSVBuilder.__new__(kt_csv.KnowledgeTracingCSVBuilder)
    builder.config = kt_csv.KnowledgeTracingCSVConfig(name="interactions", feature_columns=("skill",))
    required = ["user_id", "item_id", "timestamp", "correct", "skill"]
    return lambda fast: (builder._read_csv_fast if fast else builder._read_csv)(str(path), required, 1.0)


@pytest.mark.parametrize(
    "rows",
    [
        ["u1,i1,10,1,a", " u2 ,i2, 1.5e3 , TRUE ,b ", "u1,i2,-3,no,", '"u3",i1,7,0.0,"x, y"'],
        ["u1,i1,2020-01-02,1,a", "u2,i2,2020-01-02T03:04:05.25,0,b", "u1,i2,2020-01-02 03:04,1,"],
    ],
)
def test_csv_fast_read_equals_the_csv_module(tmp_path, rows):
    read = csv_reader(tmp_path, "user_id,item_id,timestamp,correct,skill\n" + "\r\n".join(rows) + "\n")
    fast, slow = read(fast=True), read(fast=False)
    assert fast is not None
    assert plain(fast[0]) == plain(slow[0])
    assert_same_columns(fast[1], slow[1])


@pytest.mark.parametrize(
    "row",
    [
        "u1,,10,1,a",  # empty item: the csv path names the line
        "u1,i1,10,maybe,a",  # not a response
        "u1,i1,1_000,1,a",  # Python's float reads it, pyarrow does not
        "u1,i1,2020-01-02T03:04:05+02:00,1,a",  # a zone: fromisoformat's business
        "u1,i1,10,1",  # a short row
        "   ",  # a blank line the csv module skips
    ],
)
def test_csv_fast_read_leaves_doubtful_rows_to_the_csv_module(tmp_path, row):
    read = csv_reader(tmp_path, f"user_id,item_id,timestamp,correct,skill\nu0,i0,1,1,a\n{row}\n")
    assert read(fast=True) is None


# -------------------------------------------------------------------------------------------------------- Duolingo


def write_slam(folder, train: str, dev: str, dev_key: str) -> dict:
    (folder / "en_es.slam.20190204.train").write_text(train, encoding="utf-8")
    (folder / "en_es.slam.20190204.dev").write_text(dev, encoding="utf-8")
    (folder / "en_es.slam.20190204.dev.key").write_text(dev_key, encoding="utf-8")
    return duolingo.find_slam_files(folder, "en_es", files=("train", "dev"))


TRAIN = (
    "# prompt:Yo: soy\n"
    "# user:A  countries:CO  days:0.5  client:web  session:lesson  format:reverse_translate  time:9\n"
    "aaaaaaaa0100  Yo  PRON  x  nsubj  0  0\naaaaaaaa0101  soy  VERB  x  ROOT  0  1\n\n"
    "# user:B  days:1.25  client:bot  format:listen  time:null\nbbbbbbbb0100  ni\u00f1o  NOUN  x  ROOT  0  0  \n\n"
)
DEV = "# user:A  days:2  session:test  time:3.7\ncccccccc0100  agua  NOUN  x  ROOT  0\n\n"
DEV_KEY = "cccccccc0100 1\n"


@pytest.mark.parametrize("include_prompt", [False, True])
def test_slam_fast_read_equals_the_parser(tmp_path, include_prompt):
    files = write_slam(tmp_path, TRAIN, DEV, DEV_KEY)
    fast = duolingo._read_slam_fast(files, include_prompt, " | ")
    slow = duolingo._read_slam_by_line(files, include_prompt, " | ")
    assert fast is not None
    assert_same_columns(fast, slow)
    assert plain(fast["sentence"])[0] == ("Yo: soy | Yo soy" if include_prompt else "Yo soy")


@pytest.mark.parametrize(
    ("train", "line"),
    [
        (TRAIN.replace("Yo  PRON  x  nsubj  0  0", "Yo  PRON  x  nsubj  0 "), 3),  # 5 columns, a trailing space
        (TRAIN.replace("  ROOT  0  1\n\n", "  ROOT  0  1\nstray\n\n"), 5),  # 1 column
        (TRAIN.replace("# user:B ", "# nouser:B "), 6),  # a header without a user
        (TRAIN.replace("aaaaaaaa0101", "aaaa0101"), 4),  # an instance id not 12 characters long
    ],
)
def test_slam_fast_read_leaves_malformed_files_to_the_parser(tmp_path, train, line):
    files = write_slam(tmp_path, train, DEV, DEV_KEY)
    assert duolingo._read_slam_fast(files, False, " | ") is None
    with pytest.raises(DataFileError) as error:
        load_duolingo(tmp_path, slam_files=("train", "dev"), cache_dir=tmp_path / "cache", cold_start_items=0)
    assert error.value.line == line


def test_slam_fast_read_leaves_spaces_pyarrow_splits_differently_to_the_parser(tmp_path):
    # U+00A0 splits a token for str.split, not for pyarrow's ASCII split: the parser decides.
    files = write_slam(tmp_path, TRAIN.replace("ni\u00f1o", "ni\u00a0o"), DEV, DEV_KEY)
    assert duolingo._read_slam_fast(files, False, " | ") is None


# ------------------------------------------------------------------------------------------- grouping and ordering


def test_group_by_user_keeps_first_appearance_and_file_order():
    table = group_by_user(["b", "a", "b", "c", "a"], {"item_ids": ["1", "2", "3", "4", "5"]}, splits=[0, 1, 2, 0, 1])
    assert table.to_pydict() == {
        "user_id": ["b", "a", "c"],
        "item_ids": [["1", "3"], ["2", "5"], ["4"]],
        "splits": [[0, 2], [1, 1], [0]],
    }


@pytest.mark.parametrize("grouped", [True, False])
def test_learner_time_order_is_a_stable_sort_by_time_then_learner(grouped):
    rng = np.random.default_rng(3)
    for _ in range(50):
        size = int(rng.integers(0, 60))
        user = np.sort(rng.integers(0, 6, size)) if grouped else rng.integers(0, 6, size)
        if grouped:  # learners in runs, in any order, each run in time order (EdNet): the one-pass branch
            user = rng.permutation(6)[user]
            timestamps = np.concatenate([np.sort(rng.integers(0, 5, n)) for n in np.bincount(user, minlength=6)])
            timestamps = timestamps[np.argsort(np.argsort(user, kind="stable"), kind="stable")]
        else:
            timestamps = rng.integers(0, 5, size).astype(float)
        rows = np.flatnonzero(rng.random(size) < 0.8)
        expected = rows[np.lexsort((timestamps[rows], user[rows]))]
        np.testing.assert_array_equal(_learner_time_order(user, timestamps, rows), expected)
