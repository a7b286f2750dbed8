"""Configuration of [`GramModel`]: the item encoder (a content encoder or an ID table) and the task head."""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

POOLING_TYPES = ("mean", "cls", "attention")
ITEM_ENCODER_TYPES = ("content", "id")


class GramConfig(PretrainedConfig):
    r"""
    Configuration of a content-based collaborative-filtering model: a content encoder (a pre-trained language model
    plus pooling) or an item-ID table maps items to vectors, and a task head reads those vectors.

    Args:
        encoder (`dict` or `PretrainedConfig`, *optional*):
            Configuration of the backbone language model (any `AutoModel`). Used when `item_encoder="content"`.
        item_encoder (`str`, *optional*, defaults to `"content"`):
            `"content"`: items are encoded from their text by the backbone; `"id"`: items are rows of a learned
            embedding table (the `nocontent` baseline, which by construction cannot score cold-start items).
        pooling (`str`, *optional*, defaults to `"mean"`):
            How token states become one item vector: `"mean"` (masked mean), `"cls"` (first token) or `"attention"`
            (additive attention, as in PLM-NR / NRMS).
        attention_pooling_dim (`int`, *optional*, defaults to 200):
            Hidden size of the additive-attention pooling's query network.
        item_dim (`int`, *optional*):
            Dimension of item vectors. With a content encoder a linear projection from the backbone's hidden size is
            added when it differs; `None` keeps the hidden size. Required for `item_encoder="id"`.
        num_items (`int`, *optional*, defaults to 0):
            Catalog size: the number of rows of the ID table when `item_encoder="id"`.
        head_type (`str`, *optional*):
            Name of a registered task head (see [`register_head`]), e.g. `"knowledge_tracing"`.
        head_config (`dict`, *optional*):
            Keyword arguments of the head's constructor.
    """

    model_type: ClassVar[str] = "gram"
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert", optional=True),
    }

    encoder: PretrainedConfig | dict | None = None
    item_encoder: str = "content"
    pooling: str = "mean"
    attention_pooling_dim: int = 200
    item_dim: int | None = None
    num_items: int = 0
    head_type: str | None = None
    head_config: dict[str, Any] | None = None

    def __post_init__(self, **kwargs):
        if self.item_encoder not in ITEM_ENCODER_TYPES:
            raise ValueError(f"item_encoder must be one of {ITEM_ENCODER_TYPES}, got {self.item_encoder!r}.")
        if self.pooling not in POOLING_TYPES:
            raise ValueError(f"pooling must be one of {POOLING_TYPES}, got {self.pooling!r}.")
        if self.item_dim is not None and self.item_dim <= 0:
            raise ValueError(f"item_dim must be a positive integer or None, got {self.item_dim}.")
        if self.item_encoder == "id" and (self.item_dim is None or self.num_items <= 0):
            raise ValueError("item_encoder='id' needs item_dim and num_items > 0 (the shape of the ID table).")
        self.head_config = dict(self.head_config or {})
        super().__post_init__(**kwargs)

    @property
    def item_vector_dim(self) -> int:
        """The dimension of the item vectors the head receives."""
        if self.item_dim is not None:
            return self.item_dim
        if self.encoder is None:
            raise ValueError("GramConfig has neither item_dim nor an encoder config to take the hidden size from.")
        return self.encoder.hidden_size
