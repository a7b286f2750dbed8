"""
[`KnowledgeTracingSplitArguments`]: how every knowledge-tracing loader splits learners, holds out cold-start items and
cuts windows — defined once for the loaders, the recipes and the dataset scripts. A new split option is one field here.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

DEFAULT_COLD_START_ITEMS = 200
"""Cold-start items of the GRAM paper's knowledge-tracing setup (their interactions leave `train` only)."""


@dataclass
class KnowledgeTracingSplitArguments:
    """
    The split options of the knowledge-tracing canonical step (see
    [`~gram_hf.tasks.knowledge_tracing.build_interaction_data`]), validated on construction.

    One definition serves every place that takes them: the loaders (`split=KnowledgeTracingSplitArguments(...)` or
    the same fields as keyword arguments, see [`KnowledgeTracingSplitArguments.from_options`]), the recipes (their
    `KnowledgeTracingArguments` inherit these fields, parsed by `HfArgumentParser` as `--max_seq_len`,
    `--test_fraction`, ...) and `dataset_scripts/prepare_*.py` (the same parser).

    Args:
        max_seq_len (`int`, *optional*, defaults to 100):
            Each learner's sequence is cut into windows of at most this many interactions (rows).
        test_fraction (`float`, *optional*, defaults to 0.2):
            Share of the learners in `test`, in [0, 1) (the GRAM paper's 8:2 train:test).
        validation_fraction (`float`, *optional*, defaults to 0.1):
            Share of the remaining learners in `validation`, in [0, 1).
        cold_start_items (`int`, `str` or `list[str]`, *optional*, defaults to 200):
            Items whose interactions are removed from `train` only: a count of random items (0 disables it) or a list
            of item ids. On the command line: `200` or `id1,id2`; a string is parsed the same way here. `None` means
            the default count.
        split_seed (`int`, *optional*, defaults to 0):
            Seed of the learner split and of the cold-start choice. Loaders and `build_interaction_data` also take it
            as `seed=`, the dataset scripts as `--seed`.
        min_interactions (`int`, *optional*, defaults to 1):
            Learners with fewer interactions are dropped (counted in `stats`).
        strict (`bool`, *optional*, defaults to `False`):
            Raise on interactions naming items absent from the item table instead of dropping them with one warning.
    """

    max_seq_len: int = field(
        default=100,
        metadata={"help": "Learner sequences are cut into windows of this many interactions (paper: 100)."},
    )
    test_fraction: float = field(default=0.2, metadata={"help": "Share of learners in test (paper: 0.2)."})
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of the remaining learners in validation (paper: 0.1)."}
    )
    # `str` second on purpose: HfArgumentParser types an `X | str | ... | None` option by its second member, so the
    # command line hands over the text ("200", "id1,id2") that __post_init__ parses.
    cold_start_items: int | str | list[str] | None = field(
        default=DEFAULT_COLD_START_ITEMS,
        metadata={
            "help": "Items held out of train to measure cold-start AUC: a count of random items (0: none) or a "
            "comma-separated list of item ids."
        },
    )
    split_seed: int = field(default=0, metadata={"help": "Seed of the learner split and the cold-start choice."})
    min_interactions: int = field(default=1, metadata={"help": "Learners with fewer interactions are dropped."})
    strict: bool = field(default=False, metadata={"help": "Fail on interactions naming unknown items."})

    ALIASES: ClassVar[dict[str, str]] = {"seed": "split_seed"}
    """Keyword names the loaders took before this class existed, and the field each stands for."""

    def __post_init__(self):
        if self.max_seq_len < 1:
            raise ValueError(f"max_seq_len must be >= 1, got {self.max_seq_len}.")
        if not 0.0 <= self.test_fraction < 1.0 or not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                "test_fraction and validation_fraction must be in [0, 1), got "
                f"{self.test_fraction} and {self.validation_fraction}."
            )
        if self.min_interactions < 1:
            raise ValueError(f"min_interactions must be >= 1, got {self.min_interactions}.")
        self.cold_start_items = _parse_cold_start_items(self.cold_start_items)

    @classmethod
    def from_options(
        cls,
        split: KnowledgeTracingSplitArguments | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        caller: str = "KnowledgeTracingSplitArguments",
    ) -> KnowledgeTracingSplitArguments:
        """
        The split options of a call that takes `split=` and/or the fields as keyword arguments: the fields of `split`
        (default: the defaults; an instance of a subclass, such as a recipe's arguments, gives its split fields only),
        replaced by `options`, validated.

        Raises:
            `TypeError`: an option that is no field (nor an alias of one), or a field given twice, naming `caller`.
            `ValueError`: an invalid value (see the class).
        """
        names = [item.name for item in dataclasses.fields(cls)]
        if split is not None and not isinstance(split, KnowledgeTracingSplitArguments):
            raise TypeError(f"{caller}(): split must be a KnowledgeTracingSplitArguments, got {type(split).__name__}.")
        values = {} if split is None else {name: getattr(split, name) for name in names}
        given: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        for key, value in (options or {}).items():
            name = cls.ALIASES.get(key, key)
            if name not in names:
                raise TypeError(
                    f"{caller}() got an unexpected keyword argument {key!r}; its split options are {names} (or "
                    f"{sorted(cls.ALIASES)}), see KnowledgeTracingSplitArguments."
                )
            if name in given:
                raise TypeError(f"{caller}() got {name!r} twice: as {given_as[name]!r} and as {key!r}.")
            given[name], given_as[name] = value, key
        return cls(**{**values, **given})


def _parse_cold_start_items(value: Any) -> int | list[str]:
    """A count or a list of item ids, from an int, a sequence of ids, `None` (the default) or the text `200`/`a,b`."""
    if value is None:
        return DEFAULT_COLD_START_ITEMS
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.lstrip("-").isdigit() else [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, bool):
        raise TypeError(f"cold_start_items must be a count or a list of item ids, got {value!r}.")
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise ValueError(
                f"cold_start_items={value} must be >= 0 (0 disables cold start), or an explicit list of item ids."
            )
        return int(value)
    return [str(item_id) for item_id in value]


__all__ = ["DEFAULT_COLD_START_ITEMS", "KnowledgeTracingSplitArguments"]
