"""
`gram-hf`, the command of the installed package: `gram-hf <program> [options]` runs one of the programs of
[`gram_hf.scripts`] in this process, e.g. `gram-hf mind --bf16` or `gram-hf toeic --kt1_dir KT1 ...`;
`gram-hf <program> --help` lists its options. For several processes or GPUs use
`accelerate launch -m gram_hf.scripts.<program> ...`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from .scripts import PROGRAMS

USAGE = (
    "usage: gram-hf <program> [options]   (gram-hf <program> --help for its options)\n"
    f"programs: {', '.join(PROGRAMS)}\n"
    "several processes or GPUs: accelerate launch [--multi_gpu --num_processes N] -m gram_hf.scripts.<program> ..."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `gram-hf <program> [options]`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    name, options = argv[0].replace("-", "_"), argv[1:]
    if name not in PROGRAMS:
        print(f"gram-hf: unknown program {argv[0]!r}; choose one of: {', '.join(PROGRAMS)}.", file=sys.stderr)
        return 2
    program = importlib.import_module(f"gram_hf.scripts.{name}")
    sys.argv = [f"gram-hf {name}", *options]  # what --help and the results' command line show
    program.main(options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
