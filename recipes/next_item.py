"""
Next-item recommendation with SASRec over a content encoder's item vectors, trained with GRAM, with the memory-
efficient large-catalog losses (CE, CE- sampled, CCE cut cross-entropy, CCE- sampled CCE) and full-catalog evaluation:
NDCG@10, HR@10, Coverage@10 and Surprisal@10, and NDCG/HR on users whose held-out item is a cold-start item (never in
training), which only a content model can recommend.

This is the program `gram_hf.scripts.next_item` of the installed package (its docstring and `--help` have every
option); it runs the same as `gram-hf next_item ...` and `accelerate launch -m gram_hf.scripts.next_item ...`:

    python recipes/next_item.py --help
"""

if __name__ == "__main__":
    from _early_checks import check_command_line_early  # before torch loads: a bad value fails at once

    check_command_line_early()

from gram_hf.scripts.command_line import run_command_line  # noqa: E402
from gram_hf.scripts.next_item import *  # noqa: E402, F403  (DataArguments, DEFAULTS, DEMO_DEFAULTS, ... for readers and tests)
from gram_hf.scripts.next_item import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
