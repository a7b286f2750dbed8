"""
The format of an encoder export (file names, `gram_pooling.json`) and its model card: what the encoder computes and a
snippet that reproduces its item vectors with plain `transformers` and `torch`. [`gram_hf.export`] writes the files.
"""

from __future__ import annotations

import os
import textwrap
from typing import Any

from huggingface_hub import ModelCardData

POOLING_CONFIG_NAME = "gram_pooling.json"
POOLING_WEIGHTS_NAME = "pooling.safetensors"
EXPORT_FORMAT_VERSION = 1


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
    if pooling_config.get("item_encoder") == "content+id":
        # The ID rows are per-catalog parameters of the trained GramModel, not part of a text encoder.
        truncation_note += (
            " The model was trained with hybrid item vectors (`item_encoder='content+id'`): there, each item seen"
            " in training also adds a learned ID row, which stays with the GramModel; this encoder gives the content"
            " part, which is the whole vector of a new or cold-start item."
        )
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


def _looks_like_hub_id(name: str) -> bool:
    return not os.path.exists(name) and not os.path.isabs(name) and name.count("/") <= 1 and " " not in name


__all__ = ["EXPORT_FORMAT_VERSION", "POOLING_CONFIG_NAME", "POOLING_WEIGHTS_NAME", "model_card", "usage_snippet"]
