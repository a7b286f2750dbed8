"""
Duolingo SLAM 2018 (Settles et al.) as knowledge tracing, in the GRAM paper's view (after Srivastava & Goodman 2021):
one interaction per exercise, the item is the exercise's sentence, the response is 1 when every token is right.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...data import InteractionData
from ...raw_files import BadLines, DataFileError, iter_lines, read_lines, strip_strings
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

    def generate_users(self) -> Iterator[pa.Table]:
        config = self.config
        files = find_slam_files(config.data_dir, config.track, config.date, config.slam_files)
        # pyarrow reads well-formed files in a fraction of the line-by-line parser's time; any doubt (a malformed
        # line, a character the two would split differently) sends every file to the parser, which names the lines.
        exercises = _read_slam_fast(files, config.include_prompt, config.prompt_separator)
        if exercises is None:
            exercises = _read_slam_by_line(files, config.include_prompt, config.prompt_separator)
        columns = {
            "item_ids": exercises["sentence"],
            # `days` counts from the learner's first SLAM exercise; seconds keep the same origin.
            "timestamps": exercises["days"] * SECONDS_PER_DAY,
            "responses": exercises["correct"],
            "format": exercises["format"],
            "client": exercises["client"],
            "session": exercises["session"],
            "elapsed_time": log_time_bucket(exercises["time"], config.time_buckets),
        }
        yield group_by_user(exercises["user"], columns, splits=exercises["split"])


def _read_slam_by_line(
    files: dict[str, tuple[str, str | None]], include_prompt: bool, prompt_separator: str
) -> dict[str, Any]:
    """
    The exercises of the SLAM `files` by [`parse_slam_file`], line by line: `user`, `sentence` (the item text),
    `days`, `split`, `correct`, `format`, `client`, `session` (codes) and `time` (seconds, NaN for `null`).
    """
    users, texts, days, splits, responses = [], [], [], [], []
    formats, clients, sessions, times = [], [], [], []
    bad = BadLines()  # every file is read before their malformed lines are reported together
    for name, (path, key_path) in files.items():
        key = read_slam_key(key_path, bad) if key_path is not None else None
        code = SLAM_SPLIT_CODES[name]
        for exercise in parse_slam_file(path, key, bad):
            sentence = " ".join(exercise["tokens"])
            if include_prompt and exercise["prompt"]:
                sentence = f"{exercise['prompt']}{prompt_separator}{sentence}"
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
    return {
        "user": users,
        "sentence": texts,
        "days": np.asarray(days, dtype=np.float64),
        "split": np.asarray(splits, dtype=np.int8),
        "correct": np.asarray(responses, dtype=np.int8),
        "format": np.asarray(formats, dtype=np.int32),
        "client": np.asarray(clients, dtype=np.int32),
        "session": np.asarray(sessions, dtype=np.int32),
        "time": np.asarray(times, dtype=np.float64),
    }


# -- the vectorised reading of well-formed SLAM files ---------------------------------------------------------------
#
# Every function below returns None at the first thing that is not plainly well-formed; the line-by-line parser then
# reads the files and reports what is wrong. Where the two could read a value differently (Python's `str.split` also
# splits at \x1c-\x1f and non-ASCII spaces, pyarrow's ASCII split does not), such characters send the files there too
# (see [`_has_odd_spaces`]).

_LINE_KINDS = {"blank": 0, "prompt": 1, "header": 2, "token": 3}
_LINES_PER_PIECE = 250_000
_HEADER_CHARACTERS = r"^[\x20-\x7e]*$"


def _read_slam_fast(
    files: dict[str, tuple[str, str | None]], include_prompt: bool, prompt_separator: str
) -> dict[str, Any] | None:
    """
    What [`_read_slam_by_line`] returns, read with pyarrow; `None` when a file is not plainly well-formed. The files
    are cut into pieces of whole exercises, read on every core (pyarrow and numpy release the GIL).
    """

    def read_file(name: str) -> tuple[Any, pa.Array | None]:
        path, key_path = files[name]
        key = _read_key_fast(key_path) if key_path is not None else False
        return key, (read_lines(path, reject=_has_odd_spaces) if key is not None else None)

    def read_piece(job: tuple[str, pa.Array]) -> dict[str, Any] | None:
        name, lines = job
        exercises = _read_slam_lines(lines, keys[name] or None, include_prompt, prompt_separator)
        if exercises is not None:
            exercises["split"] = np.full(len(exercises["days"]), SLAM_SPLIT_CODES[name], dtype=np.int8)
        return exercises

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        read = dict(zip(files, pool.map(read_file, files)))
        if any(lines is None for _, lines in read.values()):
            return None
        keys = {name: key for name, (key, _) in read.items()}
        jobs = [
            (name, piece) for name, (_, lines) in read.items() for piece in _whole_exercises(lines, _LINES_PER_PIECE)
        ]
        parts = list(pool.map(read_piece, jobs))
    if not parts or any(part is None for part in parts):
        return None
    return {
        name: pa.concat_arrays([part[name] for part in parts])
        if isinstance(parts[0][name], pa.Array)
        else np.concatenate([part[name] for part in parts])
        for name in parts[0]
    }


def _whole_exercises(lines: pa.Array, size: int) -> list[pa.Array]:
    """`lines` cut, after blank lines only, into pieces of about `size` lines (no exercise is cut)."""
    pieces, start = [], 0
    while len(lines) - start > size:
        blank = _blank_lines(lines.slice(start + size, size))
        after = np.flatnonzero(blank)
        if not len(after):
            break
        end = start + size + int(after[0]) + 1
        pieces.append(lines.slice(start, end - start))
        start = end
    pieces.append(lines.slice(start))
    return pieces


def _blank_lines(lines: pa.Array) -> np.ndarray:
    """`not line.strip()` of every line: only ASCII whitespace is left (see [`_has_odd_spaces`])."""
    return pc.or_(pc.equal(pc.binary_length(lines), 0), pc.ascii_is_space(lines)).to_numpy(zero_copy_only=False)


def _has_odd_spaces(data: bytes) -> bool:
    """
    Whether `data` holds whitespace that Python's `str.split` splits at and pyarrow's `ascii_split_whitespace` does
    not: \\x1c-\\x1f and the non-ASCII spaces (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F,
    U+205F, U+3000). Found by their bytes: the lead bytes of non-ASCII characters are rare in SLAM files.
    """
    if any(bytes([code]) in data for code in range(0x1C, 0x20)):
        return True
    array = np.frombuffer(data, dtype=np.uint8)
    lead = np.flatnonzero(array >= 0xC2)
    last = len(array) - 1
    first, second, third = array[lead], array[np.minimum(lead + 1, last)], array[np.minimum(lead + 2, last)]
    odd = (
        ((first == 0xC2) & ((second == 0x85) | (second == 0xA0)))
        | ((first == 0xE1) & (second == 0x9A) & (third == 0x80))
        | (
            (first == 0xE2)
            & (second == 0x80)
            & (((third >= 0x80) & (third <= 0x8A)) | np.isin(third, (0xA8, 0xA9, 0xAF)))
        )
        | ((first == 0xE2) & (second == 0x81) & (third == 0x9F))
        | ((first == 0xE3) & (second == 0x80) & (third == 0x80))
    )
    return bool(odd.any())


def _read_key_fast(path: str) -> tuple[pa.Array, np.ndarray] | None:
    """The instance ids and labels (bool: 1 = a mistake) of a `.key` file, as [`read_slam_key`] reads them."""
    lines = read_lines(path, reject=_has_odd_spaces)
    if lines is None:
        return None
    # Stripped first: pyarrow's split gives an empty field for leading or trailing whitespace, `str.split` none.
    # (ASCII whitespace only: `_has_odd_spaces` let no other through.)
    lines = pc.ascii_trim_whitespace(lines)
    lines = lines.filter(pc.not_equal(lines, ""))
    fields = pc.ascii_split_whitespace(lines)
    if len(lines) and not pc.all(pc.equal(pc.list_value_length(fields), 2)).as_py():
        return None
    instances, labels = pc.list_element(fields, 0), pc.list_element(fields, 1)
    if not pc.all(pc.is_in(labels, value_set=pa.array(["0", "1"]))).as_py():
        return None
    if pc.count_distinct(instances).as_py() != len(instances):
        return None  # a repeated instance: the dict keeps the last label
    return instances, pc.equal(labels, "1").to_numpy(zero_copy_only=False)


def _read_slam_lines(
    lines: pa.Array, key: tuple[pa.Array, np.ndarray] | None, include_prompt: bool, prompt_separator: str
) -> dict[str, Any] | None:
    """The exercises of lines of a SLAM file, whole exercises (see [`parse_slam_file`]), without `split`."""
    blank = _blank_lines(lines)
    comment = pc.starts_with(lines, "#").to_numpy(zero_copy_only=False) & ~blank
    comments = lines.filter(pa.array(comment))
    bodies = pc.ascii_trim_whitespace(pc.utf8_slice_codeunits(comments, 1))
    prompt = np.zeros(len(lines), dtype=bool)
    prompt[comment] = pc.starts_with(bodies, "prompt:").to_numpy(zero_copy_only=False)
    kind = np.full(len(lines), _LINE_KINDS["token"], dtype=np.int8)
    kind[blank] = _LINE_KINDS["blank"]
    kind[comment] = _LINE_KINDS["header"]
    kind[prompt] = _LINE_KINDS["prompt"]
    # Every block between blank lines must be [prompt] header token...: checked line by line against its neighbours.
    before = np.concatenate([[0], kind[:-1]])
    after = np.concatenate([kind[1:], [0]])
    well_formed = (
        (kind == 0)
        | ((kind == 1) & (before == 0) & (after == 2))
        | ((kind == 2) & (before <= 1) & (after == 3))
        | ((kind == 3) & (before >= 2))
    )
    if not well_formed.all():
        return None
    headers = _read_headers(bodies.filter(pc.invert(pc.starts_with(bodies, "prompt:"))))
    if headers is None:
        return None
    num_exercises = len(headers["days"])
    exercise_of_line = np.cumsum(kind == 2) - 1
    tokens = _read_tokens(lines.filter(pa.array(kind == 3)), key)
    if tokens is None:
        return None
    token_exercise = exercise_of_line[kind == 3]
    counts = np.bincount(token_exercise, minlength=num_exercises)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int64())
    sentence = pc.binary_join(
        pa.LargeListArray.from_arrays(offsets, tokens["token"]), pa.scalar(" ", pa.large_string())
    )
    mistakes = np.bincount(token_exercise, weights=tokens["mistake"], minlength=num_exercises)
    if include_prompt:
        # The prompt of an exercise is its header's previous line; empty prompts are left out, as `if prompt:` does.
        prompts = pc.split_pattern(bodies.filter(pa.array(prompt[comment])), ":", max_splits=1)
        prompt_of_exercise = np.full(num_exercises, -1, dtype=np.int64)
        prompt_of_exercise[exercise_of_line[prompt] + 1] = np.arange(int(prompt.sum()))
        prompt_text = strip_strings(pc.list_element(prompts, 1)).take(
            pa.array(prompt_of_exercise, mask=prompt_of_exercise < 0)
        )
        with_prompt = pc.fill_null(pc.not_equal(prompt_text, ""), False)
        joined = pc.binary_join_element_wise(prompt_text, sentence, pa.scalar(prompt_separator, pa.large_string()))
        sentence = pc.if_else(with_prompt, joined, sentence)
    return {
        **headers,
        "sentence": sentence.cast(pa.string()),
        "correct": (mistakes == 0).astype(np.int8),
    }


def _read_headers(bodies: pa.Array) -> dict[str, Any] | None:
    """`user`, `days`, `time` and the `format`/`client`/`session` codes of the exercise headers (`# ` stripped)."""
    if not pc.all(pc.match_substring_regex(bodies, _HEADER_CHARACTERS)).as_py():
        return None
    fields = pc.ascii_split_whitespace(bodies)
    header_of_field = pc.list_parent_indices(fields).to_numpy(zero_copy_only=False)
    fields = pc.list_flatten(fields)
    if not pc.all(pc.match_substring(fields, ":")).as_py():
        return None
    pairs = pc.split_pattern(fields, ":", max_splits=1)
    names, values = pc.list_element(pairs, 0), pc.list_element(pairs, 1)
    num_headers = len(bodies)

    def field(name: str) -> pa.Array | None:
        # The value of `name` in every header (null when absent); a name given twice is left to the parser.
        rows = np.flatnonzero(pc.equal(names, name).to_numpy(zero_copy_only=False))
        if np.bincount(header_of_field[rows], minlength=num_headers).max(initial=0) > 1:
            return None
        row_of_header = np.full(num_headers, -1, dtype=np.int64)
        row_of_header[header_of_field[rows]] = rows
        return values.take(pa.array(row_of_header, mask=row_of_header < 0))

    found = {name: field(name) for name in ("user", "days", "time", "format", "client", "session")}
    if any(value is None for value in found.values()):
        return None
    user, days, time = found["user"], found["days"], found["time"]
    if user.null_count or pc.any(pc.equal(user, "")).as_py() or days.null_count:
        return None
    try:
        days = pc.cast(days, pa.float64()).to_numpy(zero_copy_only=False)
        time = pc.fill_null(time, "null")
        given = pc.not_equal(time, "null")
        seconds = pc.cast(pc.if_else(given, time, "nan"), pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        return None
    given = given.to_numpy(zero_copy_only=False)
    if not np.isfinite(seconds[given]).all():
        return None  # `int(float(...))` of a NaN or infinite time fails in the parser
    codes = {}
    for name, vocabulary in (("format", FORMATS), ("client", CLIENTS), ("session", SESSIONS)):
        # `vocabulary.get(value, 0)`: absent and unknown values are 0.
        index = pc.fill_null(pc.index_in(found[name], value_set=pa.array(list(vocabulary))), -1)
        index = index.to_numpy(zero_copy_only=False)
        codes[name] = np.where(index >= 0, np.asarray([0, *vocabulary.values()], dtype=np.int32)[index + 1], 0)
    return {
        "user": user.cast(pa.string()),
        "days": days,
        # The parser's `int(float(time))`: truncated toward zero, then a float (NaN for null).
        "time": np.where(given, np.trunc(seconds), np.nan),
        **codes,
    }


def _read_tokens(lines: pa.Array, key: tuple[pa.Array, np.ndarray] | None) -> dict[str, Any] | None:
    """The `token` (2nd column) and `mistake` (label 1: 7th column, or the `key`) of every token line."""
    parts = pc.ascii_split_whitespace(pc.ascii_trim_whitespace(lines))
    lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    seven, six = lengths == 7, lengths == 6
    if not (seven | six).all():
        return None
    flat = pc.list_flatten(parts)
    starts = parts.offsets.to_numpy()[:-1]
    instance = flat.take(pa.array(starts))
    if not pc.all(pc.equal(pc.utf8_length(instance), 12)).as_py():
        return None
    mistake = np.zeros(len(lines), dtype=bool)
    if seven.any():
        labels = flat.take(pa.array(starts[seven] + 6))
        if not pc.all(pc.is_in(labels, value_set=pa.array(["0", "1"]))).as_py():
            return None
        mistake[seven] = pc.equal(labels, "1").to_numpy(zero_copy_only=False)
    if six.any():
        if key is None:
            return None
        row = pc.index_in(instance.filter(pa.array(six)), value_set=key[0])
        if row.null_count:
            return None
        mistake[six] = key[1][row.to_numpy(zero_copy_only=False)]
    return {"token": flat.take(pa.array(starts + 1)), "mistake": mistake}


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
