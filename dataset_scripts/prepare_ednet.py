"""
Turns EdNet-KT1 (the GRAM paper's "TOEIC" dataset) into a Hub-ready knowledge-tracing dataset folder. EdNet has no
question text: pass a `question_id,text` table of your own (`--item_text`), and decide what happens to questions
without text (`--missing_text error|drop|part_and_tags`).

    python dataset_scripts/prepare_ednet.py --kt1_dir EdNet-KT1/KT1 \\
        --questions_csv EdNet-Contents/contents/questions.csv --item_text question_text.csv \\
        --cold_start_items 684 --output_dir ednet-kt1-kt
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
from gram_hf.tasks.knowledge_tracing.ednet import MISSING_TEXT_CHOICES, load_ednet

CITATION = """@inproceedings{choi2020ednet,
  title = {EdNet: A Large-Scale Hierarchical Dataset in Education},
  author = {Choi, Youngduck and Lee, Youngnam and Shin, Dongmin and Cho, Junghyun and Park, Seoyon and Lee, Seewoo
            and Baek, Jineon and Bae, Chan and Kim, Byungsoo and Heo, Jaewe},
  booktitle = {Artificial Intelligence in Education},
  year = {2020}
}"""


def main(argv: Sequence[str] | None = None) -> Path:
    parser = raise_usage_errors(prepare_argument_parser(__doc__))
    parser.add_argument("--kt1_dir", required=True, help="The KT1 folder of u{N}.csv files.")
    parser.add_argument("--questions_csv", required=True, help="contents/questions.csv.")
    parser.add_argument("--item_text", required=True, help="CSV or Parquet question_id,text.")
    parser.add_argument("--missing_text", default="error", choices=list(MISSING_TEXT_CHOICES))
    split, args = parse_prepare_arguments(parser, argv)
    check_output_dir(args.output_dir, args.overwrite)
    data = load_ednet(
        args.kt1_dir,
        args.questions_csv,
        args.item_text,
        missing_text=args.missing_text,
        split=split,
        cache_dir=args.cache_dir,
    )
    card = dataset_card(
        data,
        title="EdNet-KT1 (TOEIC) as knowledge tracing",
        description=(
            "One interaction per answered question of Santa (TOEIC preparation): response = user_answer equals the "
            "correct answer (an empty answer counts as wrong). Features: TOEIC `part` (1-7) and bucketed "
            "`elapsed_time`. Question texts come from a user-supplied table; missing-text policy: "
            f"{args.missing_text}."
        ),
        source="EdNet-KT1 and EdNet-Contents by Riiid (CC BY-NC 4.0), converted by dataset_scripts/prepare_ednet.py.",
        citation=CITATION,
    )
    return write_prepared(data, args, card, pretty_name="EdNet-KT1 (TOEIC) KT", license="cc-by-nc-4.0")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(run_command_line(main))
