"""
Turns a MIND download (MINDsmall_* or MINDlarge_* folders) into a Hub-ready news-recommendation dataset folder (one
parquet per split, an items config with the news, a dataset card), optionally uploaded to the Hub:

    python dataset_scripts/prepare_mind.py --data_dir MIND --variant small --output_dir mind-small-gram
    python dataset_scripts/prepare_mind.py --data_dir MIND --variant large --text_fields title abstract \\
        --output_dir mind-large-gram --push_to_hub user/mind-large-gram --private

Then `datasets.load_dataset("mind-small-gram")` gives the impression splits and `load_dataset("mind-small-gram",
"items", split="train")` the news (`InteractionData.from_hub` gives both with the loader's stats).

MIND is distributed under the Microsoft Research License Terms (non-commercial research). Check them before making a
repository public; `--private` creates a private one.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from gram_hf.data import InteractionData
from gram_hf.dataset_output import add_output_arguments, write_output
from gram_hf.scripts.command_line import check_argument_values, check_output_dir, raise_usage_errors, run_command_line
from gram_hf.tasks.news_recommendation import NEWS_TEXT_FIELDS, load_mind

logger = logging.getLogger(__name__)

CITATION = """@inproceedings{wu-etal-2020-mind,
  title = {{MIND}: A Large-scale Dataset for News Recommendation},
  author = {Wu, Fangzhao and Qiao, Ying and Chen, Jiun-Hung and Wu, Chuhan and Qi, Tao and Lian, Jianxun and
            Liu, Danyang and Xie, Xing and Gao, Jianfeng and Wu, Winnie and Zhou, Ming},
  booktitle = {Proceedings of the 58th Annual Meeting of the Association for Computational Linguistics},
  year = {2020},
  pages = {3597--3606}
}"""


def dataset_card(data: InteractionData) -> str:
    """The Markdown body of the dataset card: provenance, schema, processing and statistics."""
    stats = data.stats
    variant = stats.get("variant") or "custom"
    split_sources = {
        "train": "`*_train`: one row per click, the click plus `npratio` negatives sampled from its impression (the "
        "positive at a seeded random position)",
        "validation": (
            f"a {stats['validation_fraction']:.0%} share of the `*_train` impressions, whole impressions"
            if stats["validation_fraction"] > 0
            else "`*_dev`, whole impressions (candidates in their original order)"
        ),
        "dev": "`*_dev`, whole impressions",
        "test": "`*_test`, whole impressions; `labels` are -1 where the raw file has none (MINDlarge_test: "
        "leaderboard prediction only)",
    }
    lines = [
        f"# MIND ({variant}) for news recommendation with gram-hf",
        "",
        "The Microsoft News Dataset (MIND) in gram-hf's canonical form, prepared by `dataset_scripts/prepare_mind.py` "
        "for training news encoders with GRAM (Yang et al., NAACL 2022) and an NRMS user model.",
        "",
        "Source: MIND (https://msnews.github.io/), Microsoft Research License Terms (non-commercial research use).",
        "",
        "## Configs",
        "",
        "- `interactions` (default): one row per impression (per click in `train`): `impression_id`, `user_id`, "
        "`time`, `history` (the user's clicked news, row indices into `items`, oldest first, at most "
        f"{stats['max_history'] if stats['max_history'] is not None else 'all'} most recent), `candidates` (row "
        "indices into `items`) and `labels` (1 clicked, 0 not, -1 unknown).",
    ]
    lines += [f"  - `{name}`: {split_sources[name]}." for name in data.splits]
    lines += [
        "- `items`: one row per news, row `i` = index `i`: `item_id` (NewsID), `text` (the "
        f"{' + '.join(stats['text_fields'])} joined by spaces), `title`, `abstract`, `category`, `subcategory`, "
        "`url`, `title_entities`, `abstract_entities` (WikidataIds)"
        + (", `body`." if "body" in data.items.column_names else "."),
        "",
        f"Negatives per click: {stats['npratio']} (PLM-NR's sampling: with repetition when an impression has fewer); "
        f"seed {stats['seed']}.",
        "",
        "## Statistics",
        "",
        "| split | impressions | rows | clicks | candidates | dropped (no candidates / clicks / negatives) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, split in stats["splits"].items():
        dropped = f"{split['dropped_no_candidates']} / {split['dropped_no_clicks']} / {split['dropped_no_negatives']}"
        lines.append(
            f"| {name} | {split['impressions']} | {split['rows']} | {split['clicks']} | {split['candidates']} | "
            f"{dropped} |"
        )
    missing = stats["missing_news"]
    lines += [
        "",
        f"News: {stats['num_items']}. NewsIDs of `behaviors.tsv` absent from every `news.tsv`: {missing['distinct']} "
        f"(dropped: {missing['history_occurrences']} history and {missing['candidate_occurrences']} candidate "
        "occurrences).",
        "",
        "## Usage",
        "",
        "```python",
        "from gram_hf.data import InteractionData",
        "from gram_hf.tasks.news_recommendation import NewsRecommendationCollator, build_news_catalog",
        "",
        'data = InteractionData.from_hub("REPO_OR_FOLDER")',
        "catalog = build_news_catalog(data, tokenizer)  # per-field budgets: 24 title / 50 abstract / 400 body tokens",
        "```",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    raise_usage_errors(parser)
    parser.add_argument("--data_dir", required=True, help="Folder holding MIND<variant>_train/_dev[/_test].")
    parser.add_argument("--variant", default=None, help="large or small, when data_dir holds both.")
    parser.add_argument(
        "--text_fields", nargs="+", default=["title"], choices=list(NEWS_TEXT_FIELDS), help="Fields of the item text."
    )
    parser.add_argument("--body_file", default=None, help="NewsID<TAB>body file of crawled article bodies.")
    parser.add_argument("--max_history", type=int, default=50, help="Most recent clicks kept; -1 keeps all.")
    parser.add_argument("--npratio", type=int, default=4, help="Negatives sampled per click in train.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of negative sampling and validation carving.")
    parser.add_argument(
        "--validation_fraction",
        type=float,
        default=0.0,
        help="Share of *_train impressions held out as validation (then *_dev becomes the 'dev' split).",
    )
    parser.add_argument("--strict", action="store_true", help="Fail on NewsIDs absent from news.tsv.")
    parser.add_argument("--skip_test", action="store_true", help="Leave out *_test (MINDlarge's labelless split).")
    parser.add_argument("--cache_dir", default=None, help="datasets cache of the parsed raw files.")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    check_argument_values(vars(args))
    check_output_dir(args.output_dir, args.overwrite)

    data = load_mind(
        args.data_dir,
        text_fields=args.text_fields,
        max_history=None if args.max_history == -1 else args.max_history,
        npratio=args.npratio,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        strict=args.strict,
        variant=args.variant,
        body_file=args.body_file,
        include_test=not args.skip_test,
        cache_dir=args.cache_dir,
    )
    card = dataset_card(data)
    variant = data.stats.get("variant") or "custom"
    if args.push_to_hub and not args.private:
        logger.warning("Pushing MIND publicly: make sure the Microsoft Research License Terms allow it.")
    # MIND's licence is not a Hub licence id; `other` plus the terms named in the card.
    return write_output(
        data,
        args,
        card,
        pretty_name=f"MIND ({variant}) for gram-hf",
        license="other",
        tags=["news-recommendation", "mind"],
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(run_command_line(main))
