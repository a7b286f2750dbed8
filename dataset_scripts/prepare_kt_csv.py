"""
Turns any knowledge-tracing dataset in the generic tables — interactions `user_id,item_id,timestamp,correct` and
items `item_id,text`, CSV or Parquet — into a Hub-ready dataset folder:

    python dataset_scripts/prepare_kt_csv.py --interactions interactions.csv --items items.csv --output_dir my-kt
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from gram_hf.scripts.command_line import check_output_dir, raise_usage_errors, run_command_line
from gram_hf.tasks.knowledge_tracing.cli import (
    dataset_card,
    parse_prepare_arguments,
    prepare_argument_parser,
    write_prepared,
)
from gram_hf.tasks.knowledge_tracing.csv import TIMESTAMP_UNITS, load_kt_csv


def main(argv: Sequence[str] | None = None) -> Path:
    parser = raise_usage_errors(prepare_argument_parser(__doc__))
    parser.add_argument("--interactions", required=True, help="CSV or Parquet user_id,item_id,timestamp,correct.")
    parser.add_argument("--items", required=True, help="CSV or Parquet item_id,text.")
    parser.add_argument("--feature_columns", default="", help="Comma-separated categorical interaction columns.")
    parser.add_argument("--timestamp_unit", default="s", choices=sorted(TIMESTAMP_UNITS))
    parser.add_argument("--name", default="Knowledge-tracing dataset", help="Title of the dataset card.")
    parser.add_argument("--license", default=None, help="Hub licence id of the data, e.g. cc-by-4.0.")
    split, args = parse_prepare_arguments(parser, argv)
    check_output_dir(args.output_dir, args.overwrite)
    features = [name for name in args.feature_columns.split(",") if name]
    data = load_kt_csv(
        args.interactions,
        args.items,
        feature_columns=features,
        timestamp_unit=args.timestamp_unit,
        split=split,
        cache_dir=args.cache_dir,
    )
    card = dataset_card(
        data,
        title=args.name,
        description="Learner interactions (1 = correct) with items that carry text, in gram-hf's canonical form.",
        source=f"{Path(args.interactions).name} and {Path(args.items).name}, converted with "
        "dataset_scripts/prepare_kt_csv.py.",
    )
    return write_prepared(data, args, card, pretty_name=args.name, license=args.license)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(run_command_line(main))
