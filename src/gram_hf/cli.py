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
from .scripts.command_line import EXIT_USAGE, run_command_line

USAGE = (
    "usage: gram-hf <program> [options]   (gram-hf <program> --help for its options)\n"
    f"programs: {', '.join(PROGRAMS)}\n"
    "several processes or GPUs: accelerate launch [--multi_gpu --num_processes N] -m gram_hf.scripts.<program> ..."
)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Runs `gram-hf <program> [options]`; returns the exit status: 0, 2 for a command line that cannot run, 1 for a run
    that failed on its data, each failure in one line (see [`~gram_hf.scripts.command_line.run_command_line`]).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else EXIT_USAGE
    name, options = argv[0].replace("-", "_"), argv[1:]
    if name not in PROGRAMS:
        print(f"gram-hf: unknown program {argv[0]!r}; choose one of: {', '.join(PROGRAMS)}.", file=sys.stderr)
        return EXIT_USAGE
    program = importlib.import_module(f"gram_hf.scripts.{name}")
    sys.argv = [f"gram-hf {name}", *options]  # what --help and the results' command line show
    return run_command_line(program.main, options, prog=f"gram-hf {name}")


if __name__ == "__main__":
    sys.exit(main())
