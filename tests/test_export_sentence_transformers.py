"""
Encoder export as a sentence-transformers model (docs/design.md invariant 7): `SentenceTransformer(folder).encode`
gives gram-hf's item vectors for every pooling, with and without projection and LoRA, loaded without gram-hf; the
files change nothing for `AutoModel`; without them (switched off, or no tokenizer) the card says so.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer, BertModel

# sentence-transformers is not a dependency of gram-hf (exporting does not need it, only loading the export with it).
pytest.importorskip("sentence_transformers", reason="these tests load the export with sentence-transformers")

from huggingface_hub.utils import filter_repo_objects  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

import gram_hf  # noqa: E402
from gram_hf import GramModel, ItemCatalog  # noqa: E402
from gram_hf import export as export_module  # noqa: E402
from gram_hf.export import POOLING_CONFIG_NAME, save_encoder  # noqa: E402
from gram_hf.export_format import ST_ATTENTION_MODULE_FILE, ST_MODULES_NAME  # noqa: E402
from test_export import ATOL, MAX_LENGTH, RTOL, TEXTS, build_model, gram_vectors, tiny_backbone_config  # noqa: E402

TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"
DENSE = "sentence_transformers.models.Dense"
ATTENTION = "gram_attention_pooling.GramAdditiveAttentionPooling"
# The sentence-transformers files in the export's root; the others are in module folders (1_Pooling/, 2_Dense/, ...).
ST_ROOT_FILES = {
    ST_MODULES_NAME,
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    ST_ATTENTION_MODULE_FILE,
}

# name -> (pooling, item_dim, LoRA: None | "merged" | "adapter"), and the modules.json types expected
CASES = {
    "mean": (("mean", None, None), [TRANSFORMER, POOLING]),
    "mean-projection": (("mean", 16, None), [TRANSFORMER, POOLING, DENSE]),
    "cls": (("cls", None, None), [TRANSFORMER, POOLING]),
    "cls-projection": (("cls", 16, None), [TRANSFORMER, POOLING, DENSE]),
    "attention": (("attention", None, None), [TRANSFORMER, ATTENTION]),
    "attention-projection": (("attention", 16, None), [TRANSFORMER, ATTENTION, DENSE]),
    "lora-merged": (("attention", 16, "merged"), [TRANSFORMER, ATTENTION, DENSE]),
    "lora-adapter": (("mean", 16, "adapter"), [TRANSFORMER, POOLING, DENSE]),
}

# Runs each export's sentence-transformers card snippet with gram_hf made unimportable; saves the vectors it computes.
RUN_ST_SNIPPETS = textwrap.dedent(
    """
    import json, re, sys
    from pathlib import Path

    sys.modules["gram_hf"] = None  # `import gram_hf` raises ImportError from here on
    import torch

    folders, texts, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    vectors = {}
    for name, folder in folders.items():
        card = (Path(folder) / "README.md").read_text()
        blocks = re.findall(r"```python\\n(.*?)```", card, re.S)
        code = next(block for block in blocks if "SentenceTransformer(" in block)
        code, count = re.subn(r"^texts = .*$", "texts = " + repr(texts), code, flags=re.M)
        assert count == 1, "the snippet defines texts once"
        namespace = {}
        exec(compile(code, name, "exec"), namespace)
        assert type(namespace["model"]).__name__ == "SentenceTransformer"
        assert not any("gram_hf" in type(module).__module__ for module in namespace["model"])
        vectors[name] = namespace["vectors"].cpu()
    assert "gram_hf" not in {name.split(".")[0] for name, module in sys.modules.items() if module is not None}
    torch.save(vectors, out)
    """
)


@pytest.fixture(scope="module")
def st_exports(tmp_path_factory, tokenizer):
    """
    Every case exported (sentence-transformers files on by default), gram-hf's vectors, and the vectors of the cards'
    sentence-transformers snippets run in one subprocess without gram-hf: `{name: (folder, model, expected, got)}`.
    """
    root = tmp_path_factory.mktemp("st-exports")
    base_folder = str(root / "tiny-base")
    torch.manual_seed(321)
    BertModel(tiny_backbone_config(tokenizer)).save_pretrained(base_folder)
    tokenizer.save_pretrained(base_folder)
    catalog = ItemCatalog([f"q{i}" for i in range(len(TEXTS))], TEXTS, tokenizer, max_length=MAX_LENGTH)

    cases = {}
    for name, ((pooling, item_dim, lora), _) in CASES.items():
        model = build_model(base_folder, pooling, item_dim, lora, seed=1)
        folder = root / name
        save_encoder(model, folder, tokenizer, adapter_only=lora == "adapter", max_length=MAX_LENGTH)
        cases[name] = (str(folder), model, gram_vectors(model, catalog))
    # The real default encoder, its tokenizer found from config.encoder_name_or_path.
    minilm = GramModel.from_encoder_pretrained(
        head_type="knowledge_tracing", head_config={"num_layers": 1}, pooling="cls", item_dim=48
    ).eval()
    save_encoder(minilm, root / "minilm", max_length=MAX_LENGTH)
    cases["minilm"] = (str(root / "minilm"), minilm, gram_vectors(minilm, catalog))

    out = root / "vectors.pt"
    folders = {name: folder for name, (folder, _, _) in cases.items()}
    result = subprocess.run(
        [sys.executable, "-c", RUN_ST_SNIPPETS, json.dumps(folders), json.dumps(TEXTS), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    got = torch.load(out, weights_only=True)
    return {name: (folder, model, expected, got[name]) for name, (folder, model, expected) in cases.items()}


# ---------------------------------------------------------------------------------------------- invariant 7


@pytest.mark.parametrize("name", [*CASES, "minilm"])
def test_sentence_transformer_encode_reproduces_item_vectors(st_exports, name):
    _, _, expected, got = st_exports[name]
    assert got.dtype == torch.float32 and got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=RTOL)


def test_the_cases_differ(st_exports):
    """Matching vectors above means each case's pooling, projection and truncation were the ones applied."""
    vectors = {name: st_exports[name][2] for name in ("mean", "cls", "attention")}
    assert not torch.allclose(vectors["mean"], vectors["cls"], atol=1e-3)
    assert not torch.allclose(vectors["mean"], vectors["attention"], atol=1e-3)
    # TEXTS[1] is longer than MAX_LENGTH: without the export's max_seq_length its vector changes.
    folder, _, expected, _ = st_exports["mean-projection"]
    model = SentenceTransformer(folder, device="cpu")
    assert model.max_seq_length == MAX_LENGTH
    model.max_seq_length = 128
    untruncated = model.encode(TEXTS, convert_to_tensor=True)
    assert not torch.allclose(untruncated[1], expected[1], atol=1e-3)
    torch.testing.assert_close(untruncated[0], expected[0], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name", list(CASES))
def test_sentence_transformers_layout(st_exports, name):
    folder, model, _, _ = st_exports[name]
    folder = Path(folder)
    expected_types = CASES[name][1]
    modules = json.loads((folder / ST_MODULES_NAME).read_text())
    assert [module["type"] for module in modules] == expected_types
    assert modules[0]["path"] == ""  # the backbone is the folder itself, as AutoModel loads it
    assert json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"] == MAX_LENGTH
    assert json.loads((folder / "config_sentence_transformers.json").read_text())["model_type"] == (
        "SentenceTransformer"
    )
    summary = json.loads((folder / POOLING_CONFIG_NAME).read_text())["sentence_transformers"]
    assert summary["modules"] == expected_types and summary["max_seq_length"] == MAX_LENGTH
    assert summary["trust_remote_code"] is (ATTENTION in expected_types)
    assert (folder / ST_ATTENTION_MODULE_FILE).is_file() is (ATTENTION in expected_types)
    if DENSE in expected_types:
        dense = load_file(folder / "2_Dense" / "model.safetensors")
        torch.testing.assert_close(dense["linear.weight"], model.encoder.projection.weight, atol=0, rtol=0)
        torch.testing.assert_close(dense["linear.bias"], model.encoder.projection.bias, atol=0, rtol=0)
    card = (folder / "README.md").read_text()
    assert "- sentence-transformers" in card  # the card's tag
    assert "SentenceTransformer(path, trust_remote_code=True)" in card or ATTENTION not in expected_types
    assert "AutoModel.from_pretrained(path)" in card or CASES[name][0][2] == "adapter"


@pytest.mark.parametrize("name", ["cls-projection", "attention-projection"])
def test_sentence_transformers_files_leave_the_automodel_export_as_it_was(st_exports, tmp_path, tokenizer, name):
    folder, model, _, _ = st_exports[name]
    reloaded = AutoModel.from_pretrained(folder)
    assert type(reloaded) is BertModel
    expected = model.encoder.backbone.state_dict()
    for key, value in reloaded.state_dict().items():
        torch.testing.assert_close(value, expected[key], atol=0, rtol=0)
    # the same export without the sentence-transformers files differs by exactly those files
    plain = Path(
        save_encoder(model, tmp_path / "plain", tokenizer, max_length=MAX_LENGTH, sentence_transformers=False)
    )
    with_st = {p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file()}
    without = {p.relative_to(plain).as_posix() for p in plain.rglob("*") if p.is_file()}
    assert without < with_st
    assert all(
        path in ST_ROOT_FILES or re.fullmatch(r"\d_\w+/(config\.json|model\.safetensors)", path)
        for path in with_st - without
    ), with_st - without
    for file in ("model.safetensors", "config.json", "pooling.safetensors", "tokenizer.json"):
        assert (plain / file).read_bytes() == (Path(folder) / file).read_bytes(), file


def test_attention_pooling_needs_trust_remote_code(st_exports):
    folder, _, _, _ = st_exports["attention"]
    # sentence-transformers refuses to import the folder's module rather than loading a model without it
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(folder, device="cpu")


def test_switched_off_the_card_warns_that_sentence_transformers_would_build_another_model(
    st_exports, tmp_path, tokenizer
):
    folder, model, expected, _ = st_exports["cls"]
    plain = Path(
        save_encoder(model, tmp_path / "plain", tokenizer, max_length=MAX_LENGTH, sentence_transformers=False)
    )
    assert not (plain / ST_MODULES_NAME).exists()
    assert json.loads((plain / POOLING_CONFIG_NAME).read_text())["sentence_transformers"] is None
    card = (plain / "README.md").read_text()
    assert "saved with `sentence_transformers=False`" in card and "not this encoder" in card
    assert "sentence-transformers" not in card.split("---")[1]  # no tag in the metadata
    # What the card warns of: sentence-transformers builds a mean-pooling model of its own, not this CLS encoder.
    fallback = SentenceTransformer(str(plain), device="cpu").encode(TEXTS, convert_to_tensor=True)
    assert not torch.allclose(fallback, expected, atol=1e-3)


def test_without_a_tokenizer_there_are_no_sentence_transformers_files(tmp_path, tiny_bert_config, caplog):
    torch.manual_seed(0)
    config = gram_hf.GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing", pooling="cls")
    with caplog.at_level("WARNING", logger="gram_hf.export"):
        folder = Path(save_encoder(GramModel(config), tmp_path / "encoder"))
    assert "no sentence-transformers files" in caplog.text
    assert not (folder / ST_MODULES_NAME).exists() and not (folder / "1_Pooling").exists()
    assert "no tokenizer was saved" in (folder / "README.md").read_text()


def test_a_left_padding_tokenizer_is_saved_right_padded(st_exports, tmp_path, tokenizer):
    """gram-hf pads on the right; a left-padded batch would move BERT's positions and the CLS token."""
    left = copy.deepcopy(tokenizer)
    left.padding_side = "left"
    folder, model, expected, _ = st_exports["cls-projection"]
    export = Path(save_encoder(model, tmp_path / "encoder", left, max_length=MAX_LENGTH))
    assert left.padding_side == "left"  # the caller's tokenizer is left as it was
    assert AutoTokenizer.from_pretrained(export).padding_side == "right"
    got = SentenceTransformer(str(export), device="cpu").encode(TEXTS, convert_to_tensor=True)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=RTOL)
    # the failure the fix prevents: the same model fed left-padded batches gives other vectors
    shifted = SentenceTransformer(str(export), device="cpu")
    shifted.tokenizer.padding_side = "left"
    assert not torch.allclose(shifted.encode(TEXTS, convert_to_tensor=True), expected, atol=1e-3)


@pytest.mark.parametrize("name", ["attention-projection", "mean-projection"])
def test_a_hub_push_deletes_stale_sentence_transformers_files(st_exports, name):
    """Every sentence-transformers file an export writes matches a delete pattern of push_encoder_to_hub, so a later
    push without them (or with another pooling) cannot leave a stale modules.json or module behind."""
    folder = Path(st_exports[name][0])
    st_files = [
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and (p.parent != folder or p.name in ST_ROOT_FILES)
    ]
    assert ST_MODULES_NAME in st_files and len(st_files) >= 5
    covered = set(filter_repo_objects(st_files, allow_patterns=export_module._STALE_REMOTE_PATTERNS))
    assert covered == set(st_files)
