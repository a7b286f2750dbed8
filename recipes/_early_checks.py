"""
Checks a recipe's command line before `gram_hf` (and so torch and transformers) is imported: an invalid value such as
`--per_device_train_batch_size 0` ends the run in a fraction of a second with the one line and exit status 2 that the
program prints. `gram_hf.scripts.command_line` imports only the standard library, so it is loaded from its file
without running the package's `__init__`.
"""

from __future__ import annotations

import importlib.util
import os


def check_command_line_early() -> None:
    package = importlib.util.find_spec("gram_hf")  # finding a top-level package does not import it
    if package is None or not package.submodule_search_locations:
        return  # gram-hf is not installed: the import that follows says so
    path = os.path.join(list(package.submodule_search_locations)[0], "scripts", "command_line.py")
    spec = importlib.util.spec_from_file_location("_gram_hf_command_line", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.check_command_line_early()
