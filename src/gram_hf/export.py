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
that apply them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import textwrap
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import HfApi, ModelCardData
from safetensors.torch import save_file

from .adapters import merged_backbone_copy

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo
    from transformers import PreTrainedTokenizerBase

    from .modeling import GramModel

logger = logging.getLogger(__name__)

POOLING_CONFIG_NAME = "gram_pooling.json"
POOLING_WEIGHTS_NAME = "pooling.safetensors"
EXPORT_FORMAT_VERSION = 1
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
        "gram_hf_version": _gram_hf_version(),
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


def usage_snippet(
    pooling_config: dict[str, Any], model_id: str, tokenizer_source: str | None = None, adapter_only: bool = False
) -> str:
    """
    Python code that reproduces the exported encoder's item vectors with plain `transformers`, `torch` and (for
    attention pooling or a projection) `safetensors`; the model card shows it and the tests run it without gram-hf.
    """
    pooling = pooling_config["pooling"]
    has_weights = pooling_config["weights_file"] is not None
    base_model = pooling_config.get("base_model") or "<the base model's Hub id or folder>"
    # The export's own tokenizer files when it has them, else the base model's tokenizer.
    tokenizer_source = "path" if tokenizer_source is not None else repr(base_model)
    lines = ["import torch"]
    if has_weights:
        lines += ["import torch.nn.functional as F", "import os"]
        lines += ["from huggingface_hub import hf_hub_download", "from safetensors.torch import load_file"]
    if adapter_only:
        lines.append("from peft import PeftModel")
    lines += ["from transformers import AutoModel, AutoTokenizer", ""]
    lines.append(f"path = {model_id!r}  # this export: a local folder or its Hub id")
    lines.append(f"tokenizer = AutoTokenizer.from_pretrained({tokenizer_source})")
    if adapter_only:
        lines.append(f"model = PeftModel.from_pretrained(AutoModel.from_pretrained({base_model!r}), path).eval()")
    else:
        lines.append("model = AutoModel.from_pretrained(path).eval()")
    if has_weights:
        name = pooling_config["weights_file"]
        lines += [
            "if os.path.isdir(path):",
            f'    weights = load_file(os.path.join(path, "{name}"))',
            "else:",
            f'    weights = load_file(hf_hub_download(path, "{name}"))',
        ]
    truncation = "truncation=True"
    if pooling_config.get("max_length"):
        truncation += f", max_length={pooling_config['max_length']}"
    lines += [
        "",
        'texts = ["The text of one item", "The text of another item"]',
        f'batch = tokenizer(texts, padding=True, {truncation}, return_tensors="pt")',
        "with torch.no_grad():",
        "    # gram-hf feeds input_ids and attention_mask only",
        '    hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state',
    ]
    if pooling == "mean":
        lines += [
            "    # mean of the token states over the attention mask",
            '    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)',
            "    vectors = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)",
        ]
    elif pooling == "cls":
        lines += ["    # the first ([CLS]) token's state", "    vectors = hidden[:, 0]"]
    else:
        lines += [
            "    # additive attention: a_t = softmax_t(q . tanh(W h_t + b)) over the non-padding tokens",
            '    w, b = weights["pooling.projection.weight"], weights["pooling.projection.bias"]',
            "    projected = F.linear(hidden, w, b)",
            '    scores = F.linear(torch.tanh(projected), weights["pooling.query.weight"]).squeeze(-1)',
            '    scores = scores.masked_fill(batch["attention_mask"] == 0, torch.finfo(scores.dtype).min)',
            '    vectors = torch.einsum("bt,btd->bd", torch.softmax(scores, dim=-1), hidden)  # sum_t a_t h_t',
        ]
    if pooling_config["projection"] is not None:
        lines += [
            f"    # linear projection to the item dimension ({pooling_config['item_dim']})",
            '    vectors = F.linear(vectors, weights["projection.weight"], weights["projection.bias"])',
        ]
    lines.append(f"print(vectors.shape)  # (2, {pooling_config['item_dim']})")
    return "\n".join(lines) + "\n"


def model_card(
    pooling_config: dict[str, Any], model_id: str, tokenizer_source: str | None = None, adapter_only: bool = False
) -> str:
    """The README.md of an export: metadata, what the encoder computes, the reproduction snippet and the files."""
    pooling = pooling_config["pooling"]
    base_model = pooling_config.get("base_model")
    adapter = pooling_config.get("adapter")
    tags = ["gram-hf", "item-encoder", "feature-extraction"]
    if pooling_config.get("head_type"):
        tags.append(str(pooling_config["head_type"]).replace("_", "-"))
    if adapter is not None:
        tags.append("lora")
    metadata = ModelCardData(
        library_name="peft" if adapter_only else "transformers",
        pipeline_tag="feature-extraction",
        tags=tags,
        # Only a Hub id is valid card metadata, not a local folder.
        base_model=base_model if base_model and _looks_like_hub_id(base_model) else None,
    )
    pooling_text = {
        "mean": "the mean of the last hidden states over the attention mask",
        "cls": "the last hidden state of the first (`[CLS]`) token",
        "attention": (
            "additive attention over the last hidden states (PLM-NR / NRMS): "
            "`a_t = softmax_t(q . tanh(W h_t + b))` over non-padding tokens, vector `sum_t a_t h_t`, with "
            f"`W` of shape ({pooling_config['attention_pooling_dim']}, {pooling_config['hidden_size']})"
        ),
    }[pooling]
    steps = [f"1. **Pooling** (`{pooling}`): {pooling_text}."]
    if pooling_config["projection"] is not None:
        projection = pooling_config["projection"]
        steps.append(
            f"2. **Projection**: a linear layer {projection['in_features']} -> {projection['out_features']} "
            "(with bias)."
        )
    if pooling_config["weights_file"] is not None:
        keys = ", ".join(f"`{key}`" for key in pooling_config["weights"])
        weights_note = (
            "The weights outside the backbone (attention pooling, projection) are not part of an `AutoModel`: they "
            f"are in `{pooling_config['weights_file']}` (keys {keys}), applied with a few lines of torch below."
        )
    else:
        weights_note = "Nothing beyond the `AutoModel` is needed: the pooling has no weights."
    if adapter is None:
        backbone_text = "The backbone's own weights are saved here (no adapter)."
    else:
        description = (
            f"a LoRA adapter (r={adapter['r']}, alpha={adapter['lora_alpha']}, "
            f"target modules {adapter['target_modules']})"
        )
        if adapter_only:
            backbone_text = (
                f"The backbone was fine-tuned with {description}, and this folder holds only the adapter: load the "
                f"base model (`{base_model or 'the base model'}`) with `AutoModel` and the adapter with "
                "`peft.PeftModel.from_pretrained`."
            )
        else:
            backbone_text = f"The backbone was fine-tuned with {description}, merged into the weights saved here."
    if tokenizer_source is None:
        tokenizer_note = (
            "\nNo tokenizer was saved with this export: load the base model's tokenizer "
            f"(`{base_model or 'the base model'}`) in the snippet.\n"
        )
    else:
        tokenizer_note = ""
    max_length = pooling_config.get("max_length")
    truncation_note = f" Item text was truncated to {max_length} tokens." if max_length else ""
    snippet = usage_snippet(pooling_config, model_id, tokenizer_source, adapter_only)
    body = textwrap.dedent(
        """\
        # Item encoder fine-tuned with gram-hf

        A content encoder fine-tuned with gram-hf (GRAM: GRadient Accumulation for Multi-modality, Yang et al.,
        NAACL 2022) to map an item's text to one vector of dimension {item_dim}
        for content-based collaborative filtering{task}. {backbone_text}

        ## What it computes

        The item vector is computed from the backbone's last hidden states (inputs: `input_ids` and
        `attention_mask` only):

        {steps}

        {weights_note}{truncation_note}

        ## Reproducing the item vectors with plain transformers

        No gram-hf needed; this reproduces gram-hf's vectors to float precision.
        {tokenizer_note}
        ```python
        {snippet}```

        ## Files

        - {backbone_files}
        - `{pooling_file}`: pooling, projection, dimensions and truncation length, machine-readable
        {weights_line}{tokenizer_line}"""
    )
    weights_line = (
        f"- `{pooling_config['weights_file']}`: attention-pooling / projection weights\n"
        if pooling_config["weights_file"]
        else ""
    )
    if adapter_only:
        backbone_files = "`adapter_config.json`, `adapter_model.safetensors`: the LoRA adapter, for `peft.PeftModel`"
    else:
        backbone_files = "`config.json`, `model.safetensors`: the backbone, for `transformers.AutoModel`"
    tokenizer_line = "- the tokenizer's files\n" if tokenizer_source is not None else ""
    task = f" ({pooling_config['head_type'].replace('_', ' ')})" if pooling_config.get("head_type") else ""
    body = body.format(
        item_dim=pooling_config["item_dim"],
        task=task,
        backbone_text=backbone_text,
        steps="\n".join(steps),
        weights_note=weights_note,
        truncation_note=truncation_note,
        tokenizer_note=tokenizer_note,
        snippet=snippet,
        backbone_files=backbone_files,
        pooling_file=POOLING_CONFIG_NAME,
        weights_line=weights_line,
        tokenizer_line=tokenizer_line,
    )
    return f"---\n{metadata.to_yaml()}\n---\n\n{body}"


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


def _looks_like_hub_id(name: str) -> bool:
    return not os.path.exists(name) and not os.path.isabs(name) and name.count("/") <= 1 and " " not in name


def _gram_hf_version() -> str:
    from . import __version__

    return __version__


__all__ = [
    "POOLING_CONFIG_NAME",
    "POOLING_WEIGHTS_NAME",
    "model_card",
    "push_encoder_to_hub",
    "save_encoder",
    "usage_snippet",
    "write_encoder_export",
]
