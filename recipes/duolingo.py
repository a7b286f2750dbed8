"""
Knowledge tracing on Duolingo SLAM 2018 with GRAM, in the GRAM paper's view: one interaction per exercise, the item is
the exercise's sentence (encoded by a pre-trained language model), the response is 1 when every token is right.

This is the program `gram_hf.scripts.duolingo` of the installed package (its docstring and `--help` have every
option); it runs the same as `gram-hf duolingo ...` and `accelerate launch -m gram_hf.scripts.duolingo ...`:

    python recipes/duolingo.py --help
"""

if __name__ == "__main__":
    from _early_checks import check_command_line_early  # before torch loads: a bad value fails at once

    check_command_line_early()

from gram_hf.scripts.command_line import run_command_line  # noqa: E402
from gram_hf.scripts.duolingo import *  # noqa: E402, F403  (DataArguments, DEFAULTS, DEMO_DEFAULTS, ... for readers and tests)
from gram_hf.scripts.duolingo import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
