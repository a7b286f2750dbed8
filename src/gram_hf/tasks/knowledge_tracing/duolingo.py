"""
Duolingo SLAM 2018 (Settles et al.) as knowledge tracing, in the GRAM paper's view (after Srivastava & Goodman 2021):
one interaction per exercise, the item is the exercise's sentence, the response is 1 when every token is right.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np

from ...data import InteractionData
from ...raw_files import BadLines, DataFileError, iter_lines
from .builder import (
    KnowledgeTracingRawBuilder,
    KnowledgeTracingRawConfig,
    group_by_user,
    load_with_builder,
    log_time_bucket,
)
from .split_arguments import KnowledgeTracingSplitArguments

SLAM_FILES = ("train", "dev", "test")
"""The SLAM files of a track, in time order within each learner; `dev` and `test` take labels from `.key` files."""

SLAM_SPLIT_CODES = {"train": 0, "dev": 1, "test": 2}
FORMATS = {"reverse_translate": 1, "reverse_tap": 2, "listen": 3}
CLIENTS = {"web": 1, "ios": 2, "android": 3}
SESSIONS = {"lesson": 1, "practice": 2, "test": 3}
DEFAULT_TIME_BUCKETS = 24
SECONDS_PER_DAY = 86400.0


def find_slam_files(
    data_dir: str | os.PathLike, track: str = "en_es", date: str | None = None, files: Sequence[str] = SLAM_FILES
) -> dict[str, tuple[str, str | None]]:
    """
    `{"train": (path, None), "dev": (path, key path), "test": (path, key path)}` of a track in `data_dir` (or its
    `data_{track}/` subfolder, as the release unpacks). With several release dates present and `date=None`, the
    newest is used (20190204, v4, adds `# prompt:` lines). Raises `FileNotFoundError` naming a missing file.
    """
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"No such directory: {data_dir!r}")
    folders = [data_dir]
    if os.path.isdir(os.path.join(data_dir, f"data_{track}")):
        folders.append(os.path.join(data_dir, f"data_{track}"))
    unknown = [name for name in files if name not in SLAM_FILES]
    if unknown:
        raise ValueError(f"SLAM files must be among {SLAM_FILES}, got {unknown}.")
    pattern = re.compile(rf"^{re.escape(track)}\.slam\.(\d{{8}})\.(?:train|dev|test)$")
    folder, found_date = None, None
    for candidate in folders:
        dates = sorted({m.group(1) for name in os.listdir(candidate) if (m := pattern.match(name))})
        if date is not None and date in dates:
            folder, found_date = candidate, date
        elif date is None and dates:
            folder, found_date = candidate, dates[-1]
    if folder is None:
        wanted = f"{track}.slam.{date or '<date>'}.{files[0] if files else 'train'}"
        raise FileNotFoundError(f"No SLAM file {wanted!r} in {data_dir!r}.")
    result = {}
    for name in files:
        path = os.path.join(folder, f"{track}.slam.{found_date}.{name}")
        key = f"{path}.key" if name != "train" else None
        for required in (path, key):
            if required is not None and not os.path.exists(required):
                raise FileNotFoundError(f"No such file: {required!r} (SLAM {name} file of track {track!r}).")
        result[name] = (path, key)
    return result


def read_slam_key(path: str, bad: BadLines | None = None) -> dict[str, str]:
    """
    `instance_id -> label` of a `.key` file. Malformed lines are recorded in `bad` (without it: raised together at
    the end, a [`~gram_hf.raw_files.DataFileError`] naming file and lines).
    """
    own = bad is None
    bad = BadLines() if own else bad
    labels = {}
    for line_number, line in iter_lines(path, bad):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1"):
            bad.add(path, line_number, f"expected 'instance_id label' with label 0 or 1, got {line!r}")
            continue
        labels[parts[0]] = parts[1]
    if own:
        bad.check()
    return labels


def parse_slam_file(path: str, key: dict[str, str] | None, bad: BadLines | None = None) -> Iterator[dict[str, Any]]:
    """
    Yields one dict per exercise block of a SLAM file: `user`, `days` (float), `format`, `client`, `session`, `time`
    (int seconds or None), `prompt` (str or None), `tokens` (list of str) and `correct` (1 when no token is a mistake).

    Token labels come from the 7th column (`.train`) or from `key` (`.dev`/`.test`). Every malformed line is recorded
    in `bad` and reading goes on (an exercise with a bad line is left out); without `bad` they are raised together at
    the end, a [`~gram_hf.raw_files.DataFileError`] naming file and lines.
    """
    own = bad is None
    bad = BadLines() if own else bad
    header: dict[str, str] | None = None
    header_line = 0
    prompt: str | None = None
    tokens: list[str] = []
    mistake = False
    broken = False  # the current exercise has a bad line: it is reported, not yielded

    def exercise() -> dict[str, Any] | None:
        if broken:
            return None
        if not tokens:
            bad.add(path, header_line, "the exercise has no token lines")
            return None
        try:
            days = float(header["days"])
        except (KeyError, ValueError):
            bad.add(path, header_line, "the header needs a numeric 'days:' field")
            return None
        raw_time = header.get("time", "null")
        try:
            time = None if raw_time == "null" else int(float(raw_time))
        except ValueError:
            bad.add(path, header_line, f"'time:{raw_time}' is neither an integer nor null")
            return None
        return {
            "user": header["user"],
            "days": days,
            "format": header.get("format", ""),
            "client": header.get("client", ""),
            "session": header.get("session", ""),
            "time": time,
            "prompt": prompt,
            "tokens": tokens,
            "correct": 0 if mistake else 1,
        }

    for line_number, line in iter_lines(path, bad, skip_blank=False):
        try:
            if not line.strip():
                if header is not None:
                    record = exercise()
                    if record is not None:
                        yield record
                elif prompt is not None and not broken:
                    bad.add(path, line_number, "a '# prompt:' line without an exercise header")
                header, prompt, tokens, mistake, broken = None, None, [], False, False
                continue
            if line.startswith("#"):
                body = line[1:].strip()
                if body.startswith("prompt:"):
                    if header is not None or prompt is not None:
                        raise DataFileError(path, line_number, "'# prompt:' must come once, before the header")
                    prompt = body.split(":", 1)[1].strip()  # split on the first ':' only; prompts contain colons
                    continue
                if header is not None:
                    raise DataFileError(path, line_number, "a second header in one exercise (missing blank line?)")
                header = {}
                header_line = line_number
                for field in body.split():
                    name, sep, value = field.partition(":")
                    if not sep:
                        raise DataFileError(path, line_number, f"header field {field!r} is not 'name:value'")
                    header[name] = value
                if not header.get("user"):
                    raise DataFileError(path, line_number, f"the header has no 'user:' field: {line!r}")
                continue
            if header is None:
                if broken:
                    continue  # the block's header was bad: already reported
                raise DataFileError(path, line_number, "a token line outside an exercise (no '# user:' header)")
            parts = line.split()
            if len(parts) == 7:
                label = parts[6]
            elif len(parts) == 6:
                label = key.get(parts[0]) if key is not None else None
                if label is None:
                    where = " in the .key file" if key is not None else " (6 columns in a .train file)"
                    raise DataFileError(path, line_number, f"no label for instance {parts[0]!r}{where}")
            else:
                raise DataFileError(
                    path, line_number, f"expected 6 or 7 whitespace-separated columns, got {len(parts)}"
                )
            if label not in ("0", "1"):
                raise DataFileError(path, line_number, f"the label must be 0 or 1, got {label!r}")
            if len(parts[0]) != 12:
                raise DataFileError(path, line_number, f"instance id {parts[0]!r} is not 12 characters long")
            tokens.append(parts[1])
            mistake = mistake or label == "1"
        except DataFileError as err:
            bad.add_error(err)
            # The rest of the block is read as usual (no cascade of errors), but the exercise is not yielded.
            broken = True
    if header is not None:
        record = exercise()
        if record is not None:
            yield record
    elif prompt is not None and not broken:
        bad.add(path, None, "ends with a '# prompt:' line without an exercise")
    if own:
        bad.check()


@dataclass
class DuolingoConfig(KnowledgeTracingRawConfig):
    """Reader options of [`DuolingoBuilder`] (see [`load_duolingo`])."""

    data_dir: str | None = None
    track: str = "en_es"
    date: str | None = None
    slam_files: tuple[str, ...] = SLAM_FILES
    include_prompt: bool = False
    prompt_separator: str = " | "
    time_buckets: int = DEFAULT_TIME_BUCKETS


class DuolingoBuilder(KnowledgeTracingRawBuilder):
    """Reads Duolingo SLAM 2018 files: one interaction per exercise, item = sentence (there is no item table)."""

    BUILDER_CONFIG_CLASS = DuolingoConfig
    BUILDER_CONFIGS = [DuolingoConfig(name="interactions")]
    HAS_ITEM_TABLE = False
    HAS_PREDEFINED_SPLITS = True
    DATASET_NAME = "duolingo"

    def interaction_features(self) -> dict[str, datasets.Value]:
        return {name: datasets.Value("int32") for name in ("format", "client", "session", "elapsed_time")}

    def feature_vocab_sizes(self) -> dict[str, int]:
        return {
            "format": len(FORMATS) + 1,
            "client": len(CLIENTS) + 1,
            "session": len(SESSIONS) + 1,
            "elapsed_time": self.config.time_buckets + 1,
        }

    def generate_users(self) -> Iterator[dict[str, Any]]:
        config = self.config
        files = find_slam_files(config.data_dir, config.track, config.date, config.slam_files)
        users, texts, days, splits, responses = [], [], [], [], []
        formats, clients, sessions, times = [], [], [], []
        bad = BadLines()  # every file is read before their malformed lines are reported together
        for name, (path, key_path) in files.items():
            key = read_slam_key(key_path, bad) if key_path is not None else None
            code = SLAM_SPLIT_CODES[name]
            for exercise in parse_slam_file(path, key, bad):
                sentence = " ".join(exercise["tokens"])
                if config.include_prompt and exercise["prompt"]:
                    sentence = f"{exercise['prompt']}{config.prompt_separator}{sentence}"
                users.append(exercise["user"])
                texts.append(sentence)
                days.append(exercise["days"])
                splits.append(code)
                responses.append(exercise["correct"])
                formats.append(FORMATS.get(exercise["format"], 0))
                clients.append(CLIENTS.get(exercise["client"], 0))
                sessions.append(SESSIONS.get(exercise["session"], 0))
                times.append(np.nan if exercise["time"] is None else exercise["time"])
        bad.check()
        columns = {
            "item_ids": texts,
            # `days` counts from the learner's first SLAM exercise; seconds keep the same origin.
            "timestamps": np.asarray(days, dtype=np.float64) * SECONDS_PER_DAY,
            "responses": np.asarray(responses, dtype=np.int8),
            "format": np.asarray(formats, dtype=np.int32),
            "client": np.asarray(clients, dtype=np.int32),
            "session": np.asarray(sessions, dtype=np.int32),
            "elapsed_time": log_time_bucket(np.asarray(times, dtype=np.float64), config.time_buckets),
        }
        yield from group_by_user(users, columns, splits=np.asarray(splits, dtype=np.int8))


def load_duolingo(
    data_dir: str | os.PathLike,
    track: str = "en_es",
    *,
    date: str | None = None,
    split_by: str = "user",
    slam_files: Sequence[str] = SLAM_FILES,
    include_prompt: bool = False,
    prompt_separator: str = " | ",
    time_buckets: int = DEFAULT_TIME_BUCKETS,
    split: KnowledgeTracingSplitArguments | None = None,
    cache_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
    **split_options: Any,
) -> InteractionData:
    """
    Loads a Duolingo SLAM 2018 track as knowledge tracing.

    One interaction per exercise: the item is the exercise's sentence (its tokens joined by single spaces; identical
    sentences are one item, the item id is the text), the response is 1 when every token is correct (SLAM labels
    mark mistakes, `.key` files label `dev`/`test`), the timestamp is `days * 86400` seconds (from the learner's
    start). Features per interaction: `format` (reverse_translate 1, reverse_tap 2, listen 3), `client` (web 1,
    ios 2, android 3), `session` (lesson 1, practice 2, test 3) and `elapsed_time` (the header's `time`, log-scale
    buckets, see [`log_time_bucket`]); 0 = unknown.

    Args:
        data_dir (`str` or `os.PathLike`): the folder with `{track}.slam.{date}.{train,dev,test}` and the `.key` files.
        track (`str`, *optional*, defaults to `"en_es"`): `en_es` (Spanish, the paper's), `fr_en` (French) or `es_en`.
        date (`str`, *optional*): release date (`20171218` or `20190204`); default: the newest present.
        split_by (`str`, *optional*, defaults to `"user"`):
            `"user"`: all SLAM files together, learners re-split 8:2 train:test (10% of train for validation), as in
            the GRAM paper — each learner's whole history is in one split. `"slam"`: the release's own split by time
            (`.train` -> train, `.dev` -> validation, `.test` -> test; the same learners in all three).
        slam_files (`Sequence[str]`, *optional*): which of `train`, `dev`, `test` to read (e.g. without `test` when
            its key is not available).
        include_prompt (`bool`, *optional*, defaults to `False`): prepend the L1 prompt (v4 `# prompt:` lines) to the
            sentence, joined by `prompt_separator`; the item is then the (prompt, sentence) pair.
        time_buckets (`int`, *optional*, defaults to 24): buckets of `elapsed_time`.
        split, split_options, cache_dir, rebuild: see [`load_kt_csv`].
    """
    split = KnowledgeTracingSplitArguments.from_options(split, split_options, caller="load_duolingo")
    if split_by not in ("user", "slam"):
        raise ValueError(f"split_by must be 'user' or 'slam', got {split_by!r}.")
    slam_files = tuple(slam_files)
    files = find_slam_files(data_dir, track, date, slam_files)
    raw_files = [path for pair in files.values() for path in pair if path is not None]
    date = os.path.basename(files[slam_files[0]][0]).split(".")[2]
    options = {
        "data_dir": os.path.abspath(data_dir),
        "track": track,
        "date": date,
        "slam_files": slam_files,
        "include_prompt": include_prompt,
        "prompt_separator": prompt_separator,
        "time_buckets": time_buckets,
    }
    data = load_with_builder(
        DuolingoBuilder,
        raw_files,
        options,
        split,
        cache_dir=cache_dir,
        rebuild=rebuild,
        split_by="predefined" if split_by == "slam" else "user",
    )
    data.stats["track"] = track
    data.stats["split"]["by"] = split_by
    return data


__all__ = ["DuolingoBuilder", "DuolingoConfig", "find_slam_files", "load_duolingo", "parse_slam_file"]
