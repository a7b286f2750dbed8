"""
News recommendation on MIND with GRAM: a pre-trained language model as the news encoder (additive-attention pooling
over tokens, as in PLM-NR) under an NRMS user model, trained with GRAM.

This is the program `gram_hf.scripts.mind` of the installed package (its docstring and `--help` have every
option); it runs the same as `gram-hf mind ...` and `accelerate launch -m gram_hf.scripts.mind ...`:

    python recipes/mind.py --help
"""

if __name__ == "__main__":
    from _early_checks import check_command_line_early  # before torch loads: a bad value fails at once

    check_command_line_early()

from gram_hf.scripts.command_line import run_command_line  # noqa: E402
from gram_hf.scripts.mind import *  # noqa: E402, F403  (DataArguments, DEFAULTS, DEMO_DEFAULTS, ... for readers and tests)
from gram_hf.scripts.mind import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
