"""
The shared pieces of the `dataset_scripts/prepare_<dataset>.py` programs: one argument parser (the split options of
[`KnowledgeTracingSplitArguments`] through `HfArgumentParser`, the cache and the output options), the dataset card and
the writing of the Hub-ready folder.

```python
parser = prepare_argument_parser(__doc__)
parser.add_argument("--log_csv", required=True)
split, args = parse_prepare_arguments(parser, argv)
data = load_poj(args.log_csv, args.problem_text, split=split, cache_dir=args.cache_dir)
write_prepared(data, args, dataset_card(data, ...), pretty_name="POJ KT")
```
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from transformers import HfArgumentParser

from ...data import InteractionData
from ...dataset_output import add_output_arguments, write_output
from .canonical import SPLIT_NAMES
from .split_arguments import KnowledgeTracingSplitArguments


def prepare_argument_parser(description: str | None = None) -> HfArgumentParser:
    """
    The parser of a `prepare_<dataset>.py`: every [`KnowledgeTracingSplitArguments`] field as an option
    (`--max_seq_len`, `--cold_start_items 200` or `id1,id2`, `--split_seed`, ...), `--cache_dir` and the output options
    (`--output_dir`, `--overwrite`, `--push_to_hub`, `--private`). The script adds its raw-file options, then calls
    [`parse_prepare_arguments`].
    """
    parser = HfArgumentParser(
        KnowledgeTracingSplitArguments, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # The dataset scripts called the split seed --seed before they shared their options with the recipes (where --seed
    # is the training seed); it stays as an alias.
    parser.add_argument(
        "--seed", dest="split_seed", type=int, default=argparse.SUPPRESS, help="Alias of --split_seed."
    )
    parser.add_argument("--cache_dir", default=None, help="datasets cache of the parsed raw files.")
    add_output_arguments(parser)
    return parser


def parse_prepare_arguments(
    parser: HfArgumentParser, argv: Sequence[str] | None = None
) -> tuple[KnowledgeTracingSplitArguments, argparse.Namespace]:
    """
    The split options (validated) and the script's other options, from `argv` (default: the command line). Every
    problem with them, an invalid split option included, goes through `parser.error` (argparse: exit status 2), so
    that a script can report it as the command line's error.
    """
    namespace, unknown = parser.parse_known_args(None if argv is None else list(argv))
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    names = [field.name for field in dataclasses.fields(KnowledgeTracingSplitArguments) if field.init]
    try:
        split = KnowledgeTracingSplitArguments(**{name: getattr(namespace, name) for name in names})
    except ValueError as error:
        parser.error(str(error))
    for name in names:
        delattr(namespace, name)
    return split, namespace


def dataset_card(data: InteractionData, title: str, description: str, source: str, citation: str = "") -> str:
    """The Markdown body of a knowledge-tracing dataset card: provenance, schema, processing and statistics."""
    stats = data.stats
    features = ", ".join(f"`{name}` ({size} values, 0 = unknown)" for name, size in stats.get("features", {}).items())
    lines = [
        f"# {title}",
        "",
        description.strip(),
        "",
        f"Source: {source.strip()}",
        "",
        "Prepared with gram-hf (`dataset_scripts/`) for knowledge tracing with GRAM (Yang et al., NAACL 2022).",
        "",
        "## Configs",
        "",
        "- `interactions` (default): splits `train`, `validation`, `test`, split by learner "
        f"(test {stats['split']['test_fraction']}, then validation {stats['split']['validation_fraction']} of the "
        f"rest, seed {stats['split']['seed']}; split by `{stats['split']['by']}`). One row per window of at most "
        f"{stats['max_seq_len']} consecutive interactions of a learner: `user_id`, `items` (row indices into the "
        "`items` config), `responses` (1 = correct), `timestamps` (seconds)"
        + (f", and {features}." if features else "."),
        "- `items`: one row per item, row `i` = index `i`: `item_id`, `text`, `cold_start` (items whose interactions "
        "were removed from `train` and kept in `validation`/`test`, to measure cold-start performance) and metadata.",
        "",
        "## Statistics",
        "",
        "| split | learners | interactions | rows |",
        "| --- | --- | --- | --- |",
    ]
    for name in SPLIT_NAMES:
        lines.append(
            f"| {name} | {stats['users'][name]} | {stats['interactions'][name]} | {stats['sequences'][name]} |"
        )
    lines += [
        "",
        f"Items: {stats['items']['total']} ({stats['items']['cold_start']} cold-start). "
        + (f"Raw interaction rows read: {stats['rows_read']}. " if stats.get("rows_read") is not None else "")
        + f"Cold-start interactions removed from train: {stats['cold_start_interactions']['removed_from_train']}. "
        + "Dropped: "
        + (", ".join(f"{key} {value}" for key, value in stats["dropped"].items() if value) or "nothing")
        + ".",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'splits = load_dataset("REPO_OR_FOLDER")',
        'items = load_dataset("REPO_OR_FOLDER", "items", split="train")',
        '# or, with the feature vocabulary sizes: gram_hf.data.InteractionData.from_hub("REPO_OR_FOLDER")',
        "```",
    ]
    if citation:
        lines += ["", "## Citation", "", "```bibtex", citation.strip(), "```"]
    return "\n".join(lines)


def write_prepared(
    data: InteractionData, args: argparse.Namespace, card_text: str, pretty_name: str, license: str | None = None
) -> Path:
    """Writes `args.output_dir` (and uploads it with `--push_to_hub`); returns the folder."""
    return write_output(data, args, card_text, pretty_name=pretty_name, license=license, tags=["knowledge-tracing"])


__all__ = ["dataset_card", "parse_prepare_arguments", "prepare_argument_parser", "write_prepared"]
