"""
EdNet-KT1 (Choi et al. 2020), the GRAM paper's "TOEIC" dataset: one CSV per learner plus `contents/questions.csv`.
EdNet ships no question text, so the item text comes from a table the user supplies.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ...data import InteractionData
from ...raw_files import BadLines, iter_csv, read_csv_header, strip_strings
from .builder import KnowledgeTracingRawBuilder, KnowledgeTracingRawConfig, load_with_builder, log_time_bucket
from .raw_io import read_text_table
from .split_arguments import KnowledgeTracingSplitArguments

KT1_COLUMNS = ("timestamp", "solving_id", "question_id", "user_answer", "elapsed_time")
QUESTION_COLUMNS = ("question_id", "bundle_id", "correct_answer", "part", "tags")
ANSWERS = ("a", "b", "c", "d")
NUM_PARTS = 7
DEFAULT_TIME_BUCKETS = 24
MISSING_TEXT_CHOICES = ("error", "drop", "part_and_tags")
USER_FILE = re.compile(r"^u(\d+)\.csv$")
_HEADER = ",".join(KT1_COLUMNS).encode()


def list_user_files(kt1_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """`(user_id, path)` of every `u{N}.csv` in `kt1_dir`, sorted by N (other files are ignored)."""
    kt1_dir = os.fspath(kt1_dir)
    if not os.path.isdir(kt1_dir):
        raise FileNotFoundError(f"No such directory: {kt1_dir!r} (EdNet KT1 folder of u{{N}}.csv files).")
    found = []
    with os.scandir(kt1_dir) as entries:
        for entry in entries:
            match = USER_FILE.match(entry.name)
            if match and entry.is_file():
                found.append((int(match.group(1)), entry.name[:-4], entry.path))
    if not found:
        raise FileNotFoundError(f"No u{{N}}.csv user files in {kt1_dir!r}.")
    found.sort()
    return [(user, path) for _, user, path in found]


def read_questions(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """
    `question_id -> {bundle_id, correct_answer, part, tags}` of `contents/questions.csv`; every malformed line is
    reported (file:line) in one [`~gram_hf.raw_files.DataFileError`].
    """
    questions: dict[str, dict[str, Any]] = {}
    bad = BadLines()
    for line, row in iter_csv(path, QUESTION_COLUMNS, bad):
        question = row["question_id"].strip()
        answer = row["correct_answer"].strip()
        raw_tags = row["tags"].strip()
        try:
            part = int(row["part"])
        except ValueError:
            part = -1
        try:
            tags = [int(tag) for tag in raw_tags.split(";") if tag.strip() and tag.strip() != "-1"]
        except ValueError:
            tags = None
        if not question:
            bad.add(path, line, "empty question_id")
        elif question in questions:
            bad.add(path, line, f"question {question!r} appears twice")
        elif answer not in ANSWERS:
            bad.add(path, line, f"correct_answer must be one of {ANSWERS}, got {answer!r}")
        elif not 1 <= part <= NUM_PARTS:
            bad.add(path, line, f"part must be an integer 1-{NUM_PARTS}, got {row['part']!r}")
        elif tags is None:
            bad.add(path, line, f"tags must be ';'-separated integers, got {raw_tags!r}")
        else:
            questions[question] = {
                "bundle_id": row["bundle_id"].strip(),
                "correct_answer": answer,
                "part": part,
                "tags": tags,
            }
    bad.check()
    return questions


def part_and_tags_text(part: int, tags: Sequence[int]) -> str:
    """The opt-in fallback text of a question without text: its TOEIC part and tags, as words an encoder can read."""
    tag_text = " ".join(f"tag{tag}" for tag in tags) if tags else "none"
    return f"TOEIC part {part}. Tags: {tag_text}."


_Columns = dict[str, Any]
"""The user files of a batch as one table: `timestamp` (int64 ms), `question_id`, `user_answer` (Arrow strings),
`elapsed_time` (float64 ms, NaN when empty) and `counts` (rows per file, in the batch's order)."""


def _parse_user_file_slow(path: str, bad: BadLines) -> dict[str, np.ndarray]:
    """
    One user file with the csv module: slow, but records in `bad` the file and line of everything malformed (the
    malformed rows are left out of what is returned; the caller raises once every file is read).
    """
    values: dict[str, list] = {name: [] for name in KT1_COLUMNS}
    header = read_csv_header(path)
    if header != list(KT1_COLUMNS):
        bad.add(path, 1, f"expected the header {_HEADER.decode()!r}, got {','.join(header or [])!r}")
        return _empty_user()
    for line, row in iter_csv(path, KT1_COLUMNS, bad):
        problems = []
        numbers = {}
        for name in ("timestamp", "solving_id"):
            try:
                numbers[name] = int(row[name])
            except ValueError:
                problems.append(f"{name} must be an integer, got {row[name]!r}")
        elapsed = row["elapsed_time"].strip()
        try:
            numbers["elapsed_time"] = float(elapsed) if elapsed else np.nan
        except ValueError:
            problems.append(f"elapsed_time must be a number of ms, got {elapsed!r}")
        question = row["question_id"].strip()
        if not question:
            problems.append("empty question_id")
        answer = row["user_answer"].strip()
        if answer not in ANSWERS and answer != "":
            problems.append(f"user_answer must be one of {ANSWERS} or empty, got {answer!r}")
        if problems:
            bad.add(path, line, "; ".join(problems))
            continue
        for name, number in numbers.items():
            values[name].append(number)
        values["question_id"].append(question)
        values["user_answer"].append(answer)
    return {
        "timestamp": np.asarray(values["timestamp"], dtype=np.int64),
        "question_id": np.asarray(values["question_id"], dtype=object),
        "user_answer": np.asarray(values["user_answer"], dtype=object),
        "elapsed_time": np.asarray(values["elapsed_time"], dtype=np.float64),
    }


def _parse_user_files_slow(paths: Sequence[str], bad: BadLines) -> _Columns:
    """The batch's files one by one with [`_parse_user_file_slow`], as one table."""
    return _one_table([_parse_user_file_slow(path, bad) for path in paths])


def _one_table(parsed: list[dict[str, np.ndarray]]) -> _Columns:
    """The parsed user files of a batch (at least one) as one table."""
    return {
        "timestamp": np.concatenate([rows["timestamp"] for rows in parsed]),
        "question_id": pa.array(np.concatenate([rows["question_id"] for rows in parsed]), pa.string()),
        "user_answer": pa.array(np.concatenate([rows["user_answer"] for rows in parsed]), pa.string()),
        "elapsed_time": np.concatenate([rows["elapsed_time"] for rows in parsed]),
        "counts": np.asarray([len(rows["timestamp"]) for rows in parsed], dtype=np.int64),
    }


def _parse_user_files_fast(paths: Sequence[str]) -> _Columns | None:
    """
    Many small user files parsed as one CSV by pyarrow (headers checked and stripped, bodies concatenated): ~100x
    faster than the csv module on KT1's ~800k files. Returns `None` when anything is off (a parse error, a blank
    line, a bad value) so that the caller re-reads the batch with [`_parse_user_file_slow`] for an exact message.
    """
    bodies, counts = [], []
    for path in paths:
        # `io.open`, not `open`: `datasets` patches `open` in every builder's module with a slower, fsspec-aware one
        # (~30 us a file). User files are never compressed (`u{N}.csv`), and the bytes are decoded by pyarrow.
        with io.open(path, "rb") as handle:  # noqa: UP020
            data = handle.read()
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        newline = data.find(b"\n")
        header = (data if newline < 0 else data[:newline]).strip()
        if header != _HEADER:
            return None
        body = b"" if newline < 0 else data[newline + 1 :]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        bodies.append(body)
        counts.append(body.count(b"\n"))
    buffer = b"".join(bodies)
    if not buffer:
        return _one_table([_empty_user() for _ in paths])
    try:
        table = pa_csv.read_csv(
            io.BytesIO(buffer),
            read_options=pa_csv.ReadOptions(column_names=list(KT1_COLUMNS)),
            parse_options=pa_csv.ParseOptions(ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types={
                    "timestamp": pa.int64(),
                    "solving_id": pa.int64(),
                    "question_id": pa.string(),
                    "user_answer": pa.string(),
                    "elapsed_time": pa.float64(),
                },
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != sum(counts) or table["timestamp"].null_count or table["solving_id"].null_count:
        return None
    # Stripped as the csv path strips them.
    answers = strip_strings(table["user_answer"].combine_chunks())
    question = strip_strings(table["question_id"].combine_chunks())
    if not pc.all(pc.is_in(answers, value_set=pa.array([*ANSWERS, ""]))).as_py():
        return None
    if pc.any(pc.equal(question, "")).as_py():
        return None
    return {
        "timestamp": table["timestamp"].to_numpy(),
        "question_id": question,
        "user_answer": answers,
        "elapsed_time": pc.fill_null(table["elapsed_time"], np.nan).to_numpy(),
        "counts": np.asarray(counts, dtype=np.int64),
    }


def _empty_user() -> dict[str, np.ndarray]:
    return {
        "timestamp": np.zeros(0, np.int64),
        "question_id": np.zeros(0, object),
        "user_answer": np.zeros(0, object),
        "elapsed_time": np.zeros(0, np.float64),
    }


@dataclass
class EdNetConfig(KnowledgeTracingRawConfig):
    """Reader options of [`EdNetBuilder`] (see [`load_ednet`])."""

    kt1_dir: str = ""
    questions_csv: str = ""
    item_text: str | None = None
    item_text_mapping: dict | None = None
    text_id_column: str = "question_id"
    text_column: str = "text"
    missing_text: str = "error"
    time_buckets: int = DEFAULT_TIME_BUCKETS
    files_per_batch: int = 2000


class EdNetBuilder(KnowledgeTracingRawBuilder):
    """Reads EdNet-KT1 user files and `contents/questions.csv`, with a user-supplied question text table."""

    BUILDER_CONFIG_CLASS = EdNetConfig
    BUILDER_CONFIGS = [EdNetConfig(name="interactions"), EdNetConfig(name="items")]
    DATASET_NAME = "ednet_kt1"

    def interaction_features(self) -> dict[str, datasets.Value]:
        return {"part": datasets.Value("int32"), "elapsed_time": datasets.Value("int32")}

    def feature_vocab_sizes(self) -> dict[str, int]:
        return {"part": NUM_PARTS + 1, "elapsed_time": self.config.time_buckets + 1}

    def item_features(self) -> dict[str, Any]:
        return {
            "part": datasets.Value("int32"),
            "tags": datasets.List(datasets.Value("int32")),
            "bundle_id": datasets.Value("string"),
            "correct_answer": datasets.Value("string"),
        }

    def generate_items(self) -> Iterator[dict[str, Any]]:
        config = self.config
        questions = read_questions(config.questions_csv)
        source = config.item_text_mapping if config.item_text_mapping is not None else config.item_text
        texts = read_text_table(source, config.text_id_column, config.text_column, what="question")
        for question, info in questions.items():
            text = texts.get(question)
            if text is None and config.missing_text == "part_and_tags":
                text = part_and_tags_text(info["part"], info["tags"])
            # None stays null: the canonical step raises (or drops, if asked) for the questions that are used.
            yield {"item_id": question, "text": text, **info}

    def generate_users(self) -> Iterator[pa.Table]:
        config = self.config
        questions = read_questions(config.questions_csv)
        question_ids = pa.array(list(questions), pa.string())
        # Unknown questions get index len(questions): no correct answer (response 0) and part 0; the canonical step
        # drops them with the summary warning, or raises with strict=True.
        correct = pa.array([info["correct_answer"] for info in questions.values()] + [""], pa.string())
        parts = np.asarray([info["part"] for info in questions.values()] + [0], dtype=np.int32)
        users = list_user_files(config.kt1_dir)
        # Every user file is read before the malformed lines of all of them are reported together.
        bad = BadLines()
        for start in range(0, len(users), config.files_per_batch):
            batch = users[start : start + config.files_per_batch]
            paths = [path for _, path in batch]
            rows = _parse_user_files_fast(paths)
            if rows is None:
                rows = _parse_user_files_slow(paths, bad)
            counts = rows["counts"]
            index = pc.index_in(rows["question_id"], value_set=question_ids)
            index = pc.fill_null(index, len(questions))
            # An empty user_answer (skipped or timed out) never equals a correct answer: it counts as wrong.
            responses = pc.equal(rows["user_answer"], correct.take(index)).to_numpy(zero_copy_only=False)
            index = index.to_numpy(zero_copy_only=False)
            # One learner row per user file with interactions (a file is one learner), in file order.
            offsets = pa.array(np.concatenate([[0], np.cumsum(counts[counts > 0])]), pa.int32())
            columns = {
                "item_ids": rows["question_id"],
                "timestamps": rows["timestamp"].astype(np.float64) / 1000.0,
                "responses": responses.astype(np.int8),
                "part": parts[index],
                "elapsed_time": log_time_bucket(rows["elapsed_time"] / 1000.0, config.time_buckets),
            }
            arrays = {"user_id": pa.array([user for (user, _), count in zip(batch, counts) if count], pa.string())}
            arrays.update(
                {name: pa.ListArray.from_arrays(offsets, pa.array(values)) for name, values in columns.items()}
            )
            yield pa.table(arrays)
        bad.check()


def load_ednet(
    kt1_dir: str | os.PathLike,
    questions_csv: str | os.PathLike,
    item_text: str | os.PathLike | Mapping[str, str],
    *,
    text_id_column: str = "question_id",
    text_column: str = "text",
    missing_text: str = "error",
    time_buckets: int = DEFAULT_TIME_BUCKETS,
    split: KnowledgeTracingSplitArguments | None = None,
    cache_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
    **split_options: Any,
) -> InteractionData:
    """
    Loads EdNet-KT1 ("TOEIC") as knowledge tracing.

    Response = `user_answer == correct_answer` of `contents/questions.csv`; an empty `user_answer` (skipped, timed
    out) counts as wrong. Re-answers inside one `solving_id` are kept as separate interactions, in file order (bundle
    questions share a timestamp; the sort is stable). Timestamps: Unix ms -> seconds. Features per interaction:
    `part` (1-7) and `elapsed_time` (ms, log-scale buckets, see [`log_time_bucket`]); items carry `part`, `tags`,
    `bundle_id`, `correct_answer`.

    Args:
        kt1_dir (`str` or `os.PathLike`): the `KT1/` folder of `u{N}.csv` files (user id = `u{N}`).
        questions_csv (`str` or `os.PathLike`): `contents/questions.csv`.
        item_text (`str`, `os.PathLike` or `Mapping[str, str]`):
            The question texts EdNet lacks: a CSV/Parquet with columns `question_id,text` (or any two columns) or a
            mapping `{question_id: text}`.
        missing_text (`str`, *optional*, defaults to `"error"`):
            Questions answered in the logs but absent from `item_text`: `"error"` raises, naming how many and which;
            `"drop"` drops their interactions (counted, one warning); `"part_and_tags"` builds their text from part
            and tags (e.g. `"TOEIC part 5. Tags: tag1 tag6."`). Never a silent fallback.
        time_buckets (`int`, *optional*, defaults to 24): buckets of `elapsed_time`.
        split, split_options, cache_dir, rebuild: see [`load_kt_csv`]. Interactions on question ids absent from
        `questions.csv` are the "unknown items" that are dropped (or raise with `strict=True`).
    """
    split = KnowledgeTracingSplitArguments.from_options(split, split_options, caller="load_ednet")
    if missing_text not in MISSING_TEXT_CHOICES:
        raise ValueError(f"missing_text must be one of {MISSING_TEXT_CHOICES}, got {missing_text!r}.")
    users = list_user_files(kt1_dir)
    raw_files = [path for _, path in users] + [questions_csv]
    options = {
        "kt1_dir": os.path.abspath(kt1_dir),
        "questions_csv": os.path.abspath(questions_csv),
        "text_id_column": text_id_column,
        "text_column": text_column,
        "missing_text": missing_text,
        "time_buckets": time_buckets,
    }
    if isinstance(item_text, Mapping):
        options["item_text_mapping"] = {str(key): str(value) for key, value in item_text.items()}
    else:
        options["item_text"] = os.path.abspath(item_text)
        raw_files.append(item_text)
    return load_with_builder(
        EdNetBuilder,
        raw_files,
        options,
        split,
        cache_dir=cache_dir,
        rebuild=rebuild,
        missing_text="drop" if missing_text == "drop" else "error",
        missing_text_hint=(
            "add them to item_text, or opt into missing_text='drop' (drop their interactions) or "
            "missing_text='part_and_tags' (text built from their part and tags)."
        ),
    )


__all__ = ["EdNetBuilder", "EdNetConfig", "list_user_files", "load_ednet", "read_questions"]
