"""
The one base of gram-hf's dataset loaders: a `datasets.ArrowBasedBuilder` over raw files the user downloaded.

Every loader (knowledge tracing, MIND, next-item) reads local raw files through a builder instantiated in code
(datasets 5.x has no loading scripts), so the parsed tables are cached as Arrow. `datasets` keys that cache on the
builder's config and never looks at file contents; [`RawFilesBuilder`] adds what a local-file loader needs on top:

- [`fingerprint_files`]: the raw files' path, size and modification time as a config field, so an edited file is
  parsed again instead of being served stale;
- [`source_hash`]: the builder's own source (and the shared reading layer, [`gram_hf.raw_files`]) as the cache
  `hash`, so a new reader does not reuse an old reader's cache;
- [`RawFilesBuilder.prepare`]: instantiate, prepare (cached), and re-raise the reader's own error (a
  [`~gram_hf.raw_files.DataFileError`]: file, line, what is wrong) instead of the `DatasetGenerationError` that
  wraps it;
- [`RawFilesBuilder.write_stats`] / [`RawFilesBuilder.read_stats`]: what a reader counted (dropped rows, ...) kept
  beside the Arrow files, so a cached load reports what the first load saw;
- bulk writing: a reader yields whole Arrow tables (`_generate_tables`), which `datasets` writes as they are, or, for
  small tables, rows (`_generate_examples`), which the base gathers into tables. Encoding rows one by one, as a
  `GeneratorBasedBuilder` does, cost most of a first load (60% of POJ's: issue 17).

This module is engine level: it imports no task.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import datasets
import pyarrow as pa

from . import raw_files

CACHE_FORMAT_VERSION = 4
"""
Bumped when what every builder writes changes, so caches written by an older gram-hf are not reused (4: the tables
are written in bulk by an `ArrowBasedBuilder`, issue 17; the rows are the same).
"""


def fingerprint_files(paths: Iterable[str | os.PathLike]) -> str:
    """
    A cache key for raw files: their absolute path, size and modification time (ns), in any order.

    `datasets` keys a builder's cache on its config only, never on file contents, so a builder takes this fingerprint
    as a config field: an edited, replaced, added or removed raw file gives a new key and a fresh parse instead of a
    stale cache. Stats are cheap (no content is read), which matters for EdNet's ~800k user files.

    Raises:
        `FileNotFoundError`: naming the first path that does not exist.
    """
    entries = []
    for path in paths:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"No such file or directory: {os.fspath(path)!r}") from None
        entries.append((os.path.abspath(path), stat.st_size, stat.st_mtime_ns))
    entries.sort()
    return hashlib.sha256("".join(map(repr, entries)).encode()).hexdigest()[:32]


def source_hash(*objects: Any) -> str:
    """Hash of the source files defining `objects` (classes, functions, modules) and of [`CACHE_FORMAT_VERSION`]."""
    digest = hashlib.sha256(str(CACHE_FORMAT_VERSION).encode())
    for source_file in sorted({_source_file(obj) for obj in objects} - {None}):
        digest.update(Path(source_file).read_bytes())
    return digest.hexdigest()[:16]


def _source_file(obj: Any) -> str | None:
    try:
        source_file = inspect.getsourcefile(obj)
    except TypeError:  # built-in objects have no source file
        return None
    return source_file if source_file and os.path.exists(source_file) else None


@dataclass
class RawFilesConfig(datasets.BuilderConfig):
    """
    Config of a [`RawFilesBuilder`]. Subclasses add their reader options as fields (all part of the cache key).

    Args:
        fingerprint (`str`): the raw files' [`fingerprint_files`], set by [`RawFilesBuilder.prepare`].
    """

    fingerprint: str = ""


class RawFilesBuilder(datasets.ArrowBasedBuilder):
    """
    Base of the builders that read raw files the user supplies (no download): use [`RawFilesBuilder.prepare`] to run
    one. Subclasses implement `_info` and `_split_generators` as for any `datasets` builder, and either

    - `_generate_tables(**gen_kwargs)`, yielding `(key, pyarrow.Table)` with the columns of the features (cast to
      their types when written): the way for anything large, as the rows never become Python objects; or
    - `_generate_examples(**gen_kwargs)`, yielding `(key, row)` as in a `datasets.GeneratorBasedBuilder`: the rows
      are gathered into tables of [`RawFilesBuilder.ROWS_PER_TABLE`] rows (encoded with the features first when
      these are more than plain values); fine for item tables and tests, with a Python object per value.

    Class attributes:
        DATASET_NAME (`str`): the cache folder's name is `gram_hf_<DATASET_NAME>`.
        SOURCE_DEPENDENCIES (`tuple`): modules or functions, besides the builder's classes, whose source decides what
            the builder writes (its readers, its preprocessing): editing them invalidates the cache too.
    """

    BUILDER_CONFIG_CLASS = RawFilesConfig
    DATASET_NAME: ClassVar[str] = "raw_files"
    SOURCE_DEPENDENCIES: ClassVar[tuple[Any, ...]] = ()
    ROWS_PER_TABLE: ClassVar[int] = 10_000
    """Rows of `_generate_examples` gathered into one table before it is written."""

    @classmethod
    def prepare(
        cls,
        config_name: str,
        *,
        fingerprint: str,
        cache_dir: str | os.PathLike | None = None,
        rebuild: bool = False,
        **config_kwargs: Any,
    ) -> RawFilesBuilder:
        """
        Instantiates the builder for `config_name`, prepares it (parsing the raw files unless a cache with the same
        fingerprint, options and source exists) and returns it; read its splits with `as_dataset()`.

        `datasets` wraps errors raised while generating in `DatasetGenerationError`; the reader's own `ValueError` /
        `FileNotFoundError` (file, line, what is wrong) is re-raised as it is, since that is the message users need.

        Args:
            config_name (`str`): the builder config to prepare.
            fingerprint (`str`): [`fingerprint_files`] of every raw file the config reads (computed once by the
                caller when several configs read the same files).
            cache_dir (`str` or `os.PathLike`, *optional*): the `datasets` cache (default: `HF_DATASETS_CACHE`).
            rebuild (`bool`, *optional*, defaults to `False`): parse again even when a cache exists.
            config_kwargs: the config's reader options.
        """
        # The builder's own classes, from `cls` up to this base, and the reading layer every reader uses: a change to
        # any of them may change what is written (or what is dropped and counted).
        own_classes = cls.__mro__[: cls.__mro__.index(RawFilesBuilder) + 1]
        builder = cls(
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            config_name=config_name,
            dataset_name=f"gram_hf_{cls.DATASET_NAME}",
            hash=source_hash(*own_classes, raw_files, *cls.SOURCE_DEPENDENCIES),
            fingerprint=fingerprint,
            **config_kwargs,
        )
        try:
            builder.download_and_prepare(download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD if rebuild else None)
        except datasets.exceptions.DatasetGenerationError as err:
            cause = err.__cause__
            if isinstance(cause, (ValueError, FileNotFoundError)):
                raise cause.with_traceback(None) from None
            raise
        return builder

    def _generate_tables(self, **gen_kwargs: Any) -> Iterator[tuple[int, pa.Table]]:
        features = self.info.features
        schema = features.arrow_schema
        # Plain values (strings, numbers, lists of them) go to Arrow as they are; `encode_example` would only walk
        # every value in Python first. Other features (class labels, images, ...) need it.
        encode = not _plain_values(features)
        rows: list[dict[str, Any]] = []
        index = 0
        for _, example in self._generate_examples(**gen_kwargs):
            rows.append(features.encode_example(example) if encode else example)
            if len(rows) == self.ROWS_PER_TABLE:
                yield index, pa.Table.from_pylist(rows, schema=schema)
                index += 1
                rows = []
        if rows:
            yield index, pa.Table.from_pylist(rows, schema=schema)

    def _generate_examples(self, **gen_kwargs: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
        raise NotImplementedError(f"{type(self).__name__} implements neither _generate_tables nor _generate_examples.")

    def write_stats(self, name: str, stats: Mapping[str, Any]) -> None:
        """
        Keeps `stats` as `gram_hf_<name>.json` beside the Arrow files. Call it while preparing (from
        `_split_generators`, `_generate_tables` or `_generate_examples`): the output folder is then the one renamed
        into the cache when preparation ends, so the file is there for every later, cached load.
        """
        with open(os.path.join(self._output_dir, f"gram_hf_{name}.json"), "w", encoding="utf-8") as handle:
            json.dump(stats, handle, indent=1, sort_keys=True)

    def read_stats(self, name: str) -> dict[str, Any]:
        """The stats [`RawFilesBuilder.write_stats`] kept under `name`, once the builder is prepared."""
        with open(os.path.join(self.cache_dir, f"gram_hf_{name}.json"), encoding="utf-8") as handle:
            return json.load(handle)


def _plain_values(feature: Any) -> bool:
    """Whether `feature` holds only `Value`s, in lists and dicts: what Arrow converts from Python without encoding."""
    if isinstance(feature, datasets.Value):
        return True
    if isinstance(feature, (datasets.List, datasets.LargeList)):
        return _plain_values(feature.feature)
    if isinstance(feature, dict):
        return all(_plain_values(value) for value in feature.values())
    return False


__all__ = ["CACHE_FORMAT_VERSION", "RawFilesBuilder", "RawFilesConfig", "fingerprint_files", "source_hash"]
