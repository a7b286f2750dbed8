"""
Knowledge tracing on EdNet-KT1 ("TOEIC", the GRAM paper's largest dataset) with GRAM: the question text encoded by a
pre-trained language model, the question's part and the learner's elapsed time fed to the KT head as features (the part
as a *current* feature, known before the answer; the elapsed time one step later, with the response).

This is the program `gram_hf.scripts.toeic` of the installed package (its docstring and `--help` have every
option); it runs the same as `gram-hf toeic ...` and `accelerate launch -m gram_hf.scripts.toeic ...`:

    python recipes/toeic.py --help
"""

if __name__ == "__main__":
    from _early_checks import check_command_line_early  # before torch loads: a bad value fails at once

    check_command_line_early()

from gram_hf.scripts.command_line import run_command_line  # noqa: E402
from gram_hf.scripts.toeic import *  # noqa: E402, F403  (DataArguments, DEFAULTS, DEMO_DEFAULTS, ... for readers and tests)
from gram_hf.scripts.toeic import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
