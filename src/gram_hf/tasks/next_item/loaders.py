"""
Loaders of MovieLens-20M, Amazon reviews (e.g. Beauty), Gowalla check-ins and the generic interaction table (CSV or
Parquet) for next-item recommendation, as `datasets` builders.

Each reads the raw files, applies [`prepare_sequences`] (items with >= 5 and users with >= 3 interactions,
chronological sequences, leave-one-out) and returns an [`InteractionData`]: `train` / `validation` / `test` splits of
`user_id`, `items` (catalog indices) and `timestamps`, and the items (row `i` = catalog index `i`) with their text.

Each is a [`~gram_hf.builders.RawFilesBuilder`] instantiated in code (datasets 5.x has no loading scripts), so the
prepared Arrow tables are cached. The cache key holds every raw file's absolute path, size and modification time and
the preprocessing options, so an edited file is re-read instead of being served stale. The raw files are read by
[`~gram_hf.tasks.next_item.readers`].
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...builders import RawFilesBuilder, RawFilesConfig, fingerprint_files
from ...data import InteractionData
from ...raw_files import DataFileError
from . import preprocessing, readers
from .preprocessing import PreparedInteractions, prepare_sequences
from .readers import (
    amazon_text,
    movielens_text,
    parse_integer,
    read_amazon_metadata,
    read_amazon_reviews,
    read_gowalla_checkins,
    read_interaction_table,
    read_item_texts,
    read_movielens_movies,
    read_movielens_ratings,
    require_file,
)

logger = logging.getLogger(__name__)

STATS_NAME = "stats"
"""The builders' stats are kept as `gram_hf_stats.json` beside the Arrow files (see `RawFilesBuilder.write_stats`)."""
# Bump when the prepared format or the preprocessing changes, so old caches are not reused.
PREPROCESSING_VERSION = "1.0.0"


@dataclass
class NextItemBuilderConfig(RawFilesConfig):
    """
    Options of the next-item builders. `paths` and `fingerprint` (path, size and mtime of each raw file) are part of
    the config, hence of the cache key.
    """

    paths: str = ""
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


MISSING_TEXT_CHOICES = ("error", "drop", "empty")
"""What the loaders with an item-text table do with interactions naming items it has no text for."""


@dataclass
class NextItemTableConfig(NextItemBuilderConfig):
    """
    Options of the Gowalla and generic-table builders besides [`NextItemBuilderConfig`]'s: the column names of the
    interaction table (generic only) and of the item-text table, and what to do with items without a text.
    """

    user_column: str = "user_id"
    item_column: str = "item_id"
    timestamp_column: str = "timestamp"
    text_columns: tuple[str, ...] = ("text",)
    missing_text: str = "error"


class _ItemRows(Mapping):
    """
    Item rows by key, each made when asked for: the loaders of large catalogs (Gowalla's 1.3M locations) build the
    rows of the items left after filtering only. `keys` (an Arrow array) are the items that have a row.
    """

    def __init__(self, keys: pa.Array, row: Callable[[Any], dict[str, Any]]):
        self.keys = keys
        self._row = row

    def __getitem__(self, key: Any) -> dict[str, Any]:
        return self._row(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys.to_pylist())

    def __len__(self) -> int:
        return len(self.keys)


def _text_item_rows(
    interactions: pa.Table,
    texts: dict[Any, str] | None,
    texts_path: str | None,
    missing_text: str,
    extra: Callable[[Any], dict[str, Any]] | None = None,
) -> tuple[_ItemRows, dict[str, Any]]:
    """
    The item rows of interactions whose items are named by id only: `item_id`, `text` from `texts` (read from
    `texts_path`; `None`: no text table, every text empty) and `extra(key)`'s columns; and read stats. Items of the
    interactions without a text: `missing_text="error"` raises a [`DataFileError`] naming the text file, how many and
    which; `"drop"` leaves them without a row (their interactions are dropped as `unknown_items`, or raise under
    `strict=True`); `"empty"` gives them an empty text (counted as `items_without_text`, one warning).
    """
    distinct = pc.unique(interactions["item"])
    extra = extra or (lambda key: {})
    if texts is None:
        return _ItemRows(distinct, lambda key: {"item_id": str(key), "text": "", **extra(key)}), {}
    has_text = pc.is_in(distinct, value_set=pa.array(list(texts), distinct.type))
    missing = distinct.filter(pc.invert(has_text))
    stats: dict[str, Any] = {}
    if len(missing):
        affected = pc.sum(pc.is_in(interactions["item"], value_set=missing)).as_py()
        message = (
            f"{affected} interactions name {len(missing)} items without a text in this item table (e.g. "
            f"{[str(key) for key in missing[:5].to_pylist()]})"
        )
        if missing_text == "error":
            raise DataFileError(
                texts_path,
                None,
                f"{message}; add their texts, or pass missing_text='drop' (drop their interactions) or "
                "missing_text='empty' (keep them with an empty text)",
            )
        if missing_text == "empty":
            logger.warning("%s: %s; they get an empty text (missing_text='empty').", texts_path, message)
            stats["items_without_text"] = len(missing)
        else:
            distinct = distinct.filter(has_text)
    rows = _ItemRows(distinct, lambda key: {"item_id": str(key), "text": texts.get(key, ""), **extra(key)})
    return rows, stats


class _NextItemBuilder(RawFilesBuilder):
    """Shared logic: config `sequences` builds the splits, config `items` the catalog; both from one preparation."""

    BUILDER_CONFIG_CLASS = NextItemBuilderConfig
    BUILDER_CONFIGS = [
        NextItemBuilderConfig(name="sequences", version=PREPROCESSING_VERSION),
        NextItemBuilderConfig(name="items", version=PREPROCESSING_VERSION),
    ]
    ITEM_FEATURES: dict[str, datasets.FeatureType] = {}
    # The raw-file readers and the k-core / leave-one-out preprocessing decide what is written.
    SOURCE_DEPENDENCIES = (readers, preprocessing)
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

    def _read(self) -> tuple[pa.Table, Mapping[Any, dict[str, Any]], dict[str, Any]]:  # pragma: no cover
        """
        Raw interactions (an Arrow table of `user`, `item`, `timestamp`), item rows by key (a dict, or [`_ItemRows`]
        made on demand), and read statistics: `rows_read` (raw interaction rows), `dropped` (reason -> rows the
        reader left out, e.g. `below_min_rating`) and any others.
        """
        raise NotImplementedError

    def _prepare(self) -> tuple[PreparedInteractions, list[dict[str, Any]]]:
        config = self.config
        # Every reader option (not the config's name: both configs of a load share one preparation).
        key = (type(self),) + tuple(
            (field.name, repr(getattr(config, field.name)))
            for field in dataclasses.fields(config)
            if field.name not in ("name", "version", "data_dir", "data_files", "description")
        )
        if key not in self._prepared:
            interactions, item_rows, read_stats = self._read()
            dropped = dict(read_stats.pop("dropped", {}))
            if isinstance(item_rows, _ItemRows):
                item_keys = item_rows.keys.cast(interactions["item"].type)
            else:
                item_keys = pa.array(list(item_rows), interactions["item"].type)
            known = pc.is_in(interactions["item"], value_set=item_keys)
            unknown = len(known) - pc.sum(known).as_py() if len(known) else 0
            if unknown:
                absent = pc.unique(interactions["item"].filter(pc.invert(known)))  # in order of first appearance
                message = (
                    f"{unknown} interactions name {len(absent)} items absent from the item file (e.g. "
                    f"{absent[:5].to_pylist()})"
                )
                if config.strict:
                    raise ValueError(message + "; strict=True.")
                logger.warning("%s; they are dropped.", message)
                interactions = interactions.filter(known)
                dropped["unknown_items"] = unknown
            prepared = prepare_sequences(
                interactions["user"],
                interactions["item"],
                interactions["timestamp"],
                min_item_interactions=config.min_item_interactions,
                min_user_interactions=config.min_user_interactions,
            )
            dropped.update(prepared.stats.pop("dropped"))
            # rows_read = interactions (in the splits) + sum(dropped): the dropped-counts contract of InteractionData.
            prepared.stats = {**read_stats, "dropped": dropped, "removed_from_train": {}, **prepared.stats}
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
        self.write_stats(STATS_NAME, prepared.stats)
        if self.config.name == "items":
            return [datasets.SplitGenerator(name="items", gen_kwargs={"rows": items})]
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"table": prepared.tables[name]})
            for name in ("train", "validation", "test")
        ]

    def _generate_tables(self, rows: list[dict[str, Any]] | None = None, table: pa.Table | None = None):
        if rows is not None:  # the item rows, a few thousand: through the base's row path
            yield from super()._generate_tables(rows=rows)
        else:  # the sequences, built in bulk by `prepare_sequences`
            yield 0, table

    def _generate_examples(self, rows: list[dict[str, Any]]):
        yield from enumerate(rows)


class MovieLensBuilder(_NextItemBuilder):
    """MovieLens (ML-20M layout: `ratings.csv`, `movies.csv`) for next-item recommendation; text = title + genres."""

    ITEM_FEATURES = {"title": datasets.Value("string"), "genres": datasets.List(datasets.Value("string"))}
    DATASET_NAME = "movielens"

    def _read(self):
        ratings_path, movies_path = json.loads(self.config.paths)
        ratings = read_movielens_ratings(ratings_path)
        movies = read_movielens_movies(movies_path)
        stats: dict[str, Any] = {"rows_read": ratings.num_rows, "dropped": {}}
        if self.config.min_rating is not None:
            kept = pc.greater_equal(ratings["rating"], self.config.min_rating)
            below = ratings.num_rows - pc.sum(kept).as_py() if ratings.num_rows else 0
            if below:
                stats["dropped"]["below_min_rating"] = below
            ratings = ratings.filter(kept)
        interactions = pa.table(
            {"user": ratings["userId"], "item": ratings["movieId"], "timestamp": ratings["timestamp"]}
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
    DATASET_NAME = "amazon"

    def _read(self):
        reviews_path, metadata_path = json.loads(self.config.paths)
        interactions = read_amazon_reviews(reviews_path)
        metadata = read_amazon_metadata(metadata_path, needed=set(pc.unique(interactions["item"]).to_pylist()))
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
        return interactions, item_rows, {"rows_read": interactions.num_rows, "metadata_records": len(metadata)}


class GowallaBuilder(_NextItemBuilder):
    """Gowalla check-ins (`user, time, latitude, longitude, location id`) for next-item; items are locations."""

    BUILDER_CONFIG_CLASS = NextItemTableConfig
    BUILDER_CONFIGS = [
        NextItemTableConfig(name="sequences", version=PREPROCESSING_VERSION),
        NextItemTableConfig(name="items", version=PREPROCESSING_VERSION),
    ]
    ITEM_FEATURES = {"latitude": datasets.Value("float64"), "longitude": datasets.Value("float64")}
    DATASET_NAME = "gowalla"

    def _read(self):
        config = self.config
        checkins_path, *items_path = json.loads(config.paths)
        table, dropped = read_gowalla_checkins(checkins_path)
        if dropped.total:
            if config.strict:
                raise dropped.error()
            logger.warning("Dropped %s; strict=True raises instead.", dropped.summary())
        interactions = pa.table({"user": table["user"], "item": table["item"], "timestamp": table["timestamp"]})
        # A location's coordinates: those of its first check-in in the file.
        locations, first = np.unique(table["item"].to_numpy(), return_index=True)
        latitudes, longitudes = table["latitude"].to_numpy()[first], table["longitude"].to_numpy()[first]

        def coordinates(key: int) -> dict[str, float]:
            index = int(np.searchsorted(locations, key))
            return {"latitude": float(latitudes[index]), "longitude": float(longitudes[index])}

        texts = None
        if items_path:
            texts = {}  # by location id; ids that are no integers name no location
            for item_id, text in read_item_texts(items_path[0], config.item_column, config.text_columns).items():
                try:
                    texts[parse_integer(item_id)] = text
                except ValueError:
                    continue
        item_rows, text_stats = _text_item_rows(
            interactions, texts, items_path[0] if items_path else None, config.missing_text, coordinates
        )
        stats = {"rows_read": table.num_rows + dropped.total, **dropped.to_dict(), **text_stats}
        if not dropped.total:
            del stats["dropped_examples"]
        return interactions, item_rows, stats


class NextItemCSVBuilder(_NextItemBuilder):
    """The generic interaction table (`user_id,item_id,timestamp`, CSV or Parquet) and an optional item-text table."""

    BUILDER_CONFIG_CLASS = NextItemTableConfig
    BUILDER_CONFIGS = [
        NextItemTableConfig(name="sequences", version=PREPROCESSING_VERSION),
        NextItemTableConfig(name="items", version=PREPROCESSING_VERSION),
    ]
    DATASET_NAME = "next_item_csv"

    def _read(self):
        config = self.config
        interactions_path, *items_path = json.loads(config.paths)
        interactions = read_interaction_table(
            interactions_path, config.user_column, config.item_column, config.timestamp_column
        )
        texts = None
        if items_path:
            texts = read_item_texts(items_path[0], config.item_column, config.text_columns)
        item_rows, text_stats = _text_item_rows(
            interactions, texts, items_path[0] if items_path else None, config.missing_text
        )
        return interactions, item_rows, {"rows_read": interactions.num_rows, "dropped": {}, **text_stats}


def _table_options(text_columns: str | Sequence[str], missing_text: str) -> dict[str, Any]:
    """The item-text options of [`load_gowalla`] and [`load_next_item_csv`], checked."""
    columns = (text_columns,) if isinstance(text_columns, str) else tuple(text_columns)
    if not columns:
        raise ValueError("text_columns must name at least one column of the item-text table.")
    if missing_text not in MISSING_TEXT_CHOICES:
        raise ValueError(f"missing_text must be one of {list(MISSING_TEXT_CHOICES)}, got {missing_text!r}.")
    return {"text_columns": columns, "missing_text": missing_text}


def _load(
    builder_class: type[_NextItemBuilder], paths: list[str], cache_dir: str | None, options: dict[str, Any]
) -> InteractionData:
    """Prepares both configs of `builder_class` on the raw `paths` (cached) and returns them with their stats."""
    config = {
        "fingerprint": fingerprint_files(paths),
        "cache_dir": cache_dir,
        "paths": json.dumps([os.path.abspath(p) for p in paths]),
        **options,
    }
    try:
        sequences = builder_class.prepare("sequences", **config)
        items = builder_class.prepare("items", **config)
    finally:
        # One preparation serves both configs of this load; do not keep its arrays beyond it.
        _NextItemBuilder._prepared.clear()
    stats = {"dataset": builder_class.DATASET_NAME, **sequences.read_stats(STATS_NAME)}
    splits = datasets.DatasetDict()
    for name in ("train", "validation", "test"):
        if sequences.info.splits[name].num_examples:
            splits[name] = sequences.as_dataset(split=name)
        else:  # `datasets` writes no file for an empty split (no user has four items: an empty `train`)
            empty = {column: [] for column in SEQUENCE_FEATURES}
            splits[name] = datasets.Dataset.from_dict(empty, features=SEQUENCE_FEATURES, split=name)
    return InteractionData(splits=splits, items=items.as_dataset()["items"], stats=stats)


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

    Stats: `rows_read` (rating rows), `dropped` (reason -> ratings in no split: `below_min_rating`, `unknown_items`,
    `duplicates` (a repeated user-movie pair keeps its first rating), `filtered_min_interactions` (the k-core
    filters); zero counts left out) and `removed_from_train` (empty), so that `rows_read == interactions +
    sum(dropped.values())`; then `users`, `items`, `interactions`, `cold_start_items`, ...

    Raises:
        `FileNotFoundError` naming a missing file; a [`~gram_hf.raw_files.DataFileError`] (a `ValueError`) listing
        the first malformed lines as `file:line: problem` (invalid UTF-8 and cut-off `.gz` files included).
    """
    data_dir = os.fspath(data_dir)
    paths = [
        require_file(os.path.join(data_dir, "ratings.csv"), "MovieLens ratings file"),
        require_file(os.path.join(data_dir, "movies.csv"), "MovieLens movies file"),
    ]
    options = {
        "min_item_interactions": min_item_interactions,
        "min_user_interactions": min_user_interactions,
        "min_rating": min_rating,
        "strict": strict,
    }
    return _load(MovieLensBuilder, paths, cache_dir, options)


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
    Reviews of products absent from the metadata are dropped with a warning (`strict=True` raises). Stats and
    errors as [`load_movielens`] (`rows_read`: review lines; a cut-off `.json.gz` names the file and the line reached).

    Args:
        reviews_path, metadata_path (`str` or `os.PathLike`): the two files.
        min_item_interactions, min_user_interactions, strict, cache_dir: as [`load_movielens`].
    """
    paths = [
        require_file(reviews_path, "Amazon reviews file"),
        require_file(metadata_path, "Amazon metadata file"),
    ]
    options = {
        "min_item_interactions": min_item_interactions,
        "min_user_interactions": min_user_interactions,
        "strict": strict,
    }
    return _load(AmazonBuilder, paths, cache_dir, options)


def load_gowalla(
    checkins: str | os.PathLike,
    items: str | os.PathLike | None = None,
    *,
    item_column: str = "item_id",
    text_columns: str | Sequence[str] = ("text",),
    missing_text: str = "error",
    min_item_interactions: int = 5,
    min_user_interactions: int = 3,
    strict: bool = False,
    cache_dir: str | None = None,
) -> InteractionData:
    """
    Gowalla check-ins (SNAP's `loc-gowalla_totalCheckins.txt`, or `.txt.gz` read directly) for next-item
    recommendation: items are locations, each user's check-ins in time order are their sequence.

    The file is tab-separated without a header, one check-in a line: `user \\t check-in time \\t latitude \\t
    longitude \\t location id`, e.g. `0\\t2010-10-19T23:55:27Z\\t30.2359091167\\t-97.7951395833\\t22847`; user and
    location ids are integers, the time is ISO 8601 (`Z`, an offset, or naive = UTC; timestamps become Unix seconds).
    Repeated check-ins of a user at a location keep the first (`duplicates`); then the k-core filters and
    leave-one-out as [`load_movielens`].

    Gowalla has no item text: without `items`, every location's `text` is empty, for ID-based models (`--item_encoder
    id`); a content model needs an item-text table `items` (CSV or Parquet with the columns `item_column` and
    `text_columns`, as [`load_next_item_csv`]'s, its ids the location ids). Items are the locations left after
    filtering, in location-id order, with `text`, `latitude` and `longitude` (of the location's first check-in in the
    file), `num_interactions`, `train_count` and `cold_start`.

    Args:
        checkins (`str` or `os.PathLike`): the check-in file.
        items (`str` or `os.PathLike`, *optional*): an item-text table for the locations; locations in it that are
            never checked into are fine.
        item_column, text_columns (*optional*): the item-text table's id column and text column(s) (several are
            joined by `". "`).
        missing_text (`str`, *optional*, defaults to `"error"`): check-ins at locations without a text in `items`:
            `"error"` raises naming how many and which, `"drop"` drops them (`unknown_items`, one warning; raises
            under `strict=True`), `"empty"` keeps them with an empty text (`items_without_text`, one warning).
        min_item_interactions, min_user_interactions, cache_dir: as [`load_movielens`].
        strict (`bool`, *optional*, defaults to `False`): check-ins with a latitude outside [-90, 90] or a longitude
            outside [-180, 180] (or not finite) raise, listing their lines, instead of being dropped with one warning
            (`invalid_coordinates`, examples in `dropped_examples`); with `missing_text="drop"`, so do check-ins at
            locations without a text.

    Stats: `rows_read` (check-in lines), `dropped` (`invalid_coordinates`, `unknown_items`, `duplicates`,
    `filtered_min_interactions`), `removed_from_train` (empty), as [`load_movielens`]; `items_with_empty_text`.

    Raises:
        `FileNotFoundError` naming a missing file; a [`~gram_hf.raw_files.DataFileError`] (a `ValueError`) listing
        the first malformed lines as `file:line: problem` (not five tab-separated fields, an id that is not an
        integer, a time that is not ISO 8601, a coordinate that is not a number; invalid UTF-8 and cut-off `.gz`
        files included) and how many more there are; an empty file is one too.
    """
    paths = [require_file(checkins, "Gowalla check-in file")]
    if items is not None:
        paths.append(require_file(items, "item-text table"))
    options = {
        "item_column": item_column,
        **_table_options(text_columns, missing_text),
        "min_item_interactions": min_item_interactions,
        "min_user_interactions": min_user_interactions,
        "strict": strict,
    }
    return _load(GowallaBuilder, paths, cache_dir, options)


def load_next_item_csv(
    interactions: str | os.PathLike,
    items: str | os.PathLike | None = None,
    *,
    user_column: str = "user_id",
    item_column: str = "item_id",
    timestamp_column: str = "timestamp",
    text_columns: str | Sequence[str] = ("text",),
    missing_text: str = "error",
    min_item_interactions: int = 5,
    min_user_interactions: int = 3,
    strict: bool = False,
    cache_dir: str | None = None,
) -> InteractionData:
    """
    Any next-item dataset from the generic tables: interactions `user_id,item_id,timestamp` and, optionally, item
    texts `item_id,text`; each a CSV file with a header (plain or `.gz`, fields with commas, quotes or newlines
    CSV-quoted) or Parquet (`.parquet`, `.pq`), chosen by the file name.

    Columns are read by name (`user_column`, ...; other columns are ignored). Ids are strings (stripped). A timestamp
    is an integer, taken as it is (Unix seconds, or any unit the whole file shares), or an ISO-8601 date-time (`Z`,
    an offset, or naive = UTC), as Unix seconds, fractions dropped; Parquet timestamp columns too. Repeated
    user-item pairs keep their first interaction (`duplicates`); then the k-core filters and leave-one-out as
    [`load_movielens`]. Items are those left after filtering, in item-id (string) order, with `text`,
    `num_interactions`, `train_count` and `cold_start`.

    An item's text is its non-empty `text_columns`, stripped and joined by `". "`. Without `items` every text is
    empty (ID-based models only); items in `items` that no interaction names are fine.

    Args:
        interactions (`str` or `os.PathLike`): the interaction table.
        items (`str` or `os.PathLike`, *optional*): the item-text table (its ids in `item_column` too).
        user_column, item_column, timestamp_column (`str`, *optional*): the column names.
        text_columns (`str` or `Sequence[str]`, *optional*, defaults to `("text",)`): the item-text column(s).
        missing_text (`str`, *optional*, defaults to `"error"`): interactions naming items without a text in
            `items`: `"error"` raises naming how many and which, `"drop"` drops them (`unknown_items`, one warning;
            raises under `strict=True`), `"empty"` keeps them with an empty text (`items_without_text`, a warning).
        min_item_interactions, min_user_interactions, cache_dir: as [`load_movielens`].
        strict (`bool`, *optional*, defaults to `False`): with `missing_text="drop"`, raise instead of dropping.

    Stats: `rows_read` (interaction rows), `dropped` (`unknown_items`, `duplicates`, `filtered_min_interactions`),
    `removed_from_train` (empty), as [`load_movielens`]; `items_with_empty_text`.

    Raises:
        `FileNotFoundError` naming a missing file; a [`~gram_hf.raw_files.DataFileError`] (a `ValueError`) naming the
        file and the missing columns, or listing the first bad lines as `file:line: problem` (Parquet: `file: row N:
        problem`; a row with the wrong number of fields, an empty id, a timestamp that is neither an integer nor
        ISO 8601, a repeated id in the item table; invalid UTF-8 and cut-off `.gz` files included) and how many more
        there are; an empty file, or one without rows, is one too.
    """
    paths = [require_file(interactions, "interaction table")]
    if items is not None:
        paths.append(require_file(items, "item-text table"))
    options = {
        "user_column": user_column,
        "item_column": item_column,
        "timestamp_column": timestamp_column,
        **_table_options(text_columns, missing_text),
        "min_item_interactions": min_item_interactions,
        "min_user_interactions": min_user_interactions,
        "strict": strict,
    }
    return _load(NextItemCSVBuilder, paths, cache_dir, options)


__all__ = [
    "AmazonBuilder",
    "GowallaBuilder",
    "MISSING_TEXT_CHOICES",
    "MovieLensBuilder",
    "NextItemBuilderConfig",
    "NextItemCSVBuilder",
    "NextItemTableConfig",
    "load_amazon",
    "load_gowalla",
    "load_movielens",
    "load_next_item_csv",
]
