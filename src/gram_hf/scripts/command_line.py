"""
How the gram-hf programs meet the command line: a bad run ends with one line and an exit status, not a traceback.

- Exit status 2, `<program>: error: <what is wrong>`: the command line cannot run (an unknown flag, an invalid value,
  flags that contradict each other, a checkpoint that is not there) — raised as [`UsageError`], before any data or
  weights are loaded and before anything is written.
- Exit status 1, the same one line: the data (a missing file, a malformed line: the loaders raise `ValueError`s naming
  `file:line: problem`, or `OSError`s) or the run (a NaN loss) failed.
- The traceback is shown on request: `--debug` (without a value), `GRAM_HF_DEBUG=1` or `--log_level debug`.

`main(argv)` of a program keeps raising exceptions for Python callers; only [`run_command_line`], the command-line
entry (`python recipes/x.py`, `gram-hf x`, `python -m gram_hf.scripts.x`, `accelerate launch`), turns them into one
line. This module imports nothing heavy, so it can run before torch and transformers load.

[`check_argument_values`] holds the value checks that neither `transformers.TrainingArguments` nor the programs'
argument dataclasses make when constructed (torch would otherwise refuse `--per_device_train_batch_size 0` only after
the data and the weights were loaded, in its own words).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

EXIT_FAILURE = 1
"""The exit status of a run that failed on its data or while training."""
EXIT_USAGE = 2
"""The exit status of a command line that cannot run (argparse's)."""
DEBUG_ENVIRONMENT_VARIABLE = "GRAM_HF_DEBUG"
DEBUG_FLAG = "--debug"


class UsageError(ValueError):
    """
    A command line that cannot run: an unknown flag, an invalid value, flags that contradict each other. A
    `ValueError`, so Python callers of a program's `main(argv)` catch it as before; the command line exits with status
    2 and one line.
    """


def raise_usage_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """
    Makes `parser` raise [`UsageError`] where argparse would print its usage block and exit: [`run_command_line`]
    prints the one line (the usage of a program with every Trainer flag runs to a hundred lines; `--help` has it).
    Returns `parser`.
    """

    def error(message: str):
        raise UsageError(message)

    parser.error = error
    return parser


class _Rule(NamedTuple):
    requirement: str
    holds: Callable[[Any], bool]
    applies: Callable[[Mapping[str, Any]], bool] = lambda values: True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value >= 1


def _non_negative(value: Any) -> bool:
    return isinstance(value, int | float) and value >= 0


def _steps_strategy(name: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda values: str(getattr(values.get(name), "value", values.get(name))) == "steps"


POSITIVE_INTEGER = "a positive integer"
# Field name -> what its value must be. Field names are unique across a program's argument dataclasses
# (HfArgumentParser gives every field one flag), so one flat table serves them all.
ARGUMENT_RULES: dict[str, _Rule] = {
    "per_device_train_batch_size": _Rule(POSITIVE_INTEGER, _positive_int),
    "per_device_eval_batch_size": _Rule(POSITIVE_INTEGER, _positive_int),
    "gradient_accumulation_steps": _Rule(POSITIVE_INTEGER, _positive_int),
    "num_train_epochs": _Rule(
        "> 0 (or give --max_steps)", lambda value: value > 0, lambda values: not values.get("max_steps", -1) > 0
    ),
    "learning_rate": _Rule(">= 0", _non_negative),
    "eval_steps": _Rule("> 0 with --eval_strategy steps", lambda value: value > 0, _steps_strategy("eval_strategy")),
    "save_steps": _Rule("> 0 with --save_strategy steps", lambda value: value > 0, _steps_strategy("save_strategy")),
    "save_total_limit": _Rule("a positive integer or unset", lambda value: value is None or _positive_int(value)),
    "dataloader_num_workers": _Rule("a non-negative integer", lambda value: _is_int(value) and value >= 0),
    "early_stopping_patience": _Rule("a non-negative integer (0 disables it)", lambda v: _is_int(v) and v >= 0),
    "synthetic_scale": _Rule("> 0", lambda value: value is None or value > 0),
    "npratio": _Rule(POSITIVE_INTEGER, _positive_int),
    "time_buckets": _Rule(POSITIVE_INTEGER, _positive_int),
    "max_length": _Rule(POSITIVE_INTEGER, _positive_int),
    "num_blocks": _Rule(POSITIVE_INTEGER, _positive_int),
    "num_heads": _Rule(POSITIVE_INTEGER, _positive_int),
    "num_negatives": _Rule(POSITIVE_INTEGER, lambda value: value is None or _positive_int(value)),
}


def check_argument_values(values: Mapping[str, Any]) -> None:
    """
    Checks the options in `values` (field name -> value, e.g. `vars()` of parsed argument dataclasses) that have a
    rule in [`ARGUMENT_RULES`].

    Raises:
        [`UsageError`]: naming the first flag whose value breaks its rule, e.g. `--per_device_train_batch_size must be
        a positive integer, got 0.`
    """
    for name, rule in ARGUMENT_RULES.items():
        if name not in values or not rule.applies(values):
            continue
        value = values[name]
        try:
            holds = rule.holds(value)
        except TypeError:  # e.g. None where a number is needed
            holds = False
        if not holds:
            raise UsageError(f"--{name} must be {rule.requirement}, got {value!r}.")


def _raw_value(text: str) -> Any:
    """A command-line value as the argument dataclasses would type it, as far as the rules need: int, float or str."""
    if text == "None":
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def raw_argument_values(argv: Sequence[str]) -> dict[str, Any]:
    """
    `--name value` and `--name=value` pairs of a raw command line whose name [`check_argument_values`] reads (the
    rules' fields and the fields their conditions read), typed by [`_raw_value`]; the last occurrence wins, as with
    argparse.
    """
    names = {*ARGUMENT_RULES, "max_steps", "eval_strategy", "save_strategy"}
    values: dict[str, Any] = {}
    argv = list(argv)
    for position, token in enumerate(argv):
        if not token.startswith("--"):
            continue
        name, equals, value = token[2:].partition("=")
        name = name.replace("-", "_")
        if name not in names:
            continue
        if not equals:
            if position + 1 >= len(argv) or argv[position + 1].startswith("--"):
                continue  # argparse reports the missing value
            value = argv[position + 1]
        values[name] = _raw_value(value)
    return values


def check_command_line_early(argv: Sequence[str] | None = None, *, prog: str | None = None) -> None:
    """
    The value checks of [`check_argument_values`] on the raw command line, for an entry point to run before torch and
    transformers are imported (seconds on a CPU machine): an invalid value ends the process at once with the one
    line and exit status 2 that [`run_command_line`] would print after the imports. `--help` and valid values pass;
    the full checks still run when the program parses its arguments.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(token in ("-h", "--help") for token in argv):
        return
    try:
        check_argument_values(raw_argument_values(argv))
    except UsageError as error:
        status = _report(prog or os.path.basename(sys.argv[0]) or "gram-hf", error, EXIT_USAGE, False)
        raise SystemExit(status) from None


def check_output_dir(output_dir: str | os.PathLike, overwrite: bool) -> None:
    """
    Refuses, before anything is loaded, an `--output_dir` that a dataset script would refuse after loading: one that
    is not empty, without `--overwrite`.
    """
    if not overwrite and os.path.isdir(output_dir) and os.listdir(output_dir):
        raise UsageError(f"--output_dir {output_dir} is not empty; pass --overwrite to replace it.")


def wants_traceback(argv: Sequence[str]) -> bool:
    """Whether the command line asks for tracebacks: `GRAM_HF_DEBUG=1`, a bare `--debug` or `--log_level debug`."""
    if os.environ.get(DEBUG_ENVIRONMENT_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    argv = list(argv)
    for position, token in enumerate(argv):
        if token in ("--log_level=debug", "--log-level=debug"):
            return True
        if token in ("--log_level", "--log-level") and argv[position + 1 : position + 2] == ["debug"]:
            return True
    return _bare_debug_positions(argv) != []


def _bare_debug_positions(argv: Sequence[str]) -> list[int]:
    # TrainingArguments owns `--debug <options>` (e.g. underflow_overflow); only `--debug` without a value is ours.
    return [
        position
        for position, token in enumerate(argv)
        if token == DEBUG_FLAG and (position + 1 == len(argv) or argv[position + 1].startswith("-"))
    ]


def one_line(error: BaseException) -> str:
    """The error's message on one line (some messages of transformers span several)."""
    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and error.filename is not None and str(error.filename) not in message:
        message = f"{message}: {error.filename}"
    return message


def run_command_line(
    main: Callable[[list[str]], Any], argv: Sequence[str] | None = None, *, prog: str | None = None
) -> int:
    """
    Runs a program's `main(argv)` for the command line and returns its exit status: 0, or one line on stderr and 2
    for a [`UsageError`], 1 for a `ValueError`, `OSError` or `FloatingPointError` (the data or the run failed). Other
    exceptions are bugs and keep their traceback. `SystemExit` (`--help`) passes through.

    Args:
        main (`Callable`): the program, called with the command line's arguments (a bare `--debug` removed).
        argv (`Sequence[str]`, *optional*): the arguments; default `sys.argv[1:]`.
        prog (`str`, *optional*): the program's name in the message; default the script's file name.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or os.path.basename(sys.argv[0]) or "gram-hf"
    debug = wants_traceback(argv)
    argv = [token for position, token in enumerate(argv) if position not in _bare_debug_positions(argv)]
    try:
        main(argv)
    except UsageError as error:
        return _report(prog, error, EXIT_USAGE, debug)
    except (ValueError, OSError, FloatingPointError) as error:
        return _report(prog, error, EXIT_FAILURE, debug)
    return 0


def _report(prog: str, error: BaseException, status: int, debug: bool) -> int:
    if debug:
        traceback.print_exception(error)
    hint = "" if debug else f" (the traceback: {DEBUG_FLAG} or {DEBUG_ENVIRONMENT_VARIABLE}=1)"
    hint = hint if status == EXIT_FAILURE else ""
    print(f"{prog}: error: {one_line(error)}{hint}", file=sys.stderr, flush=True)
    return status


__all__ = [
    "ARGUMENT_RULES",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "UsageError",
    "check_argument_values",
    "check_command_line_early",
    "check_output_dir",
    "one_line",
    "raise_usage_errors",
    "run_command_line",
    "wants_traceback",
]
