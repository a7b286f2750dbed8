"""
The MIND `datasets` builder: config `news` turns the `news.tsv` files into the item table, config `behaviors` the
`behaviors.tsv` files into impression splits (training rows with sampled negatives, whole impressions elsewhere).
[`~gram_hf.tasks.news_recommendation.load_mind`] runs both; the files come from
[`~gram_hf.tasks.news_recommendation.mind_files`], the lines are read by
[`~gram_hf.tasks.news_recommendation.mind_parsing`].
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets

from ...builders import RawFilesBuilder, RawFilesConfig
from ...raw_files import BadLines, DataFileError, iter_lines
from . import mind_files, mind_parsing
from .mind_files import BODY_FILENAME, MINDFolders, find_mind_folders, split_names
from .mind_parsing import (
    is_labelled_token,
    malformed,
    parse_impression_token,
    parse_news_line,
    read_bodies,
    read_news_ids,
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

    VERSION = datasets.Version("1.0.0")
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
        news_ids = read_news_ids(folders.news_files())
        self._news_index = {news_id: index for index, news_id in enumerate(news_ids)}
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

    def _generate_examples(self, **kwargs):
        if self.config.name == "news":
            yield from self._generate_news(**kwargs)
        else:
            yield from self._generate_impressions(**kwargs)

    # ------------------------------------------------------------------------------------------------- news

    def _generate_news(self, news_files: list[Path], body_files: list[Path]):
        with_body = bool(body_files)
        unknown = set(self.config.text_fields) - set(NEWS_TEXT_FIELDS)
        if unknown:
            raise ValueError(f"text_fields must be among {NEWS_TEXT_FIELDS}, got {sorted(unknown)}.")
        if "body" in self.config.text_fields and not with_body:
            raise ValueError(f"text_fields includes 'body' but no {BODY_FILENAME} (or body_file) was found.")
        bodies = read_bodies(body_files) if with_body else {}
        seen: dict[str, int] = {}  # NewsID -> hash of its record, to spot conflicting copies across folders
        stats = {
            "news_files": [str(path) for path in news_files],
            "body_files": [str(path) for path in body_files],
            "num_news": 0,
            "repeated_news": 0,
            "conflicting_news": 0,
            "conflicting_examples": [],
            "empty_titles": 0,
            "empty_abstracts": 0,
            "missing_bodies": 0,
            "bodies_without_news": 0,
        }
        bad = BadLines()  # every news file is read before their malformed lines are reported together
        for path in news_files:
            for line_number, line in iter_lines(path, bad):
                try:
                    record = parse_news_line(line, path, line_number)
                except DataFileError as err:
                    bad.add_error(err)
                    continue
                news_id = record["item_id"]
                digest = hash((record["category"], record["subcategory"], record["title"], record["abstract"]))
                if news_id in seen:
                    # MIND repeats news across its folders; the first copy is kept.
                    stats["repeated_news"] += 1
                    if seen[news_id] != digest:
                        stats["conflicting_news"] += 1
                        if len(stats["conflicting_examples"]) < 5:
                            stats["conflicting_examples"].append(f"{news_id} ({path}, line {line_number})")
                    continue
                seen[news_id] = digest
                if with_body:
                    if news_id not in bodies:
                        stats["missing_bodies"] += 1
                    record["body"] = bodies.get(news_id, "")
                stats["empty_titles"] += not record["title"].strip()
                stats["empty_abstracts"] += not record["abstract"].strip()
                record["text"] = " ".join(
                    record[name].strip() for name in self.config.text_fields if record[name].strip()
                )
                yield stats["num_news"], record
                stats["num_news"] += 1
        bad.check()
        stats["bodies_without_news"] = len(set(bodies) - set(seen))
        self.write_stats("news", stats)

    # ------------------------------------------------------------------------------------------ impressions

    def _generate_impressions(self, split: str, path: Path, form: str, carve: str | None):
        config = self.config
        index = self._news_index
        # One generator per purpose, consumed in file order: carving draws once per impression line, sampling only
        # for the training impressions, so every split is a pure function of the files and the seed.
        carve_rng = random.Random(f"gram-hf-mind-validation-{config.seed}")
        sample_rng = random.Random(f"gram-hf-mind-negatives-{config.seed}")
        max_history = None if config.max_history == -1 else config.max_history
        npratio = config.npratio
        has_labels: bool | None = None
        missing: set[str] = set()
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
        row = 0
        bad = BadLines()  # malformed lines are reported together at the end of the file
        for line_number, line in iter_lines(path, bad):
            try:
                impression_id, user_id, time, history_text, impressions_text = split_behaviors_line(
                    line, path, line_number
                )
                if carve is not None and (carve_rng.random() < config.validation_fraction) != (carve == "take"):
                    continue
                history = []
                for news_id in history_text.split():
                    news_index = index.get(news_id)
                    if news_index is None:
                        self._missing(news_id, path, line_number, missing)
                        stats["missing_history_news"] += 1
                    else:
                        history.append(news_index)
                candidates, labels = [], []
                for token in impressions_text.split():
                    if has_labels is None:
                        # The file's first token decides whether it is labelled (MINDlarge_test is not).
                        has_labels = stats["has_labels"] = is_labelled_token(token)
                        if not has_labels and form == "train":
                            raise malformed(path, line_number, "the training split needs click labels (NewsID-0/1)")
                    news_id, label = parse_impression_token(token, path, line_number, has_labels)
                    news_index = index.get(news_id)
                    if news_index is None:
                        self._missing(news_id, path, line_number, missing)
                        stats["missing_candidate_news"] += 1
                        continue
                    candidates.append(news_index)
                    labels.append(label)
            except DataFileError as err:
                bad.add_error(err)
                continue
            stats["impressions_read"] += 1
            if max_history is not None and len(history) > max_history:
                history = history[len(history) - max_history :]
                stats["truncated_histories"] += 1
            if not candidates:
                stats["dropped_no_candidates"] += 1
                continue
            clicks = labels.count(1)
            if has_labels and clicks == 0:
                stats["dropped_no_clicks"] += 1
                continue
            example = {"impression_id": impression_id, "user_id": user_id, "time": time, "history": history}
            if form == "train":
                negatives = [c for c, label in zip(candidates, labels) if label == 0]
                if not negatives:
                    stats["dropped_no_negatives"] += 1
                    continue
                for candidate, label in zip(candidates, labels):
                    if label != 1:
                        continue
                    sampled = sample_negatives(negatives, npratio, sample_rng)
                    # The positive goes to a seeded random slot, so no head can learn "the first one is clicked".
                    position = sample_rng.randrange(npratio + 1)
                    row_labels = [0] * (npratio + 1)
                    row_labels[position] = 1
                    yield (
                        row,
                        {
                            **example,
                            "candidates": sampled[:position] + [candidate] + sampled[position:],
                            "labels": row_labels,
                        },
                    )
                    row += 1
            else:
                yield row, {**example, "candidates": candidates, "labels": labels}
                row += 1
            stats["impressions"] += 1
            stats["clicks"] += clicks
            stats["candidates"] += len(candidates)
            stats["empty_histories"] += not history
        bad.check()
        stats["rows"] = row
        stats["missing_news_ids"] = sorted(missing)
        self.write_stats(f"split_{split}", stats)

    def _missing(self, news_id: str, path: Path, line_number: int, missing: set[str]) -> None:
        if self.config.strict:
            raise malformed(path, line_number, f"NewsID {news_id!r} is in no news.tsv (strict=True)")
        missing.add(news_id)


__all__ = ["IMPRESSION_FEATURES", "MIND", "NEWS_TEXT_FIELDS", "MINDConfig", "sample_negatives"]
