"""
The MIND (Microsoft News Dataset) loader: the raw `news.tsv` / `behaviors.tsv` folders read into gram-hf's canonical
form, through a `datasets.GeneratorBasedBuilder` so that the parsed splits are cached as Arrow files.

MIND's files are downloaded by the user (Microsoft Research License Terms); this module never downloads anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets

from ...data import InteractionData

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ...items import ItemCatalog

logger = logging.getLogger(__name__)

NEWS_TEXT_FIELDS = ("title", "abstract", "body")
"""The news fields an item's text can be built from (`body` only with a `news_body.tsv`)."""

MIND_FIELD_MAX_LENGTHS: dict[str, int] = {"title": 24, "abstract": 50, "body": 400}
"""Tokens kept per news field, special tokens excluded: the budgets of the GRAM paper's news encoder."""

NEWS_DEFAULT_POOLING = "attention"
"""Pooling of the news content encoder: additive attention over tokens, as in PLM-NR (pass it as `pooling=`)."""

BODY_FILENAME = "news_body.tsv"
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
NEWS_COLUMNS = ("NewsID", "Category", "SubCategory", "Title", "Abstract", "URL", "TitleEntities", "AbstractEntities")
BEHAVIORS_COLUMNS = ("ImpressionID", "UserID", "Time", "History", "Impressions")

# Split folders: `MINDlarge_train`, `MINDsmall_dev`, ... or plain `train/`, `dev/` (also `valid/`, `validation/`),
# `test/`. The roles are MIND's folder roles; how they map to split names is documented in `load_mind`.
_VARIANT_FOLDER = re.compile(r"^MIND(?P<variant>[A-Za-z0-9]+)_(?P<role>train|dev|test)$", re.IGNORECASE)
_PLAIN_FOLDERS = {"train": ("train",), "dev": ("dev", "valid", "validation"), "test": ("test",)}
ROLES = ("train", "dev", "test")

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


# ------------------------------------------------------------------------------------------------ folders and files


@dataclass(frozen=True)
class MINDFolders:
    """
    The split folders of a MIND download.

    Attributes:
        root (`Path`): the folder the user pointed at.
        folders (`dict[str, Path]`): MIND role (`"train"`, `"dev"`, `"test"`) -> split folder, for the roles present.
        variant (`str`, *optional*): `"large"`, `"small"`, ... for `MIND<variant>_<role>` folders.
        body_files (`tuple[Path, ...]`): optional `news_body.tsv` files (NewsID<TAB>body).
    """

    root: Path
    folders: dict[str, Path]
    variant: str | None
    body_files: tuple[Path, ...]

    def news_files(self) -> list[Path]:
        return [self.folders[role] / "news.tsv" for role in ROLES if role in self.folders]

    def behaviors_file(self, role: str) -> Path:
        return self.folders[role] / "behaviors.tsv"

    def fingerprint(self, files: Sequence[Path]) -> str:
        """
        A hash of the files' (path, size, mtime_ns). `datasets` keys its cache on the builder's config only, not on
        file contents; putting this in the config makes an edited (or replaced) raw file a new cache entry.
        """
        signature = []
        for path in files:
            stat = path.stat()
            signature.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
        return hashlib.sha256(json.dumps(signature).encode()).hexdigest()[:20]


def find_mind_folders(
    data_dir: str | os.PathLike,
    variant: str | None = None,
    body_file: str | os.PathLike | None = None,
    include_test: bool = True,
) -> MINDFolders:
    """
    Finds the split folders of a MIND download under `data_dir`.

    Accepted layouts, tried in this order:

    1. `data_dir/MIND<variant>_train`, `..._dev`, `..._test` (the official archives unpacked side by side, e.g.
       `MINDsmall_train/` and `MINDsmall_dev/`); when several variants are present, `variant` picks one;
    2. `data_dir/train`, `data_dir/dev` (or `valid`, `validation`), `data_dir/test`;
    3. `data_dir` is one split folder itself (`.../MINDsmall_dev`, `.../valid`), its role read from its name.

    Every folder used must hold `news.tsv` and `behaviors.tsv`; `entity_embedding.vec` and `relation_embedding.vec`
    are not read. Optional article bodies: `body_file`, or every `news_body.tsv` in `data_dir` or a split folder.
    `include_test=False` leaves a test folder out (MINDlarge_test is 2.4M impressions, for the leaderboard only).

    Raises:
        `FileNotFoundError`: `data_dir`, a split's `news.tsv`/`behaviors.tsv` or `body_file` is missing, or no layout
            matches (the message lists what was found).
        `ValueError`: several variants and no `variant`, or an unknown `variant`.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"MIND data_dir {str(root)!r} is not a directory.")
    entries = sorted(path.name for path in root.iterdir())
    subfolders = {name for name in entries if (root / name).is_dir()}

    folders: dict[str, Path] = {}
    found_variant: str | None = None
    by_variant: dict[str, dict[str, Path]] = {}
    for name in subfolders:
        match = _VARIANT_FOLDER.match(name)
        if match:
            by_variant.setdefault(match["variant"].lower(), {})[match["role"].lower()] = root / name
    if by_variant:
        if variant is not None:
            if variant.lower() not in by_variant:
                raise ValueError(
                    f"No MIND{variant}_* folders in {root}; variants found: {sorted(by_variant)} ({entries})."
                )
            found_variant = variant.lower()
        elif len(by_variant) > 1:
            raise ValueError(
                f"{root} holds several MIND variants {sorted(by_variant)}; pass variant= to pick one ({entries})."
            )
        else:
            found_variant = next(iter(by_variant))
        folders = by_variant[found_variant]
    else:
        for role, names in _PLAIN_FOLDERS.items():
            for name in names:
                if name in subfolders:
                    folders[role] = root / name
                    break
        if not folders and (root / "behaviors.tsv").exists():
            name = root.name
            match = _VARIANT_FOLDER.match(name)
            role = match["role"].lower() if match else next((r for r, n in _PLAIN_FOLDERS.items() if name in n), None)
            if role is None:
                raise ValueError(
                    f"{root} is a single MIND split folder, but its name does not say which split it is; name it "
                    "MIND<variant>_train/_dev/_test (or train/dev/test) or point data_dir at its parent."
                )
            folders[role] = root
            found_variant = match["variant"].lower() if match else None
    if not folders:
        raise FileNotFoundError(
            f"No MIND split folders in {root}: expected MIND<variant>_train / _dev / _test folders (e.g. "
            "MINDsmall_train, MINDsmall_dev), or train/ dev/ test/ folders, each holding news.tsv and behaviors.tsv. "
            f"Found: {entries}."
        )
    for folder in folders.values():
        for filename in ("news.tsv", "behaviors.tsv"):
            if not (folder / filename).is_file():
                raise FileNotFoundError(f"MIND file {str(folder / filename)!r} is missing.")
    if body_file is not None:
        body_path = Path(body_file).expanduser()
        if not body_path.is_file():
            raise FileNotFoundError(f"MIND body file {str(body_path)!r} is missing.")
        body_files: tuple[Path, ...] = (body_path,)
    else:
        candidates = [root / BODY_FILENAME] + [folders[role] / BODY_FILENAME for role in ROLES if role in folders]
        body_files = tuple(dict.fromkeys(path for path in candidates if path.is_file()))
    if not include_test:
        folders.pop("test", None)
        if not folders:
            raise FileNotFoundError(f"{root} holds only a test split, and include_test=False.")
    return MINDFolders(root=root, folders=folders, variant=found_variant, body_files=body_files)


def split_names(roles: Sequence[str], validation_fraction: float) -> dict[str, tuple[str, str, bool]]:
    """
    Split name -> (MIND role read, form, carved). Form is `"train"` (one row per click with sampled negatives) or
    `"impressions"` (whole impressions); `carved` marks the validation impressions held out of `*_train`.
    """
    names: dict[str, tuple[str, str, bool]] = {}
    if "train" in roles:
        names["train"] = ("train", "train", False)
        if validation_fraction > 0:
            names["validation"] = ("train", "impressions", True)
    if "dev" in roles:
        names["dev" if validation_fraction > 0 else "validation"] = ("dev", "impressions", False)
    if "test" in roles:
        names["test"] = ("test", "impressions", False)
    return names


# -------------------------------------------------------------------------------------------------------- parsing


def _malformed(path: Path | str, line_number: int, problem: str) -> ValueError:
    return ValueError(f"{path}, line {line_number}: {problem}")


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """`(line number, line)` of a UTF-8 text file, without the line break; blank lines are skipped."""
    with open(path, "rb") as handle:
        # Binary lines split on "\n" only (text mode would also split on a stray "\r" inside a title), and decoding
        # line by line names the exact line of an invalid byte.
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _malformed(path, line_number, f"not valid UTF-8 ({err.reason} at byte {err.start})") from None
            line = line.rstrip("\n")
            if line.endswith("\r"):
                line = line[:-1]
            if line_number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            if line.strip():
                yield line_number, line


def _parse_entities(text: str, path: Path, line_number: int, column: str) -> list[str]:
    """The WikidataIds of a MIND entity column (a JSON list of objects; `[]` or empty when none)."""
    if not text.strip():
        return []
    try:
        entities = json.loads(text)
    except json.JSONDecodeError as err:
        problem = f"column {column} is not valid JSON ({err.msg} at char {err.pos})"
        raise _malformed(path, line_number, problem) from None
    if not isinstance(entities, list) or not all(isinstance(entity, dict) for entity in entities):
        raise _malformed(path, line_number, f"column {column} must be a JSON list of entity objects")
    return [str(entity.get("WikidataId", "")) for entity in entities]


def _split_news_line(line: str, path: Path, line_number: int) -> list[str]:
    columns = line.split("\t")
    if len(columns) != len(NEWS_COLUMNS):
        raise _malformed(
            path,
            line_number,
            f"expected {len(NEWS_COLUMNS)} tab-separated columns ({', '.join(NEWS_COLUMNS)}), found {len(columns)}",
        )
    if not columns[0].strip():
        raise _malformed(path, line_number, "empty NewsID")
    return columns


def read_news_ids(news_files: Sequence[Path]) -> list[str]:
    """
    The catalog order of the news: first appearance over `news_files` (train, dev, test folder order). Every loader
    pass uses this one function, so item row `i` and the catalog index `i` in the interaction splits always agree.
    """
    ids: dict[str, None] = {}
    for path in news_files:
        for line_number, line in _read_lines(path):
            ids.setdefault(_split_news_line(line, path, line_number)[0].strip(), None)
    return list(ids)


def read_bodies(body_files: Sequence[Path]) -> dict[str, str]:
    """NewsID -> article body from `NewsID<TAB>body` files (the body may hold further tabs); first file wins."""
    bodies: dict[str, str] = {}
    for path in body_files:
        for line_number, line in _read_lines(path):
            news_id, tab, body = line.partition("\t")
            if not tab or not news_id.strip():
                raise _malformed(path, line_number, "expected NewsID<TAB>body")
            bodies.setdefault(news_id.strip(), body)
    return bodies


def parse_mind_time(text: str, path: Path | str = "<string>", line_number: int = 0) -> datetime:
    """
    A MIND time (`%m/%d/%Y %I:%M:%S %p`, not zero-padded: `11/11/2019 9:05:58 AM`), parsed without `strptime`'s
    per-call overhead (millions of lines in MIND-large); a malformed value raises `ValueError` naming file and line.
    """
    try:
        date, clock, half = text.strip().split(" ")
        month, day, year = date.split("/")
        hour_text, minute, second = clock.split(":")
        hour = int(hour_text)
        half = half.upper()
        if not 1 <= hour <= 12 or half not in ("AM", "PM"):
            raise ValueError
        hour = hour % 12 + (12 if half == "PM" else 0)
        return datetime(int(year), int(month), int(day), hour, int(minute), int(second))
    except ValueError:
        raise _malformed(path, line_number, f"time {text!r} does not match {TIME_FORMAT!r}") from None


def sample_negatives(negatives: Sequence[int], npratio: int, rng: random.Random) -> list[int]:
    """
    `npratio` negatives of an impression, as PLM-NR's `newsample`: without replacement when the impression has enough,
    otherwise from the negatives repeated `npratio // len + 1` times (so each is used about equally often).
    """
    if npratio > len(negatives):
        return rng.sample(list(negatives) * (npratio // len(negatives) + 1), npratio)
    return rng.sample(list(negatives), npratio)


# -------------------------------------------------------------------------------------------------------- builder


@dataclass
class MINDConfig(datasets.BuilderConfig):
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
        source_fingerprint (`str`): hash of the raw files' paths, sizes and mtimes (the cache key of their contents).
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
    source_fingerprint: str = ""


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


class MIND(datasets.GeneratorBasedBuilder):
    """
    `datasets` builder of MIND from the user's raw folders (no download). Instantiate it in code (datasets 5.x has no
    loading scripts): `MIND(config_name="behaviors", data_dir=..., cache_dir=..., **MINDConfig fields)`, then
    `download_and_prepare()` and `as_dataset()`. [`load_mind`] does this for both configs and adds the stats.
    """

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = MINDConfig
    BUILDER_CONFIGS = [
        MINDConfig(name="news", version=VERSION, description="One row per news: the item catalog."),
        MINDConfig(name="behaviors", version=VERSION, description="Impressions with click history."),
    ]
    DEFAULT_CONFIG_NAME = "behaviors"

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

    def _write_stats(self, name: str, stats: Mapping[str, Any]) -> None:
        # The stats live next to the Arrow files (the output folder is renamed into the cache when preparation ends),
        # so a cached load reports what the first load dropped.
        with open(os.path.join(self._output_dir, f"gram_hf_{name}.json"), "w", encoding="utf-8") as handle:
            json.dump(stats, handle, indent=1, sort_keys=True)

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
        for path in news_files:
            for line_number, line in _read_lines(path):
                columns = _split_news_line(line, path, line_number)
                news_id = columns[0].strip()
                record = {
                    "item_id": news_id,
                    "title": columns[3],
                    "abstract": columns[4],
                    "category": columns[1],
                    "subcategory": columns[2],
                    "url": columns[5],
                    "title_entities": _parse_entities(columns[6], path, line_number, "TitleEntities (7)"),
                    "abstract_entities": _parse_entities(columns[7], path, line_number, "AbstractEntities (8)"),
                }
                digest = hash(tuple(columns[1:5]))
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
        stats["bodies_without_news"] = len(set(bodies) - set(seen))
        self._write_stats("news", stats)

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
        for line_number, line in _read_lines(path):
            columns = line.split("\t")
            if len(columns) != len(BEHAVIORS_COLUMNS):
                raise _malformed(
                    path,
                    line_number,
                    f"expected {len(BEHAVIORS_COLUMNS)} tab-separated columns ({', '.join(BEHAVIORS_COLUMNS)}), "
                    f"found {len(columns)}",
                )
            impression_text, user_id, time_text, history_text, impressions_text = columns
            try:
                impression_id = int(impression_text)
            except ValueError:
                raise _malformed(path, line_number, f"ImpressionID {impression_text!r} is not an integer") from None
            time = parse_mind_time(time_text, path, line_number)
            if carve is not None and (carve_rng.random() < config.validation_fraction) != (carve == "take"):
                continue
            stats["impressions_read"] += 1

            history = []
            for news_id in history_text.split():
                news_index = index.get(news_id)
                if news_index is None:
                    self._missing(news_id, path, line_number, missing)
                    stats["missing_history_news"] += 1
                else:
                    history.append(news_index)
            if max_history is not None and len(history) > max_history:
                history = history[len(history) - max_history :]
                stats["truncated_histories"] += 1

            candidates, labels = [], []
            for token in impressions_text.split():
                news_id, dash, label = token.rpartition("-")
                labelled = bool(dash)
                if has_labels is None:
                    has_labels = labelled
                    stats["has_labels"] = labelled
                    if not labelled and form == "train":
                        raise _malformed(path, line_number, "the training split needs click labels (NewsID-0/1)")
                if labelled != has_labels:
                    expected = "NewsID-0/1 like the file's first impression" if has_labels else "a bare NewsID"
                    raise _malformed(path, line_number, f"impression token {token!r}: expected {expected}")
                if not labelled:
                    news_id, label = label, "-1"
                elif label not in ("0", "1") or not news_id:
                    raise _malformed(path, line_number, f"impression token {token!r}: expected NewsID-0 or NewsID-1")
                news_index = index.get(news_id)
                if news_index is None:
                    self._missing(news_id, path, line_number, missing)
                    stats["missing_candidate_news"] += 1
                    continue
                candidates.append(news_index)
                labels.append(int(label))

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
        stats["rows"] = row
        stats["missing_news_ids"] = sorted(missing)
        self._write_stats(f"split_{split}", stats)

    def _missing(self, news_id: str, path: Path, line_number: int, missing: set[str]) -> None:
        if self.config.strict:
            raise _malformed(path, line_number, f"NewsID {news_id!r} is in no news.tsv (strict=True)")
        missing.add(news_id)


# ----------------------------------------------------------------------------------------------------------- API


def _prepare(builder: MIND) -> datasets.DatasetDict:
    try:
        builder.download_and_prepare()
    except datasets.exceptions.DatasetGenerationError as err:
        # `datasets` wraps errors raised while generating; the user wants the loader's own message (file, line).
        if isinstance(err.__cause__, (ValueError, FileNotFoundError)):
            raise err.__cause__ from None
        raise
    return builder.as_dataset()


def _read_stats(builder: MIND, name: str) -> dict[str, Any]:
    path = os.path.join(builder.cache_dir, f"gram_hf_{name}.json")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_mind(
    data_dir: str | os.PathLike,
    *,
    text_fields: Sequence[str] = ("title",),
    max_history: int | None = 50,
    npratio: int = 4,
    seed: int = 0,
    validation_fraction: float = 0.0,
    strict: bool = False,
    variant: str | None = None,
    body_file: str | os.PathLike | None = None,
    include_test: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> InteractionData:
    """
    Loads MIND from the user's raw folders into gram-hf's canonical form (cached by `datasets`).

    Splits (all with [`IMPRESSION_FEATURES`]: `impression_id`, `user_id`, `time`, `history`, `candidates`, `labels`;
    `history` and `candidates` are catalog indices, `history` the `max_history` most recent clicks, oldest first):

    - `train`, from `*_train`: one row per click, holding the click and `npratio` negatives of its impression, the
      positive at a seeded random position (`labels` marks it);
    - `validation`, from `*_dev` (default), or from a `validation_fraction` of the `*_train` impressions when > 0:
      whole impressions, candidates in their original order;
    - `dev`, from `*_dev` when `validation_fraction` > 0: whole impressions;
    - `test`, from `*_test` (MINDlarge only): whole impressions; `labels` are -1 when the file has no labels (the
      leaderboard split; see [`write_mind_prediction`]).

    Negatives are sampled once, when the split is prepared (PLM-NR's `newsample`): without replacement, or from the
    repeated negatives when an impression has fewer than `npratio`. MIND has no labelled test split: papers report
    `*_dev`; carving a validation split out of train (`validation_fraction`) keeps `*_dev` untouched for the final
    numbers.

    Items (`InteractionData.items`, row `i` = catalog index `i`, the news of every folder read in first-appearance
    order): `item_id`, `text` (the `text_fields` joined by spaces), `title`, `abstract`, `category`, `subcategory`,
    `url`, `title_entities` and `abstract_entities` (WikidataIds), and `body` when a `news_body.tsv` is supplied. For
    per-field token budgets build the catalog from the fields instead of `text` (see [`build_news_catalog`]).

    Bad input: a malformed line raises `ValueError` naming the file, the line and the problem; a missing file raises
    `FileNotFoundError` naming it. NewsIDs of `behaviors.tsv` absent from every `news.tsv` (common in circulated
    subsets) are dropped with one summary warning (`strict=True` raises instead); impressions left without candidates,
    or labelled ones without clicks (train also: without negatives), are dropped. All counts are in `stats`.

    Args:
        data_dir (`str` or `os.PathLike`):
            The folder holding `MIND<variant>_train/_dev/_test` (or `train/`, `dev/`, `test/`, or one split folder);
            see [`find_mind_folders`].
        text_fields (`Sequence[str]`, *optional*, defaults to `("title",)`):
            Fields of the items' `text`, among `"title"`, `"abstract"`, `"body"` (the paper's best: all three).
        max_history (`int`, *optional*, defaults to 50):
            Clicks kept per history (the most recent); `None` keeps all.
        npratio (`int`, *optional*, defaults to 4):
            Negatives per click in `train`.
        seed (`int`, *optional*, defaults to 0):
            Seed of negative sampling, positive placement and validation carving.
        validation_fraction (`float`, *optional*, defaults to 0.0):
            Share of `*_train` impressions held out as `validation` (then `*_dev` becomes `dev`).
        strict (`bool`, *optional*, defaults to `False`):
            Raise on the first NewsID absent from every `news.tsv` instead of dropping it.
        variant (`str`, *optional*):
            `"large"` or `"small"` when `data_dir` holds both.
        body_file (`str` or `os.PathLike`, *optional*):
            A `NewsID<TAB>body` file of crawled article bodies; default: `news_body.tsv` files found in the folders.
        include_test (`bool`, *optional*, defaults to `True`):
            Read `*_test` when present (MINDlarge_test: 2.4M labelless impressions, needed only for the leaderboard).
        cache_dir (`str` or `os.PathLike`, *optional*):
            The `datasets` cache; defaults to `HF_DATASETS_CACHE`. The cache is keyed on every option and on the raw
            files' paths, sizes and modification times, so editing a raw file re-parses it.

    Returns:
        [`InteractionData`] with `splits`, `items` and `stats` (what was read and dropped, per split).
    """
    folders = find_mind_folders(data_dir, variant, body_file, include_test)
    if max_history is not None and (not isinstance(max_history, int) or max_history < 0):
        raise ValueError(f"max_history must be a non-negative int or None (keep all), got {max_history!r}.")
    if not isinstance(npratio, int) or npratio < 1:
        raise ValueError(f"npratio must be a positive int, got {npratio!r}.")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}.")
    text_fields = tuple(text_fields)
    unknown = set(text_fields) - set(NEWS_TEXT_FIELDS)
    if not text_fields or unknown:
        raise ValueError(f"text_fields must be a non-empty subset of {NEWS_TEXT_FIELDS}, got {list(text_fields)}.")
    if "body" in text_fields and not folders.body_files:
        raise ValueError(f"text_fields includes 'body' but no body_file was given and no {BODY_FILENAME} was found.")
    common = {
        "data_dir": str(folders.root.resolve()),
        "cache_dir": None if cache_dir is None else str(cache_dir),
        "variant": folders.variant,
        "include_test": include_test,
    }
    news_files = folders.news_files()
    news_builder = MIND(
        config_name="news",
        text_fields=text_fields,
        body_file=None if body_file is None else str(Path(body_file).expanduser().resolve()),
        source_fingerprint=folders.fingerprint([*news_files, *folders.body_files]),
        **common,
    )
    behaviors_builder = MIND(
        config_name="behaviors",
        max_history=-1 if max_history is None else max_history,
        npratio=npratio,
        seed=seed,
        validation_fraction=float(validation_fraction),
        strict=strict,
        source_fingerprint=folders.fingerprint(
            [*news_files, *(folders.behaviors_file(role) for role in ROLES if role in folders.folders)]
        ),
        **common,
    )
    items = _prepare(news_builder)["items"]
    splits = _prepare(behaviors_builder)
    order = [name for name in ("train", "validation", "dev", "test") if name in splits]
    splits = datasets.DatasetDict({name: splits[name] for name in order})

    news_stats = _read_stats(news_builder, "news")
    split_stats = {name: _read_stats(behaviors_builder, f"split_{name}") for name in order}
    # Distinct missing NewsIDs are counted over all splits (a news missing from dev and test is one news).
    missing_ids = set().union(*(stats.pop("missing_news_ids") for stats in split_stats.values()))
    stats = {
        "dataset": "MIND",
        "variant": folders.variant,
        "folders": {role: str(path) for role, path in folders.folders.items()},
        "text_fields": list(text_fields),
        "max_history": max_history,
        "npratio": npratio,
        "seed": seed,
        "validation_fraction": float(validation_fraction),
        "num_items": len(items),
        "news": news_stats,
        "splits": split_stats,
        "missing_news": {
            "distinct": len(missing_ids),
            "examples": sorted(missing_ids)[:10],
            "history_occurrences": sum(s["missing_history_news"] for s in split_stats.values()),
            "candidate_occurrences": sum(s["missing_candidate_news"] for s in split_stats.values()),
        },
    }
    _warn_about_drops(stats)
    return InteractionData(splits=splits, items=items, stats=stats)


def _warn_about_drops(stats: dict[str, Any]) -> None:
    """One summary warning for what the loader dropped (missing news, empty impressions, conflicting news copies)."""
    parts = []
    missing = stats["missing_news"]
    if missing["distinct"]:
        parts.append(
            f"{missing['distinct']} distinct NewsIDs of behaviors.tsv are in no news.tsv "
            f"(e.g. {missing['examples'][:3]}); dropped {missing['history_occurrences']} history and "
            f"{missing['candidate_occurrences']} candidate occurrences (strict=True raises instead)"
        )
    for name, split in stats["splits"].items():
        dropped = {
            reason: split[f"dropped_{reason}"]
            for reason in ("no_candidates", "no_clicks", "no_negatives")
            if split[f"dropped_{reason}"]
        }
        if dropped:
            details = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in dropped.items())
            parts.append(f"{name}: dropped {sum(dropped.values())} impressions ({details})")
    if stats["news"]["conflicting_news"]:
        parts.append(
            f"{stats['news']['conflicting_news']} NewsIDs have differing copies across news.tsv files; the first copy "
            f"is kept (e.g. {stats['news']['conflicting_examples'][:3]})"
        )
    if parts:
        logger.warning("MIND loader: %s.", "; ".join(parts))


def build_news_catalog(
    data: InteractionData,
    tokenizer: PreTrainedTokenizerBase,
    text_fields: Sequence[str] | None = None,
    max_lengths: Sequence[int] | Mapping[str, int] | None = None,
) -> ItemCatalog:
    """
    The [`ItemCatalog`] of MIND news with per-field token budgets: each field is truncated to its own length (default
    [`MIND_FIELD_MAX_LENGTHS`], the GRAM paper's 24 title / 50 abstract / 400 body tokens) and the fields are joined
    with the tokenizer's special tokens, e.g. `[CLS] title [SEP] abstract [SEP]`.

    Args:
        data ([`InteractionData`]): what [`load_mind`] returned.
        tokenizer (`PreTrainedTokenizerBase`): the content encoder's tokenizer.
        text_fields (`Sequence[str]`, *optional*): fields to encode; defaults to the `text_fields` `data` was loaded
            with.
        max_lengths (`Sequence[int]` or `Mapping[str, int]`, *optional*): tokens per field (special tokens excluded).
    """
    from ...items import ItemCatalog

    fields = list(text_fields or data.stats.get("text_fields") or ("title",))
    if isinstance(max_lengths, Mapping):
        lengths = [int(max_lengths.get(name, MIND_FIELD_MAX_LENGTHS.get(name, 128))) for name in fields]
    elif max_lengths is None:
        lengths = [MIND_FIELD_MAX_LENGTHS.get(name, 128) for name in fields]
    else:
        lengths = list(max_lengths)
    return ItemCatalog.from_dataset(data.items, tokenizer, text_column=fields, max_length=lengths)


__all__ = [
    "IMPRESSION_FEATURES",
    "MIND",
    "MIND_FIELD_MAX_LENGTHS",
    "NEWS_DEFAULT_POOLING",
    "NEWS_TEXT_FIELDS",
    "MINDConfig",
    "MINDFolders",
    "build_news_catalog",
    "find_mind_folders",
    "load_mind",
    "parse_mind_time",
    "sample_negatives",
]
