"""
Loaders of MovieLens-20M and Amazon reviews (e.g. Beauty) for next-item recommendation, as `datasets` builders.

Both read the raw files, apply [`prepare_sequences`] (items with >= 5 and users with >= 3 interactions, chronological
sequences, leave-one-out) and return an [`InteractionData`]: `train` / `validation` / `test` splits of `user_id`,
`items` (catalog indices) and `timestamps`, and the items (row `i` = catalog index `i`) with their text.

Each is a `datasets.GeneratorBasedBuilder` instantiated in code (datasets 5.x has no loading scripts), so the
prepared Arrow tables are cached. The cache key holds every raw file's absolute path, size and modification time and
the preprocessing options, so an edited file is re-read instead of being served stale.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd

from ...data import InteractionData
from .preprocessing import PreparedInteractions, prepare_sequences

logger = logging.getLogger(__name__)

STATS_FILE = "gram_hf_stats.json"
# Bump when the prepared format or the preprocessing changes, so old caches are not reused.
PREPROCESSING_VERSION = "1.0.0"
MOVIELENS_RATINGS_HEADER = ["userId", "movieId", "rating", "timestamp"]
MOVIELENS_MOVIES_HEADER = ["movieId", "title", "genres"]
AMAZON_REVIEW_KEYS = ("reviewerID", "asin", "unixReviewTime")


def _fingerprint(paths: list[str]) -> str:
    """`path:size:mtime_ns` of every raw file: the part of the cache key that notices edited files."""
    parts = []
    for path in paths:
        stat = os.stat(path)
        parts.append(f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)


def _require_file(path: str | os.PathLike, what: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _open_text(path: str) -> io.TextIOBase:
    """Opens a text file, gzip-compressed when it ends in `.gz` (the form Amazon's files are distributed in)."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------- MovieLens


def read_movielens_ratings(path: str) -> pd.DataFrame:
    """
    `ratings.csv` (`userId,movieId,rating,timestamp`) as a DataFrame, parsed by pandas' C reader; a malformed line is
    reported as `ValueError("<path>:<line>: ...")`, found by a line-by-line scan only when the fast path fails.
    """
    dtypes = {"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"}
    with _open_text(path) as handle:
        header = handle.readline().strip().split(",")
    if header != MOVIELENS_RATINGS_HEADER:
        raise ValueError(f"{path}:1: expected the header {','.join(MOVIELENS_RATINGS_HEADER)}, got {','.join(header)}")
    try:
        frame = pd.read_csv(path, dtype=dtypes, engine="c")
    except (ValueError, TypeError, pd.errors.ParserError) as error:
        _raise_first_bad_rating_line(path)
        raise ValueError(f"{path}: could not be parsed as MovieLens ratings: {error}") from error
    if list(frame.columns) != MOVIELENS_RATINGS_HEADER or frame.isna().to_numpy().any():
        _raise_first_bad_rating_line(path)
        raise ValueError(f"{path}: could not be parsed as MovieLens ratings.")
    return frame


def _raise_first_bad_rating_line(path: str) -> None:
    parsers = (int, int, float, int)
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if number == 1:
                continue
            fields = line.rstrip("\r\n").split(",")
            if len(fields) != 4:
                raise ValueError(f"{path}:{number}: expected 4 comma-separated fields, got {len(fields)}: {line!r}")
            for name, parse, value in zip(MOVIELENS_RATINGS_HEADER, parsers, fields):
                try:
                    parse(value)
                except ValueError:
                    raise ValueError(f"{path}:{number}: {name} {value!r} is not a valid {parse.__name__}") from None


def read_movielens_movies(path: str) -> dict[int, tuple[str, list[str]]]:
    """`movies.csv` (`movieId,title,genres`, titles quoted when they hold commas) as `{movieId: (title, genres)}`."""
    movies: dict[int, tuple[str, list[str]]] = {}
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        for row in reader:
            number = reader.line_num
            if number == 1:
                if row != MOVIELENS_MOVIES_HEADER:
                    raise ValueError(f"{path}:1: expected the header {','.join(MOVIELENS_MOVIES_HEADER)}, got {row}")
                continue
            if len(row) != 3:
                raise ValueError(f"{path}:{number}: expected 3 fields (movieId,title,genres), got {len(row)}: {row}")
            try:
                movie_id = int(row[0])
            except ValueError:
                raise ValueError(f"{path}:{number}: movieId {row[0]!r} is not an integer") from None
            if movie_id in movies:
                raise ValueError(f"{path}:{number}: movieId {movie_id} appears twice")
            genres = [] if row[2] in ("", "(no genres listed)") else row[2].split("|")
            movies[movie_id] = (row[1].strip(), genres)
    return movies


def movielens_text(title: str, genres: list[str]) -> str:
    """An item's text: its title and genres (`"Toy Story (1995). Adventure, Animation, Children"`)."""
    return f"{title}. {', '.join(genres)}" if genres else title


# ------------------------------------------------------------------------------------------------------------- Amazon

_ASIN_PATTERN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


def read_amazon_reviews(path: str) -> pd.DataFrame:
    """Reviews as JSON lines (`reviewerID`, `asin`, `unixReviewTime`), e.g. the 5-core `reviews_Beauty_5.json(.gz)`."""
    users, items, times = [], [], []
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: invalid JSON: {error.msg}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            missing = [key for key in AMAZON_REVIEW_KEYS if key not in record]
            if missing:
                raise ValueError(f"{path}:{number}: missing {', '.join(missing)}")
            timestamp = record["unixReviewTime"]
            if isinstance(timestamp, bool) or not isinstance(timestamp, int):
                raise ValueError(f"{path}:{number}: unixReviewTime must be an integer, got {timestamp!r}")
            users.append(str(record["reviewerID"]))
            items.append(str(record["asin"]))
            times.append(timestamp)
    return pd.DataFrame({"user": users, "item": items, "timestamp": np.asarray(times, dtype=np.int64)})


def _parse_metadata_line(line: str) -> Any:
    """One metadata record: the 2014 files hold Python literals (single quotes), later ones JSON."""
    try:
        # Python literals are parsed, never evaluated: ast.literal_eval accepts only literal syntax.
        return ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return json.loads(line)


def read_amazon_metadata(path: str, needed: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """
    Item metadata lines (`asin`, `title`, `description`, `categories`), Python literals (2014) or JSON (2018), as
    `{asin: record}`. With `needed`, lines whose `asin` is visibly not needed are skipped unparsed (the metadata files
    are an order of magnitude larger than the 5-core item sets).
    """
    records: dict[str, dict[str, Any]] = {}
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if needed is not None:
                match = _ASIN_PATTERN.search(line)
                if match and match.group(1) not in needed:
                    continue
            try:
                record = _parse_metadata_line(line)
            except (ValueError, SyntaxError) as error:
                raise ValueError(
                    f"{path}:{number}: neither a Python literal nor JSON: {type(error).__name__}: {error}"
                ) from None
            if not isinstance(record, dict) or "asin" not in record:
                raise ValueError(f"{path}:{number}: expected a record with an 'asin', got {str(record)[:80]!r}")
            records[str(record["asin"])] = record
    return records


def amazon_text(record: dict[str, Any]) -> tuple[str, list[str], str, str]:
    """`(text, categories, title, description)` of a metadata record; text = title, categories and description."""
    title = str(record.get("title") or "").strip()
    raw_categories = record.get("categories", record.get("category")) or []
    categories: list[str] = []
    for entry in raw_categories:
        for name in entry if isinstance(entry, (list, tuple)) else [entry]:
            name = str(name).strip()
            if name and name not in categories:
                categories.append(name)
    description = record.get("description") or ""
    if isinstance(description, (list, tuple)):
        description = " ".join(str(part) for part in description)
    description = str(description).strip()
    parts = [part for part in (title, ", ".join(categories), description) if part]
    return ". ".join(parts), categories, title, description


# ----------------------------------------------------------------------------------------------------------- builders


@dataclass
class NextItemBuilderConfig(datasets.BuilderConfig):
    """
    Options of the next-item builders. `paths` and `fingerprint` (path, size and mtime of each raw file) are part of
    the config, hence of the cache key.
    """

    paths: str = ""
    fingerprint: str = ""
    min_item_interactions: int = 5
    min_user_interactions: int = 3
    min_rating: float | None = None
    strict: bool = False


SEQUENCE_FEATURES = datasets.Features(
    {
        "user_id": datasets.Value("string"),
        "items": datasets.List(datasets.Value("int64")),
        "timestamps": datasets.List(datasets.Value("int64")),
    }
)
ITEM_COUNT_FEATURES = {
    "num_interactions": datasets.Value("int64"),
    "train_count": datasets.Value("int64"),
    "cold_start": datasets.Value("bool"),
}


class _NextItemBuilder(datasets.GeneratorBasedBuilder):
    """Shared logic: config `sequences` builds the splits, config `items` the catalog; both from one preparation."""

    BUILDER_CONFIG_CLASS = NextItemBuilderConfig
    BUILDER_CONFIGS = [
        NextItemBuilderConfig(name="sequences", version=PREPROCESSING_VERSION),
        NextItemBuilderConfig(name="items", version=PREPROCESSING_VERSION),
    ]
    ITEM_FEATURES: dict[str, datasets.FeatureType] = {}
    # One preparation serves both configs of a load; cleared by `_load` once both are built.
    _prepared: dict[tuple, tuple[PreparedInteractions, list[dict[str, Any]]]] = {}

    def _info(self) -> datasets.DatasetInfo:
        if self.config.name == "sequences":
            features = SEQUENCE_FEATURES
        else:
            features = datasets.Features(
                {"item_id": datasets.Value("string"), "text": datasets.Value("string"), **self.ITEM_FEATURES}
                | ITEM_COUNT_FEATURES
            )
        return datasets.DatasetInfo(description=type(self).__doc__, features=features)

    def _read(self) -> tuple[pd.DataFrame, dict[Any, dict[str, Any]], dict[str, Any]]:  # pragma: no cover
        """Raw interactions (`user`, `item`, `timestamp`), item rows by key, and read statistics."""
        raise NotImplementedError

    def _prepare(self) -> tuple[PreparedInteractions, list[dict[str, Any]]]:
        config = self.config
        key = (
            type(self),
            config.paths,
            config.fingerprint,
            config.min_item_interactions,
            config.min_user_interactions,
            config.min_rating,
            config.strict,
        )
        if key not in self._prepared:
            interactions, item_rows, read_stats = self._read()
            known = interactions["item"].isin(item_rows.keys()).to_numpy()
            unknown = int((~known).sum())
            if unknown:
                examples = interactions.loc[~known, "item"].unique()[:5].tolist()
                message = (
                    f"{unknown} interactions name {len(interactions.loc[~known, 'item'].unique())} items absent from "
                    f"the item file (e.g. {examples})"
                )
                if config.strict:
                    raise ValueError(message + "; strict=True.")
                logger.warning("%s; they are dropped.", message)
                interactions = interactions[known]
            prepared = prepare_sequences(
                interactions["user"].to_numpy(),
                interactions["item"].to_numpy(),
                interactions["timestamp"].to_numpy(),
                min_item_interactions=config.min_item_interactions,
                min_user_interactions=config.min_user_interactions,
            )
            prepared.stats = {**read_stats, "interactions_with_unknown_items_dropped": unknown, **prepared.stats}
            items = []
            for index, item_key in enumerate(prepared.item_keys.tolist()):
                row = dict(item_rows[item_key])
                row["num_interactions"] = int(prepared.item_interactions[index])
                row["train_count"] = int(prepared.train_counts[index])
                row["cold_start"] = bool(prepared.train_counts[index] == 0)
                items.append(row)
            prepared.stats["items_with_empty_text"] = sum(1 for row in items if not row["text"].strip())
            self._prepared.clear()
            self._prepared[key] = (prepared, items)
        return self._prepared[key]

    def _split_generators(self, dl_manager):
        prepared, items = self._prepare()
        self.prepared_stats = prepared.stats
        if self.config.name == "items":
            return [datasets.SplitGenerator(name="items", gen_kwargs={"rows": items})]
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"columns": prepared.splits[name]})
            for name in ("train", "validation", "test")
        ]

    def _generate_examples(self, rows: list[dict[str, Any]] | None = None, columns: dict[str, list] | None = None):
        if rows is not None:
            yield from enumerate(rows)
            return
        for index in range(len(columns["user_id"])):
            yield index, {name: values[index] for name, values in columns.items()}


class MovieLensBuilder(_NextItemBuilder):
    """MovieLens (ML-20M layout: `ratings.csv`, `movies.csv`) for next-item recommendation; text = title + genres."""

    ITEM_FEATURES = {"title": datasets.Value("string"), "genres": datasets.List(datasets.Value("string"))}

    def _read(self):
        ratings_path, movies_path = json.loads(self.config.paths)
        ratings = read_movielens_ratings(ratings_path)
        movies = read_movielens_movies(movies_path)
        stats: dict[str, Any] = {"ratings_read": len(ratings)}
        if self.config.min_rating is not None:
            kept = ratings["rating"] >= self.config.min_rating
            stats["ratings_below_min_rating_dropped"] = int((~kept).sum())
            ratings = ratings[kept]
        interactions = pd.DataFrame(
            {
                "user": ratings["userId"].to_numpy(),
                "item": ratings["movieId"].to_numpy(),
                "timestamp": ratings["timestamp"].to_numpy(),
            }
        )
        item_rows = {
            movie_id: {
                "item_id": str(movie_id),
                "text": movielens_text(title, genres),
                "title": title,
                "genres": genres,
            }
            for movie_id, (title, genres) in movies.items()
        }
        return interactions, item_rows, stats


class AmazonBuilder(_NextItemBuilder):
    """Amazon reviews (5-core reviews + metadata lines) for next-item; text = title, categories and description."""

    ITEM_FEATURES = {
        "title": datasets.Value("string"),
        "categories": datasets.List(datasets.Value("string")),
        "description": datasets.Value("string"),
    }

    def _read(self):
        reviews_path, metadata_path = json.loads(self.config.paths)
        interactions = read_amazon_reviews(reviews_path)
        metadata = read_amazon_metadata(metadata_path, needed=set(interactions["item"].unique().tolist()))
        item_rows = {}
        for asin, record in metadata.items():
            text, categories, title, description = amazon_text(record)
            item_rows[asin] = {
                "item_id": asin,
                "text": text,
                "title": title,
                "categories": categories,
                "description": description,
            }
        return interactions, item_rows, {"reviews_read": len(interactions), "metadata_records": len(metadata)}


def _load(
    builder_class: type[_NextItemBuilder], name: str, paths: list[str], cache_dir: str | None, options: dict[str, Any]
) -> InteractionData:
    config_kwargs = {
        "paths": json.dumps([os.path.abspath(p) for p in paths]),
        "fingerprint": _fingerprint(paths),
        **options,
    }
    results = {}
    stats: dict[str, Any] = {}
    try:
        for config_name in ("sequences", "items"):
            builder = builder_class(cache_dir=cache_dir, dataset_name=name, config_name=config_name, **config_kwargs)
            builder.download_and_prepare()
            results[config_name] = builder.as_dataset()
            stats_path = Path(builder.cache_dir) / STATS_FILE
            if getattr(builder, "prepared_stats", None) is not None:
                stats_path.write_text(json.dumps(builder.prepared_stats, indent=2, sort_keys=True))
                stats = builder.prepared_stats
            elif stats_path.is_file():
                stats = json.loads(stats_path.read_text())
    finally:
        _NextItemBuilder._prepared.clear()
    stats = {"dataset": name, **stats}
    return InteractionData(splits=results["sequences"], items=results["items"]["items"], stats=stats)


def load_movielens(
    data_dir: str | os.PathLike,
    *,
    min_item_interactions: int = 5,
    min_user_interactions: int = 3,
    min_rating: float | None = None,
    strict: bool = False,
    cache_dir: str | None = None,
) -> InteractionData:
    """
    MovieLens in the ML-20M layout (`ratings.csv`: userId,movieId,rating,timestamp; `movies.csv`: movieId,title,genres)
    for next-item recommendation.

    Every rating is an interaction (as in SASRec) unless `min_rating` is given. Items are the movies left after
    filtering, in movieId order, with `text` = title and genres, `title`, `genres`, `num_interactions`, `train_count`
    (occurrences in the `train` split, the popularity that [`NextItemMetrics`] uses) and `cold_start` (never in
    `train`).

    Args:
        data_dir (`str` or `os.PathLike`): the folder holding `ratings.csv` and `movies.csv`.
        min_item_interactions (`int`, *optional*, defaults to 5): items with fewer interactions are dropped.
        min_user_interactions (`int`, *optional*, defaults to 3): users with fewer interactions are dropped.
        min_rating (`float`, *optional*): keep only ratings at least this high.
        strict (`bool`, *optional*, defaults to `False`): ratings of movies absent from `movies.csv` raise instead of
            being dropped with a warning.
        cache_dir (`str`, *optional*): the `datasets` cache folder (default: `HF_DATASETS_CACHE`).

    Raises:
        `FileNotFoundError` naming a missing file; `ValueError` naming `file:line` of a malformed line.
    """
    data_dir = os.fspath(data_dir)
    paths = [
        _require_file(os.path.join(data_dir, "ratings.csv"), "MovieLens ratings file"),
        _require_file(os.path.join(data_dir, "movies.csv"), "MovieLens movies file"),
    ]
    options = {
        "min_item_interactions": min_item_interactions,
        "min_user_interactions": min_user_interactions,
        "min_rating": min_rating,
        "strict": strict,
    }
    return _load(MovieLensBuilder, "movielens", paths, cache_dir, options)


def load_amazon(
    reviews_path: str | os.PathLike,
    metadata_path: str | os.PathLike,
    *,
    min_item_interactions: int = 5,
    min_user_interactions: int = 3,
    strict: bool = False,
    cache_dir: str | None = None,
) -> InteractionData:
    """
    Amazon reviews (e.g. Beauty) for next-item recommendation: the 5-core reviews as JSON lines (`reviewerID`, `asin`,
    `unixReviewTime`) and the item metadata, one record per line, Python literals as in the 2014 release (parsed with
    `ast.literal_eval`, never evaluated) or JSON as in the 2018 release; `.gz` files are read directly.

    Items are the products left after filtering, in asin order, with `text` = title, categories and description,
    and the columns `title`, `categories`, `description`, `num_interactions`, `train_count` and `cold_start`.
    Reviews of products absent from the metadata are dropped with a warning (`strict=True` raises).

    Args:
        reviews_path, metadata_path (`str` or `os.PathLike`): the two files.
        min_item_interactions, min_user_interactions, strict, cache_dir: as [`load_movielens`].
    """
    paths = [
        _require_file(reviews_path, "Amazon reviews file"),
        _require_file(metadata_path, "Amazon metadata file"),
    ]
    options = {
        "min_item_interactions": min_item_interactions,
        "min_user_interactions": min_user_interactions,
        "strict": strict,
    }
    return _load(AmazonBuilder, "amazon", paths, cache_dir, options)


__all__ = [
    "AmazonBuilder",
    "MovieLensBuilder",
    "NextItemBuilderConfig",
    "amazon_text",
    "load_amazon",
    "load_movielens",
    "movielens_text",
    "read_amazon_metadata",
    "read_amazon_reviews",
    "read_movielens_movies",
    "read_movielens_ratings",
]
