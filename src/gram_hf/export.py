"""
Export of a fine-tuned content encoder as a standard Hugging Face model folder (and to the Hub) that plain
`transformers.AutoModel` loads without gram-hf, so that the item vectors gram-hf computed can be reproduced anywhere.

Layout of an export (`save_encoder`):

```
config.json, model.safetensors      the backbone, as `AutoModel.from_pretrained(folder)` loads it (LoRA merged in)
tokenizer files                     when a tokenizer is given or found (tokenizer.json, vocab.txt, ...)
gram_pooling.json                   how token states become item vectors: pooling, projection, dims, max_length
pooling.safetensors                 attention-pooling and projection weights (only when there are any)
README.md                           model card: a plain-transformers snippet and a sentence-transformers one
modules.json, sentence_bert_config.json, config_sentence_transformers.json, 1_Pooling/ (mean, CLS) or
  1_GramAdditiveAttentionPooling/ + gram_attention_pooling.py (attention), 2_Dense/ (projection)
                                    the sentence-transformers modules (`sentence_transformers=True`, the default)
```

With `adapter_only=True` the backbone is replaced by the LoRA adapter alone (`adapter_config.json`,
`adapter_model.safetensors`), loadable with `PeftModel.from_pretrained(AutoModel.from_pretrained(base), folder)`.
Mean and CLS pooling without projection need nothing beyond the `AutoModel`; attention pooling and projection are not
part of any `AutoModel`, so their weights travel in `pooling.safetensors` and the card shows the few lines of torch
that apply them. The format and the card are in [`gram_hf.export_format`].

The same folder is a sentence-transformers model: `SentenceTransformer(folder).encode(texts)` gives the item vectors
(backbone -> `Pooling` -> `Dense` with identity activation for a projection; no normalisation; `max_seq_length` = the
catalog's `max_length`). Additive attention has no sentence-transformers module, so the export carries one as code
(`gram_attention_pooling.py`), which sentence-transformers imports only with `trust_remote_code=True`. The files are
written by gram-hf (sentence-transformers is not needed to export, only to load them that way); they add nothing that
`AutoModel.from_pretrained` reads, which is why they are written by default.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import HfApi
from safetensors.torch import save_file

from .adapters import merged_backbone_copy
from .export_format import (
    EXPORT_FORMAT_VERSION,
    POOLING_CONFIG_NAME,
    POOLING_WEIGHTS_NAME,
    ST_ATTENTION_MODULE_FILE,
    ST_ATTENTION_MODULE_SOURCE,
    ST_ATTENTION_PATH,
    ST_ATTENTION_TYPE,
    ST_DENSE_PATH,
    ST_DENSE_TYPE,
    ST_MODEL_CONFIG_NAME,
    ST_MODULE_CONFIG_NAME,
    ST_MODULE_WEIGHTS_NAME,
    ST_MODULES_NAME,
    ST_POOLING_PATH,
    ST_POOLING_TYPE,
    ST_TRANSFORMER_CONFIG_NAME,
    ST_TRANSFORMER_TYPE,
    model_card,
    sentence_transformers_snippet,
    usage_snippet,
)
from .version import __version__

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo
    from transformers import PreTrainedTokenizerBase

    from .modeling import ContentEncoder, GramModel

logger = logging.getLogger(__name__)

DEFAULT_COMMIT_MESSAGE = "Upload item encoder fine-tuned with gram-hf"
# Files a previous push of another kind may have left in the repository that would change how it loads (a stale
# adapter_config.json makes `AutoModel.from_pretrained` treat the repository as an adapter, stale weights shadow the
# new ones, a stale modules.json makes `SentenceTransformer` load pooling modules the new export does not have);
# `upload_folder` deletes them in the same commit that adds the new files (.gitattributes is never deleted).
_STALE_REMOTE_PATTERNS = [
    "*.safetensors",
    "*.bin",
    "*.safetensors.index.json",
    "adapter_config.json",
    ST_MODULES_NAME,
    ST_MODEL_CONFIG_NAME,
    ST_TRANSFORMER_CONFIG_NAME,
    f"{ST_POOLING_PATH}/*",
    f"{ST_DENSE_PATH}/*",
    f"{ST_ATTENTION_PATH}/*",
    ST_ATTENTION_MODULE_FILE,
]


def save_encoder(
    model: GramModel,
    save_directory: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None = None,
    *,
    adapter_only: bool = False,
    max_length: int | None = None,
    sentence_transformers: bool = True,
) -> str:
    """
    Saves `model`'s content encoder as a model folder that plain `transformers` loads (no gram-hf), with a model card
    showing how to reproduce its item vectors, and that `sentence_transformers.SentenceTransformer` loads as well.

    The folder is written next to `save_directory` under a temporary name and renamed into place, so a reader never
    sees a half-written export; an existing export there is replaced, any other non-empty folder is refused (so that
    e.g. a training `output_dir` with checkpoints is never overwritten).

    Args:
        model ([`GramModel`]):
            A model with a content encoder (not an item-ID table).
        save_directory (`str` or `os.PathLike`):
            The export folder.
        tokenizer (`PreTrainedTokenizerBase`, `str` or `os.PathLike`, *optional*):
            The encoder's tokenizer, or where to load it from. By default it is loaded from
            `model.config.encoder_name_or_path` when that is known (a warning says so when it cannot be loaded, and the
            export then has no tokenizer files).
        adapter_only (`bool`, *optional*, defaults to `False`):
            For a model with a LoRA adapter: save only the adapter (PEFT format) instead of the backbone with the
            adapter merged into its weights. The card then names the base model to load it on.
        max_length (`int`, *optional*):
            Truncation length the items were encoded with (e.g. the `ItemCatalog`'s `max_length`); recorded in
            `gram_pooling.json`, used by the card's snippet and written as sentence-transformers' `max_seq_length`.
        sentence_transformers (`bool`, *optional*, defaults to `True`):
            Also write the sentence-transformers modules (`modules.json`, ...), so that
            `SentenceTransformer(folder).encode(texts)` gives the item vectors (with `trust_remote_code=True` for
            attention pooling, whose module is code in the folder). They change nothing for `AutoModel`. Skipped, with
            a warning, when the export has no tokenizer (sentence-transformers loads it from the folder).

    Returns:
        `str`: the export folder.
    """
    target = Path(save_directory).absolute()
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder; cannot save the encoder there.")
    if target.is_dir() and any(target.iterdir()) and not (target / POOLING_CONFIG_NAME).is_file():
        raise FileExistsError(
            f"{target} is a non-empty folder that is not a gram-hf encoder export (no {POOLING_CONFIG_NAME}); "
            "refusing to replace it. Choose an empty or new folder."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # A sibling of the target, so the final rename stays on one file system; os.mkdir (unlike mkdtemp) keeps the
    # user's umask, so the export gets ordinary folder permissions.
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    os.mkdir(staging)
    try:
        write_encoder_export(
            model,
            staging,
            tokenizer,
            adapter_only=adapter_only,
            max_length=max_length,
            model_id=str(target),
            sentence_transformers=sentence_transformers,
        )
        _replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("Saved the content encoder to %s", target)
    return str(target)


def push_encoder_to_hub(
    model: GramModel,
    repo_id: str,
    tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None = None,
    *,
    adapter_only: bool = False,
    max_length: int | None = None,
    sentence_transformers: bool = True,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
) -> CommitInfo:
    """
    Uploads the export of [`save_encoder`] to the Hub model repository `repo_id`, creating it if needed. Files that a
    previous export of another kind left there and that would change how the repository loads (weights, an adapter
    config) are deleted in the same commit.

    Args:
        model, tokenizer, adapter_only, max_length, sentence_transformers:
            See [`save_encoder`].
        repo_id (`str`):
            `"user/name"` or `"org/name"` (a bare name goes to the token's user namespace).
        private (`bool`, *optional*):
            Visibility of a newly created repository (the Hub's default when `None`); an existing repository keeps
            its visibility.
        token (`str` or `bool`, *optional*):
            Hub token; the locally saved one by default.
        commit_message (`str`, *optional*):
            Defaults to `"Upload item encoder fine-tuned with gram-hf"`.
        revision (`str`, *optional*):
            Branch to commit to.
        create_pr (`bool`, *optional*, defaults to `False`):
            Open a pull request instead of committing to the branch.

    Returns:
        `huggingface_hub.CommitInfo` of the upload.
    """
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id=repo_id, private=private, repo_type="model", exist_ok=True).repo_id
    with tempfile.TemporaryDirectory(prefix="gram-hf-encoder-") as folder:
        write_encoder_export(
            model,
            folder,
            tokenizer,
            adapter_only=adapter_only,
            max_length=max_length,
            model_id=repo_id,
            sentence_transformers=sentence_transformers,
        )
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type="model",
            commit_message=commit_message or DEFAULT_COMMIT_MESSAGE,
            revision=revision,
            create_pr=create_pr,
            delete_patterns=_STALE_REMOTE_PATTERNS,
        )


def write_encoder_export(
    model: GramModel,
    folder: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None = None,
    *,
    adapter_only: bool = False,
    max_length: int | None = None,
    model_id: str | None = None,
    sentence_transformers: bool = True,
) -> None:
    """
    Writes the export files of [`save_encoder`] into the existing folder `folder`, non-atomically (the building block
    of `save_encoder` and `push_encoder_to_hub`). `model_id` is the folder or Hub id the card's snippet loads from.
    """
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ValueError("Only a GramModel with a content encoder can be exported; this one has an item-ID table.")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise ValueError(f"max_length must be a positive integer or None, got {max_length!r}.")
    folder = Path(folder)
    config = model.config
    lora = config.encoder_lora if encoder.has_adapter else None
    if adapter_only and lora is None:
        raise ValueError("adapter_only=True exports a LoRA adapter, but the content encoder has none.")
    base_model = config.encoder_name_or_path

    if adapter_only:
        encoder.backbone.save_pretrained(folder, safe_serialization=True)
        _set_adapter_base_model(folder, base_model)
    else:
        backbone = merged_backbone_copy(encoder.backbone) if lora is not None else encoder.backbone
        backbone.save_pretrained(folder, safe_serialization=True)

    tokenizer_source = _save_tokenizer(tokenizer, base_model, folder)

    pooling_weights = {k: v.detach().to("cpu").contiguous() for k, v in encoder.pooling_state_dict().items()}
    if pooling_weights:
        save_file(pooling_weights, str(folder / POOLING_WEIGHTS_NAME), metadata={"format": "pt"})
    projection = encoder.projection
    pooling_config: dict[str, Any] = {
        "format_version": EXPORT_FORMAT_VERSION,
        "pooling": config.pooling,
        "hidden_size": encoder.backbone.config.hidden_size,
        "attention_pooling_dim": config.attention_pooling_dim if config.pooling == "attention" else None,
        "projection": None
        if projection is None
        else {"in_features": projection.in_features, "out_features": projection.out_features, "bias": True},
        "item_dim": encoder.output_dim,
        "weights_file": POOLING_WEIGHTS_NAME if pooling_weights else None,
        "weights": sorted(pooling_weights),
        "model_inputs": ["input_ids", "attention_mask"],
        "max_length": max_length,
        "adapter": None if lora is None else _adapter_summary(lora, merged=not adapter_only),
        "base_model": base_model,
        "head_type": config.head_type,
        "item_encoder": config.item_encoder,
        "gram_hf_version": __version__,
        "sentence_transformers": None,
    }
    if sentence_transformers:
        if tokenizer_source is None:
            logger.warning(
                "The export has no tokenizer, so it gets no sentence-transformers files either: SentenceTransformer "
                "loads the tokenizer from the folder. Pass the tokenizer to save_encoder to include both."
            )
        else:
            pooling_config["sentence_transformers"] = _write_sentence_transformers_modules(
                folder, encoder, config.pooling, max_length
            )
    (folder / POOLING_CONFIG_NAME).write_text(json.dumps(pooling_config, indent=2, sort_keys=True) + "\n")

    card = model_card(
        pooling_config,
        model_id=model_id or str(folder),
        tokenizer_source=tokenizer_source,
        adapter_only=adapter_only,
    )
    # Written last: PeftModel.save_pretrained writes a generic card of its own.
    (folder / "README.md").write_text(card)


# ------------------------------------------------------------------------------------------------------- helpers


def _replace_directory(staging: Path, target: Path) -> None:
    """Renames the finished `staging` folder to `target`, replacing a previous export there; restores it on failure."""
    if not target.exists():
        os.rename(staging, target)
        return
    # A folder cannot be renamed over a non-empty one: move the old export aside first, and back if the rename fails.
    backup = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(target, backup)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _write_sentence_transformers_modules(
    folder: Path, encoder: ContentEncoder, pooling: str, max_length: int | None
) -> dict[str, Any]:
    """
    Writes the sentence-transformers files that turn the export into a `SentenceTransformer` computing gram-hf's item
    vectors: the backbone (the folder itself) -> pooling -> `Dense` for a projection. Returns the summary recorded in
    `gram_pooling.json` (`"sentence_transformers"`).
    """
    # The classic sentence-transformers config (as in all-MiniLM-L6-v2): max_seq_length becomes the tokenizer's
    # truncation length, i.e. the catalog's. Without it the tokenizer's own limit applies, as in the
    # card's plain-transformers snippet.
    transformer_config: dict[str, Any] = {"do_lower_case": False}
    if max_length is not None:
        transformer_config["max_seq_length"] = max_length
    _write_json(folder / ST_TRANSFORMER_CONFIG_NAME, transformer_config)

    hidden_size = encoder.backbone.config.hidden_size
    modules = [(ST_TRANSFORMER_TYPE, "")]
    if pooling == "attention":
        attention = encoder.pooling
        module_folder = folder / ST_ATTENTION_PATH
        module_folder.mkdir()
        _write_json(
            module_folder / ST_MODULE_CONFIG_NAME,
            {"hidden_size": hidden_size, "attention_dim": attention.projection.out_features},
        )
        # The keys of the module's own state_dict (`projection.*`, `query.*`), as its `load` reads them.
        _save_weights(attention.state_dict(), module_folder / ST_MODULE_WEIGHTS_NAME)
        (folder / ST_ATTENTION_MODULE_FILE).write_text(ST_ATTENTION_MODULE_SOURCE)
        modules.append((ST_ATTENTION_TYPE, ST_ATTENTION_PATH))
    else:
        (folder / ST_POOLING_PATH).mkdir()
        # The classic boolean keys (as in all-MiniLM-L6-v2), which 6.x maps to its `pooling_mode` when it loads them.
        # Its CLS mode takes the first non-padding token, which is gram-hf's first token as the export's tokenizer
        # pads on the right; its mean divides by the same token count (clamped only for an all-padding row).
        _write_json(
            folder / ST_POOLING_PATH / ST_MODULE_CONFIG_NAME,
            {
                "word_embedding_dimension": hidden_size,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            },
        )
        modules.append((ST_POOLING_TYPE, ST_POOLING_PATH))
    projection = encoder.projection
    if projection is not None:
        (folder / ST_DENSE_PATH).mkdir()
        # `Dense` is `activation(linear(x))`: with the identity activation and the projection's weight and bias it is
        # the projection exactly. Its weights are keyed as its `linear` submodule.
        _write_json(
            folder / ST_DENSE_PATH / ST_MODULE_CONFIG_NAME,
            {
                "in_features": projection.in_features,
                "out_features": projection.out_features,
                "bias": True,
                "activation_function": "torch.nn.modules.linear.Identity",
            },
        )
        _save_weights(
            {"linear.weight": projection.weight, "linear.bias": projection.bias},
            folder / ST_DENSE_PATH / ST_MODULE_WEIGHTS_NAME,
        )
        modules.append((ST_DENSE_TYPE, ST_DENSE_PATH))
    _write_json(
        folder / ST_MODULES_NAME,
        [{"idx": i, "name": str(i), "path": path, "type": kind} for i, (kind, path) in enumerate(modules)],
    )
    # No similarity function or prompts: gram-hf's vectors feed a task head, and items have no prompt.
    _write_json(folder / ST_MODEL_CONFIG_NAME, {"model_type": "SentenceTransformer", "prompts": {}})
    return {
        "modules": [kind for kind, _ in modules],
        "paths": [path for _, path in modules if path],
        "trust_remote_code": pooling == "attention",
        "max_seq_length": max_length,
    }


def _save_weights(tensors: dict[str, Any], path: Path) -> None:
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def _save_tokenizer(
    tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None, base_model: str | None, folder: Path
) -> str | None:
    """Saves the tokenizer into the export; returns the snippet's tokenizer source (`"path"`), or None when none."""
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        source = tokenizer if tokenizer is not None else base_model
        if source is None:
            logger.warning(
                "No tokenizer given and the encoder's origin is unknown: the export has no tokenizer files. Pass the "
                "tokenizer to save_encoder to include it."
            )
            return None
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as error:
            if tokenizer is not None:  # the caller named the tokenizer explicitly: do not hide the failure
                raise
            logger.warning(
                "Could not load the tokenizer from %s (%s); the export has no tokenizer files.", source, error
            )
            return None
    if getattr(tokenizer, "padding_side", "right") != "right":
        # gram-hf pads item batches on the right (ItemCatalog.batch); a left-padding tokenizer would shift absolute
        # positions and the first token in the batches of the card's snippet and of sentence-transformers. A copy, so
        # the caller's tokenizer is left as it is.
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.padding_side = "right"
    tokenizer.save_pretrained(folder)
    return "path"


def _set_adapter_base_model(folder: Path, base_model: str | None) -> None:
    """Records the backbone's origin in adapter_config.json, which PeftModel and the Hub read to find the base."""
    if base_model is None:
        return
    path = folder / "adapter_config.json"
    data = json.loads(path.read_text())
    data["base_model_name_or_path"] = base_model
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _adapter_summary(lora: dict[str, Any], merged: bool) -> dict[str, Any]:
    """The LoRA fields a reader of gram_pooling.json needs (the full config is in the GramModel's config.json)."""
    keys = ("r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora")
    return {"type": "lora", "merged": merged, **{key: lora.get(key) for key in keys}}


__all__ = [
    "POOLING_CONFIG_NAME",
    "POOLING_WEIGHTS_NAME",
    "model_card",
    "push_encoder_to_hub",
    "save_encoder",
    "sentence_transformers_snippet",
    "usage_snippet",
    "write_encoder_export",
]
