"""
The MIND `datasets` builder: config `news` turns the `news.tsv` files into the item table, config `behaviors` the
`behaviors.tsv` files into impression splits (training rows with sampled negatives, whole impressions elsewhere).
[`~gram_hf.tasks.news_recommendation.load_mind`] runs both; the files come from
[`~gram_hf.tasks.news_recommendation.mind_files`], the lines are read by
[`~gram_hf.tasks.news_recommendation.mind_parsing`].
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...builders import RawFilesBuilder, RawFilesConfig, fingerprint_files
from ...raw_files import BadLines, DataFileError, iter_lines, strip_strings
from . import mind_files, mind_parsing
from .mind_files import BODY_FILENAME, MINDFolders, find_mind_folders, split_names
from .mind_parsing import (
    NEWS_COLUMNS,
    BehaviorsTable,
    is_labelled_token,
    malformed,
    parse_entity_column,
    parse_impression_token,
    parse_news_line,
    read_behaviors_table,
    read_bodies,
    read_news_columns,
    read_news_ids,
    run_positions,
    split_behaviors_line,
)

NEWS_TEXT_FIELDS = ("title", "abstract", "body")
"""The news fields an item's text can be built from (`body` only with a `news_body.tsv`)."""

_CITATION = """\
@inproceedings{wu-etal-2020-mind,
    title = "{MIND}: A Large-scale Dataset for News Recommendation",
    author = "Wu, Fangzhao and Qiao, Ying and Chen, Jiun-Hung and Wu, Chuhan and Qi, Tao and Lian, Jianxun and
              Liu, Danyang and Xie, Xing and Gao, Jianfeng and Wu, Winnie and Zhou, Ming",
    booktitle = "Proceedings of the 58th Annual Meeting of the Association for Computational Linguistics",
    year = "2020",
    pages = "3597--3606",
}
"""


def sample_negatives(negatives: Sequence[int], npratio: int, rng: random.Random) -> list[int]:
    """
    `npratio` negatives of an impression, as PLM-NR's `newsample`: without replacement when the impression has enough,
    otherwise from the negatives repeated `npratio // len + 1` times (so each is used about equally often).
    """
    if npratio > len(negatives):
        return rng.sample(list(negatives) * (npratio // len(negatives) + 1), npratio)
    return rng.sample(list(negatives), npratio)


def sample_negative_positions(counts: np.ndarray, npratio: int, rng: np.random.Generator) -> np.ndarray:
    """
    [`sample_negatives`] for many training rows at once: `[rows, npratio]` positions into each row's negatives
    (`counts[r]` of them), drawn without replacement when a row has at least `npratio`, otherwise from its negatives
    repeated `npratio // count + 1` times (so each is used about equally often). Rows need at least one negative.
    """
    counts = np.asarray(counts, dtype=np.int64)
    # The pool a row draws from without replacement: its negatives, or their repetitions (position modulo count).
    few = np.flatnonzero(counts < npratio)
    pool = counts.copy()
    pool[few] = counts[few] * (npratio // np.maximum(counts[few], 1) + 1)
    drawn = np.empty((npratio, len(counts)), dtype=np.int64)  # transposed: each step writes a row
    chosen: list[np.ndarray] = []  # drawn so far, sorted per row: chosen[j] holds each row's j-th smallest
    for step in range(npratio):
        # A uniform pick among the positions not drawn yet (`pool` - `step` of them): the pick-th of them, found by
        # stepping over the drawn ones in ascending order (npratio is small: a few vector operations over all rows).
        pick = rng.integers(0, pool)
        pool -= 1
        for column in chosen:
            pick += column <= pick
        drawn[step] = pick
        # The pick inserted in order: each column keeps the smaller value and passes the larger one on.
        for column_index, column in enumerate(chosen):
            chosen[column_index] = np.minimum(column, pick)
            np.maximum(column, pick, out=pick)
        chosen.append(pick)
    # Positions into the repetitions, as positions into the negatives (the others are below their count already).
    drawn[:, few] %= np.maximum(counts[few], 1)
    return drawn.T


def _negatives_seed(seed: int) -> int:
    """The negative-sampling seed of `seed` (any int): a stream of its own, apart from carving's."""
    return int.from_bytes(hashlib.sha256(f"gram-hf-mind-negatives-{seed}".encode()).digest()[:8], "little")


@dataclass
class _Impressions:
    """
    The impressions of one `behaviors.tsv` that a split keeps (after carving), mapped to catalog indices: one entry
    per impression in `impression_id`, `user_id` and `time`; the candidates flat, in file order, with how many each
    impression has (`candidate_lengths`); the histories as distinct values (`history` flat, `history_lengths`), the
    value of each impression in `history_rows` (a user's history repeats in each of their impressions); NewsIDs
    absent from every `news.tsv` left out and counted.
    """

    impression_id: pa.Array
    user_id: pa.Array
    time: pa.Array
    history: np.ndarray
    history_lengths: np.ndarray
    history_rows: np.ndarray
    candidates: np.ndarray
    candidate_lengths: np.ndarray
    labels: np.ndarray
    has_labels: bool
    missing_ids: set[str]
    missing_history: int
    missing_candidates: int


def _rows_of(positions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The row of each of a few flat `positions` in rows of `lengths` entries (no row number per entry needed)."""
    return np.searchsorted(np.cumsum(lengths), positions, side="right")


def _drop(keep: np.ndarray, lengths: np.ndarray, *flat: np.ndarray) -> tuple[np.ndarray, ...]:
    """`flat` arrays without the entries `keep` leaves out, and the rows' `lengths` without them."""
    dropped = np.flatnonzero(~keep)
    lengths = lengths - np.bincount(_rows_of(dropped, lengths), minlength=len(lengths))
    return (lengths, *(values[keep] for values in flat))


def _gather(values: np.ndarray, pieces: Sequence[np.ndarray]) -> np.ndarray:
    """`values[codes]` for codes given in pieces, into one array (the codes are not concatenated first)."""
    gathered = np.empty(sum(len(codes) for codes in pieces), values.dtype)
    position = 0
    for codes in pieces:
        np.take(values, codes, out=gathered[position : position + len(codes)], mode="clip")  # clip: no buffering
        position += len(codes)
    return gathered


def _used(codes: np.ndarray, size: int) -> np.ndarray:
    """Which of `size` dictionary entries the tokens use."""
    used = np.zeros(size, dtype=bool)
    used[codes] = True
    return used


def _catalog_index(keys: pa.Array, news_ids: pa.Array) -> np.ndarray:
    """The catalog index of each key (-1: in no news.tsv)."""
    return pc.fill_null(pc.index_in(keys, value_set=news_ids), -1).to_numpy().astype(np.int32)


def _lists(values: np.ndarray, lengths: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    """An Arrow list column of consecutive runs of `values`, `lengths[i]` for row `i` (the values not copied)."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, value_type))


_NEWS_ROWS = pa.schema(
    [
        ("item_id", pa.string()),
        ("category", pa.string()),
        ("subcategory", pa.string()),
        ("title", pa.string()),
        ("abstract", pa.string()),
        ("url", pa.string()),
        ("title_entities", pa.list_(pa.string())),
        ("abstract_entities", pa.list_(pa.string())),
        ("file", pa.int32()),
        ("line", pa.int64()),
    ]
)
"""Every line of the `news.tsv` files, parsed: what the item table is made of (with each row's file and line)."""


def _read_news_bulk(news_files: Sequence[Path]) -> pa.Table | None:
    """
    The lines of `news_files` in bulk ([`read_news_columns`], [`parse_entity_column`]); `None` if one is odd. MIND
    repeats news across its folders: each distinct entity list is parsed once.
    """
    tables = []
    for path in news_files:
        columns = read_news_columns(path)
        if columns is None:
            return None
        tables.append(columns)
    if not tables:
        return _NEWS_ROWS.empty_table()
    rows = [table.num_rows for table in tables]

    def column(*names: str) -> pa.ChunkedArray:  # of every file (pieces, not ChunkedArrays: those pyarrow converts)
        return pa.chunked_array([piece for name in names for table in tables for piece in table.column(name).chunks])

    encoded = pc.dictionary_encode(column("TitleEntities", "AbstractEntities").combine_chunks())
    parsed = parse_entity_column(encoded.dictionary, news_files[0], "TitleEntities (7) / AbstractEntities (8)")
    if parsed is None:
        return None
    entities = parsed.take(encoded.indices)
    total = sum(rows)
    return pa.table(
        [
            *(column(name) for name in NEWS_COLUMNS[:6]),
            entities.slice(0, total),
            entities.slice(total),
            pa.array(np.repeat(np.arange(len(tables), dtype=np.int32), rows)),
            pa.array(np.concatenate([np.arange(1, count + 1) for count in rows])),  # no blank lines: line i + 1
        ],
        schema=_NEWS_ROWS,
    )


def _read_news_lines(news_files: Sequence[Path]) -> pa.Table:
    """The lines of `news_files` one by one ([`parse_news_line`]); malformed lines of every file raised together."""
    rows = []
    bad = BadLines()
    for index, path in enumerate(news_files):
        for line_number, line in iter_lines(path, bad):
            try:
                record = parse_news_line(line, path, line_number)
            except DataFileError as err:
                bad.add_error(err)
                continue
            rows.append({**record, "file": index, "line": line_number})
    bad.check()
    return pa.Table.from_pylist(rows, schema=_NEWS_ROWS)


_CATALOG_IDS: dict[str, pa.Array] = {}
"""The catalog order of the news files last read in this process, keyed by their [`fingerprint_files`]: config
`news` finds it while building the items, and config `behaviors` (run next by `load_mind`) need not read the files
again."""


def _catalog_ids(news_files: Sequence[Path]) -> pa.Array:
    """[`read_news_ids`] of `news_files`, unless the items of these very files (paths, sizes, times) were built."""
    ids = _CATALOG_IDS.get(fingerprint_files(news_files))
    return ids if ids is not None else read_news_ids(news_files)


def _remember_catalog_ids(news_files: Sequence[Path], ids: pa.Array) -> None:
    _CATALOG_IDS.clear()
    _CATALOG_IDS[fingerprint_files(news_files)] = ids


def _count_empty(values: pa.Array | pa.ChunkedArray) -> int:
    """How many of the (stripped) strings are empty."""
    return int(pc.sum(pc.equal(values, "")).as_py() or 0)


@dataclass
class MINDConfig(RawFilesConfig):
    """
    Configuration of the [`MIND`] builder. Config `"news"` builds the items, config `"behaviors"` the impression
    splits; [`load_mind`] sets both.

    Args:
        variant (`str`, *optional*): which `MIND<variant>_*` folders to read when several are present.
        text_fields (`tuple[str, ...]`, *optional*, defaults to `("title",)`): news fields joined (by spaces) into the
            items' `text` column.
        body_file (`str`, *optional*): a `NewsID<TAB>body` file; default: `news_body.tsv` files found in the folders.
        max_history (`int`, *optional*, defaults to 50): the most recent clicks kept per history; -1 keeps all (a
            config field cannot be `None`: `datasets` ignores `None`-valued config keyword arguments).
        npratio (`int`, *optional*, defaults to 4): negatives sampled per click in the training split.
        seed (`int`, *optional*, defaults to 0): seed of negative sampling, positive placement and validation carving.
        validation_fraction (`float`, *optional*, defaults to 0.0): share of `*_train` impressions held out.
        strict (`bool`, *optional*, defaults to `False`): raise on a NewsID absent from every `news.tsv`.
        include_test (`bool`, *optional*, defaults to `True`): read the test folder when there is one.
        fingerprint (`str`): [`~gram_hf.builders.fingerprint_files`] of the files the config reads (cache key).
    """

    variant: str | None = None
    text_fields: tuple[str, ...] = ("title",)
    body_file: str | None = None
    max_history: int = 50
    npratio: int = 4
    seed: int = 0
    validation_fraction: float = 0.0
    strict: bool = False
    include_test: bool = True


def _items_features(with_body: bool) -> datasets.Features:
    features = {
        "item_id": datasets.Value("string"),
        "text": datasets.Value("string"),
        "title": datasets.Value("string"),
        "abstract": datasets.Value("string"),
        "category": datasets.Value("string"),
        "subcategory": datasets.Value("string"),
        "url": datasets.Value("string"),
        "title_entities": datasets.List(datasets.Value("string")),
        "abstract_entities": datasets.List(datasets.Value("string")),
    }
    if with_body:
        features["body"] = datasets.Value("string")
    return datasets.Features(features)


IMPRESSION_FEATURES = datasets.Features(
    {
        "impression_id": datasets.Value("int64"),
        "user_id": datasets.Value("string"),
        "time": datasets.Value("timestamp[s]"),
        "history": datasets.List(datasets.Value("int32")),
        "candidates": datasets.List(datasets.Value("int32")),
        "labels": datasets.List(datasets.Value("int8")),
    }
)
"""Features of every impression split (catalog indices in `history` and `candidates`; labels 1/0, -1 = unknown)."""

_ROWS_PER_TABLE = 32_000
"""Rows of the tables a split is written in, each as one record batch of the cache (`datasets`' default of 1,000-row
batches made some 7,000 small writes per load)."""


class MIND(RawFilesBuilder):
    """
    `datasets` builder of MIND from the user's raw folders (no download). Instantiate it in code (datasets 5.x has no
    loading scripts): `MIND(config_name="behaviors", data_dir=..., cache_dir=..., **MINDConfig fields)`, then
    `download_and_prepare()` and `as_dataset()`, or `MIND.prepare(...)`. [`load_mind`] does this for both configs and
    adds the stats.
    """

    # 2.0.0: training negatives drawn in bulk by numpy (`sample_negative_positions`), not row by row.
    VERSION = datasets.Version("2.0.0")
    BUILDER_CONFIG_CLASS = MINDConfig
    BUILDER_CONFIGS = [
        MINDConfig(name="news", version=VERSION, description="One row per news: the item catalog."),
        MINDConfig(name="behaviors", version=VERSION, description="Impressions with click history."),
    ]
    DEFAULT_CONFIG_NAME = "behaviors"
    DEFAULT_WRITER_BATCH_SIZE = _ROWS_PER_TABLE
    DATASET_NAME = "mind"
    # Finding the files and parsing their lines decide what is written as much as this module does.
    SOURCE_DEPENDENCIES = (mind_files, mind_parsing)

    def _info(self) -> datasets.DatasetInfo:
        if self.config.name == "news":
            # The body column exists only when a body file does (the file set is part of the cache key).
            features = _items_features(with_body=bool(self.config.data_dir) and bool(self._folders().body_files))
        else:
            features = IMPRESSION_FEATURES
        return datasets.DatasetInfo(
            description="MIND: Microsoft News Dataset, in gram-hf's canonical form.",
            features=features,
            homepage="https://msnews.github.io/",
            license="Microsoft Research License Terms",
            citation=_CITATION,
        )

    def _folders(self) -> MINDFolders:
        if not self.config.data_dir:
            raise ValueError("The MIND builder needs data_dir= (the folder holding the MIND split folders).")
        config = self.config
        return find_mind_folders(config.data_dir, config.variant, config.body_file, config.include_test)

    def _split_generators(self, dl_manager):
        folders = self._folders()
        if self.config.name == "news":
            return [
                datasets.SplitGenerator(
                    name="items",
                    gen_kwargs={"news_files": folders.news_files(), "body_files": list(folders.body_files)},
                )
            ]
        config = self.config
        if not 0.0 <= config.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {config.validation_fraction}.")
        if config.npratio < 1:
            raise ValueError(f"npratio must be a positive integer, got {config.npratio}.")
        if config.max_history < -1:
            raise ValueError(f"max_history must be >= 0 (or -1 for all), got {config.max_history}.")
        if config.validation_fraction > 0 and "train" not in folders.folders:
            raise ValueError("validation_fraction > 0 carves validation out of *_train, but there is no train folder.")
        self._news_ids = _catalog_ids(folders.news_files())
        return [
            datasets.SplitGenerator(
                name=name,
                gen_kwargs={
                    "split": name,
                    "path": folders.behaviors_file(role),
                    "form": form,
                    "carve": None
                    if config.validation_fraction == 0 or role != "train"
                    else ("take" if carved else "keep"),
                },
            )
            for name, (role, form, carved) in split_names(list(folders.folders), config.validation_fraction).items()
        ]

    def _generate_tables(self, **kwargs):
        if self.config.name == "news":
            yield 0, self._news_table(**kwargs)
        else:
            yield from self._generate_impressions(**kwargs)

    # ------------------------------------------------------------------------------------------------- news

    def _news_table(self, news_files: list[Path], body_files: list[Path]) -> pa.Table:
        """
        The item table: one row per NewsID, the first copy of a news repeated across folders, in first-appearance
        order (the order of [`read_news_ids`]); repeated and conflicting copies, empty fields and bodies counted.
        """
        with_body = bool(body_files)
        unknown = set(self.config.text_fields) - set(NEWS_TEXT_FIELDS)
        if unknown:
            raise ValueError(f"text_fields must be among {NEWS_TEXT_FIELDS}, got {sorted(unknown)}.")
        if "body" in self.config.text_fields and not with_body:
            raise ValueError(f"text_fields includes 'body' but no {BODY_FILENAME} (or body_file) was found.")
        bodies = read_bodies(body_files) if with_body else {}
        news = _read_news_bulk(news_files)
        if news is None:  # an irregular file: every line parsed and checked, every bad one reported
            news = _read_news_lines(news_files)
        ids = news.column("item_id").combine_chunks()
        codes = pc.dictionary_encode(ids).indices.to_numpy()  # numbered in order of first appearance
        _, first = np.unique(codes, return_index=True)  # the first copy of each news, in that order
        repeated = np.ones(len(codes), dtype=bool)
        repeated[first] = False
        # MIND repeats news across its folders; the first copy is kept, a copy that differs from it is counted.
        conflicting = np.zeros(len(codes), dtype=bool)
        if repeated.any():
            copies, originals = pa.array(np.flatnonzero(repeated)), pa.array(first[codes[repeated]])
            for name in ("category", "subcategory", "title", "abstract"):
                column = news.column(name)
                differs = pc.not_equal(column.take(copies), column.take(originals))
                conflicting[repeated] |= differs.to_numpy(zero_copy_only=False)
        examples = [
            f"{ids[row]} ({news_files[news.column('file')[row].as_py()]}, line {news.column('line')[row]})"
            for row in np.flatnonzero(conflicting)[:5].tolist()
        ]
        items = news.take(pa.array(first))
        # The catalog order: the items' (first appearance), as `read_news_ids` reads it.
        _remember_catalog_ids(news_files, items.column("item_id").combine_chunks())
        fields = {name: items.column(name) for name in ("title", "abstract")}
        if with_body:
            fields["body"] = pa.array([bodies.get(news_id, "") for news_id in items.column("item_id").to_pylist()])
        stripped = {name: strip_strings(column) for name, column in fields.items()}
        stats = {
            "news_files": [str(path) for path in news_files],
            "body_files": [str(path) for path in body_files],
            "num_news": items.num_rows,
            "repeated_news": int(repeated.sum()),
            "conflicting_news": int(conflicting.sum()),
            "conflicting_examples": examples,
            "empty_titles": _count_empty(stripped["title"]),
            "empty_abstracts": _count_empty(stripped["abstract"]),
            "missing_bodies": sum(news_id not in bodies for news_id in items.column("item_id").to_pylist())
            if with_body
            else 0,
            "bodies_without_news": len(set(bodies) - set(items.column("item_id").to_pylist())),
        }
        self.write_stats("news", stats)
        # `text`: the text fields, stripped, the non-empty ones joined by a space.
        text = None
        for name in self.config.text_fields:
            if text is None:
                text = stripped[name]
                continue
            joined = pc.binary_join_element_wise(text, stripped[name], " ")
            text = pc.if_else(
                pc.equal(text, ""), stripped[name], pc.if_else(pc.equal(stripped[name], ""), text, joined)
            )
        columns = {
            "item_id": items.column("item_id"),
            "text": text,
            "title": fields["title"],
            "abstract": fields["abstract"],
            "category": items.column("category"),
            "subcategory": items.column("subcategory"),
            "url": items.column("url"),
            "title_entities": items.column("title_entities"),
            "abstract_entities": items.column("abstract_entities"),
        }
        if with_body:
            columns["body"] = fields["body"]
        return pa.table(columns, schema=self.info.features.arrow_schema)

    # ------------------------------------------------------------------------------------------ impressions

    def _generate_impressions(self, split: str, path: Path, form: str, carve: str | None):
        config = self.config
        # One generator per purpose: carving draws once per impression line in file order, so every split is a pure
        # function of the files and the seed; negatives are drawn in bulk for the training rows.
        carve_rng = random.Random(f"gram-hf-mind-validation-{config.seed}")
        stats = {
            "split": split,
            "source": str(path),
            "form": form,
            "has_labels": True,
            "impressions_read": 0,
            "impressions": 0,
            "rows": 0,
            "clicks": 0,
            "candidates": 0,
            "empty_histories": 0,
            "truncated_histories": 0,
            "dropped_no_candidates": 0,
            "dropped_no_clicks": 0,
            "dropped_no_negatives": 0,
            "missing_history_news": 0,
            "missing_candidate_news": 0,
        }
        behaviors = read_behaviors_table(path)
        parsed = None if behaviors is None else self._map_impressions(behaviors, form, carve, carve_rng)
        del behaviors  # mapped: its memory is free for the split's rows
        if parsed is None:
            # Not the regular form (or a line to report): every line parsed and checked on its own, from a fresh
            # carving generator, so both paths keep the same lines.
            carve_rng = random.Random(f"gram-hf-mind-validation-{config.seed}")
            parsed = self._read_impression_lines(path, form, carve, carve_rng)
        yield from enumerate(self._impressions_tables(parsed, form, stats))
        stats["missing_news_ids"] = sorted(parsed.missing_ids)
        self.write_stats(f"split_{split}", stats)

    def _map_impressions(
        self, table: BehaviorsTable, form: str, carve: str | None, carve_rng: random.Random
    ) -> _Impressions | None:
        """
        The impressions of a file read in bulk ([`read_behaviors_table`]), mapped to catalog indices; `None` when a
        line needs reporting (a malformed token, a NewsID absent under `strict=True`), which the line reader does.
        Tokens are looked up through their dictionary (the distinct tokens, mapped once each), histories per
        distinct value.
        """
        config = self.config
        news_ids = self._news_ids
        codes, candidate_lengths, history_rows = table.impression_codes, table.impression_lengths, table.history_rows
        keep = None
        if carve is not None:
            draws = np.fromiter((carve_rng.random() for _ in range(table.num_rows)), np.float64, table.num_rows)
            keep = (draws < config.validation_fraction) == (carve == "take")
            flat = np.concatenate(codes) if codes else np.zeros(0, np.int32)
            codes = [flat[np.repeat(keep, candidate_lengths)]]
            candidate_lengths, history_rows = candidate_lengths[keep], history_rows[keep]
        dictionary = table.impression_dictionary
        # Every entry is a kept token's, unless carving left lines out.
        used = None if keep is None else _used(codes[0], len(dictionary))
        entries = dictionary if used is None else dictionary.filter(pa.array(used))
        first = next((int(piece[0]) for piece in codes if len(piece)), None)
        has_labels = True
        # The file's first token decides whether it is labelled (MINDlarge_test is not); a file mixes no forms.
        if first is not None and is_labelled_token(dictionary[first].as_py()):
            # As `parse_impression_token`: a non-empty NewsID, then `-0` or `-1`.
            if not pc.all(pc.match_substring_regex(entries, r"^.+-[01]$")).as_py():
                return None
            entry_ids = pc.utf8_slice_codeunits(dictionary, 0, -2)
            entry_labels = pc.equal(pc.utf8_slice_codeunits(dictionary, -1), "1").to_numpy(zero_copy_only=False)
        else:
            if first is not None:
                has_labels = False
                if form == "train" or pc.any(pc.match_substring(entries, "-")).as_py():
                    return None
            entry_ids = dictionary
            entry_labels = None
        entry_index = _catalog_index(entry_ids, news_ids)
        candidates = _gather(entry_index, codes)
        if entry_labels is not None:
            labels = _gather(entry_labels.astype(np.int8), codes)
        else:
            labels = np.full(len(candidates), -1, np.int8)
        # The distinct NewsIDs in no news.tsv, among the tokens kept; their tokens are left out (counted).
        missing_entries = entry_index < 0 if used is None else (entry_index < 0) & used
        missing = set(entry_ids.filter(pa.array(missing_entries)).to_pylist())
        missing_candidates = 0
        if missing_entries.any():
            token_known = candidates >= 0
            missing_candidates = len(token_known) - int(token_known.sum())
            candidate_lengths, candidates, labels = _drop(token_known, candidate_lengths, candidates, labels)
        history_dictionary, history_lengths = table.history_dictionary, table.history_lengths
        history_index = _catalog_index(history_dictionary, news_ids)
        history = history_index[table.history_codes]
        missing_history = 0
        if (history_index < 0).any():
            history_known = history >= 0
            # Unknown tokens per distinct value, counted for every impression holding it.
            unknown_values = _rows_of(np.flatnonzero(~history_known), history_lengths)
            missing_history = int(np.bincount(unknown_values, minlength=len(history_lengths))[history_rows].sum())
            if missing_history:  # the NewsIDs of the values the kept impressions hold
                held = np.repeat(_used(history_rows, len(history_lengths)), history_lengths)
                unknown_codes = np.unique(table.history_codes[~history_known & held])
                missing.update(history_dictionary.take(pa.array(unknown_codes)).to_pylist())
            history_lengths, history = _drop(history_known, history_lengths, history)
        if config.strict and (missing_candidates or missing_history):
            return None
        columns = {name: getattr(table, name) for name in ("impression_id", "user_id", "time")}
        if keep is not None:
            columns = {name: column.filter(pa.array(keep)) for name, column in columns.items()}
        return _Impressions(
            **{name: column.combine_chunks() for name, column in columns.items()},
            history=history,
            history_lengths=history_lengths,
            history_rows=history_rows,
            candidates=candidates,
            candidate_lengths=candidate_lengths,
            labels=labels,
            has_labels=has_labels,
            missing_ids=missing,
            missing_history=missing_history,
            missing_candidates=missing_candidates,
        )

    def _read_impression_lines(
        self, path: Path, form: str, carve: str | None, carve_rng: random.Random
    ) -> _Impressions:
        """The impressions of a file line by line: each line checked, every bad one reported (`file:line: ...`)."""
        config = self.config
        index = {news_id: position for position, news_id in enumerate(self._news_ids.to_pylist())}
        has_labels: bool | None = None
        missing: set[str] = set()
        missing_history = missing_candidates = 0
        impression_ids, user_ids, times = [], [], []
        history, history_lengths, candidates, candidate_lengths, labels = [], [], [], [], []
        bad = BadLines()  # malformed lines are reported together at the end of the file
        for line_number, line in iter_lines(path, bad):
            try:
                impression_id, user_id, time, history_text, impressions_text = split_behaviors_line(
                    line, path, line_number
                )
                if carve is not None and (carve_rng.random() < config.validation_fraction) != (carve == "take"):
                    continue
                line_history, line_missing_history = [], 0
                for news_id in history_text.split():
                    news_index = index.get(news_id)
                    if news_index is None:
                        self._missing(news_id, path, line_number, missing)
                        line_missing_history += 1
                    else:
                        line_history.append(news_index)
                line_candidates, line_labels, line_missing_candidates = [], [], 0
                for token in impressions_text.split():
                    if has_labels is None:
                        # The file's first token decides whether it is labelled (MINDlarge_test is not).
                        has_labels = is_labelled_token(token)
                        if not has_labels and form == "train":
                            raise malformed(path, line_number, "the training split needs click labels (NewsID-0/1)")
                    news_id, label = parse_impression_token(token, path, line_number, has_labels)
                    news_index = index.get(news_id)
                    if news_index is None:
                        self._missing(news_id, path, line_number, missing)
                        line_missing_candidates += 1
                        continue
                    line_candidates.append(news_index)
                    line_labels.append(label)
            except DataFileError as err:
                bad.add_error(err)
                continue
            impression_ids.append(impression_id)
            user_ids.append(user_id)
            times.append(time)
            history.extend(line_history)
            history_lengths.append(len(line_history))
            candidates.extend(line_candidates)
            candidate_lengths.append(len(line_candidates))
            labels.extend(line_labels)
            missing_history += line_missing_history
            missing_candidates += line_missing_candidates
        bad.check()
        return _Impressions(
            impression_id=pa.array(impression_ids, pa.int64()),
            user_id=pa.array(user_ids, pa.string()),
            time=pa.array(times, pa.timestamp("s")),
            history=np.asarray(history, np.int32),
            history_lengths=np.asarray(history_lengths, np.int64),
            history_rows=np.arange(len(history_lengths)),
            candidates=np.asarray(candidates, np.int32),
            candidate_lengths=np.asarray(candidate_lengths, np.int64),
            labels=np.asarray(labels, np.int8),
            has_labels=has_labels is not False,
            missing_ids=missing,
            missing_history=missing_history,
            missing_candidates=missing_candidates,
        )

    def _impressions_tables(self, parsed: _Impressions, form: str, stats: dict) -> Iterator[pa.Table]:
        """
        The split's rows from the mapped impressions: histories cut to `max_history`, empty impressions dropped and
        counted; whole impressions, or for `form="train"` one row per click with `npratio` sampled negatives. In
        tables of [`_ROWS_PER_TABLE`] rows (the histories are gathered per table: small arrays, memory reused).
        """
        config = self.config
        num = len(parsed.impression_id)
        stats["impressions_read"] = num
        stats["has_labels"] = parsed.has_labels
        stats["missing_history_news"] = parsed.missing_history
        stats["missing_candidate_news"] = parsed.missing_candidates
        # Histories per distinct value (`history_rows`: each impression's).
        history, history_lengths, history_rows = parsed.history, parsed.history_lengths, parsed.history_rows
        if config.max_history != -1:
            # The most recent `max_history` clicks: the last ones of each history.
            truncated = history_lengths > config.max_history
            stats["truncated_histories"] = int(truncated[history_rows].sum())
            if truncated.any():
                kept_lengths = np.minimum(history_lengths, config.max_history)
                history = history.take(run_positions(np.cumsum(history_lengths) - kept_lengths, kept_lengths))
                history_lengths = kept_lengths
        histories = _lists(history, history_lengths, pa.int32())
        candidate_counts, labels = parsed.candidate_lengths, parsed.labels
        # Labels are 1/0, or -1 throughout a labelless file.
        click_positions = np.flatnonzero(labels == 1) if parsed.has_labels else np.zeros(0, np.int64)
        click_rows = _rows_of(click_positions, candidate_counts)
        clicks = np.bincount(click_rows, minlength=num) if parsed.has_labels else np.zeros(num, int)
        negatives = candidate_counts - clicks if parsed.has_labels else np.zeros(num, int)
        no_candidates = candidate_counts == 0
        no_clicks = ~no_candidates & (clicks == 0) if parsed.has_labels else np.zeros(num, bool)
        no_negatives = ~no_candidates & ~no_clicks & (negatives == 0) if form == "train" else np.zeros(num, bool)
        kept = ~(no_candidates | no_clicks | no_negatives)
        stats.update(
            dropped_no_candidates=int(no_candidates.sum()),
            dropped_no_clicks=int(no_clicks.sum()),
            dropped_no_negatives=int(no_negatives.sum()),
            impressions=int(kept.sum()),
            clicks=int(clicks[kept].sum()),
            candidates=int(candidate_counts[kept].sum()),
            empty_histories=int((history_lengths[history_rows[kept]] == 0).sum()),
        )
        if form == "train":
            # One row per click of a kept impression, in file order, with npratio of the impression's negatives.
            clicked = kept[click_rows]
            rows, click_positions = click_rows[clicked], click_positions[clicked]
            is_negative = labels == 0
            negative_values = parsed.candidates[is_negative]
            negative_starts = np.concatenate([[0], np.cumsum(negatives)[:-1]])
            rng = np.random.default_rng(_negatives_seed(config.seed))
            picks = sample_negative_positions(negatives[rows], config.npratio, rng)
            sampled = negative_values[negative_starts[rows][:, None] + picks]
            # The positive goes to a seeded random slot, so no head can learn "the first one is clicked".
            position = rng.integers(0, config.npratio + 1, size=len(rows))
            slots = np.arange(config.npratio + 1)
            padded = np.concatenate([sampled, sampled[:, -1:]], axis=1)
            shifted = np.concatenate([sampled[:, :1], sampled], axis=1)
            row_candidates = np.where(slots < position[:, None], padded, shifted)
            row_candidates[np.arange(len(rows)), position] = parsed.candidates[click_positions]
            row_labels = (slots == position[:, None]).astype(np.int8)
            width = np.full(len(rows), config.npratio + 1)
            indices = pa.array(rows)
            columns = {
                "impression_id": parsed.impression_id.take(indices),
                "user_id": parsed.user_id.take(indices),
                "time": parsed.time.take(indices),
                "candidates": _lists(row_candidates.reshape(-1).astype(np.int32), width, pa.int32()),
                "labels": _lists(row_labels.reshape(-1), width, pa.int8()),
            }
            row_histories = history_rows[rows]
        elif kept.all():
            columns = {
                "impression_id": parsed.impression_id,
                "user_id": parsed.user_id,
                "time": parsed.time,
                "candidates": _lists(parsed.candidates, candidate_counts, pa.int32()),
                "labels": _lists(labels, candidate_counts, pa.int8()),
            }
            row_histories = history_rows
        else:
            in_kept = np.repeat(kept, candidate_counts)
            mask = pa.array(kept)
            columns = {
                "impression_id": parsed.impression_id.filter(mask),
                "user_id": parsed.user_id.filter(mask),
                "time": parsed.time.filter(mask),
                "candidates": _lists(parsed.candidates[in_kept], candidate_counts[kept], pa.int32()),
                "labels": _lists(labels[in_kept], candidate_counts[kept], pa.int8()),
            }
            row_histories = history_rows[kept]
        num_rows = len(row_histories)
        stats["rows"] = num_rows
        for start in range(0, max(num_rows, 1), _ROWS_PER_TABLE):
            size = min(_ROWS_PER_TABLE, num_rows - start)
            piece = {name: column.slice(start, size) for name, column in columns.items()}
            piece["history"] = histories.take(pa.array(row_histories[start : start + size]))
            yield pa.table(
                {name: piece[name] for name in IMPRESSION_FEATURES}, schema=IMPRESSION_FEATURES.arrow_schema
            )

    def _missing(self, news_id: str, path: Path, line_number: int, missing: set[str]) -> None:
        if self.config.strict:
            raise malformed(path, line_number, f"NewsID {news_id!r} is in no news.tsv (strict=True)")
        missing.add(news_id)


__all__ = [
    "IMPRESSION_FEATURES",
    "MIND",
    "NEWS_TEXT_FIELDS",
    "MINDConfig",
    "sample_negative_positions",
    "sample_negatives",
]
