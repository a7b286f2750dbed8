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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...builders import RawFilesBuilder, RawFilesConfig
from ...raw_files import BadLines, DataFileError, iter_lines, strip_strings
from . import mind_files, mind_parsing
from .mind_files import BODY_FILENAME, MINDFolders, find_mind_folders, split_names
from .mind_parsing import (
    NEWS_COLUMNS,
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
    pool = np.where(counts >= npratio, counts, counts * (npratio // np.maximum(counts, 1) + 1))
    drawn = np.empty((len(counts), npratio), dtype=np.int64)
    chosen = np.empty((len(counts), 0), dtype=np.int64)  # drawn so far, sorted per row
    for step in range(npratio):
        # A uniform pick among the positions not drawn yet: the pick-th of them, found by stepping over the drawn
        # ones in ascending order (npratio is small, so these are a few vector operations over all rows).
        pick = rng.integers(0, pool - step)
        for column in range(step):
            pick += chosen[:, column] <= pick
        drawn[:, step] = pick
        chosen = np.sort(np.concatenate([chosen, pick[:, None]], axis=1), axis=1)
    return drawn % np.maximum(counts, 1)[:, None]


def _negatives_seed(seed: int) -> int:
    """The negative-sampling seed of `seed` (any int): a stream of its own, apart from carving's."""
    return int.from_bytes(hashlib.sha256(f"gram-hf-mind-negatives-{seed}".encode()).digest()[:8], "little")


@dataclass
class _Impressions:
    """
    The impressions of one `behaviors.tsv` that a split keeps (after carving), mapped to catalog indices: one entry
    per impression in `impression_id`, `user_id` and `time`; the known history news and candidates flat, in file
    order, with how many each impression has (`*_lengths`); NewsIDs absent from every `news.tsv` left out and
    counted.
    """

    impression_id: pa.Array
    user_id: pa.Array
    time: pa.Array
    history: np.ndarray
    history_lengths: np.ndarray
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


def _flat_tokens(lists: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """
    The tokens of a column of dictionary-encoded token lists ([`read_behaviors_table`]), flat: `(dictionary, the
    dictionary code of each token, the tokens of each row)`, without the one empty token of an empty value.
    """
    if not lists.num_chunks:
        return pa.array([], pa.string()), np.zeros(0, np.int32), np.zeros(0, np.int64)
    codes, lengths = [], []
    for chunk in lists.chunks:
        offsets = chunk.offsets.to_numpy()
        codes.append(chunk.values.indices.to_numpy()[offsets[0] : offsets[-1]])
        lengths.append(np.diff(offsets))
    dictionary = lists.chunk(0).values.dictionary
    codes, lengths = np.concatenate(codes), np.concatenate(lengths).astype(np.int64)
    # Empty tokens come only from empty values (the reader checked).
    empty = np.flatnonzero(pc.equal(dictionary, "").to_numpy(zero_copy_only=False))
    if len(empty):
        lengths, codes = _drop(np.isin(codes, empty, invert=True), lengths, codes)
    return dictionary, codes, lengths


def _used(codes: np.ndarray, size: int) -> np.ndarray:
    """Which of `size` dictionary entries the tokens use."""
    used = np.zeros(size, dtype=bool)
    used[codes] = True
    return used


def _catalog_index(keys: pa.Array, news_ids: pa.Array) -> np.ndarray:
    """The catalog index of each key (-1: in no news.tsv)."""
    return pc.fill_null(pc.index_in(keys, value_set=news_ids), -1).to_numpy().astype(np.int32)


def _lists(
    values: np.ndarray, lengths: np.ndarray, value_type: pa.DataType, rows: np.ndarray | None = None
) -> pa.ListArray:
    """
    An Arrow list column of consecutive runs of `values`, `lengths[i]` for row `i`; with `rows`, the lists of those
    rows only, in their order.
    """
    if rows is not None:
        starts = np.cumsum(lengths) - lengths
        lengths = lengths[rows]
        values = values[run_positions(starts[rows], lengths)]
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
    """The lines of `news_files` in bulk ([`read_news_columns`], [`parse_entity_column`]); `None` if one is odd."""
    tables = []
    for index, path in enumerate(news_files):
        columns = read_news_columns(path)
        if columns is None:
            return None
        entities = [
            parse_entity_column(columns.column(name), path, f"{name} ({position})")
            for name, position in (("TitleEntities", 7), ("AbstractEntities", 8))
        ]
        if entities[0] is None or entities[1] is None:
            return None
        rows = columns.num_rows
        tables.append(
            pa.table(
                [
                    *(columns.column(name) for name in NEWS_COLUMNS[:6]),
                    *entities,
                    pa.array(np.full(rows, index, dtype=np.int32)),
                    pa.array(np.arange(1, rows + 1)),  # no blank lines: row i is line i + 1
                ],
                schema=_NEWS_ROWS,
            )
        )
    return pa.concat_tables(tables) if tables else _NEWS_ROWS.empty_table()


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
        self._news_ids = read_news_ids(folders.news_files())
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
        table = read_behaviors_table(path)
        parsed = None if table is None else self._map_impressions(table, form, carve, carve_rng)
        if parsed is None:
            # Not the regular form (or a line to report): every line parsed and checked on its own, from a fresh
            # carving generator, so both paths keep the same lines.
            carve_rng = random.Random(f"gram-hf-mind-validation-{config.seed}")
            parsed = self._read_impression_lines(path, form, carve, carve_rng)
        table = self._impressions_table(parsed, form, stats)
        stats["missing_news_ids"] = sorted(parsed.missing_ids)
        self.write_stats(f"split_{split}", stats)
        yield 0, table

    def _map_impressions(
        self, table: pa.Table, form: str, carve: str | None, carve_rng: random.Random
    ) -> _Impressions | None:
        """
        The impressions of a file read in bulk ([`read_behaviors_table`]), mapped to catalog indices; `None` when a
        line needs reporting (a malformed token, a NewsID absent under `strict=True`), which the line reader does.
        """
        config = self.config
        if carve is not None:
            draws = np.fromiter((carve_rng.random() for _ in range(table.num_rows)), np.float64, table.num_rows)
            table = table.filter(pa.array((draws < config.validation_fraction) == (carve == "take")))
        news_ids = self._news_ids
        # Tokens are looked up through their column's dictionary: the distinct tokens, mapped once each.
        history_dictionary, history_codes, history_lengths = _flat_tokens(table.column("history"))
        dictionary, codes, candidate_lengths = _flat_tokens(table.column("impressions"))
        used = _used(codes, len(dictionary))  # not the empty value's entry, nor those of carved-out rows only
        entries = dictionary.filter(pa.array(used))
        has_labels = True
        # The file's first token decides whether it is labelled (MINDlarge_test is not); a file mixes no forms.
        if len(codes) and is_labelled_token(dictionary[int(codes[0])].as_py()):
            # As `parse_impression_token`: a non-empty NewsID, then `-0` or `-1`.
            if not pc.all(pc.match_substring_regex(entries, r"^.+-[01]$")).as_py():
                return None
            entry_ids = pc.utf8_slice_codeunits(dictionary, 0, -2)
            entry_labels = pc.equal(pc.utf8_slice_codeunits(dictionary, -1), "1").to_numpy(zero_copy_only=False)
        else:
            if len(codes):
                has_labels = False
                if form == "train" or pc.any(pc.match_substring(entries, "-")).as_py():
                    return None
            entry_ids = dictionary
            entry_labels = None
        entry_index = _catalog_index(entry_ids, news_ids)
        candidates = entry_index[codes]
        token_known = candidates >= 0
        history_index = _catalog_index(history_dictionary, news_ids)
        history = history_index[history_codes]
        history_known = history >= 0
        all_known = token_known.all() and history_known.all()
        if config.strict and not all_known:
            return None
        # The distinct NewsIDs in no news.tsv, among the tokens kept.
        missing = set(entry_ids.filter(pa.array(used & (entry_index < 0))).to_pylist())
        if not history_known.all():
            missing_history = _used(history_codes, len(history_dictionary)) & (history_index < 0)
            missing.update(history_dictionary.filter(pa.array(missing_history)).to_pylist())
        labels = entry_labels.astype(np.int8)[codes] if entry_labels is not None else np.full(len(codes), -1, np.int8)
        if not all_known:  # the tokens of news in no news.tsv are left out (counted)
            history_lengths, history = _drop(history_known, history_lengths, history)
            candidate_lengths, candidates, labels = _drop(token_known, candidate_lengths, candidates, labels)
        return _Impressions(
            impression_id=table.column("impression_id").combine_chunks(),
            user_id=table.column("user_id").combine_chunks(),
            time=table.column("time").combine_chunks(),
            history=history,
            history_lengths=history_lengths,
            candidates=candidates,
            candidate_lengths=candidate_lengths,
            labels=labels,
            has_labels=has_labels,
            missing_ids=missing,
            missing_history=int((~history_known).sum()),
            missing_candidates=int((~token_known).sum()),
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
            candidates=np.asarray(candidates, np.int32),
            candidate_lengths=np.asarray(candidate_lengths, np.int64),
            labels=np.asarray(labels, np.int8),
            has_labels=has_labels is not False,
            missing_ids=missing,
            missing_history=missing_history,
            missing_candidates=missing_candidates,
        )

    def _impressions_table(self, parsed: _Impressions, form: str, stats: dict) -> pa.Table:
        """
        The split's rows from the mapped impressions: histories cut to `max_history`, empty impressions dropped and
        counted; whole impressions, or for `form="train"` one row per click with `npratio` sampled negatives.
        """
        config = self.config
        num = len(parsed.impression_id)
        stats["impressions_read"] = num
        stats["has_labels"] = parsed.has_labels
        stats["missing_history_news"] = parsed.missing_history
        stats["missing_candidate_news"] = parsed.missing_candidates
        history, history_lengths = parsed.history, parsed.history_lengths
        if config.max_history != -1:
            # The most recent `max_history` clicks: the last ones of each row.
            truncated = history_lengths > config.max_history
            stats["truncated_histories"] = int(truncated.sum())
            if truncated.any():
                ends = np.cumsum(history_lengths, dtype=np.int32)
                rank_from_end = np.repeat(ends, history_lengths) - np.arange(len(history), dtype=np.int32)
                history = history[rank_from_end <= config.max_history]
                history_lengths = np.minimum(history_lengths, config.max_history)
        candidate_counts, labels = parsed.candidate_lengths, parsed.labels
        # Labels are 1/0, or -1 throughout a labelless file.
        click_positions = np.flatnonzero(labels == 1)
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
            empty_histories=int((history_lengths[kept] == 0).sum()),
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
                "history": _lists(history, history_lengths, pa.int32(), rows),
                "candidates": _lists(row_candidates.reshape(-1).astype(np.int32), width, pa.int32()),
                "labels": _lists(row_labels.reshape(-1), width, pa.int8()),
            }
        elif kept.all():
            columns = {
                "impression_id": parsed.impression_id,
                "user_id": parsed.user_id,
                "time": parsed.time,
                "history": _lists(history, history_lengths, pa.int32()),
                "candidates": _lists(parsed.candidates, candidate_counts, pa.int32()),
                "labels": _lists(labels, candidate_counts, pa.int8()),
            }
        else:
            in_kept = np.repeat(kept, candidate_counts)
            mask = pa.array(kept)
            columns = {
                "impression_id": parsed.impression_id.filter(mask),
                "user_id": parsed.user_id.filter(mask),
                "time": parsed.time.filter(mask),
                "history": _lists(history, history_lengths, pa.int32(), np.flatnonzero(kept)),
                "candidates": _lists(parsed.candidates[in_kept], candidate_counts[kept], pa.int32()),
                "labels": _lists(labels[in_kept], candidate_counts[kept], pa.int8()),
            }
        table = pa.table(columns, schema=IMPRESSION_FEATURES.arrow_schema)
        stats["rows"] = table.num_rows
        return table

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
