"""
Turns a Duolingo SLAM 2018 track into a Hub-ready knowledge-tracing dataset folder (one parquet per split, an items
config, a dataset card), optionally uploaded to the Hub:

    python dataset_scripts/prepare_duolingo.py --data_dir data_en_es --track en_es --output_dir slam-en_es-kt
    python dataset_scripts/prepare_duolingo.py --data_dir data_fr_en --track fr_en --output_dir out \\
        --push_to_hub user/slam-fr_en-kt

Then `datasets.load_dataset("slam-en_es-kt")` gives the splits and `load_dataset("slam-en_es-kt", "items")` the
sentences. One interaction per exercise; item = the sentence; response = 1 when every token is right.
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
from gram_hf.tasks.knowledge_tracing.duolingo import load_duolingo

CITATION = """@inproceedings{settles-etal-2018-second,
  title = {Second Language Acquisition Modeling},
  author = {Settles, Burr and Brust, Chris and Gustafson, Erin and Hagiwara, Masato and Madnani, Nitin},
  booktitle = {Proceedings of the Thirteenth Workshop on Innovative Use of NLP for Building Educational Applications},
  year = {2018}
}"""


def main(argv: Sequence[str] | None = None) -> Path:
    parser = raise_usage_errors(prepare_argument_parser(__doc__))
    parser.add_argument("--data_dir", required=True, help="Folder with {track}.slam.{date}.{train,dev,test}[.key].")
    parser.add_argument("--track", default="en_es", help="en_es (Spanish), fr_en (French) or es_en.")
    parser.add_argument("--date", default=None, help="Release date (20171218 or 20190204); default: the newest.")
    parser.add_argument(
        "--split_by", default="user", choices=["user", "slam"], help="Re-split by learner (paper) or keep SLAM's."
    )
    parser.add_argument("--include_prompt", action="store_true", help="Prepend the L1 prompt to the sentence.")
    split, args = parse_prepare_arguments(parser, argv)
    check_output_dir(args.output_dir, args.overwrite)
    data = load_duolingo(
        args.data_dir,
        args.track,
        date=args.date,
        split_by=args.split_by,
        include_prompt=args.include_prompt,
        split=split,
        cache_dir=args.cache_dir,
    )
    card = dataset_card(
        data,
        title=f"Duolingo SLAM 2018 ({args.track}) as knowledge tracing",
        description=(
            "One interaction per exercise: the item is the exercise's sentence (tokens joined by single spaces; "
            "identical sentences are one item), the response is 1 when the learner got every token right. Features: "
            "exercise `format`, `client`, `session` and bucketed response `elapsed_time`. This is the knowledge-"
            "tracing view of the GRAM paper (after Srivastava & Goodman 2021)."
        ),
        source="Duolingo SLAM 2018 data (CC BY-NC 4.0), converted by dataset_scripts/prepare_duolingo.py.",
        citation=CITATION,
    )
    return write_prepared(data, args, card, pretty_name=f"Duolingo SLAM {args.track} KT", license="cc-by-nc-4.0")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(run_command_line(main))
