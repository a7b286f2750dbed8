"""
The format of an encoder export (file names, `gram_pooling.json`, the sentence-transformers layout) and its model card:
what the encoder computes, a snippet that reproduces its item vectors with plain `transformers` and `torch`, and one
that loads them with `sentence_transformers.SentenceTransformer`. [`gram_hf.export`] writes the files.
"""

from __future__ import annotations

import os
import textwrap
from typing import Any

from huggingface_hub import ModelCardData

POOLING_CONFIG_NAME = "gram_pooling.json"
POOLING_WEIGHTS_NAME = "pooling.safetensors"
EXPORT_FORMAT_VERSION = 1

# The sentence-transformers layout. gram-hf writes the classic one (that of sentence-transformers/all-MiniLM-L6-v2,
# written by sentence-transformers 2.0 and shipped with gram-hf as the default encoder) rather than calling
# sentence-transformers' own `save`: that would make sentence-transformers a dependency of every export, re-save the
# backbone and tokenizer and replace the model card, and its 6.x config keys (`embedding_dimension`, `pooling_mode`,
# `modality_config`) are unknown to older releases, while 6.x still loads the classic keys (mapping them to its own).
ST_MODULES_NAME = "modules.json"
ST_MODEL_CONFIG_NAME = "config_sentence_transformers.json"
ST_TRANSFORMER_CONFIG_NAME = "sentence_bert_config.json"
ST_MODULE_CONFIG_NAME = "config.json"
ST_MODULE_WEIGHTS_NAME = "model.safetensors"
# Module classes, by their classic import paths (6.x keeps them as aliases of its own).
ST_TRANSFORMER_TYPE = "sentence_transformers.models.Transformer"
ST_POOLING_TYPE = "sentence_transformers.models.Pooling"
ST_DENSE_TYPE = "sentence_transformers.models.Dense"
ST_POOLING_PATH = "1_Pooling"
ST_DENSE_PATH = "2_Dense"
# Additive-attention pooling has no sentence-transformers module: the export carries one as code in the folder, which
# sentence-transformers imports (a `modules.json` type outside its own namespace) only with `trust_remote_code=True`.
ST_ATTENTION_MODULE_FILE = "gram_attention_pooling.py"
ST_ATTENTION_MODULE_CLASS = "GramAdditiveAttentionPooling"
ST_ATTENTION_TYPE = f"{ST_ATTENTION_MODULE_FILE.removesuffix('.py')}.{ST_ATTENTION_MODULE_CLASS}"
ST_ATTENTION_PATH = f"1_{ST_ATTENTION_MODULE_CLASS}"

# The source of `gram_attention_pooling.py`: self-contained (torch and safetensors), so that the export loads without
# gram-hf. A plain `torch.nn.Module` with the classic one-argument `load(path)`, which sentence-transformers (6.x
# included) calls for such a module; a subclass of sentence-transformers' `Module` would tie the file to one release's
# API. The arithmetic is `gram_hf.pooling.AdditiveAttentionPooling`'s, operation for operation, so the vectors match.
ST_ATTENTION_MODULE_SOURCE = '''"""
Additive-attention pooling of an item encoder exported by gram-hf, as a sentence-transformers module:
`a_t = softmax_t(q . tanh(W h_t + b))` over the non-padding tokens, sentence embedding `sum_t a_t h_t`.

Loaded by `SentenceTransformer(path, trust_remote_code=True)`; needs torch and safetensors, not gram-hf.
"""

import json
import os

import torch
from safetensors.torch import load_file, save_file
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class GramAdditiveAttentionPooling(nn.Module):
    def __init__(self, hidden_size: int, attention_dim: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.attention_dim = attention_dim
        self.projection = nn.Linear(hidden_size, attention_dim)  # W, b
        self.query = nn.Linear(attention_dim, 1, bias=False)  # q

    def forward(self, features, **kwargs):
        hidden = features["token_embeddings"]
        mask = features.get("attention_mask")
        if mask is None or mask.shape != hidden.shape[:-1]:
            # e.g. flash-attention unpadding, which packs the batch into one row: pooling it would mix the items
            raise ValueError("GramAdditiveAttentionPooling needs padded token embeddings and their attention_mask.")
        scores = self.query(torch.tanh(self.projection(hidden))).squeeze(-1)
        scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        features["sentence_embedding"] = torch.einsum("bt,btd->bd", weights, hidden)
        return features

    def get_sentence_embedding_dimension(self) -> int:
        return self.hidden_size

    def get_embedding_dimension(self) -> int:
        return self.hidden_size

    def save(self, output_path: str, *args, **kwargs) -> None:
        with open(os.path.join(output_path, CONFIG_NAME), "w", encoding="utf-8") as file:
            json.dump({"hidden_size": self.hidden_size, "attention_dim": self.attention_dim}, file, indent=2)
        state = {key: value.detach().cpu().contiguous() for key, value in self.state_dict().items()}
        save_file(state, os.path.join(output_path, WEIGHTS_NAME), metadata={"format": "pt"})

    @classmethod
    def load(cls, input_path: str) -> "GramAdditiveAttentionPooling":
        with open(os.path.join(input_path, CONFIG_NAME), encoding="utf-8") as file:
            module = cls(**json.load(file))
        module.load_state_dict(load_file(os.path.join(input_path, WEIGHTS_NAME)))
        return module
'''


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


def sentence_transformers_snippet(pooling_config: dict[str, Any], model_id: str) -> str | None:
    """
    Python code that loads the export with `sentence_transformers.SentenceTransformer` and computes the same item
    vectors; None when the export has no sentence-transformers files (`pooling_config["sentence_transformers"]`).
    """
    layout = pooling_config.get("sentence_transformers")
    if layout is None:
        return None
    lines = ["from sentence_transformers import SentenceTransformer", ""]
    lines.append(f"path = {model_id!r}  # this export: a local folder or its Hub id")
    if layout["trust_remote_code"]:
        lines.append(f"# trust_remote_code: the attention pooling is code in this folder ({ST_ATTENTION_MODULE_FILE})")
        lines.append("model = SentenceTransformer(path, trust_remote_code=True)")
    else:
        lines.append("model = SentenceTransformer(path)")
    lines += [
        "",
        'texts = ["The text of one item", "The text of another item"]',
        "# not normalised, as gram-hf's item vectors are not",
        "vectors = model.encode(texts, convert_to_tensor=True)",
        f"print(vectors.shape)  # (2, {pooling_config['item_dim']})",
    ]
    return "\n".join(lines) + "\n"


def model_card(
    pooling_config: dict[str, Any], model_id: str, tokenizer_source: str | None = None, adapter_only: bool = False
) -> str:
    """
    The README.md of an export: metadata, what the encoder computes, the plain-transformers snippet, how to load it
    with sentence-transformers (or why it has no sentence-transformers files) and the files.
    """
    pooling = pooling_config["pooling"]
    base_model = pooling_config.get("base_model")
    adapter = pooling_config.get("adapter")
    tags = ["gram-hf", "item-encoder", "feature-extraction"]
    if pooling_config.get("head_type"):
        tags.append(str(pooling_config["head_type"]).replace("_", "-"))
    if adapter is not None:
        tags.append("lora")
    st_layout = pooling_config.get("sentence_transformers")
    if st_layout is not None:
        tags.append("sentence-transformers")
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

        ## Loading with sentence-transformers
        {st_section}
        ## Files

        - {backbone_files}
        - `{pooling_file}`: pooling, projection, dimensions and truncation length, machine-readable
        {weights_line}{st_line}{tokenizer_line}"""
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
    st_section, st_line = _sentence_transformers_card_parts(pooling_config, model_id, tokenizer_source, adapter_only)
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
        st_section=st_section,
        st_line=st_line,
        tokenizer_line=tokenizer_line,
    )
    return f"---\n{metadata.to_yaml()}\n---\n\n{body}"


def _sentence_transformers_card_parts(
    pooling_config: dict[str, Any], model_id: str, tokenizer_source: str | None, adapter_only: bool
) -> tuple[str, str]:
    """The card's sentence-transformers section and its line in the file list (empty when there are no such files)."""
    layout = pooling_config.get("sentence_transformers")
    if layout is None:
        # Without modules.json, SentenceTransformer(path) does not fail: it adds a mean pooling of its own.
        if tokenizer_source is None:
            reason = "no tokenizer was saved with it, and sentence-transformers loads the tokenizer from the folder"
        else:
            reason = "it was saved with `sentence_transformers=False`"
        text = (
            f"\nThis export has no sentence-transformers files (`{ST_MODULES_NAME}`): {reason}. "
            "`SentenceTransformer(path)` would not fail but build a default model of its own (mean pooling, the "
            "tokenizer's own truncation length), not this encoder: use the snippet above.\n"
        )
        return text, ""
    steps = {
        ST_TRANSFORMER_TYPE: "`Transformer` (the backbone)",
        ST_POOLING_TYPE: f"`Pooling` ({pooling_config['pooling']})",
        ST_DENSE_TYPE: "`Dense` (the projection, identity activation)",
        ST_ATTENTION_TYPE: f"`{ST_ATTENTION_MODULE_CLASS}` (additive attention, `{ST_ATTENTION_MODULE_FILE}`)",
    }
    notes = []
    if layout.get("max_seq_length"):
        notes.append(f"It truncates item text to {layout['max_seq_length']} tokens, as gram-hf did.")
    notes.append("The vectors are not normalised (no `Normalize` module), as gram-hf's are not.")
    if layout["trust_remote_code"]:
        notes.append(
            "sentence-transformers has no additive-attention pooling: this folder carries it as code, "
            f"`{ST_ATTENTION_MODULE_FILE}` (torch only), which sentence-transformers imports only with "
            "`trust_remote_code=True`. Read that file before you trust it."
        )
    if adapter_only:
        notes.append("Loading the adapter needs `peft` and the base model named in `adapter_config.json`.")
    text = (
        "\nThe folder is also a sentence-transformers model whose `encode` gives the same item vectors: "
        + " -> ".join(steps[module] for module in layout["modules"])
        + ".\n\n"
        + "".join(f"- {note}\n" for note in notes)
        + f"\n```python\n{sentence_transformers_snippet(pooling_config, model_id)}```\n"
    )
    files = [f"`{ST_MODULES_NAME}`", f"`{ST_TRANSFORMER_CONFIG_NAME}`", f"`{ST_MODEL_CONFIG_NAME}`"]
    files += [f"`{module_path}/`" for module_path in layout["paths"]]
    if layout["trust_remote_code"]:
        files.append(f"`{ST_ATTENTION_MODULE_FILE}`")
    return text, f"- {', '.join(files)}: the sentence-transformers modules\n"


def _looks_like_hub_id(name: str) -> bool:
    return not os.path.exists(name) and not os.path.isabs(name) and name.count("/") <= 1 and " " not in name


__all__ = [
    "EXPORT_FORMAT_VERSION",
    "POOLING_CONFIG_NAME",
    "POOLING_WEIGHTS_NAME",
    "ST_ATTENTION_MODULE_FILE",
    "ST_MODULES_NAME",
    "model_card",
    "sentence_transformers_snippet",
    "usage_snippet",
]
