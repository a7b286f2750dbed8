"""
Dataset-loading benchmark: every gram-hf loader on synthetic raw files, against a plain read of the same bytes.

For each loader (`load_duolingo`, `load_ednet`, `load_poj`, `load_kt_csv`, `load_mind`, `load_movielens`,
`load_amazon`) the package's generator writes raw files in the real format at a chosen scale (once per scale, kept in
`--workdir`), then fresh subprocesses measure, each with its own resident-memory high-water mark:

- **first load**: the loader on an empty `datasets` cache (parsing the raw files);
- **cached load**: the loader again in a new process, served from that cache;
- **plain read**: the fastest honest baseline on the same bytes, written with pyarrow / the standard library only
  (no gram-hf code): read every file the loader reads into columns and sort the interactions by user and time (see
  `PLAIN_READS` for each format).

The raw files are read once before every measurement so that all of them start from a warm page cache. The report
gives the input (files, bytes, rows), seconds, peak RSS (the process's `VmHWM`) and the RSS added by the load (the
high-water mark, reset after the imports, minus the RSS then, so that torch, imported by `gram_hf`, is not counted
against the loader), the ratios first load / plain read, and how the load's time and memory grow with the input (a
second run at `--growth-fraction` of the scale; a log-log slope of 1 is linear). Loaders farther than `--target`
(1.5x) from their plain read are profiled with cProfile (`--profile`).

    python benchmarks/dataset_loading.py --all                                # every loader, writes the results
    python benchmarks/dataset_loading.py --dataset ednet --scale 0.01         # one loader, prints its JSON
    python benchmarks/dataset_loading.py --all --scales mind=0.02 amazon=0.5  # other scales
    python benchmarks/dataset_loading.py --dataset mind --repeats 2 --update   # one loader again, the rest kept

Results (`--all`, `--update` or `--output-dir`): `results/<device tag>/dataset_loading.{json,md}`.
"""

from __future__ import annotations

import argparse
import ast
import cProfile
import gzip
import io
import json
import math
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCHMARKS_DIR = Path(__file__).resolve().parent
if str(BENCHMARKS_DIR) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS_DIR))

import common  # noqa: E402

TARGET_RATIO = 1.5
"""Issue 17's target: a first load within this factor of the plain read of the same files."""


# ------------------------------------------------------------------------------------------------------ the loaders


@dataclass(frozen=True)
class LoaderCase:
    """
    One loader of the benchmark.

    Args:
        name (`str`): the `--dataset` name.
        function (`str`): the loader, as imported from the package.
        default_scale (`float`): the scale of `--all` (the largest that keeps the whole run near 20 minutes on 2
            shared cores).
        shape (`str`): what scale 1.0 is.
        plain (`str`): what the plain read does.
    """

    name: str
    function: str
    default_scale: float
    shape: str
    plain: str


LOADERS: dict[str, LoaderCase] = {
    case.name: case
    for case in (
        LoaderCase(
            "duolingo",
            "gram_hf.tasks.knowledge_tracing.load_duolingo",
            4.0,
            "Duolingo SLAM en_es (the paper's Spanish: 2,643 learners, 279,747 exercises), `.train/.dev/.test` + keys",
            "SLAM lines read by pyarrow.csv as one column; headers and token lines split by vectorised regex; "
            "sentence, all-correct flag (7th column or key join) per exercise; sort by user, days",
        ),
        LoaderCase(
            "ednet",
            "gram_hf.tasks.knowledge_tracing.load_ednet",
            0.04,
            "EdNet-KT1 TOEIC (1,240,955 learners, 94.3M interactions), one `u{N}.csv` per learner",
            "every user file read, headers stripped, bodies parsed as one pyarrow.csv read; questions and text tables "
            "read; sort by user, timestamp",
        ),
        LoaderCase(
            "poj",
            "gram_hf.tasks.knowledge_tracing.load_poj",
            2.0,
            "POJ (22,110 learners, 898,384 submissions, 271-token statements), `poj_log.csv` + statements",
            "pyarrow.csv read of the log (4 columns) and the statements; Submit Time parsed; sort by user, time",
        ),
        LoaderCase(
            "kt_csv",
            "gram_hf.tasks.knowledge_tracing.load_kt_csv",
            0.02,
            "generic `interactions.csv` + `items.csv` of TOEIC's shape (as EdNet, one table, rows shuffled)",
            "pyarrow.csv read of both tables; sort by user, timestamp",
        ),
        LoaderCase(
            "mind",
            "gram_hf.tasks.news_recommendation.load_mind",
            0.05,
            "MIND-large (1M users, 161,013 news, 2.23M/376k/2.37M train/dev/test impressions), TSVs",
            "pyarrow.csv read of every news.tsv and behaviors.tsv (tab, no quoting); Time parsed; History and "
            "Impressions split into lists",
        ),
        LoaderCase(
            "movielens",
            "gram_hf.tasks.next_item.load_movielens",
            0.1,
            "MovieLens-20M (138,493 users, 26,744 movies, 20..268 ratings per user), `ratings.csv` + `movies.csv`",
            "pyarrow.csv read of both files; sort by user, timestamp",
        ),
        LoaderCase(
            "amazon",
            "gram_hf.tasks.next_item.load_amazon",
            1.0,
            "Amazon Beauty 5-core (22,363 users, 12,101 reviewed of 259,204 products, ~9 reviews per user), gzipped "
            "JSON-lines reviews + Python-literal metadata",
            "pyarrow.json read of the gzipped reviews; metadata lines decompressed, asin matched by vectorised regex, "
            "the reviewed products' records parsed with ast.literal_eval; sort by user, time",
        ),
    )
}

# Shapes of the next-item datasets at scale 1.0 (the KT and MIND generators have presets of their own).
MOVIELENS_SHAPE = {"users": 138_493, "items": 26_744, "min_length": 20, "max_length": 268}
AMAZON_SHAPE = {"users": 22_363, "items": 12_101, "min_length": 5, "max_length": 13, "unreviewed": 247_103}


KT_PRESETS = {"duolingo": "en_es", "ednet": "toeic", "poj": "poj", "kt_csv": "toeic"}
"""The knowledge-tracing generators' presets (`--preset` replaces one: `en_es`, `fr_en`, `poj`, `toeic`)."""


def raw_folder(workdir: str | os.PathLike, name: str, scale: float, seed: int, preset: str | None = None) -> Path:
    """Where the raw files of one loader at one scale live (reused by every run with the same arguments)."""
    return Path(workdir) / f"{name}{'-' + preset if preset else ''}-s{scale:g}-seed{seed}"


def _scaled_lengths(items: int, min_length: int, max_length: int) -> tuple[int, int]:
    # A sequence never repeats an item: at small scales the lengths must stay below the catalog.
    max_length = max(3, min(max_length, items // 2))
    return min(min_length, max_length), max_length


def generate(name: str, folder: Path, scale: float, seed: int, preset: str | None = None) -> dict[str, Any]:
    """
    Writes the raw files of loader `name` under `folder/raw` and returns what its loader needs (`meta.json`);
    `preset` replaces a knowledge-tracing generator's preset.
    """
    raw = folder / "raw"
    if name in KT_PRESETS:
        from gram_hf.tasks import knowledge_tracing as kt

        writer = {
            "duolingo": kt.write_synthetic_duolingo,
            "ednet": kt.write_synthetic_ednet,
            "poj": kt.write_synthetic_poj,
            "kt_csv": kt.write_synthetic_kt_csv,
        }[name]
        preset = preset or KT_PRESETS[name]
        truth = writer(raw, preset, scale, seed)
        return {
            "files": truth.files,
            "cold_start_items": truth.cold_start_items,
            "preset": preset,
            "generated": {"users": truth.num_users, "interactions": truth.num_interactions},
        }
    if name == "mind":
        from gram_hf.tasks.news_recommendation import make_synthetic_mind

        mind = make_synthetic_mind(raw, "large", scale, seed=seed)
        impressions = {role: split.num_impressions for role, split in mind.splits.items()}
        return {
            "files": {"data_dir": str(mind.path)},
            "preset": "large",
            "generated": {"users": len(mind.user_ids), "news": len(mind.news_ids), "impressions": impressions},
        }
    if name == "movielens":
        from gram_hf.tasks.next_item import make_synthetic_movielens

        items = max(12, round(MOVIELENS_SHAPE["items"] * scale))
        lengths = _scaled_lengths(items, MOVIELENS_SHAPE["min_length"], MOVIELENS_SHAPE["max_length"])
        data = make_synthetic_movielens(
            raw,
            num_users=max(2, round(MOVIELENS_SHAPE["users"] * scale)),
            num_items=items,
            min_length=lengths[0],
            max_length=lengths[1],
            seed=seed,
        )
        return {
            "files": {"data_dir": str(raw)},
            "generated": {
                "users": data.num_users,
                "items": items,
                "interactions": data.num_interactions,
                "lengths": lengths,
            },
        }
    if name == "amazon":
        from gram_hf.tasks.next_item import make_synthetic_amazon

        items = max(12, round(AMAZON_SHAPE["items"] * scale))
        lengths = _scaled_lengths(items, AMAZON_SHAPE["min_length"], AMAZON_SHAPE["max_length"])
        data = make_synthetic_amazon(
            raw,
            num_users=max(2, round(AMAZON_SHAPE["users"] * scale)),
            num_items=items,
            min_length=lengths[0],
            max_length=lengths[1],
            unreviewed_items=round(AMAZON_SHAPE["unreviewed"] * scale),
            seed=seed,
        )
        # Amazon distributes both files gzipped, and the loader reads `.gz` directly.
        files = {}
        for key, path in data.files.items():
            with open(path, "rb") as source, gzip.open(path + ".gz", "wb", compresslevel=6) as target:
                shutil.copyfileobj(source, target)
            os.remove(path)
            files[key] = path + ".gz"
        return {
            "files": files,
            "generated": {
                "users": data.num_users,
                "items": items,
                "interactions": data.num_interactions,
                "lengths": lengths,
            },
        }
    raise ValueError(f"Unknown dataset {name!r}; choose from {sorted(LOADERS)}.")


def run_loader(name: str, meta: dict[str, Any], cache_dir: str) -> Any:
    """Calls the real loader of `name` on the generated files (the KT ones with the paper's cold-start items)."""
    files = meta["files"]
    if name in ("duolingo", "ednet", "poj", "kt_csv"):
        from gram_hf.tasks import knowledge_tracing as kt

        common_options = {"cache_dir": cache_dir, "cold_start_items": meta["cold_start_items"]}
        if name == "duolingo":
            return kt.load_duolingo(files["data_dir"], files["track"], **common_options)
        if name == "ednet":
            return kt.load_ednet(files["kt1_dir"], files["questions_csv"], files["item_text"], **common_options)
        if name == "poj":
            return kt.load_poj(files["log_csv"], files["problem_text"], **common_options)
        return kt.load_kt_csv(files["interactions"], files["items"], **common_options)
    if name == "mind":
        from gram_hf.tasks.news_recommendation import load_mind

        return load_mind(files["data_dir"], cache_dir=cache_dir)
    if name == "movielens":
        from gram_hf.tasks.next_item import load_movielens

        return load_movielens(files["data_dir"], cache_dir=cache_dir)
    if name == "amazon":
        from gram_hf.tasks.next_item import load_amazon

        return load_amazon(files["reviews"], files["metadata"], cache_dir=cache_dir)
    raise ValueError(f"Unknown dataset {name!r}; choose from {sorted(LOADERS)}.")


def input_files(name: str, meta: dict[str, Any]) -> list[str]:
    """Every raw file the loader of `name` reads (what the plain read reads too)."""
    files = meta["files"]
    if name == "duolingo":
        return [files[key] for key in ("train", "dev", "test", "dev_key", "test_key")]
    if name == "ednet":
        kt1 = files["kt1_dir"]
        users = sorted(entry for entry in os.listdir(kt1) if entry.startswith("u") and entry.endswith(".csv"))
        return [os.path.join(kt1, entry) for entry in users] + [files["questions_csv"], files["item_text"]]
    if name == "poj":
        return [files["log_csv"], files["problem_text"]]
    if name == "kt_csv":
        return [files["interactions"], files["items"]]
    if name == "mind":
        root = Path(files["data_dir"])
        return [
            str(path)
            for folder in sorted(root.glob("MIND*_*"))
            for path in (folder / "news.tsv", folder / "behaviors.tsv")
        ]
    if name == "movielens":
        return [os.path.join(files["data_dir"], "ratings.csv"), os.path.join(files["data_dir"], "movies.csv")]
    if name == "amazon":
        return [files["reviews"], files["metadata"]]
    raise ValueError(f"Unknown dataset {name!r}; choose from {sorted(LOADERS)}.")


def loaded_summary(data: Any) -> dict[str, Any]:
    """
    Rows per split and catalog size of an [`InteractionData`] (every loader returns one), and `rows_read`, the raw
    interaction rows the loader says it read (`stats["rows_read"]` = interactions + dropped), to hold against the
    plain read's rows. Before gram-hf counted `rows_read`: knowledge tracing's interactions in the splits plus the
    cold-start ones taken out of train (a lower bound), MIND's impressions read, `ratings_read` / `reviews_read`.
    """
    stats = data.stats
    summary = {"splits": {name: len(split) for name, split in data.splits.items()}, "items": len(data.items)}
    if "rows_read" in stats:
        summary["rows_read"] = stats["rows_read"]
    elif "cold_start_interactions" in stats:
        summary["rows_read_at_least"] = (
            stats["interactions"]["total"] + stats["cold_start_interactions"]["removed_from_train"]
        )
    elif stats.get("dataset") == "MIND":
        summary["rows_read"] = sum(split["impressions_read"] for split in stats["splits"].values())
    else:
        summary["rows_read"] = stats.get("ratings_read", stats.get("reviews_read"))
    return summary


# ----------------------------------------------------------------------------------------------- the plain reads
#
# Each reads the same bytes as the loader with pyarrow / the standard library only, into columns, and sorts the
# interactions by user and time: no validation, no splitting, no item catalog. They return row counts.


def _csv(path: str, **convert: Any):
    import pyarrow.csv as pa_csv

    return pa_csv.read_csv(
        path,
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(**convert),
    )


def _lines(source: Any):
    """A text file as one string column of its lines, in pyarrow (a delimiter and no quote that never match)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    return pa_csv.read_csv(
        source,
        read_options=pa_csv.ReadOptions(column_names=["line"]),
        parse_options=pa_csv.ParseOptions(delimiter="\x1f", quote_char=False, ignore_empty_lines=False),
        convert_options=pa_csv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
    )["line"].combine_chunks()


def plain_duolingo(meta: dict[str, Any]) -> dict[str, int]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    files = meta["files"]
    header_fields = ("user", "countries", "days", "client", "session", "format", "time")
    tables = []
    for split in ("train", "dev", "test"):
        lines = _lines(files[split])
        first = pc.utf8_slice_codeunits(lines, 0, 1)
        header = pc.starts_with(lines, "# user:")
        # Token lines: neither a comment (`# user:`, `# prompt:`) nor a blank line ending an exercise.
        token = pc.and_(pc.not_equal(first, "#"), pc.not_equal(first, ""))
        # Header fields `name:value`, separated by two spaces, in SLAM's order.
        fields = pc.split_pattern(lines.filter(header), "  ")
        values = {
            name: pc.utf8_slice_codeunits(pc.list_element(fields, index), len(name) + 1 + 2 * (index == 0))
            for index, name in enumerate(header_fields)
        }
        exercise = np.cumsum(header.to_numpy(zero_copy_only=False)) - 1
        token_exercise = exercise[token.to_numpy(zero_copy_only=False)]
        token_lines = lines.filter(token)
        parts = pc.ascii_split_whitespace(token_lines, max_splits=2)
        if split == "train":  # the label is the line's last column
            mistake = pc.equal(pc.utf8_slice_codeunits(token_lines, -1), "1").to_numpy(zero_copy_only=False)
        else:
            key = pa_csv.read_csv(
                files[f"{split}_key"],
                read_options=pa_csv.ReadOptions(column_names=["instance", "label"]),
                parse_options=pa_csv.ParseOptions(delimiter=" "),
                convert_options=pa_csv.ConvertOptions(column_types={"instance": pa.string(), "label": pa.int8()}),
            )
            row = pc.index_in(pc.list_element(parts, 0), value_set=key["instance"])
            mistake = key["label"].combine_chunks().take(row).to_numpy(zero_copy_only=False) == 1
        num_exercises = len(fields)
        counts = np.bincount(token_exercise, minlength=num_exercises)
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32())
        sentence = pc.binary_join(pa.ListArray.from_arrays(offsets, pc.list_element(parts, 1)), " ")
        correct = np.bincount(token_exercise, weights=mistake, minlength=num_exercises) == 0
        values["days"] = pc.cast(values["days"], pa.float64())
        tables.append(pa.table({**values, "sentence": sentence, "correct": correct}))
    table = pa.concat_tables(tables).sort_by([("user", "ascending"), ("days", "ascending")])
    return {"interactions": table.num_rows}


def plain_ednet(meta: dict[str, Any]) -> dict[str, int]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    files = meta["files"]
    paths = input_files("ednet", meta)[:-2]
    bodies, counts = [], []
    for path in paths:
        with open(path, "rb") as handle:
            data = handle.read()
        body = data[data.find(b"\n") + 1 :]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        bodies.append(body)
        counts.append(body.count(b"\n"))
    table = pa_csv.read_csv(
        io.BytesIO(b"".join(bodies)),
        read_options=pa_csv.ReadOptions(
            column_names=["timestamp", "solving_id", "question_id", "user_answer", "elapsed_time"]
        ),
    )
    user = np.repeat(np.arange(len(paths), dtype=np.int32), counts)
    table = table.append_column("user", pa.array(user)).sort_by([("user", "ascending"), ("timestamp", "ascending")])
    questions = _csv(files["questions_csv"])
    texts = _csv(files["item_text"])
    return {"interactions": table.num_rows, "questions": questions.num_rows, "texts": texts.num_rows}


def plain_poj(meta: dict[str, Any]) -> dict[str, int]:
    import pyarrow as pa

    files = meta["files"]
    # `Submit Time` (`%Y-%m-%d %H:%M:%S`) is parsed by the CSV reader itself.
    table = _csv(
        files["log_csv"],
        include_columns=["User", "Problem", "Result", "Submit Time"],
        column_types={"User": pa.string(), "Problem": pa.string(), "Submit Time": pa.timestamp("s")},
    )
    table = table.sort_by([("User", "ascending"), ("Submit Time", "ascending")])
    texts = _csv(files["problem_text"], column_types={"problem_id": pa.string()})
    return {"interactions": table.num_rows, "items": texts.num_rows}


def plain_kt_csv(meta: dict[str, Any]) -> dict[str, int]:
    files = meta["files"]
    table = _csv(files["interactions"]).sort_by([("user_id", "ascending"), ("timestamp", "ascending")])
    items = _csv(files["items"])
    return {"interactions": table.num_rows, "items": items.num_rows}


def plain_mind(meta: dict[str, Any]) -> dict[str, int]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    def tsv(path: str, names: list[str]) -> pa.Table:
        return pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names),
            parse_options=pa_csv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names[1:], pa.string())),
        )

    rows = {"news": 0, "impressions": 0}
    paths = input_files("mind", meta)
    for news_path, behaviors_path in zip(paths[::2], paths[1::2]):
        news = tsv(
            news_path,
            ["id", "category", "subcategory", "title", "abstract", "url", "title_entities", "abstract_entities"],
        )
        behaviors = tsv(behaviors_path, ["impression_id", "user", "time", "history", "impressions"])
        time_column = pc.strptime(behaviors["time"], format="%m/%d/%Y %I:%M:%S %p", unit="s")
        history = pc.split_pattern(behaviors["history"], " ")
        impressions = pc.split_pattern(behaviors["impressions"], " ")
        behaviors = pa.table(
            {
                "impression_id": behaviors["impression_id"],
                "user": behaviors["user"],
                "time": time_column,
                "history": history,
                "impressions": impressions,
            }
        )
        rows["news"] += news.num_rows
        rows["impressions"] += behaviors.num_rows
    return rows


def plain_movielens(meta: dict[str, Any]) -> dict[str, int]:
    import pyarrow as pa

    folder = meta["files"]["data_dir"]
    ratings = _csv(
        os.path.join(folder, "ratings.csv"),
        column_types={"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()},
    )
    ratings = ratings.sort_by([("userId", "ascending"), ("timestamp", "ascending")])
    movies = _csv(os.path.join(folder, "movies.csv"))
    return {"ratings": ratings.num_rows, "movies": movies.num_rows}


def plain_amazon(meta: dict[str, Any]) -> dict[str, int]:
    import pyarrow.compute as pc
    import pyarrow.json as pa_json

    files = meta["files"]
    reviews = pa_json.read_json(files["reviews"]).select(["reviewerID", "asin", "unixReviewTime"])
    reviews = reviews.sort_by([("reviewerID", "ascending"), ("unixReviewTime", "ascending")])
    with gzip.open(files["metadata"], "rb") as handle:
        lines = _lines(io.BytesIO(handle.read()))
    asin = pc.extract_regex(lines, r"""['"]asin['"]\s*:\s*['"](?P<asin>[^'"]+)['"]""").field("asin")
    needed = pc.is_in(asin, value_set=pc.unique(reviews["asin"]))
    records = [ast.literal_eval(line) for line in lines.filter(needed).to_pylist()]
    return {"reviews": reviews.num_rows, "metadata_lines": len(lines), "metadata_records_parsed": len(records)}


PLAIN_READS: dict[str, Callable[[dict[str, Any]], dict[str, int]]] = {
    "duolingo": plain_duolingo,
    "ednet": plain_ednet,
    "poj": plain_poj,
    "kt_csv": plain_kt_csv,
    "mind": plain_mind,
    "movielens": plain_movielens,
    "amazon": plain_amazon,
}


# --------------------------------------------------------------------------------------------------- the workers


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _status_bytes(field: str) -> int | None:
    """A `kB` field of `/proc/self/status` in bytes (`None` off Linux)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_since_reset() -> tuple[int, bool]:
    """
    The RSS high-water mark of this process and whether it is exact: `VmHWM` on Linux, which a new program starts
    afresh, unlike `ru_maxrss`, which keeps the forking parent's size across `exec` (the parent here imported torch).
    """
    value = _status_bytes("VmHWM")
    return (value, True) if value is not None else (common.max_rss_bytes(), False)


def reset_peak_rss() -> bool:
    """Sets the high-water mark to the current RSS (Linux `clear_refs`), so that it measures what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def run_worker(config: dict[str, Any]) -> dict[str, Any]:
    """
    One measurement in this (fresh) process: `task` is `generate`, `load` (the loader; first or cached is the
    caller's doing: it empties the cache or not) or `plain`. Imports happen before the clock starts.
    """
    name, task = config["dataset"], config["task"]
    load_before = os.getloadavg()
    if task == "generate":
        import datasets

        datasets.disable_progress_bars()
        start = time.perf_counter()
        meta = generate(name, Path(config["folder"]), config["scale"], config["seed"], config.get("preset"))
        meta["generate_seconds"] = time.perf_counter() - start
        return meta
    meta = config["meta"]
    if task == "load":
        import datasets

        import gram_hf  # noqa: F401  (torch and the tasks, imported before the clock starts)

        datasets.disable_progress_bars()
        action = lambda: run_loader(name, meta, config["cache_dir"])  # noqa: E731
    elif task == "plain":
        import numpy  # noqa: F401
        import pandas  # noqa: F401  (pyarrow imports it on its first conversion from Python objects)
        import pyarrow.compute  # noqa: F401
        import pyarrow.csv  # noqa: F401
        import pyarrow.json  # noqa: F401

        action = lambda: PLAIN_READS[name](meta)  # noqa: E731
    else:
        raise ValueError(f"Unknown task {task!r}.")
    # The imports' own high-water mark, then a fresh one for the measurement alone.
    peak_imports, _ = peak_rss_since_reset()
    rss_before = _rss()
    reset = reset_peak_rss()
    profiler = cProfile.Profile() if config.get("profile") else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    output = action()
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - start
    peak, exact = peak_rss_since_reset()
    result = {
        "seconds": seconds,
        "rss_before_bytes": rss_before,
        "rss_after_bytes": _rss(),
        "peak_rss_bytes": max(peak, peak_imports),
        # Peak during the measurement minus the RSS after the imports: what the load itself needed.
        # (0 when the RSS only fell: the mark restarts from the RSS at the reset, a little above `rss_before`.)
        "rss_added_bytes": max(peak - rss_before, 0),
        "peak_rss_exact": exact and reset,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    result["output"] = loaded_summary(output) if task == "load" else output
    if profiler is not None:
        result["profile"] = profile_entries(profiler, config.get("profile_top", 25))
    return result


def profile_entries(profiler: cProfile.Profile, top: int) -> list[dict[str, Any]]:
    """The `top` functions by own time, with calls and cumulative time, paths shortened to the package."""
    stats = pstats.Stats(profiler)
    entries = []
    for (path, line, function), (_, calls, own, cumulative, _) in stats.stats.items():
        short = re.sub(r".*/(site-packages|src)/", "", path)
        entries.append(
            {
                "function": f"{short}:{line}({function})",
                "calls": calls,
                "own_seconds": own,
                "cumulative_seconds": cumulative,
            }
        )
    entries.sort(key=lambda entry: -entry["own_seconds"])
    return entries[:top]


def run_in_subprocess(config: dict[str, Any], log_path: Path) -> dict[str, Any]:
    """`run_worker(config)` in a fresh Python process (its own memory high-water mark); a failure raises its log."""
    with tempfile.TemporaryDirectory() as tmp:
        config_path, output_path = Path(tmp) / "config.json", Path(tmp) / "result.json"
        config_path.write_text(json.dumps(config))
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "worker",
            "--config",
            str(config_path),
            "--output",
            str(output_path),
        ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(common.REPO_ROOT / "src"), os.environ.get("PYTHONPATH")])),
        }
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            process = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if process.returncode != 0:
            raise RuntimeError(
                f"Worker {config['dataset']}/{config['task']} failed (exit {process.returncode}):\n"
                f"{log_path.read_text()[-4000:]}"
            )
        return json.loads(output_path.read_text())


# ---------------------------------------------------------------------------------------------------- the parent


def warm_page_cache(paths: Sequence[str]) -> None:
    """Reads every file once, so that the measurement after it reads from memory like the others."""
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def prepare(
    name: str, scale: float, seed: int, workdir: Path, logs: Path, preset: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """The raw files of `name` at `scale` (generated in a subprocess unless `meta.json` says they exist)."""
    folder = raw_folder(workdir, name, scale, seed, preset)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        config = {
            "dataset": name,
            "task": "generate",
            "folder": str(folder),
            "scale": scale,
            "seed": seed,
            "preset": preset,
        }
        meta = run_in_subprocess(config, logs / f"{folder.name}-generate.log")
        meta_path.write_text(json.dumps(meta, indent=1))
    return folder, json.loads(meta_path.read_text())


def measure_loader(
    name: str,
    scale: float,
    seed: int,
    workdir: Path,
    logs: Path,
    repeats: int = 1,
    cached: bool = True,
    preset: str | None = None,
) -> dict[str, Any]:
    """
    First load (empty cache), cached load and plain read of `name` at `scale`, each in its own subprocess after a
    page-cache warm-up; with `repeats` > 1 the first load and the plain read alternate and the fastest of each counts.
    """
    folder, meta = prepare(name, scale, seed, workdir, logs, preset)
    paths = input_files(name, meta)
    cache = folder / "cache"
    tag = folder.name
    base = {"dataset": name, "meta": meta, "cache_dir": str(cache)}
    first_runs, plain_runs = [], []
    for repeat in range(repeats):
        warm_page_cache(paths)
        plain_runs.append(run_in_subprocess({**base, "task": "plain"}, logs / f"{tag}-plain-{repeat}.log"))
        shutil.rmtree(cache, ignore_errors=True)
        warm_page_cache(paths)
        first_runs.append(run_in_subprocess({**base, "task": "load"}, logs / f"{tag}-first-{repeat}.log"))
    first = min(first_runs, key=lambda run: run["seconds"])
    plain = min(plain_runs, key=lambda run: run["seconds"])
    result = {
        "dataset": name,
        "loader": LOADERS[name].function,
        "scale": scale,
        "preset": meta.get("preset"),
        "shape": LOADERS[name].shape,
        "generated": meta["generated"],
        "generate_seconds": meta["generate_seconds"],
        "input": {"files": len(paths), "bytes": sum(os.path.getsize(path) for path in paths), "rows": plain["output"]},
        "loaded": first["output"],
        "first_load": first,
        "first_load_seconds_all": [run["seconds"] for run in first_runs],
        "plain_read": {**plain, "method": LOADERS[name].plain},
        "plain_read_seconds_all": [run["seconds"] for run in plain_runs],
        "ratio_first_to_plain": first["seconds"] / plain["seconds"],
        "rss_ratio_peak": first["peak_rss_bytes"] / plain["peak_rss_bytes"],
        "rss_ratio_added": first["rss_added_bytes"] / max(plain["rss_added_bytes"], 1),
    }
    if cached:
        warm_page_cache(paths)
        result["cached_load"] = run_in_subprocess({**base, "task": "load"}, logs / f"{tag}-cached.log")
        result["ratio_cached_to_plain"] = result["cached_load"]["seconds"] / plain["seconds"]
    return result


def slope(small: float, large: float, small_input: float, large_input: float) -> float:
    """Log-log slope of a measure against the input size between two scales (1 = grows as the input does)."""
    if min(small, large, small_input) <= 0 or large_input == small_input:
        return float("nan")
    return math.log(large / small) / math.log(large_input / small_input)


def add_growth(result: dict[str, Any], small: dict[str, Any]) -> None:
    """How time and memory grew from the smaller scale to `result`'s, against the input bytes."""
    inputs = (small["input"]["bytes"], result["input"]["bytes"])
    result["growth"] = {
        "scale": small["scale"],
        "input_bytes": small["input"]["bytes"],
        "first_load_seconds": small["first_load"]["seconds"],
        "plain_read_seconds": small["plain_read"]["seconds"],
        "first_load_rss_added_bytes": small["first_load"]["rss_added_bytes"],
        "plain_read_rss_added_bytes": small["plain_read"]["rss_added_bytes"],
        "ratio_first_to_plain": small["ratio_first_to_plain"],
        "first_load_time_slope": slope(small["first_load"]["seconds"], result["first_load"]["seconds"], *inputs),
        "plain_read_time_slope": slope(small["plain_read"]["seconds"], result["plain_read"]["seconds"], *inputs),
        "first_load_rss_slope": slope(
            small["first_load"]["rss_added_bytes"], result["first_load"]["rss_added_bytes"], *inputs
        ),
        "plain_read_rss_slope": slope(
            small["plain_read"]["rss_added_bytes"], result["plain_read"]["rss_added_bytes"], *inputs
        ),
        "first_load_rss_added_per_input_byte": small["first_load"]["rss_added_bytes"] / small["input"]["bytes"],
    }
    result["rss_added_per_input_byte"] = result["first_load"]["rss_added_bytes"] / result["input"]["bytes"]


def profile_loader(
    name: str, scale: float, seed: int, workdir: Path, logs: Path, top: int, preset: str | None = None
) -> list[dict[str, Any]]:
    """A first load under cProfile (slower than the timed one): its `top` functions by own time."""
    folder, meta = prepare(name, scale, seed, workdir, logs, preset)
    cache = folder / "cache-profile"
    shutil.rmtree(cache, ignore_errors=True)
    config = {
        "dataset": name,
        "meta": meta,
        "cache_dir": str(cache),
        "task": "load",
        "profile": True,
        "profile_top": top,
    }
    try:
        return run_in_subprocess(config, logs / f"{folder.name}-profile.log")["profile"]
    finally:
        shutil.rmtree(cache, ignore_errors=True)


# ------------------------------------------------------------------------------------------------------- output


def _ratio(value: float) -> str:
    return f"{value:.2f}x" if math.isfinite(value) else "n/a"


def _rows(rows: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {what.replace('_', ' ')}" for what, count in rows.items())


def render_markdown(payload: dict[str, Any]) -> str:
    """The results as a markdown section: one table of every loader, the growth with the input, the profiles."""
    env, config = payload["environment"], payload["config"]
    results = payload["results"]
    target = config["target_ratio"]
    runs = [r[key] for r in results for key in ("first_load", "cached_load", "plain_read") if key in r]
    loads = [run["load_average_before"][0] for run in runs] or [env["load_average"][0]]
    lines = [
        "### Dataset loading: every loader against a plain read of the same files",
        "",
        f"Machine: {common.hardware_line(env)}; 1-minute load average {min(loads):.1f}-{max(loads):.1f} before the "
        "measurements (a shared machine: seconds are noisy, ratios within one run less so). Each measurement is a "
        "fresh process after the raw files were read once (warm page cache); first load = empty `datasets` cache, "
        f"cached load = the same cache in a new process; fastest of {config['repeats']} run(s) for first load and "
        "plain read. Peak RSS = the process's high-water mark (`VmHWM`; the loader's includes torch, imported by "
        "`gram_hf`); RSS added = the high-water mark of the measurement alone minus the RSS after the imports. "
        f"Target: first load within {target:g}x of the plain read. Command: `{env['command']}` (gram-hf "
        f"{_commit(env)}).",
        "",
    ]
    earlier_runs: dict[tuple, list[str]] = {}
    for r in results:
        if "run" in r:
            key = (r["run"]["command"], r["run"]["commit"], r["run"]["date_utc"])
            earlier_runs.setdefault(key, []).append(f"`{r['loader'].rsplit('.', 1)[1]}`")
    for (command, commit, date), loaders in earlier_runs.items():
        lines[-2] += (
            f" Kept from an earlier run ({date}, gram-hf {commit}, `{command}`): {', '.join(loaders)}; the others "
            "were measured again by this command."
        )
    rows = []
    for r in results:
        first, plain, cached = r["first_load"], r["plain_read"], r.get("cached_load")
        met = "yes" if r["ratio_first_to_plain"] <= target else "**no**"
        rows.append(
            [
                f"`{r['loader'].rsplit('.', 1)[1]}`",
                f"{r['scale']:g}",
                _rows(r["input"]["rows"]),
                f"{r['input']['files']:,} / {common.fmt_bytes(r['input']['bytes'])}",
                common.fmt_seconds(first["seconds"]),
                common.fmt_seconds(cached["seconds"]) if cached else "n/a",
                common.fmt_seconds(plain["seconds"]),
                f"{_ratio(r['ratio_first_to_plain'])} ({met})",
                f"{common.fmt_bytes(first['peak_rss_bytes'])} / {common.fmt_bytes(plain['peak_rss_bytes'])}",
                f"{common.fmt_bytes(first['rss_added_bytes'])} / {common.fmt_bytes(plain['rss_added_bytes'])}",
            ]
        )
    lines.append(
        common.markdown_table(
            [
                "Loader",
                "Scale",
                "Input rows",
                "Files / bytes",
                "First load",
                "Cached load",
                "Plain read",
                f"First / plain (<= {target:g}x)",
                "Peak RSS load / plain",
                "RSS added load / plain",
            ],
            rows,
        )
    )
    lines += ["", "Data (synthetic, the package's generators; scale 1.0 = the shape named) and plain reads:", ""]
    lines += [
        f"- `{r['dataset']}`: {r['shape']}; scale {r['scale']:g}, {common.fmt_seconds(r['generate_seconds'])} to "
        f"generate. Plain read: {r['plain_read']['method']}."
        for r in results
    ]
    grown = [r for r in results if "growth" in r]
    if grown:
        lines += [
            "",
            "Growth with the input (log-log slope between the two scales; 1 = proportional to the input "
            "bytes, above 1 = faster than the input):",
            "",
        ]
        rows = []
        for r in grown:
            g = r["growth"]
            rows.append(
                [
                    f"`{r['dataset']}`",
                    f"{g['scale']:g} -> {r['scale']:g}",
                    f"{common.fmt_bytes(g['input_bytes'])} -> {common.fmt_bytes(r['input']['bytes'])}",
                    f"{common.fmt_seconds(g['first_load_seconds'])} -> "
                    f"{common.fmt_seconds(r['first_load']['seconds'])}",
                    f"{g['first_load_time_slope']:.2f} / {g['plain_read_time_slope']:.2f}",
                    f"{common.fmt_bytes(g['first_load_rss_added_bytes'])} -> "
                    f"{common.fmt_bytes(r['first_load']['rss_added_bytes'])}",
                    f"{g['first_load_rss_slope']:.2f} / {g['plain_read_rss_slope']:.2f}",
                    f"{g['first_load_rss_added_per_input_byte']:.1f} -> {r['rss_added_per_input_byte']:.1f}",
                    _ratio(g["ratio_first_to_plain"]),
                ]
            )
        lines.append(
            common.markdown_table(
                [
                    "Loader",
                    "Scales",
                    "Input bytes",
                    "First load",
                    "Time slope load / plain",
                    "RSS added",
                    "RSS slope load / plain",
                    "RSS added per input byte",
                    "First / plain at the small scale",
                ],
                rows,
            )
        )
    profiled = [r for r in results if r.get("profile")]
    if profiled:
        lines += [
            "",
            f"Where the time goes in the loaders above {target:g}x (cProfile of one more first load, top "
            "functions by own time; profiling slows the run, compare shares not seconds):",
            "",
        ]
        for r in profiled:
            total = sum(entry["own_seconds"] for entry in r["profile"])
            top = "; ".join(
                f"`{e['function']}` {e['own_seconds']:.1f} s ({e['calls']:,} calls)" for e in r["profile"][:6]
            )
            lines.append(f"- `{r['dataset']}` (top {len(r['profile'])} = {total:.1f} s): {top}")
    return "\n".join(lines) + "\n"


def uncommitted_changes() -> bool | None:
    """Whether the package or the benchmarks differ from the commit measured (`None` without git)."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "benchmarks/dataset_loading.py"],
            cwd=common.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(status.stdout.strip()) if status.returncode == 0 else None


def _commit(env: dict[str, Any]) -> str:
    """The commit measured, `+ uncommitted changes` when the tree differed from it."""
    return f"{env.get('git_commit')}{' + uncommitted changes' if env.get('uncommitted_changes') else ''}"


def merge_results(payload: dict[str, Any], earlier: dict[str, Any]) -> dict[str, Any]:
    """
    `payload` (this run) with the results of every other loader kept from `earlier` (an earlier run's JSON), in
    the loaders' order; each kept result gets `run` (the earlier run's command, commit, date and load average),
    which the report names.
    """
    measured = {result["dataset"] for result in payload["results"]}
    env = earlier["environment"]
    kept = []
    for result in earlier["results"]:
        if result["dataset"] not in measured:
            run = {"commit": _commit(env), **{key: env.get(key) for key in ("command", "date_utc", "load_average")}}
            kept.append({**result, "run": result.get("run", run)})
    order = list(LOADERS)
    results = sorted([*payload["results"], *kept], key=lambda result: order.index(result["dataset"]))
    config = dict(payload["config"])
    config["datasets"] = [result["dataset"] for result in results]
    config["scales"] = {**earlier["config"].get("scales", {}), **config["scales"]}
    config["updated"] = sorted(measured, key=order.index)
    return {**payload, "config": config, "results": results}


# --------------------------------------------------------------------------------------------------------- main


def parse_scales(values: Sequence[str]) -> dict[str, float]:
    scales = {}
    for value in values:
        name, sep, number = value.partition("=")
        if not sep or name not in LOADERS:
            raise argparse.ArgumentTypeError(
                f"--scales takes NAME=SCALE with NAME in {sorted(LOADERS)}, got {value!r}."
            )
        scales[name] = float(number)
    return scales


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dataset",
        nargs="+",
        default=None,
        choices=sorted(LOADERS),
        help="Loader(s) to measure (default: duolingo, or every loader with --all).",
    )
    parser.add_argument("--all", action="store_true", help="Every loader, each at its default scale.")
    parser.add_argument("--scale", type=float, default=None, help="Scale of the one --dataset given.")
    parser.add_argument("--scales", nargs="+", default=[], metavar="NAME=SCALE", help="Scales per loader.")
    parser.add_argument(
        "--preset",
        default=None,
        choices=["en_es", "fr_en", "poj", "toeic"],
        help="Preset of the one knowledge-tracing --dataset given (default: its own).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the generators.")
    parser.add_argument("--repeats", type=int, default=1, help="First loads and plain reads per loader (fastest).")
    parser.add_argument(
        "--growth-fraction",
        type=float,
        default=0.25,
        help="Also measure at this fraction of each scale, for the growth slopes (0: skip).",
    )
    parser.add_argument("--no-cached", action="store_true", help="Skip the cached load.")
    parser.add_argument("--target", type=float, default=TARGET_RATIO, help="First load / plain read target.")
    parser.add_argument(
        "--profile", action="store_true", help="Profile (cProfile) one more first load of every loader above --target."
    )
    parser.add_argument("--profile-top", type=int, default=25, help="Functions kept per profile.")
    parser.add_argument(
        "--workdir",
        default=os.path.join(tempfile.gettempdir(), "gram_hf_bench_loading"),
        help="Raw files (kept per loader, scale and seed) and the loaders' caches.",
    )
    parser.add_argument(
        "--render",
        default=None,
        metavar="JSON",
        help="Only rewrite dataset_loading.md beside this dataset_loading.json (no measurement).",
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="Write dataset_loading.{json,md} here (default with --all or --update: results/<device tag>).",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="Measure the --dataset loaders only and keep every other loader's results from the "
        "dataset_loading.json already in the output folder (each kept row names the run it came from), e.g. "
        "`--dataset mind movielens amazon --repeats 2 --update` after changing those loaders.",
    )
    args = parser.parse_args(argv)
    if args.all and args.dataset:
        parser.error("--all and --dataset exclude each other.")
    if args.update and not args.dataset:
        parser.error("--update needs the --dataset loaders to measure again.")
    args.datasets = list(LOADERS) if args.all else (args.dataset or ["duolingo"])
    try:
        scales = parse_scales(args.scales)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if args.scale is not None:
        if len(args.datasets) != 1:
            parser.error("--scale needs exactly one --dataset; use --scales NAME=SCALE for several.")
        scales[args.datasets[0]] = args.scale
    if args.preset is not None and (len(args.datasets) != 1 or args.datasets[0] not in KT_PRESETS):
        parser.error(f"--preset needs exactly one knowledge-tracing --dataset ({', '.join(KT_PRESETS)}).")
    args.scale_of = {name: scales.get(name, LOADERS[name].default_scale) for name in args.datasets}
    if args.repeats < 1 or not 0 <= args.growth_fraction < 1:
        parser.error("--repeats must be >= 1 and --growth-fraction in [0, 1).")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "worker":
        worker = argparse.ArgumentParser(description="Runs one measurement (used by this script).")
        worker.add_argument("--config", required=True)
        worker.add_argument("--output", required=True)
        worker_args = worker.parse_args(argv[1:])
        common.write_json(worker_args.output, run_worker(json.loads(Path(worker_args.config).read_text())))
        return {}
    args = parse_args(argv)
    if args.render:
        payload = json.loads(Path(args.render).read_text())
        (Path(args.render).parent / "dataset_loading.md").write_text(render_markdown(payload))
        return payload
    workdir = Path(args.workdir)
    logs = workdir / "logs"
    environment = common.environment_info("cpu")
    environment["uncommitted_changes"] = uncommitted_changes()
    results = []
    for name in args.datasets:
        scale = args.scale_of[name]
        options = {"seed": args.seed, "workdir": workdir, "logs": logs, "preset": args.preset}
        result = measure_loader(name, scale, repeats=args.repeats, cached=not args.no_cached, **options)
        if args.growth_fraction > 0:
            add_growth(result, measure_loader(name, scale * args.growth_fraction, cached=False, **options))
        if args.profile and result["ratio_first_to_plain"] > args.target:
            result["profile"] = profile_loader(name, scale, top=args.profile_top, **options)
        print(json.dumps(result, indent=2, default=str), flush=True)
        results.append(result)
    payload = {
        "environment": environment,
        "config": {
            "datasets": args.datasets,
            "scales": args.scale_of,
            "seed": args.seed,
            "repeats": args.repeats,
            "growth_fraction": args.growth_fraction,
            "target_ratio": args.target,
            "workdir": str(workdir),
        },
        "results": results,
    }
    out_dir = None
    if args.all or args.output_dir or args.update:
        out_dir = Path(args.output_dir) if args.output_dir else common.RESULTS_DIR / common.device_tag("cpu")
    if args.update:
        payload = merge_results(payload, json.loads((out_dir / "dataset_loading.json").read_text()))
    if out_dir is not None:
        common.write_json(out_dir / "dataset_loading.json", payload)
        (out_dir / "dataset_loading.md").write_text(render_markdown(payload))
        print(render_markdown(payload))
    return payload


if __name__ == "__main__":
    main()
