"""
Knowledge tracing with GRAM on any dataset in the generic tables: interactions `user_id,item_id,timestamp,correct` and
items `item_id,text` (CSV with a header, or Parquet), read by `gram_hf.tasks.knowledge_tracing.load_kt_csv`.

This is the program `gram_hf.scripts.knowledge_tracing` of the installed package (its docstring and `--help` have every
option); it runs the same as `gram-hf knowledge_tracing ...` and
`accelerate launch -m gram_hf.scripts.knowledge_tracing ...`:

    python recipes/knowledge_tracing.py --help
"""

if __name__ == "__main__":
    from _early_checks import check_command_line_early  # before torch loads: a bad value fails at once

    check_command_line_early()

from gram_hf.scripts.command_line import run_command_line  # noqa: E402
from gram_hf.scripts.knowledge_tracing import *  # noqa: E402, F403  (DataArguments, DEFAULTS, DEMO_DEFAULTS, ... for readers and tests)
from gram_hf.scripts.knowledge_tracing import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
