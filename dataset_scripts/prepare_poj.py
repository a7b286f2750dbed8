"""
Turns the POJ (Peking Online Judge) submission log circulated with pyKT into a Hub-ready knowledge-tracing dataset
folder; problem statements come from a `problem_id,text` table of your own.

    python dataset_scripts/prepare_poj.py --log_csv poj_log.csv --problem_text problem_text.csv --output_dir poj-kt
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
from gram_hf.tasks.knowledge_tracing.poj import load_poj


def main(argv: Sequence[str] | None = None) -> Path:
    parser = raise_usage_errors(prepare_argument_parser(__doc__))
    parser.add_argument("--log_csv", required=True, help="poj_log.csv (User, Problem, Result, Submit Time, ...).")
    parser.add_argument("--problem_text", required=True, help="CSV or Parquet problem_id,text.")
    split, args = parse_prepare_arguments(parser, argv)
    check_output_dir(args.output_dir, args.overwrite)
    data = load_poj(args.log_csv, args.problem_text, split=split, cache_dir=args.cache_dir)
    card = dataset_card(
        data,
        title="POJ submissions as knowledge tracing",
        description=(
            "One interaction per submission to the Peking Online Judge: the item is the problem (its statement as "
            "text), the response is 1 only for `Accepted`. Timestamps are the submit times, read as UTC."
        ),
        source="The POJ log distributed with the pyKT toolkit, converted with dataset_scripts/prepare_poj.py.",
    )
    return write_prepared(data, args, card, pretty_name="POJ KT")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(run_command_line(main))
