"""Bad raw input: malformed lines name file and line, unknown items are dropped with one warning (or raise with
strict=True), texts with quotes and commas parse, missing files name their path."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import datasets
import pytest

from gram_hf.tasks.knowledge_tracing import (
    load_duolingo,
    load_ednet,
    load_kt_csv,
    load_poj,
    write_synthetic_duolingo,
    write_synthetic_ednet,
    write_synthetic_poj,
)


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def replace_line(path: str | Path, number: int, text: str) -> None:
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    lines[number - 1] = text
    Path(path).write_text("\n".join(lines), encoding="utf-8")


def error_at(path: str | Path, line: int) -> str:
    return re.escape(f"{path}:{line}:")


# -- generic CSV ------------------------------------------------------------------------------------------------------


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def generic(tmp_path):
    interactions = write(
        tmp_path / "interactions.csv",
        "user_id,item_id,timestamp,correct\nu1,a,1,1\nu1,b,2,0\nu2,a,3,1\nu2,ghost,4,0\nu2,ghost,5,1\nu3,b,6,1\n",
    )
    items = write(tmp_path / "items.csv", 'item_id,text\na,"Say ""hi"", then, leave"\nb,"two\nlines, here"\n')
    return interactions, items, tmp_path / "cache"


def test_generic_quotes_commas_and_newlines_in_texts(generic):
    interactions, items, cache = generic
    data = load_kt_csv(interactions, items, cold_start_items=0, cache_dir=cache)
    assert dict(zip(data.items["item_id"], data.items["text"])) == {
        "a": 'Say "hi", then, leave',
        "b": "two\nlines, here",
    }


def test_generic_unknown_items_warn_once_or_raise(generic, caplog):
    interactions, items, cache = generic
    with caplog.at_level(logging.WARNING):
        data = load_kt_csv(interactions, items, cold_start_items=0, cache_dir=cache)
    messages = [r.getMessage() for r in caplog.records if "absent from the item table" in r.getMessage()]
    assert len(messages) == 1 and "2 of 6 interactions name 1 item ids" in messages[0] and "'ghost'" in messages[0]
    assert data.stats["dropped"] == {"unknown_items": 2}
    assert data.stats["interactions"]["total"] == 4 and data.stats["rows_read"] == 6
    with pytest.raises(ValueError, match="2 of 6 interactions name 1 item ids absent from the item table"):
        load_kt_csv(interactions, items, cold_start_items=0, cache_dir=cache, strict=True)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("u1,a,1", "expected 4 fields"),
        ("u1,a,1,yes please", "correct must be 0 or 1"),
        ("u1,a,yesterday,1", "neither a number nor an ISO-8601"),
        (",a,1,1", "empty user_id"),
    ],
)
def test_generic_malformed_interaction_lines(generic, line, message):
    interactions, items, cache = generic
    replace_line(interactions, 3, line)
    with pytest.raises(ValueError, match=error_at(interactions, 3) + ".*" + message):
        load_kt_csv(interactions, items, cache_dir=cache)


def test_generic_malformed_item_lines(generic):
    interactions, items, cache = generic
    write(Path(items), "item_id,text\na,unquoted, comma\n")
    with pytest.raises(ValueError, match=error_at(items, 2) + " expected 2 fields"):
        load_kt_csv(interactions, items, cache_dir=cache)
    write(Path(items), "item_id,text\na,x\nb,y\na,z\n")
    with pytest.raises(ValueError, match=error_at(items, 4) + " item id 'a' appears twice"):
        load_kt_csv(interactions, items, cache_dir=cache)


def test_generic_iso_timestamps_and_parquet_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    interactions = write(
        tmp_path / "i.csv", "user_id,item_id,timestamp,correct\nu1,a,2020-01-01T00:00:10,true\nu1,a,2020-01-01,0\n"
    )
    items = write(tmp_path / "items.csv", "item_id,text\na,x\n")
    data = load_kt_csv(interactions, items, cold_start_items=0, test_fraction=0.0, cache_dir=tmp_path / "c")
    assert data["train"][0]["timestamps"] == [1577836800, 1577836810]
    assert data["train"][0]["responses"] == [0, 1]
    table = pa.table({"user_id": ["u1", "u1"], "item_id": ["a", "a"], "timestamp": [1, 2], "correct": [1, 3]})
    pq.write_table(table, tmp_path / "i.parquet")
    with pytest.raises(ValueError, match=r"i\.parquet: row 1: correct must be 0 or 1"):
        load_kt_csv(tmp_path / "i.parquet", items, cache_dir=tmp_path / "c")


def test_missing_files_name_the_path(tmp_path, generic):
    interactions, items, cache = generic
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.csv"))):
        load_kt_csv(tmp_path / "nope.csv", items, cache_dir=cache)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.csv"))):
        load_kt_csv(interactions, tmp_path / "nope.csv", cache_dir=cache)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_duolingo(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_ednet(tmp_path / "nowhere", items, items)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "log.csv"))):
        load_poj(tmp_path / "log.csv", items, cache_dir=cache)


# -- Duolingo ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slam_template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slam")
    write_synthetic_duolingo(folder, "en_es", scale=0.001, seed=0)
    return folder


@pytest.fixture
def slam(slam_template, tmp_path):
    import shutil

    folder = tmp_path / "slam"
    shutil.copytree(slam_template, folder)
    return folder


def first_line(path: Path, predicate) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if predicate(line):
            return number
    raise AssertionError("no such line")


def token_line(line: str) -> bool:
    return bool(line) and not line.startswith("#")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda line: line.split()[0] + "  only  three", "expected 6 or 7 whitespace-separated columns, got 3"),
        (lambda line: line[:-1] + "7", "the label must be 0 or 1, got '7'"),
        (lambda line: "short " + " ".join(line.split()[1:]), "is not 12 characters long"),
    ],
)
def test_duolingo_malformed_token_lines(slam, mutate, message):
    path = slam / "en_es.slam.20190204.train"
    number = first_line(path, token_line)
    replace_line(path, number, mutate(path.read_text(encoding="utf-8").split("\n")[number - 1]))
    with pytest.raises(ValueError, match=error_at(path, number) + ".*" + re.escape(message)):
        load_duolingo(slam, cache_dir=slam / "cache")


def test_duolingo_malformed_headers_and_keys(slam):
    path = slam / "en_es.slam.20190204.dev"
    number = first_line(path, lambda line: line.startswith("# user:"))
    original = path.read_text(encoding="utf-8")
    replace_line(path, number, re.sub(r"days:\S+", "days:soon", original.split("\n")[number - 1]))
    with pytest.raises(ValueError, match=error_at(path, number) + " the header needs a numeric 'days:' field"):
        load_duolingo(slam, cache_dir=slam / "cache")
    path.write_text(original, encoding="utf-8")
    key = slam / "en_es.slam.20190204.dev.key"
    first_instance = key.read_text().split("\n")[0].split()[0]
    key.write_text("\n".join(key.read_text().split("\n")[1:]))
    token = first_line(path, lambda line: line.startswith(first_instance))
    with pytest.raises(ValueError, match=error_at(path, token) + f" no label for instance '{first_instance}'"):
        load_duolingo(slam, cache_dir=slam / "cache")
    key.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(key))):
        load_duolingo(slam, cache_dir=slam / "cache")
    # Without the dev file (and its key) the other files still load.
    data = load_duolingo(slam, slam_files=("train", "test"), cold_start_items=0, cache_dir=slam / "cache")
    assert data.stats["interactions"]["total"] > 0


def test_duolingo_prompt_split_on_first_colon(tmp_path):
    text = (
        "# prompt:Nota: uno: dos\n"
        "# user:abcdefgh  countries:CO|US  days:0.500  client:web  session:lesson  "
        "format:reverse_translate  time:null\n"
        "abcdefgh0101  I      PRON  Number=Sing  nsubj  2  0\n"
        "abcdefgh0102  am     VERB  Mood=Ind     ROOT   0  0\n\n"
        "# user:abcdefgh  countries:CO  days:1.000  client:ios  session:practice  format:listen  time:7\n"
        "abcdefgh0201  hello  INTJ  _  ROOT  0  1\n"
    )
    write(tmp_path / "en_es.slam.20190204.train", text)
    data = load_duolingo(
        tmp_path, slam_files=("train",), include_prompt=True, cold_start_items=0, test_fraction=0.0,
        cache_dir=tmp_path / "c",
    )  # fmt: skip
    assert data.items["text"] == ["Nota: uno: dos | I am", "hello"]
    row = data["train"][0]
    assert row["responses"] == [1, 0] and row["timestamps"] == [43200, 86400]
    assert row["format"] == [1, 3] and row["client"] == [1, 2] and row["session"] == [1, 2]
    assert row["elapsed_time"][0] == 0  # time:null is unknown


# -- EdNet ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def ednet(tmp_path):
    truth = write_synthetic_ednet(tmp_path / "ednet", scale=0.00003, seed=0, text_tokens=8)
    return truth.files, tmp_path / "cache"


def load(files, cache, **kwargs):
    return load_ednet(files["kt1_dir"], files["questions_csv"], files["item_text"], cache_dir=cache, **kwargs)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("later,1,q1,a,1000", "timestamp must be an integer, got 'later'"),
        ("1565000000000,1,q1,e,1000", "user_answer must be one of ('a', 'b', 'c', 'd') or empty, got 'e'"),
        ("1565000000000,1,q1,a", "expected 5 fields"),
    ],
)
def test_ednet_malformed_user_file(ednet, row, message):
    files, cache = ednet
    user_file = sorted(Path(files["kt1_dir"]).glob("u*.csv"))[1]
    replace_line(user_file, 3, row)
    with pytest.raises(ValueError, match=error_at(user_file, 3) + " " + re.escape(message)):
        load(files, cache, cold_start_items=0)


def test_ednet_bad_header_and_questions(ednet):
    files, cache = ednet
    user_file = sorted(Path(files["kt1_dir"]).glob("u*.csv"))[0]
    original = user_file.read_text()
    replace_line(user_file, 1, "timestamp,question_id")
    with pytest.raises(ValueError, match=error_at(user_file, 1) + " expected the header"):
        load(files, cache, cold_start_items=0)
    user_file.write_text(original)
    replace_line(files["questions_csv"], 2, "q1,b1,e1,z,5,1,-1")
    with pytest.raises(ValueError, match=error_at(files["questions_csv"], 2) + " correct_answer must be one of"):
        load(files, cache, cold_start_items=0)


def test_ednet_empty_answer_is_wrong_and_unknown_questions_dropped(ednet, caplog):
    files, cache = ednet
    user_file = sorted(Path(files["kt1_dir"]).glob("u*.csv"))[0]
    lines = user_file.read_text().rstrip("\n").split("\n")
    lines += ["9999999999999,999,q1,,1000", "9999999999999,999,q999999,a,1000"]
    user_file.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        data = load(files, cache, cold_start_items=0)
    assert data.stats["dropped"]["unknown_items"] == 1
    assert sum("q999999" in record.getMessage() for record in caplog.records) == 1
    split = next(name for name in data.splits if user_file.stem in data[name]["user_id"])
    last = [row for row in data[split] if row["user_id"] == user_file.stem][-1]
    assert data.items["item_id"][last["items"][-1]] == "q1" and last["responses"][-1] == 0
    with pytest.raises(ValueError, match="name 1 item ids absent from the item table"):
        load(files, cache, cold_start_items=0, strict=True)


def test_ednet_missing_text_error_fallback_and_drop(ednet):
    files, cache = ednet
    used = {
        line.split(",")[2] for path in Path(files["kt1_dir"]).glob("u*.csv") for line in path.read_text().split()[1:]
    }
    text_lines = Path(files["item_text"]).read_text().rstrip("\n").split("\n")
    kept = [text_lines[0]] + [line for line in text_lines[1:] if line.split(",")[0] not in sorted(used)[:2]]
    Path(files["item_text"]).write_text("\n".join(kept) + "\n")
    missing = sorted(used)[:2]
    with pytest.raises(
        ValueError, match=r"2 items used by \d+ interactions have no text \(e.g. .*part_and_tags"
    ) as error:
        load(files, cache, cold_start_items=0)
    assert all(question in str(error.value) for question in missing)
    fallback = load(files, cache, cold_start_items=0, missing_text="part_and_tags")
    texts = dict(zip(fallback.items["item_id"], fallback.items["text"]))
    assert all(texts[question].startswith("TOEIC part ") for question in missing)
    dropped = load(files, cache, cold_start_items=0, missing_text="drop")
    assert not set(missing) & set(dropped.items["item_id"])
    assert dropped.stats["dropped_items"]["without_text"] == 2
    mapping = load_ednet(
        files["kt1_dir"], files["questions_csv"], dict(zip(fallback.items["item_id"], fallback.items["text"])),
        cold_start_items=0, cache_dir=cache,
    )  # fmt: skip
    assert mapping.stats["interactions"] == fallback.stats["interactions"]


# -- POJ --------------------------------------------------------------------------------------------------------------


@pytest.fixture
def poj(tmp_path):
    truth = write_synthetic_poj(tmp_path / "poj", scale=0.0003, seed=0, text_tokens=12)
    return truth.files, tmp_path / "cache"


def test_poj_unknown_result_and_bad_time(poj):
    files, cache = poj
    log = files["log_csv"]
    lines = Path(log).read_text().split("\n")
    original = Path(log).read_text()
    replace_line(log, 4, lines[3].replace(lines[3].split(",")[2], "Judging", 1))
    with pytest.raises(ValueError, match=error_at(log, 4) + " unknown Result 'Judging'"):
        load_poj(log, files["problem_text"], cache_dir=cache)
    Path(log).write_text(original)
    fields = lines[5].split(",")
    replace_line(log, 6, ",".join([*fields[:-1], "2019/01/01 10:00"]))
    with pytest.raises(ValueError, match=error_at(log, 6) + " Submit Time '2019/01/01 10:00' does not match"):
        load_poj(log, files["problem_text"], cache_dir=cache)


def test_poj_problems_without_text_are_dropped(poj, caplog):
    files, cache = poj
    problems = Path(files["problem_text"])
    import csv

    with open(problems, newline="") as handle:
        rows = list(csv.reader(handle))
    with open(problems, "w", newline="") as handle:
        csv.writer(handle).writerows(rows[:-1])  # drop the last problem's statement
    with caplog.at_level(logging.WARNING):
        data = load_poj(files["log_csv"], problems, cold_start_items=0, cache_dir=cache)
    assert rows[-1][0] not in data.items["item_id"]
    assert sum("absent from the item table" in record.getMessage() for record in caplog.records) == 1
    with pytest.raises(ValueError, match=f"e.g. '{rows[-1][0]}'"):
        load_poj(files["log_csv"], problems, cold_start_items=0, cache_dir=cache, strict=True)


# -- every text reader: invalid UTF-8 and several bad lines at once (issue 17) ----------------------------------------


def test_invalid_utf8_names_file_and_line_in_items_and_interactions(generic):
    interactions, items, cache = generic
    # An items CSV whose bad byte lies past the first read chunk's start (a spreadsheet saved as Latin-1).
    text = "item_id,text\n" + "".join(f"i{n},plain text {n}\n" for n in range(20))
    Path(items).write_bytes(text.encode() + b"a,caf\xe9 au lait\nb,fine\n")
    with pytest.raises(ValueError, match=error_at(items, 22) + r" not valid UTF-8 \(byte 0xe9 at column 6"):
        load_kt_csv(interactions, items, cache_dir=cache)
    Path(items).write_text("item_id,text\na,x\nb,y\n", encoding="utf-8")
    Path(interactions).write_bytes(Path(interactions).read_bytes().replace(b"u2,a,3,1", b"u\xff2,a,3,1"))
    with pytest.raises(ValueError, match=error_at(interactions, 4) + " not valid UTF-8"):
        load_kt_csv(interactions, items, cache_dir=cache)


def test_generic_several_bad_lines_are_reported_together(generic):
    interactions, items, cache = generic
    bad = ["u1,a,1", ",a,2,1", "u1,a,later,1", "u1,a,3,maybe", "u2,b,4", "u2,b,5,2"]
    Path(interactions).write_text("user_id,item_id,timestamp,correct\n" + "\n".join(bad) + "\nu3,a,6,1\n")
    with pytest.raises(ValueError) as info:
        load_kt_csv(interactions, items, cache_dir=cache)
    message = str(info.value)
    assert message.startswith("6 bad lines:\n") and message.endswith("... and 1 more bad lines")
    for line, problem in [(2, "expected 4 fields"), (3, "empty user_id"), (4, "timestamp 'later' is neither")]:
        assert f"{interactions}:{line}: {problem}" in message
    assert f"{interactions}:6: expected 4 fields" in message and f"{interactions}:7:" not in message


def test_ednet_bad_lines_of_several_user_files_are_reported_together(ednet):
    files, cache = ednet
    user_files = sorted(Path(files["kt1_dir"]).glob("u*.csv"))
    replace_line(user_files[0], 2, "later,1,q1,a,1000")
    replace_line(user_files[1], 3, "1565000000000,1,q1,e,1000")
    with pytest.raises(ValueError, match="2 bad lines") as info:
        load(files, cache, cold_start_items=0)
    message = str(info.value)
    assert f"{user_files[0]}:2: timestamp must be an integer" in message
    assert f"{user_files[1]}:3: user_answer must be one of" in message


def test_duolingo_bad_lines_of_several_files_are_reported_together(slam):
    train, dev = slam / "en_es.slam.20190204.train", slam / "en_es.slam.20190204.dev"
    first_train = first_line(train, token_line)
    replace_line(train, first_train, "short  two")
    first_dev = first_line(dev, lambda line: line.startswith("# user:"))
    replace_line(dev, first_dev, re.sub(r"days:\S+", "days:soon", dev.read_text().split("\n")[first_dev - 1]))
    with pytest.raises(ValueError) as info:
        load_duolingo(slam, cache_dir=slam / "cache")
    message = str(info.value)
    assert message.startswith("2 bad lines:\n")
    assert f"{train}:{first_train}: expected 6 or 7 whitespace-separated columns, got 2" in message
    assert f"{dev}:{first_dev}: the header needs a numeric 'days:' field" in message
