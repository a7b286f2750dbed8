"""
Export of a fine-tuned content encoder as a standard Hugging Face model folder (and to the Hub) that plain
`transformers.AutoModel` loads without gram-hf, so that the item vectors gram-hf computed can be reproduced anywhere.

Layout of an export (`save_encoder`):

```
config.json, model.safetensors      the backbone, as `AutoModel.from_pretrained(folder)` loads it (LoRA merged in)
tokenizer files                     when a tokenizer is given or found (tokenizer.json, vocab.txt, ...)
gram_pooling.json                   how token states become item vectors: pooling, projection, dims, max_length
pooling.safetensors                 attention-pooling and projection weights (only when there are any)
README.md                           model card with a plain-transformers snippet reproducing the item vectors
```

With `adapter_only=True` the backbone is replaced by the LoRA adapter alone (`adapter_config.json`,
`adapter_model.safetensors`), loadable with `PeftModel.from_pretrained(AutoModel.from_pretrained(base), folder)`.
Mean and CLS pooling without projection need nothing beyond the `AutoModel`; attention pooling and projection are not
part of any `AutoModel`, so their weights travel in `pooling.safetensors` and the card shows the few lines of torch
that apply them. The format and the card are in [`gram_hf.export_format`].
"""

from __future__ import annotations

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
    model_card,
    usage_snippet,
)
from .version import __version__

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo
    from transformers import PreTrainedTokenizerBase

    from .modeling import GramModel

logger = logging.getLogger(__name__)

DEFAULT_COMMIT_MESSAGE = "Upload item encoder fine-tuned with gram-hf"
# Files a previous push of another kind may have left in the repository that would change how it loads (a stale
# adapter_config.json makes `AutoModel.from_pretrained` treat the repository as an adapter, stale weights shadow the
# new ones); `upload_folder` deletes them in the same commit that adds the new files (.gitattributes is never deleted).
_STALE_REMOTE_PATTERNS = ["*.safetensors", "*.bin", "*.safetensors.index.json", "adapter_config.json"]


def save_encoder(
    model: GramModel,
    save_directory: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None = None,
    *,
    adapter_only: bool = False,
    max_length: int | None = None,
) -> str:
    """
    Saves `model`'s content encoder as a model folder that plain `transformers` loads (no gram-hf), with a model card
    showing how to reproduce its item vectors.

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
            `gram_pooling.json` and used by the card's snippet.

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
            model, staging, tokenizer, adapter_only=adapter_only, max_length=max_length, model_id=str(target)
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
        model, tokenizer, adapter_only, max_length:
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
            model, folder, tokenizer, adapter_only=adapter_only, max_length=max_length, model_id=repo_id
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
    }
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
    "usage_snippet",
    "write_encoder_export",
]
