"""Configuration of [`GramModel`]: the item encoder (a content encoder or an item-ID table) and the task head."""

from __future__ import annotations

import enum
import json
import warnings
from typing import Any, ClassVar

from transformers import AutoConfig, PretrainedConfig

try:  # transformers >= 5.19 declares sub-configs by spec and builds them from dicts itself
    from transformers.configuration_utils import SubConfigSpec
except ImportError:  # earlier transformers 5 (5.17 on the GPU image): sub-configs by class, dicts built here
    SubConfigSpec = None

POOLING_TYPES = ("mean", "cls", "attention")
ITEM_ENCODER_TYPES = ("content", "id", "content+id")
# Keys of a serialized `peft.LoraConfig` that describe where an adapter was created or saved, not the adapter itself:
# the backbone's origin is `GramConfig.encoder_name_or_path`, and an adapter rebuilt from the config always trains.
_LORA_RUNTIME_KEYS = ("base_model_name_or_path", "revision", "inference_mode")


def lora_config_to_dict(lora_config: Any) -> dict[str, Any]:
    """
    A `peft.LoraConfig` (or its `to_dict()`) as a JSON-serializable dict for [`GramConfig.encoder_lora`]: sets become
    sorted lists, enums their values, and the keys that only record where the adapter came from are dropped. Does not
    import `peft`, so a saved `GramConfig` loads without it.
    """
    if lora_config is None:
        raise ValueError("lora_config must be a peft.LoraConfig or a dict, got None.")
    if hasattr(lora_config, "to_dict") and not isinstance(lora_config, dict):
        lora_config = lora_config.to_dict()
    if not isinstance(lora_config, dict):
        raise TypeError(f"encoder_lora must be a peft.LoraConfig or a dict, got {type(lora_config).__name__}.")

    def plain(value: Any) -> Any:
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, (set, frozenset)):
            return sorted(plain(v) for v in value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    result = {key: plain(value) for key, value in lora_config.items() if key not in _LORA_RUNTIME_KEYS}
    peft_type = result.setdefault("peft_type", "LORA")
    if peft_type != "LORA":
        raise ValueError(f"encoder_lora holds a LoRA adapter configuration (peft_type 'LORA'), got {peft_type!r}.")
    try:
        json.dumps(result)
    except TypeError as error:
        raise TypeError(f"encoder_lora must be JSON-serializable to be saved in config.json: {error}") from None
    return result


class GramConfig(PretrainedConfig):
    r"""
    Configuration of a content-based collaborative-filtering model: a content encoder (a pre-trained language model
    plus pooling) or an item-ID table maps items to vectors, and a task head reads those vectors.

    Args:
        encoder (`dict` or `PretrainedConfig`, *optional*):
            Configuration of the backbone language model (any `AutoModel`). Used when `item_encoder="content"`.
        item_encoder (`str`, *optional*, defaults to `"content"`):
            `"content"`: items are encoded from their text by the backbone; `"id"`: items are rows of a learned
            item-ID table (`GramModel.item_id_table`), which by construction cannot score cold-start items;
            `"content+id"` (hybrid): an item's vector is its content vector plus its row of a learned item-ID table
            that starts at zero and trains with the CF module, so warm items can carry what their text does not say
            while cold-start items (marked with [`GramModel.set_cold_start_items`], or simply never trained) keep
            their content vector alone. `gram_mode='nocontent'` trains a model with `item_encoder='id'` (an item-ID
            table), and is the only mode that does; the other modes train `"content"` and `"content+id"`.
        pooling (`str`, *optional*, defaults to `"mean"`):
            How token states become one item vector: `"mean"` (masked mean), `"cls"` (first token) or `"attention"`
            (additive attention, as in PLM-NR / NRMS).
        attention_pooling_dim (`int`, *optional*, defaults to 200):
            Hidden size of the additive-attention pooling's query network.
        item_dim (`int`, *optional*):
            Dimension of the item vectors the head receives. With a content encoder, `None` resolves to the backbone's
            hidden size (so after construction `item_dim` is always the resolved size, also for configs saved with
            `"item_dim": null`), and a linear projection from the hidden size is added exactly when `item_dim`
            differs from it. Required for `item_encoder="id"`: the width of the item-ID table.
        item_id_dropout (`float`, *optional*, defaults to 0.0):
            Hybrid models only: in training, the probability that an item's ID part is switched off for a step (one
            draw per catalog item and forward, so all occurrences of an item agree). The model then also learns to
            score items by their content alone, which is all a cold-start item has (DropoutNet's idea).
        num_items (`int`, *optional*, defaults to 0):
            Catalog size: the number of rows of the item-ID table when `item_encoder` is `"id"` or `"content+id"`.
        head_type (`str`, *optional*):
            Name of a registered task head (see [`register_head`]), e.g. `"knowledge_tracing"`.
        head_config (`dict`, *optional*):
            Keyword arguments of the head's constructor.
        encoder_name_or_path (`str`, *optional*):
            Hub id or folder the backbone was loaded from (set by [`GramModel.from_encoder_pretrained`]). Exports use
            it to find the tokenizer and to name the base model of a LoRA adapter; building a `GramModel` never loads
            it, since the backbone's weights are in the checkpoint.
        encoder_lora (`dict`, *optional*):
            A `peft.LoraConfig` as a dict when the backbone carries a LoRA adapter (set by
            [`GramModel.add_encoder_adapter`]). `GramModel(config)` and `from_pretrained` then rebuild the wrapped
            backbone, so `save_pretrained`, Trainer checkpoints and `AutoModel.from_pretrained` round-trip it. Needs
            `peft` only to build the model, not to read the config.
    """

    model_type: ClassVar[str] = "gram"
    if SubConfigSpec is not None:
        sub_configs_defaults: ClassVar[dict[str, Any]] = {
            "encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert", optional=True),
        }
    else:
        sub_configs: ClassVar[dict[str, Any]] = {"encoder": AutoConfig}

    encoder: PretrainedConfig | dict | None = None
    item_encoder: str = "content"
    pooling: str = "mean"
    attention_pooling_dim: int = 200
    item_dim: int | None = None
    num_items: int = 0
    item_id_dropout: float = 0.0
    head_type: str | None = None
    head_config: dict[str, Any] | None = None
    encoder_name_or_path: str | None = None
    encoder_lora: dict[str, Any] | None = None

    def __post_init__(self, **kwargs):
        if self.item_encoder not in ITEM_ENCODER_TYPES:
            raise ValueError(f"item_encoder must be one of {ITEM_ENCODER_TYPES}, got {self.item_encoder!r}.")
        if self.pooling not in POOLING_TYPES:
            raise ValueError(f"pooling must be one of {POOLING_TYPES}, got {self.pooling!r}.")
        if self.item_dim is not None and self.item_dim <= 0:
            raise ValueError(f"item_dim must be a positive integer or None, got {self.item_dim}.")
        if self.item_encoder == "id" and (self.item_dim is None or self.num_items <= 0):
            raise ValueError("item_encoder='id' needs item_dim and num_items > 0 (the shape of the item-ID table).")
        if not 0.0 <= self.item_id_dropout < 1.0:
            raise ValueError(f"item_id_dropout must lie in [0, 1), got {self.item_id_dropout}.")
        if self.item_id_dropout and self.item_encoder != "content+id":
            raise ValueError("item_id_dropout switches off the ID part of a hybrid (item_encoder='content+id').")
        if self.item_encoder == "content+id" and self.num_items <= 0:
            raise ValueError("item_encoder='content+id' needs num_items > 0 (the rows of its item-ID table).")
        self.head_config = dict(self.head_config or {})
        if self.encoder_lora is not None:
            if self.item_encoder == "id":
                raise ValueError("encoder_lora adapts a content encoder's backbone; item_encoder='id' has none.")
            self.encoder_lora = lora_config_to_dict(self.encoder_lora)
        if self.encoder_name_or_path is not None:
            self.encoder_name_or_path = str(self.encoder_name_or_path)
        if SubConfigSpec is None and isinstance(self.encoder, dict):
            encoder = dict(self.encoder)
            self.encoder = AutoConfig.for_model(encoder.pop("model_type", "bert"), **encoder)
        super().__post_init__(**kwargs)
        # After the parent turned a dict `encoder` into its config: `item_dim=None` means "the backbone's hidden size",
        # resolved here once so that `item_dim` is the item-vector size everywhere (older configs saved `null`).
        if self.item_dim is None and self.has_content_encoder and self.encoder is not None:
            self.item_dim = self.encoder.hidden_size

    @property
    def has_content_encoder(self) -> bool:
        """Whether items are encoded from their text (`item_encoder` `"content"` or `"content+id"`)."""
        return self.item_encoder != "id"

    @property
    def has_item_id_table(self) -> bool:
        """Whether items have a learned ID row (`item_encoder` `"id"` or `"content+id"`)."""
        return self.item_encoder != "content"

    @property
    def item_vector_dim(self) -> int:
        """Deprecated alias of [`GramConfig.item_dim`], which is now always the resolved item-vector size."""
        warnings.warn(
            "GramConfig.item_vector_dim is deprecated and will be removed; use GramConfig.item_dim, which is now "
            "always the resolved item-vector size.",
            FutureWarning,
            stacklevel=2,
        )
        if self.item_dim is None:
            raise ValueError("GramConfig has neither item_dim nor an encoder config to take the hidden size from.")
        return self.item_dim
