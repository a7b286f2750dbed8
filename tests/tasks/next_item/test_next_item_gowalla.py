"""Gowalla check-ins: exact parsing, bad lines (named, reported together), gzip, coordinates, item texts, synthetic."""

from __future__ import annotations

import gzip
import logging
import re
from datetime import datetime, timezone

import pytest

from gram_hf.raw_files import DataFileError
from gram_hf.tasks.next_item import load_gowalla, make_synthetic_gowalla
from gram_hf.tasks.next_item.readers import _read_checkin_lines, read_gowalla_checkins

# SNAP's layout: user, time, latitude, longitude, location id; each user's check-ins newest first.
CHECKINS = [
    "0\t2010-10-19T23:55:27Z\t30.2359091167\t-97.7951395833\t40",
    "0\t2010-10-18T22:17:43Z\t30.2691029532\t-97.7493953705\t20",  # a return visit: dropped as a duplicate
    "0\t2010-10-17T23:42:03Z\t30.2557309927\t-97.7633857727\t30",
    "0\t2010-10-17T19:26:05Z\t30.2691029532\t-97.7493953705\t20",
    "0\t2010-10-16T18:50:42Z\t30.2634181234\t-97.7575966669\t10",
    "1\t2010-07-24T13:45:06Z\t30.2557309927\t-97.7633857727\t40",
    "1\t2010-07-24T13:44:58Z\t30.2634181234\t-97.7575966669\t10",
    "1\t2010-07-24T13:44:13Z\t30.2691029532\t-97.7493953705\t20",
    "2\t2010-10-12T23:58:03Z\t30.2557309927\t-97.7633857727\t30",  # user 2 has two check-ins: below the user core
    "2\t2010-10-12T22:02:11Z\t30.2634181234\t-97.7575966669\t10",
]
CORES = {"min_item_interactions": 1, "min_user_interactions": 3}


def seconds(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def write(path, lines, ending="\n"):
    path.write_text(ending.join(lines) + ending, encoding="utf-8")
    return path


@pytest.fixture
def checkins(tmp_path):
    return write(tmp_path / "loc-gowalla_totalCheckins.txt", CHECKINS)


def test_read_gowalla_checkins_exact_rows_on_both_paths(checkins):
    table, dropped = read_gowalla_checkins(str(checkins))
    assert dropped.total == 0 and table.num_rows == len(CHECKINS)
    assert table["user"].to_pylist() == [0] * 5 + [1] * 3 + [2] * 2
    assert table["item"].to_pylist() == [40, 20, 30, 20, 10, 40, 10, 20, 30, 10]
    assert table["timestamp"][0].as_py() == seconds("2010-10-19T23:55:27Z") == 1287532527
    assert table["latitude"][0].as_py() == 30.2359091167 and table["longitude"][0].as_py() == -97.7951395833
    slow, slow_dropped = _read_checkin_lines(str(checkins))  # the line-by-line reader gives the same table
    assert slow.equals(table) and slow_dropped.total == 0


def test_load_gowalla_exact_sequences_and_items(checkins, tmp_path):
    data = load_gowalla(checkins, cache_dir=str(tmp_path / "cache"), **CORES)
    assert data.items["item_id"] == ["10", "20", "30", "40"]  # location-id order
    assert data.items["text"] == ["", "", "", ""]  # Gowalla has no item text
    assert data.items["latitude"] == [30.2634181234, 30.2691029532, 30.2557309927, 30.2359091167]
    assert data.items["longitude"][3] == -97.7951395833
    # user 0: 10, 20, 30, 40 (the return visit to 20 dropped); user 1: 20, 10, 40; user 2 below the user core.
    assert data["test"]["user_id"] == ["0", "1"]
    assert data["test"]["items"] == [[0, 1, 2, 3], [1, 0, 3]]
    assert data["validation"]["items"] == [[0, 1, 2], [1, 0]]
    assert data["train"]["user_id"] == ["0"] and data["train"]["items"] == [[0, 1]]
    assert data["test"]["timestamps"][1] == [seconds(t) for t in ("2010-07-24T13:44:13Z", "2010-07-24T13:44:58Z",
                                                                  "2010-07-24T13:45:06Z")]  # fmt: skip
    stats = data.stats
    assert stats["dataset"] == "gowalla" and stats["rows_read"] == 10 and stats["removed_from_train"] == {}
    assert stats["dropped"] == {"duplicates": 1, "filtered_min_interactions": 2}
    assert stats["rows_read"] == stats["interactions"] + sum(stats["dropped"].values())
    assert stats["items_with_empty_text"] == 4
    # Defaults: items with >= 5 check-ins; none here.
    with pytest.raises(ValueError, match="No interactions are left"):
        load_gowalla(checkins, cache_dir=str(tmp_path / "cache"))


def test_gowalla_cache_is_keyed_on_the_file(checkins, tmp_path):
    cache = str(tmp_path / "cache")
    first = load_gowalla(checkins, cache_dir=cache, **CORES)
    assert load_gowalla(checkins, cache_dir=cache, **CORES).stats == first.stats
    write(checkins, [*CHECKINS, "2\t2010-10-13T10:00:00Z\t30.1\t-97.7\t40"])
    edited = load_gowalla(checkins, cache_dir=cache, **CORES)
    assert edited.stats["rows_read"] == 11 and edited["test"]["user_id"] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("line", "bad", "match"),
    [
        (3, "0\t2010-10-17T23:42:03Z\t30.25\t-97.76", r":3: expected 5 tab-separated fields \(user, check-in time, "),
        (4, "0\t2010-10-17T23:42:03Z\t30.25\t-97.76\t20\textra", ":4: expected 5 tab-separated fields"),
        (2, "0\tyesterday\t30.25\t-97.76\t20", ":2: check-in time 'yesterday' is not an ISO-8601 date-time"),
        (2, "0\t2010-13-40T10:00:00Z\t30.25\t-97.76\t20", ":2: check-in time '2010-13-40T10:00:00Z' is not an ISO"),
        (5, "0\t2010-10-16T18:50:42Z\tnorth\t-97.76\t10", ":5: latitude 'north' is not a number"),
        (5, "0\t2010-10-16T18:50:42Z\t30.25\t\t10", ":5: longitude '' is not a number"),
        (6, "1\t2010-07-24T13:45:06Z\t30.25\t-97.76\tL40", ":6: location id 'L40' is not an integer"),
        (7, "1.5\t2010-07-24T13:44:58Z\t30.25\t-97.76\t10", ":7: user '1.5' is not an integer"),
        (1, "user\tcheck-in time\tlatitude\tlongitude\tlocation id", ":1: user 'user' is not an integer .*no header"),
    ],
)
def test_gowalla_malformed_line_names_file_and_line(tmp_path, line, bad, match):
    lines = list(CHECKINS)
    lines[line - 1] = bad
    path = write(tmp_path / "checkins.txt", lines)
    with pytest.raises(DataFileError, match=re.escape(str(path)) + match) as info:
        load_gowalla(path, cache_dir=str(tmp_path / "cache"), **CORES)
    assert info.value.line == line and info.value.count == 1


def test_gowalla_bad_lines_are_reported_together(tmp_path):
    synthetic = make_synthetic_gowalla(tmp_path / "g", num_users=20, num_items=20, num_cities=2, max_length=8, seed=3)
    path = tmp_path / "g" / "loc-gowalla_totalCheckins.txt"
    lines = path.read_text().splitlines()
    for number in (2, 4, 5, 9, 11, 12, 15):
        lines[number - 1] = lines[number - 1].replace("Z\t", "\t", 1).replace("T", " nope ", 1)
    write(path, lines)
    with pytest.raises(DataFileError) as info:
        load_gowalla(synthetic.files["checkins"], cache_dir=str(tmp_path / "cache"))
    message = str(info.value)
    assert message.startswith("7 bad lines:\n") and message.endswith("... and 2 more bad lines")
    assert [line for _, line, _ in info.value.problems] == [2, 4, 5, 9, 11]
    assert all("is not an ISO-8601 date-time" in problem for _, _, problem in info.value.problems)


def test_gowalla_invalid_coordinates_are_dropped_or_strict(tmp_path, caplog):
    lines = list(CHECKINS)
    lines[3] = "0\t2010-10-17T19:26:05Z\t95.0\t-97.76\t20"  # latitude beyond the pole: the later visit to 20 counts
    lines[8] = "2\t2010-10-12T23:58:03Z\t30.25\tinf\t30"
    path = write(tmp_path / "checkins.txt", lines)
    with caplog.at_level(logging.WARNING, logger="gram_hf"):
        data = load_gowalla(path, cache_dir=str(tmp_path / "cache"), **CORES)
    assert "2 invalid coordinates" in caplog.text and f"{path}:4: latitude 95.0" in caplog.text
    stats = data.stats
    assert stats["dropped"]["invalid_coordinates"] == 2 and stats["rows_read"] == 10
    assert [example[1] for example in stats["dropped_examples"]["invalid_coordinates"]] == [4, 9]
    assert stats["dropped"] == {"invalid_coordinates": 2, "filtered_min_interactions": 1}
    assert stats["rows_read"] == stats["interactions"] + sum(stats["dropped"].values())
    assert data["test"]["items"][0] == [0, 2, 1, 3]  # user 0: 10, 30, 20 (the later visit), 40
    with pytest.raises(DataFileError, match=r"2 bad lines:\n  .*:4: latitude 95.0 / longitude -97.76 outside"):
        load_gowalla(path, cache_dir=str(tmp_path / "cache"), strict=True, **CORES)


def test_gowalla_empty_file_invalid_utf8_and_missing_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataFileError, match=re.escape(f"{empty}: holds no check-ins")):
        load_gowalla(empty, cache_dir=str(tmp_path / "cache"))
    empty.write_text("\n  \n")
    with pytest.raises(DataFileError, match="holds no check-ins"):
        load_gowalla(empty, cache_dir=str(tmp_path / "cache"))
    latin = tmp_path / "latin.txt"
    data = "\n".join(CHECKINS).encode().replace(b"\t20\n0\t2010-10-17T23", b"\t2\xe90\n0\t2010-10-17T23", 1)
    latin.write_bytes(data)
    with pytest.raises(DataFileError, match=re.escape(f"{latin}:2: not valid UTF-8 (byte 0xe9 at column")):
        load_gowalla(latin, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="Gowalla check-in file not found: .*nowhere.txt"):
        load_gowalla(tmp_path / "nowhere.txt")


def test_gowalla_reads_gzip_and_names_a_truncated_one(checkins, tmp_path):
    packed = tmp_path / "loc-gowalla_totalCheckins.txt.gz"
    packed.write_bytes(gzip.compress(checkins.read_bytes()))
    plain = load_gowalla(checkins, cache_dir=str(tmp_path / "c1"), **CORES)
    data = load_gowalla(packed, cache_dir=str(tmp_path / "c2"), **CORES)
    assert data["test"].to_dict() == plain["test"].to_dict() and data.items.to_dict() == plain.items.to_dict()
    synthetic = make_synthetic_gowalla(
        tmp_path / "g", num_users=60, num_items=30, num_cities=2, max_length=12, compress=True
    )
    big = synthetic.files["checkins"]
    cut = tmp_path / "cut.txt.gz"
    with open(big, "rb") as handle:
        packed_bytes = handle.read()
    cut.write_bytes(packed_bytes[: len(packed_bytes) // 2])
    with pytest.raises(DataFileError, match="the file looks truncated") as info:
        load_gowalla(cut, cache_dir=str(tmp_path / "c3"))
    assert str(info.value).startswith(f"{cut}:{info.value.line}: ") and info.value.line > 1


def test_gowalla_item_texts_missing_text_choices(tmp_path, caplog):
    checkins = write(tmp_path / "checkins.txt", ["0\t2010-10-20T10:00:00Z\t30.2\t-97.7\t50", *CHECKINS])
    texts = tmp_path / "locations.csv"
    # Location 40 has no text; 99 is never checked into (fine); a non-integer id names no location.
    texts.write_text('item_id,text\n10,"Coffee Shop, Austin"\n20,Park\n30,Museum\n50,Bakery\n99,Airport\nx,No\n')
    cache = str(tmp_path / "cache")
    with pytest.raises(DataFileError, match=re.escape(f"{texts}: 2 interactions name 1 items without a text")) as info:
        load_gowalla(checkins, texts, cache_dir=cache, **CORES)
    assert "['40']" in str(info.value) and "missing_text='drop'" in str(info.value)

    with caplog.at_level(logging.WARNING, logger="gram_hf"):
        empty = load_gowalla(checkins, texts, missing_text="empty", cache_dir=cache, **CORES)
    assert "they get an empty text" in caplog.text
    assert empty.items["text"] == ["Coffee Shop, Austin", "Park", "Museum", "", "Bakery"]
    assert empty.stats["items_without_text"] == 1 and empty.stats["items_with_empty_text"] == 1

    dropped = load_gowalla(checkins, texts, missing_text="drop", cache_dir=cache, **CORES)
    assert dropped.items["item_id"] == ["10", "20", "30", "50"] and dropped["test"]["user_id"] == ["0"]
    assert dropped.stats["dropped"] == {"unknown_items": 2, "duplicates": 1, "filtered_min_interactions": 4}
    assert dropped.stats["rows_read"] == dropped.stats["interactions"] + sum(dropped.stats["dropped"].values())
    with pytest.raises(ValueError, match="absent from the item file.*strict=True"):
        load_gowalla(checkins, texts, missing_text="drop", strict=True, cache_dir=cache, **CORES)
    with pytest.raises(ValueError, match="missing_text must be one of"):
        load_gowalla(checkins, texts, missing_text="ignore")


def test_make_synthetic_gowalla_writes_the_snap_format(tmp_path):
    options = {"num_users": 80, "num_items": 40, "num_cities": 3, "max_length": 12, "new_item_fraction": 0.1,
               "new_item_rate": 0.6, "seed": 4}  # fmt: skip
    synthetic = make_synthetic_gowalla(tmp_path / "a", with_texts=True, **options)
    lines = open(synthetic.files["checkins"], encoding="utf-8").read().splitlines()
    assert len(lines) == synthetic.num_interactions and all(len(line.split("\t")) == 5 for line in lines)
    assert re.fullmatch(r"0\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\t-?\d+\.\d{10}\t-?\d+\.\d{10}\t\d+", lines[0])
    users = [int(line.split("\t")[0]) for line in lines]
    assert users == sorted(users)
    first_user = [line.split("\t")[1] for line in lines if line.startswith("0\t")]
    assert first_user == sorted(first_user, reverse=True)  # newest first, as SNAP's file
    again = make_synthetic_gowalla(tmp_path / "b", with_texts=True, **options)
    assert open(again.files["checkins"]).read() == open(synthetic.files["checkins"]).read()
    packed = make_synthetic_gowalla(tmp_path / "c", compress=True, **options)
    assert gzip.decompress(open(packed.files["checkins"], "rb").read()).decode() == "\n".join(lines) + "\n"
    assert (
        open(packed.files["checkins"], "rb").read()
        == open(make_synthetic_gowalla(tmp_path / "d", compress=True, **options).files["checkins"], "rb").read()
    )  # reproducible bytes

    data = load_gowalla(synthetic.files["checkins"], synthetic.files["items"], cache_dir=str(tmp_path / "cache"))
    assert data.stats["dropped"]["duplicates"] > 0  # the return visits
    assert set(data.items["item_id"]) <= set(synthetic.item_ids)
    cold = {item for item, flag in zip(data.items["item_id"], data.items["cold_start"]) if flag}
    assert cold <= set(synthetic.new_items)
    cities = dict(zip(synthetic.item_ids, synthetic.topics.tolist()))
    for item_id, text in zip(data.items["item_id"], data.items["text"]):
        assert text.endswith(synthetic.topic_names[cities[item_id]]) or "," not in text
