"""
The output side every `dataset_scripts/prepare_<dataset>.py` shares: the options (`--output_dir`, `--overwrite`,
`--push_to_hub REPO_ID`, `--private`) and writing an [`~gram_hf.data.InteractionData`] as a Hub-ready folder,
uploaded when asked. Engine level: it knows no task.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from .data import InteractionData

logger = logging.getLogger(__name__)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the `output` options of a prepare script to `parser`."""
    output = parser.add_argument_group("output")
    output.add_argument("--output_dir", required=True, help="The Hub-ready folder to write.")
    output.add_argument("--overwrite", action="store_true", help="Replace a non-empty output_dir.")
    output.add_argument("--push_to_hub", metavar="REPO_ID", default=None, help="Also upload to this dataset repo.")
    output.add_argument("--private", action="store_true", help="Create the Hub repository as private.")


def write_output(
    data: InteractionData,
    args: argparse.Namespace,
    card_text: str,
    *,
    pretty_name: str,
    license: str | None = None,
    tags: Sequence[str] = (),
) -> Path:
    """
    Writes `data` to `args.output_dir` (see [`~gram_hf.data.InteractionData.save_to_hub_folder`]) and, with
    `--push_to_hub`, uploads it; returns the folder.

    Args:
        data ([`~gram_hf.data.InteractionData`]): what the loader returned.
        args (`argparse.Namespace`): the options of [`add_output_arguments`].
        card_text (`str`): the dataset card's Markdown body.
        pretty_name, license, tags: the card's metadata (`license` a Hub licence id).
    """
    save = {"pretty_name": pretty_name, "license": license, "tags": list(tags), "overwrite": args.overwrite}
    if args.push_to_hub:
        data.push_to_hub(args.push_to_hub, card_text, private=args.private or None, folder=args.output_dir, **save)
    else:
        data.save_to_hub_folder(args.output_dir, card_text, **save)
    logger.info("Wrote %s: %s", args.output_dir, json.dumps({name: len(rows) for name, rows in data.splits.items()}))
    return Path(args.output_dir)


__all__ = ["add_output_arguments", "write_output"]
