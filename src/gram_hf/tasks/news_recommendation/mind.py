"""
The MIND (Microsoft News Dataset) loader: the raw `news.tsv` / `behaviors.tsv` folders read into gram-hf's canonical
form through the [`~gram_hf.tasks.news_recommendation.mind_builder.MIND`] builder (parsed splits cached as Arrow), and
the news catalog with per-field token budgets.

MIND's files are downloaded by the user (Microsoft Research License Terms); this module never downloads anything.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets

from ...builders import fingerprint_files
from ...data import InteractionData
from .mind_builder import MIND, NEWS_TEXT_FIELDS
from .mind_files import BODY_FILENAME, find_mind_folders

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ...items import ItemCatalog

logger = logging.getLogger(__name__)

MIND_FIELD_MAX_LENGTHS: dict[str, int] = {"title": 24, "abstract": 50, "body": 400}
"""Tokens kept per news field, special tokens excluded: the budgets of the GRAM paper's news encoder."""

NEWS_DEFAULT_POOLING = "attention"
"""Pooling of the news content encoder: additive attention over tokens, as in PLM-NR (pass it as `pooling=`)."""


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

    Bad input: malformed lines raise one [`~gram_hf.raw_files.DataFileError`] (a `ValueError`) listing the first few
    as `file:line: problem` and how many more there are (invalid UTF-8 included); a missing file raises
    `FileNotFoundError` naming it. NewsIDs of `behaviors.tsv` absent from every `news.tsv` (common in circulated
    subsets) are dropped with one summary warning (`strict=True` raises instead); impressions left without candidates,
    or labelled ones without clicks (train also: without negatives), are dropped. All counts are in `stats`; the unit
    of MIND's dropped counts is the impression: `stats["rows_read"]` (impressions read, every behaviors line once) =
    impressions kept in the splits + the sum of `stats["dropped"]` (`impressions_without_candidates`,
    `impressions_without_clicks`, `impressions_without_negatives`; zero counts left out); `stats["removed_from_train"]`
    is empty. Per split and for missing news occurrences see `stats["splits"]` and `stats["missing_news"]`.

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
        "cache_dir": cache_dir,
        "variant": folders.variant,
        "include_test": include_test,
    }
    news_files = folders.news_files()
    news_builder = MIND.prepare(
        "news",
        fingerprint=fingerprint_files([*news_files, *folders.body_files]),
        text_fields=text_fields,
        body_file=None if body_file is None else str(Path(body_file).expanduser().resolve()),
        **common,
    )
    behaviors_builder = MIND.prepare(
        "behaviors",
        fingerprint=fingerprint_files([*news_files, *folders.behaviors_files()]),
        max_history=-1 if max_history is None else max_history,
        npratio=npratio,
        seed=seed,
        validation_fraction=float(validation_fraction),
        strict=strict,
        **common,
    )
    items = news_builder.as_dataset()["items"]
    splits = behaviors_builder.as_dataset()
    order = [name for name in ("train", "validation", "dev", "test") if name in splits]
    splits = datasets.DatasetDict({name: splits[name] for name in order})

    news_stats = news_builder.read_stats("news")
    split_stats = {name: behaviors_builder.read_stats(f"split_{name}") for name in order}
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
    stats["rows_read"] = sum(split["impressions_read"] for split in split_stats.values())
    dropped = {
        f"impressions_without_{reason}": sum(split[f"dropped_no_{reason}"] for split in split_stats.values())
        for reason in ("candidates", "clicks", "negatives")
    }
    stats["dropped"] = {reason: count for reason, count in dropped.items() if count}
    stats["removed_from_train"] = {}
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


__all__ = ["MIND_FIELD_MAX_LENGTHS", "NEWS_DEFAULT_POOLING", "build_news_catalog", "load_mind"]
