"""The generic next-item table (CSV or Parquet) and item-text table: exact parsing, columns by name, bad input."""

from __future__ import annotations

import gzip
import logging
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gram_hf.raw_files import DataFileError
from gram_hf.tasks.next_item import load_next_item_csv
from gram_hf.tasks.next_item.readers import _read_interactions_csv, read_interaction_table, read_item_texts

# Three users; "b, ripe" needs quoting; extra columns are ignored. Integer timestamps.
INTERACTIONS = """session,user_id,item_id,timestamp,rating
s1,alice,apple,30,5
s1,alice,"b, ripe",10,4
s2,alice,cherry,20,3
s2,alice,apple,40,1
s3,bob,cherry,5,2
s3,bob,"b, ripe",6,2
s3,bob,date,7,2
s4,carol,apple,100,5
s4,carol,date,101,5
"""
CORES = {"min_item_interactions": 1, "min_user_interactions": 3}
TEXTS = """item_id,title,description,price
apple,Apple,A red fruit,1
"b, ripe",Banana,,2
cherry,Cherry,"Small, dark",3
date,Date,"Sweet
and sticky",4
zucchini,Zucchini,never bought,5
"""


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    return write(tmp_path / "interactions.csv", INTERACTIONS), write(tmp_path / "items.csv", TEXTS)


def test_load_next_item_csv_exact(files, tmp_path):
    interactions, items = files
    data = load_next_item_csv(
        interactions, items, text_columns=("title", "description"), cache_dir=str(tmp_path / "cache"), **CORES
    )
    assert data.items["item_id"] == ["apple", "b, ripe", "cherry", "date"]  # sorted ids; zucchini never occurs
    assert data.items["text"] == ["Apple. A red fruit", "Banana", "Cherry. Small, dark", "Date. Sweet\nand sticky"]
    apple, banana, cherry, date = range(4)
    # alice: b(10) cherry(20) apple(30) [apple(40) a repeat]; bob: cherry b date; carol: 2 interactions (dropped).
    assert data["test"]["user_id"] == ["alice", "bob"]
    assert data["test"]["items"] == [[banana, cherry, apple], [cherry, banana, date]]
    assert data["test"]["timestamps"] == [[10, 20, 30], [5, 6, 7]]
    assert data["validation"]["items"] == [[banana, cherry], [cherry, banana]]
    assert len(data["train"]) == 0 and data["train"].features == data["test"].features  # nobody has four items
    stats = data.stats
    assert stats["dataset"] == "next_item_csv" and stats["rows_read"] == 9 and stats["removed_from_train"] == {}
    assert stats["dropped"] == {"duplicates": 1, "filtered_min_interactions": 2}
    assert stats["rows_read"] == stats["interactions"] + sum(stats["dropped"].values())


def four_long(text: str) -> str:
    """INTERACTIONS with a fourth item for alice and bob, so that `train` has rows."""
    return text + "s1,alice,date,50,1\ns3,bob,apple,8,1\n"


def test_columns_by_name_iso_timestamps_and_no_item_table(tmp_path):
    # Renamed columns, in another order; ISO-8601 times with Z, an offset and naive (UTC).
    interactions = write(
        tmp_path / "log.csv",
        "when,who,what\n"
        "2020-01-01T00:00:30Z,alice,apple\n"
        "2020-01-01 00:00:10,alice,banana\n"
        "2020-01-01T01:00:20+01:00,alice,cherry\n"
        "2020-01-01T00:00:40.9Z,alice,date\n",
    )
    data = load_next_item_csv(
        interactions, user_column="who", item_column="what", timestamp_column="when",
        cache_dir=str(tmp_path / "cache"), min_item_interactions=1,
    )  # fmt: skip
    base = 1577836800  # 2020-01-01T00:00:00Z
    assert data["test"]["timestamps"] == [[base + 10, base + 20, base + 30, base + 40]]  # fractions dropped
    assert data["test"]["items"] == [[1, 2, 0, 3]] and data["train"]["items"] == [[1, 2]]
    assert data.items["text"] == ["", "", "", ""] and data.stats["items_with_empty_text"] == 4


def test_fast_and_line_by_line_readers_agree(tmp_path):
    for name, text in {
        "ints.csv": INTERACTIONS,
        "iso.csv": "user_id,item_id,timestamp\n u1 , i1 ,2020-01-01T00:00:01Z\nu1,i2,2020-01-02T00:00:00+00:00\n",
        "naive.csv": "user_id,item_id,timestamp\nu1,i1,2020-01-01T00:00:01\nu1,i2,2020-01-02 00:00:00\n",
        "mixed.csv": "user_id,item_id,timestamp\nu1,i1,1577836801\nu1,i2,2020-01-02T00:00:00Z\n",
    }.items():
        path = str(write(tmp_path / name, text))
        table = read_interaction_table(path)
        assert table.equals(_read_interactions_csv(path, ("user_id", "item_id", "timestamp"))), name
    assert table["timestamp"].to_pylist() == [1577836801, 1577923200]
    assert read_interaction_table(str(tmp_path / "iso.csv"))["user"].to_pylist() == ["u1", "u1"]  # stripped


def test_parquet_tables_read_like_csv(files, tmp_path):
    interactions, items = files
    csv_data = load_next_item_csv(interactions, items, text_columns=["title", "description"],
                                  cache_dir=str(tmp_path / "c1"), **CORES)  # fmt: skip
    table = pa.csv.read_csv(interactions)
    pq.write_table(table, tmp_path / "interactions.parquet")
    pq.write_table(pa.csv.read_csv(items, read_options=pa.csv.ReadOptions()), tmp_path / "items.parquet")
    data = load_next_item_csv(
        tmp_path / "interactions.parquet", tmp_path / "items.parquet", text_columns=["title", "description"],
        cache_dir=str(tmp_path / "c2"), **CORES,
    )  # fmt: skip
    assert data["test"].to_dict() == csv_data["test"].to_dict()
    assert data.items.to_dict() == csv_data.items.to_dict()
    # Timestamps as a Parquet timestamp column (UTC seconds, fractions dropped) or integral floats.
    seconds = pa.array([1_000_000_000_500, 2_000_000_000_000, 3_000_000_000_999], pa.timestamp("ms", tz="UTC"))
    frame = pa.table({"user_id": ["u"] * 3, "item_id": ["x", "y", "z"], "timestamp": seconds})
    pq.write_table(frame, tmp_path / "times.parquet")
    assert read_interaction_table(str(tmp_path / "times.parquet"))["timestamp"].to_pylist() == [
        1_000_000_000, 2_000_000_000, 3_000_000_000,
    ]  # fmt: skip
    pq.write_table(frame.set_column(2, "timestamp", pa.array([1.0, 2.0, 3.0])), tmp_path / "floats.parquet")
    assert read_interaction_table(str(tmp_path / "floats.parquet"))["timestamp"].to_pylist() == [1, 2, 3]


def test_parquet_bad_rows_and_missing_columns(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(
        pa.table({"user_id": ["u", None, "u", " "], "item_id": [1, 2, 3, 4], "timestamp": ["1", "2", "later", "4"]}),
        path,
    )
    with pytest.raises(DataFileError, match=re.escape(f"{path}: row 1: user_id is missing")):
        read_interaction_table(str(path))
    pq.write_table(
        pa.table({"user_id": ["u", "v", "u", " "], "item_id": [1, 2, 3, 4], "timestamp": ["1", "2", "later", "4"]}),
        path,
    )
    with pytest.raises(DataFileError, match=r"2 bad lines:\n  .*row 3: empty user_id\n  .*row 2: timestamp 'later'"):
        read_interaction_table(str(path))
    columns = "['user_id', 'item_id', 'timestamp']"
    with pytest.raises(DataFileError, match=re.escape(f"{path}: the columns {columns} lack ['time']")):
        read_interaction_table(str(path), timestamp_column="time")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataFileError, match="not a readable Parquet file"):
        read_interaction_table(str(tmp_path / "junk.parquet"))


def test_missing_column_empty_file_and_header_only(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item,timestamp\nu,i,1\n")
    with pytest.raises(DataFileError, match=re.escape(f"{path}:1: the header ['user_id', 'item', 'timestamp'] lacks "
                                                      "the column(s) ['item_id']")):  # fmt: skip
        load_next_item_csv(path, cache_dir=str(tmp_path / "cache"))
    write(path, "")
    with pytest.raises(DataFileError, match=re.escape(f"{path}: the file is empty")):
        load_next_item_csv(path, cache_dir=str(tmp_path / "cache"))
    write(path, "user_id,item_id,timestamp\n")
    with pytest.raises(DataFileError, match=re.escape(f"{path}: holds no interactions")):
        load_next_item_csv(path, cache_dir=str(tmp_path / "cache"))
    items = write(tmp_path / "items.csv", "item_id,name\ni,Item\n")
    write(path, "user_id,item_id,timestamp\nu,i,1\n")
    with pytest.raises(DataFileError, match=re.escape(f"{items}:1: the header ['item_id', 'name'] lacks the column(s) "
                                                      "['text']")):  # fmt: skip
        load_next_item_csv(path, items, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="item-text table not found: .*nowhere.csv"):
        load_next_item_csv(path, tmp_path / "nowhere.csv")


@pytest.mark.parametrize(
    ("line", "bad", "match"),
    [
        (3, "s1,alice,apple", r":3: expected 5 fields \(session,user_id,item_id,timestamp,rating\), got 3"),
        (4, "s2,alice,cherry,yesterday,3", ":4: timestamp 'yesterday' is neither an integer nor an ISO-8601"),
        (4, "s2,alice,cherry,2.5,3", ":4: timestamp '2.5' is neither an integer nor an ISO-8601"),
        (5, "s2, ,apple,40,1", ":5: empty user_id"),
        (6, "s3,bob,,5,2", ":6: empty item_id"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, bad, match):
    lines = INTERACTIONS.splitlines()
    lines[line - 1] = bad
    path = write(tmp_path / "interactions.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=re.escape(str(path)) + match) as info:
        load_next_item_csv(path, cache_dir=str(tmp_path / "cache"), **CORES)
    assert info.value.line == line and info.value.count == 1


def test_several_bad_lines_invalid_utf8_and_gzip(tmp_path):
    rows = [f"u{n % 7},i{n % 11},{1000 + n}" for n in range(60)]
    for number in (3, 5, 9, 20, 21, 30, 44):
        rows[number - 2] = rows[number - 2].rsplit(",", 1)[0] + ",soon"
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataFileError) as info:
        load_next_item_csv(path, cache_dir=str(tmp_path / "cache"))
    message = str(info.value)
    assert message.startswith("7 bad lines:\n") and message.endswith("... and 2 more bad lines")
    assert [line for _, line, _ in info.value.problems] == [3, 5, 9, 20, 21]

    latin = tmp_path / "latin.csv"
    latin.write_bytes(INTERACTIONS.encode().replace(b"cherry,20", b"ch\xe9rry,20"))
    with pytest.raises(DataFileError, match=re.escape(f"{latin}:4: not valid UTF-8 (byte 0xe9 at column 12")):
        load_next_item_csv(latin, cache_dir=str(tmp_path / "cache"))
    texts = tmp_path / "texts.csv"
    texts.write_bytes(b"item_id,text\napple,Apple\ncherry,Ch\xe9rry\n")
    with pytest.raises(DataFileError, match=re.escape(f"{texts}:3: not valid UTF-8")):
        read_item_texts(str(texts))

    packed = tmp_path / "interactions.csv.gz"
    packed.write_bytes(gzip.compress(four_long(INTERACTIONS).encode()))
    plain = write(tmp_path / "plain.csv", four_long(INTERACTIONS))
    data = load_next_item_csv(packed, cache_dir=str(tmp_path / "c"), **CORES)
    expected = load_next_item_csv(plain, cache_dir=str(tmp_path / "c"), **CORES)
    assert data["train"]["items"] and data["train"].to_dict() == expected["train"].to_dict()
    assert data["test"].to_dict() == expected["test"].to_dict() and data.stats["rows_read"] == 11


def test_missing_texts_error_drop_empty_and_strict(tmp_path, caplog):
    interactions = write(tmp_path / "interactions.csv", four_long(INTERACTIONS))
    texts = write(tmp_path / "items.csv", 'item_id,text\napple,Apple\n"b, ripe",Banana\ncherry,Cherry\nkiwi,Kiwi\n')
    cache = str(tmp_path / "cache")
    with pytest.raises(DataFileError, match=re.escape(f"{texts}: 3 interactions name 1 items without a text")):
        load_next_item_csv(interactions, texts, cache_dir=cache, **CORES)
    with caplog.at_level(logging.WARNING, logger="gram_hf"):
        empty = load_next_item_csv(interactions, texts, missing_text="empty", cache_dir=cache, **CORES)
    assert empty.items["text"] == ["Apple", "Banana", "Cherry", ""] and empty.stats["items_without_text"] == 1
    dropped = load_next_item_csv(interactions, texts, missing_text="drop", cache_dir=cache, **CORES)
    assert dropped.items["item_id"] == ["apple", "b, ripe", "cherry"]
    assert dropped.stats["dropped"]["unknown_items"] == 3
    assert dropped.stats["rows_read"] == dropped.stats["interactions"] + sum(dropped.stats["dropped"].values())
    with pytest.raises(ValueError, match="absent from the item file"):
        load_next_item_csv(interactions, texts, missing_text="drop", strict=True, cache_dir=cache, **CORES)
    with pytest.raises(ValueError, match="text_columns must name at least one column"):
        load_next_item_csv(interactions, texts, text_columns=())


def test_item_text_table_bad_ids_reported_together(tmp_path):
    texts = write(tmp_path / "items.csv", "item_id,text\na,A\n,Nameless\nb,B\na,Again\nc\n")
    with pytest.raises(DataFileError) as info:
        read_item_texts(str(texts))
    assert [(line, problem) for _, line, problem in info.value.problems] == [
        (3, "empty item_id"), (5, "item_id 'a' appears twice"),
        (6, "expected 2 fields (item_id,text), got 1: ['c'] (quote fields that contain commas)"),
    ]  # fmt: skip
    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"item_id": ["a", None, "a"], "text": ["A", "B", None]}), path)
    with pytest.raises(DataFileError, match=r"2 bad lines:\n  .*: row 1: empty item_id\n  .*: row 2: item_id 'a'"):
        read_item_texts(str(path))
    pq.write_table(pa.table({"item_id": [1, 2], "text": ["One", None]}), path)
    assert read_item_texts(str(path)) == {"1": "One", "2": ""}
