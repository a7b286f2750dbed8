"""
Knowledge tracing on POJ (Peking Online Judge submissions) with GRAM: the problem statement encoded by a pre-trained
language model, the response 1 for an `Accepted` submission.

This is the program `gram_hf.scripts.poj` of the installed package (its docstring and `--help` have every
option); it runs the same as `gram-hf poj ...` and `accelerate launch -m gram_hf.scripts.poj ...`:

    python recipes/poj.py --help
"""

if __name__ == "__main__":
    from _early_checks import check_command_line_early  # before torch loads: a bad value fails at once

    check_command_line_early()

from gram_hf.scripts.command_line import run_command_line  # noqa: E402
from gram_hf.scripts.poj import *  # noqa: E402, F403  (DataArguments, DEFAULTS, DEMO_DEFAULTS, ... for readers and tests)
from gram_hf.scripts.poj import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
