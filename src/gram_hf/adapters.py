"""
PEFT LoRA adapters on the content encoder's backbone: building a `LoraConfig` from recipe flags, wrapping a backbone,
and the merged copy that exports save. `peft` is optional (`pip install "gram-hf[peft]"`) and imported only here.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from .configuration import lora_config_to_dict

if TYPE_CHECKING:
    from peft import LoraConfig, PeftModel
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

_PEFT_INSTALL_HINT = (
    'LoRA adapters on the content encoder need `peft`: pip install "gram-hf[peft]" (or pip install peft).'
)


def require_peft():
    """The `peft` module, or an `ImportError` saying how to install it."""
    try:
        import peft
    except ImportError as error:
        raise ImportError(_PEFT_INSTALL_HINT) from error
    return peft


def is_peft_backbone(module: nn.Module) -> bool:
    """Whether `module` is a `peft.PeftModel` (without importing `peft` when nothing could have built one)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(module, peft.PeftModel)


def parse_target_modules(target_modules: str | list[str] | tuple[str, ...] | None) -> str | list[str] | None:
    """
    `--lora_target_modules` as `LoraConfig.target_modules` takes it: `None` (peft's default for the architecture,
    e.g. `query`/`value` for BERT), `"all-linear"`, or a list of module-name suffixes from a list or a comma-separated
    string (`"query,key,value"`).
    """
    if target_modules is None:
        return None
    if isinstance(target_modules, str):
        names = [name.strip() for name in target_modules.split(",") if name.strip()]
        if not names:
            raise ValueError("lora_target_modules is empty; name modules (e.g. 'query,value'), 'all-linear' or None.")
        return names[0] if names == ["all-linear"] else names
    names = [str(name).strip() for name in target_modules]
    if not names or not all(names):
        raise ValueError(f"lora_target_modules must name modules, got {list(target_modules)!r}.")
    return names[0] if names == ["all-linear"] else names


def build_lora_config(
    r: int = 8,
    lora_alpha: float = 16,
    target_modules: str | list[str] | None = None,
    lora_dropout: float = 0.0,
    **kwargs: Any,
) -> LoraConfig:
    """
    A `peft.LoraConfig` for the content encoder's backbone from the recipes' flags.

    Args:
        r (`int`, *optional*, defaults to 8):
            LoRA rank.
        lora_alpha (`float`, *optional*, defaults to 16):
            LoRA scaling numerator; the update is `(lora_alpha / r) * B @ A`.
        target_modules (`str` or `list[str]`, *optional*):
            Module-name suffixes to adapt (a list or a comma-separated string), `"all-linear"`, or `None` for peft's
            default for the architecture (`query` and `value` for BERT-like encoders).
        lora_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the adapter's input.
        kwargs:
            Any other `LoraConfig` field (`bias`, `use_rslora`, `use_dora`, `modules_to_save`, ...).
    """
    if not isinstance(r, int) or r < 1:
        raise ValueError(f"lora_r must be a positive integer, got {r!r}.")
    if not lora_alpha > 0:
        raise ValueError(f"lora_alpha must be > 0, got {lora_alpha!r}.")
    if not 0.0 <= lora_dropout < 1.0:
        raise ValueError(f"lora_dropout must be in [0, 1), got {lora_dropout!r}.")
    peft = require_peft()
    return peft.LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        target_modules=parse_target_modules(target_modules),
        lora_dropout=lora_dropout,
        **kwargs,
    )


@dataclass
class LoraArguments:
    """
    Recipe flags for a LoRA adapter on the content encoder (parse with `HfArgumentParser` beside
    [`GramTrainingArguments`]). LoRA is off unless `--lora_r` is given.
    """

    lora_r: int | None = field(
        default=None, metadata={"help": "LoRA rank on the encoder's backbone; unset: the whole encoder trains."}
    )
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha: the update is (alpha / r) * B @ A."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA adapter's input."})
    lora_target_modules: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated module-name suffixes to adapt (e.g. 'query,key,value'), 'all-linear', or unset "
            "for peft's default for the architecture (query,value for BERT)."
        },
    )

    def __post_init__(self):
        if self.lora_r is not None and self.lora_r < 1:
            raise ValueError(f"lora_r must be a positive integer or unset, got {self.lora_r}.")

    def to_lora_config(self) -> LoraConfig | None:
        """The `peft.LoraConfig` these flags describe, or `None` without `--lora_r`."""
        if self.lora_r is None:
            return None
        return build_lora_config(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            target_modules=self.lora_target_modules,
            lora_dropout=self.lora_dropout,
        )


def as_lora_config(lora_config: LoraConfig | dict[str, Any]) -> LoraConfig:
    """
    A fresh `peft.LoraConfig` from a `LoraConfig` or its dict (as stored in [`GramConfig.encoder_lora`]). Keys this
    `peft` version does not know (from a config saved by a newer one) are dropped with a warning.
    """
    peft = require_peft()
    config_dict = lora_config_to_dict(lora_config)
    known = {f.name for f in dataclasses.fields(peft.LoraConfig)}
    unknown = sorted(set(config_dict) - known)
    if unknown:
        logger.warning("Ignoring LoraConfig keys this peft version (%s) does not know: %s", peft.__version__, unknown)
    return peft.LoraConfig(**{k: v for k, v in config_dict.items() if k in known})


def wrap_backbone_with_lora(backbone: PreTrainedModel, lora_config: LoraConfig | dict[str, Any]) -> PeftModel:
    """
    The backbone wrapped in a `peft.PeftModel` with a fresh LoRA adapter: base weights frozen, adapter weights (and any
    `modules_to_save`) trainable. The LoRA `B` matrices start at zero, so the wrapped backbone computes exactly what
    the backbone did.
    """
    if is_peft_backbone(backbone):
        raise ValueError("The content encoder's backbone already has a PEFT adapter.")
    peft = require_peft()
    # get_peft_model fills in fields of the config it gets (target_modules, base model name): give it a copy.
    return peft.get_peft_model(backbone, as_lora_config(copy.deepcopy(lora_config)))


def merged_backbone_copy(backbone: PeftModel) -> PreTrainedModel:
    """
    A plain `PreTrainedModel` with the LoRA update merged into its weights, computing what the adapted backbone
    computes. The backbone itself is left as it is: merging and unmerging in place would not restore its weights
    bit-for-bit.
    """
    return copy.deepcopy(backbone).merge_and_unload()


def trainable_parameters_line(trainable: int, total: int, what: str = "content encoder") -> str:
    """A `peft.print_trainable_parameters`-style line."""
    share = 100 * trainable / total if total else 0.0
    return f"{what}: trainable params: {trainable:,} || all params: {total:,} || trainable%: {share:.4f}"


__all__ = [
    "LoraArguments",
    "as_lora_config",
    "build_lora_config",
    "is_peft_backbone",
    "merged_backbone_copy",
    "parse_target_modules",
    "require_peft",
    "trainable_parameters_line",
    "wrap_backbone_with_lora",
]
