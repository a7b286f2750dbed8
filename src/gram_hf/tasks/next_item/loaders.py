"""
Loaders of MovieLens-20M and Amazon reviews (e.g. Beauty) for next-item recommendation, as `datasets` builders.

Both read the raw files, apply [`prepare_sequences`] (items with >= 5 and users with >= 3 interactions, chronological
sequences, leave-one-out) and return an [`InteractionData`]: `train` / `validation` / `test` splits of `user_id`,
`items` (catalog indices) and `timestamps`, and the items (row `i` = catalog index `i`) with their text.

Each is a [`~gram_hf.builders.RawFilesBuilder`] instantiated in code (datasets 5.x has no loading scripts), so the
prepared Arrow tables are cached. The cache key holds every raw file's absolute path, size and modification time and
the preprocessing options, so an edited file is re-read instead of being served stale. The raw files are read by
[`~gram_hf.tasks.next_item.readers`].
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc

from ...builders import RawFilesBuilder, RawFilesConfig, fingerprint_files
from ...data import InteractionData
from . import preprocessing, readers
from .preprocessing import PreparedInteractions, prepare_sequences
from .readers import (
    amazon_text,
    movielens_text,
    read_amazon_metadata,
    read_amazon_reviews,
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

    def _read(self) -> tuple[pa.Table, dict[Any, dict[str, Any]], dict[str, Any]]:  # pragma: no cover
        """
        Raw interactions (an Arrow table of `user`, `item`, `timestamp`), item rows by key, and read statistics:
        `rows_read` (raw interaction rows), `dropped` (reason -> rows the reader left out, e.g. `below_min_rating`)
        and any others.
        """
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
            dropped = dict(read_stats.pop("dropped", {}))
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
    return InteractionData(splits=sequences.as_dataset(), items=items.as_dataset()["items"], stats=stats)


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


__all__ = ["AmazonBuilder", "MovieLensBuilder", "NextItemBuilderConfig", "load_amazon", "load_movielens"]
