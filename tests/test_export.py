"""
Encoder export (docs/design.md invariant 7): a saved encoder reloaded with plain `transformers.AutoModel` (gram-hf not
importable) and the model card's pooling snippet gives gram-hf's item vectors; atomic writes; Hub upload (mocked).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import CommitInfo, HfApi, RepoUrl
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

import gram_hf
from gram_hf import GramConfig, GramModel, ItemCatalog
from gram_hf import export as export_module
from gram_hf.adapters import build_lora_config
from gram_hf.export import POOLING_CONFIG_NAME, POOLING_WEIGHTS_NAME, save_encoder

# Different lengths (padding inside a batch), an empty text and one longer than max_length (truncation).
TEXTS = [
    "a simple question about the river",
    "an advanced and intricate question about the market in the city and the many rivers around it today",
    "",
    "basic",
    "the student reads a rare technical letter",
]
MAX_LENGTH = 16
# Invariant 7's tolerance. Only the merged-LoRA export is not bit-identical (W x + s B A x is rounded differently
# from (W + s B A) x, ~5e-7 here); every other export reproduces the vectors exactly.
ATOL = RTOL = 1e-6

# name -> (pooling, item_dim, LoRA: None | "merged" | "adapter")
TINY_CASES = {
    "mean": ("mean", None, None),
    "mean-projection": ("mean", 16, None),
    "cls": ("cls", None, None),
    "cls-projection": ("cls", 16, None),
    "attention": ("attention", None, None),
    "attention-projection": ("attention", 16, None),
    "lora-merged": ("attention", 16, "merged"),
    "lora-adapter": ("attention", 16, "adapter"),
}

# Runs each export's model-card snippet with gram_hf made unimportable and saves the vectors it computes.
RUN_SNIPPETS = textwrap.dedent(
    """
    import json, re, sys
    from pathlib import Path

    sys.modules["gram_hf"] = None  # `import gram_hf` raises ImportError from here on
    import torch

    folders, texts, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    vectors = {}
    for name, folder in folders.items():
        card = (Path(folder) / "README.md").read_text()
        code = re.search(r"```python\\n(.*?)```", card, re.S).group(1)
        code, count = re.subn(r"^texts = .*$", "texts = " + repr(texts), code, flags=re.M)
        assert count == 1, "the snippet defines texts once"
        namespace = {}
        exec(compile(code, name, "exec"), namespace)
        assert "gram_hf" not in str(type(namespace["model"]))
        vectors[name] = namespace["vectors"]
    try:
        import gram_hf  # noqa: F401
    except ImportError:
        pass
    else:
        raise AssertionError("gram_hf was importable")
    torch.save(vectors, out)
    """
)


def tiny_backbone_config(tokenizer) -> BertConfig:
    return BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def perturb_(parameters, std: float = 0.3) -> None:
    """Large random values, so that pooling, projection and LoRA visibly change the vectors."""
    with torch.no_grad():
        for param in parameters:
            param.normal_(0.0, std)


def build_model(base_folder: str, pooling: str, item_dim: int | None, lora: str | None, seed: int = 0) -> GramModel:
    torch.manual_seed(seed)
    lora_config = build_lora_config(r=4, lora_alpha=8, target_modules="query,value") if lora else None
    model = GramModel.from_encoder_pretrained(
        base_folder,
        head_type="knowledge_tracing",
        head_config={"num_layers": 1},
        pooling=pooling,
        item_dim=item_dim,
        attention_pooling_dim=8,
        lora_config=lora_config,
    )
    perturb_(model.encoder.pooling.parameters())
    if model.encoder.projection is not None:
        perturb_(model.encoder.projection.parameters())
    if lora:
        perturb_(p for n, p in model.encoder.backbone.named_parameters() if "lora_" in n)
    return model.eval()


def gram_vectors(model: GramModel, catalog: ItemCatalog) -> torch.Tensor:
    with torch.no_grad():
        return model.encode_items(**catalog.batch(list(range(len(TEXTS)))))


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tokenizer):
    """
    Every case exported to its own folder, gram-hf's vectors, and the vectors of the card snippets run in one
    subprocess without gram-hf: `{name: (folder, model, expected, reproduced)}`.
    """
    root = tmp_path_factory.mktemp("exports")
    base_folder = str(root / "tiny-base")
    torch.manual_seed(123)
    BertModel(tiny_backbone_config(tokenizer)).save_pretrained(base_folder)
    tokenizer.save_pretrained(base_folder)
    catalog = ItemCatalog([f"q{i}" for i in range(len(TEXTS))], TEXTS, tokenizer, max_length=MAX_LENGTH)

    cases = {}
    for name, (pooling, item_dim, lora) in TINY_CASES.items():
        model = build_model(base_folder, pooling, item_dim, lora)
        folder = root / name
        save_encoder(model, folder, tokenizer, adapter_only=lora == "adapter", max_length=MAX_LENGTH)
        cases[name] = (str(folder), model, gram_vectors(model, catalog))
    # The real default encoder; no tokenizer passed: the export loads it from config.encoder_name_or_path.
    minilm = GramModel.from_encoder_pretrained(head_type="knowledge_tracing", head_config={"num_layers": 1}).eval()
    minilm_catalog = ItemCatalog([f"q{i}" for i in range(len(TEXTS))], TEXTS, tokenizer, max_length=MAX_LENGTH)
    minilm.save_encoder(root / "minilm", max_length=MAX_LENGTH)
    cases["minilm"] = (str(root / "minilm"), minilm, gram_vectors(minilm, minilm_catalog))

    out = root / "vectors.pt"
    folders = {name: folder for name, (folder, _, _) in cases.items()}
    result = subprocess.run(
        [sys.executable, "-c", RUN_SNIPPETS, json.dumps(folders), json.dumps(TEXTS), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    reproduced = torch.load(out, weights_only=True)
    return {name: (folder, model, expected, reproduced[name]) for name, (folder, model, expected) in cases.items()}


# ---------------------------------------------------------------------------------------------- invariant 7


@pytest.mark.parametrize("name", [*TINY_CASES, "minilm"])
def test_card_snippet_without_gram_hf_reproduces_item_vectors(exports, name):
    _, _, expected, reproduced = exports[name]
    assert reproduced.shape == expected.shape
    torch.testing.assert_close(reproduced, expected, atol=ATOL, rtol=RTOL)


def test_pooling_and_projection_matter(exports):
    """The cases differ, so matching vectors above means each export's pooling/projection/LoRA was applied."""
    vectors = {name: exports[name][2] for name in ("mean", "cls", "attention")}
    assert not torch.allclose(vectors["mean"], vectors["cls"], atol=1e-3)
    assert not torch.allclose(vectors["mean"], vectors["attention"], atol=1e-3)
    # the same model without its LoRA update gives other vectors, so the merge was not trivial
    _, model, _, _ = exports["lora-merged"]
    tokens = {"input_ids": torch.tensor([[101, 2023, 2003, 1037, 3160, 102]]), "attention_mask": torch.ones(1, 6)}
    with torch.no_grad():
        with_adapter = model.encode_items(**tokens)
        with model.encoder.backbone.disable_adapter():
            without_adapter = model.encode_items(**tokens)
    assert not torch.allclose(with_adapter, without_adapter, atol=1e-3)


@pytest.mark.parametrize("name", ["mean", "attention-projection", "lora-merged"])
def test_export_loads_as_the_plain_backbone_in_process(exports, name):
    folder, model, _, _ = exports[name]
    reloaded = AutoModel.from_pretrained(folder)
    assert type(reloaded) is BertModel
    assert not any("lora" in key for key in reloaded.state_dict())
    if name == "lora-merged":
        backbone = model.encoder.backbone
        assert model.encoder.has_adapter  # exporting merged a copy; the model keeps training its adapter
        base = backbone.get_base_model().encoder.layer[0].attention.self.query.base_layer.weight
        merged = reloaded.encoder.layer[0].attention.self.query.weight
        assert not torch.allclose(base, merged)
    else:
        expected = model.encoder.backbone.state_dict()
        for key, value in reloaded.state_dict().items():
            torch.testing.assert_close(value, expected[key], atol=0, rtol=0)


@pytest.mark.parametrize(
    ("name", "weight_keys"),
    [
        ("mean", []),
        ("cls", []),
        ("mean-projection", ["projection.bias", "projection.weight"]),
        ("attention", ["pooling.projection.bias", "pooling.projection.weight", "pooling.query.weight"]),
        (
            "attention-projection",
            ["pooling.projection.bias", "pooling.projection.weight", "pooling.query.weight", "projection.bias"]
            + ["projection.weight"],
        ),
    ],
)
def test_export_layout(exports, name, weight_keys):
    folder, model, _, _ = exports[name]
    folder = Path(folder)
    files = {path.name for path in folder.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", POOLING_CONFIG_NAME, "tokenizer_config.json"} <= files
    assert "adapter_config.json" not in files
    pooling_config = json.loads((folder / POOLING_CONFIG_NAME).read_text())
    pooling, item_dim, _ = TINY_CASES[name]
    assert pooling_config["pooling"] == pooling
    assert pooling_config["item_dim"] == (item_dim or 32) == model.item_dim
    assert pooling_config["hidden_size"] == 32
    assert pooling_config["max_length"] == MAX_LENGTH
    assert pooling_config["weights"] == weight_keys
    assert (pooling_config["projection"] is None) == (item_dim is None)
    if weight_keys:
        weights = load_file(folder / POOLING_WEIGHTS_NAME)
        assert sorted(weights) == weight_keys
        for key, value in weights.items():
            torch.testing.assert_close(value, model.encoder.state_dict()[key], atol=0, rtol=0)
    else:
        assert POOLING_WEIGHTS_NAME not in files
        assert pooling_config["weights_file"] is None
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card
    assert f"**Pooling** (`{pooling}`)" in card
    assert ("**Projection**" in card) == (item_dim is not None)
    assert f"max_length={MAX_LENGTH}" in card
    assert not list(folder.parent.glob(f".{folder.name}.*")), "a staging or backup folder was left behind"


def test_adapter_only_export_is_a_peft_adapter(exports, tmp_path):
    from peft import PeftModel

    folder, model, _, _ = exports["lora-adapter"]
    files = {path.name for path in Path(folder).iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", POOLING_CONFIG_NAME, POOLING_WEIGHTS_NAME} <= files
    assert "model.safetensors" not in files and "config.json" not in files
    adapter_config = json.loads((Path(folder) / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == model.config.encoder_name_or_path
    assert adapter_config["r"] == 4
    card = (Path(folder) / "README.md").read_text()
    assert "library_name: peft" in card and "PeftModel.from_pretrained" in card
    pooling_config = json.loads((Path(folder) / POOLING_CONFIG_NAME).read_text())
    assert pooling_config["adapter"]["merged"] is False and pooling_config["adapter"]["r"] == 4
    # In process as well: the adapter on the base reproduces the training model's backbone states.
    base = AutoModel.from_pretrained(model.config.encoder_name_or_path)
    adapted = PeftModel.from_pretrained(base, folder).eval()
    tokens = {"input_ids": torch.tensor([[101, 2023, 2003, 1037, 3160, 102]]), "attention_mask": torch.ones(1, 6)}
    with torch.no_grad():
        expected = model.encoder.backbone(**tokens).last_hidden_state
        got = adapted(**tokens).last_hidden_state
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_merged_lora_export_records_the_adapter(exports):
    folder, _, _, _ = exports["lora-merged"]
    pooling_config = json.loads((Path(folder) / POOLING_CONFIG_NAME).read_text())
    assert pooling_config["adapter"] == {
        "type": "lora",
        "merged": True,
        "r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "target_modules": ["query", "value"],
        "use_rslora": False,
        "use_dora": False,
    }
    assert "merged into the weights" in (Path(folder) / "README.md").read_text()


def test_minilm_export_found_its_tokenizer(exports, tokenizer):
    folder, model, _, _ = exports["minilm"]
    assert model.config.encoder_name_or_path == gram_hf.default_encoder_path()
    reloaded = AutoTokenizer.from_pretrained(folder)
    assert reloaded("a simple question")["input_ids"] == tokenizer("a simple question")["input_ids"]
    assert json.loads((Path(folder) / POOLING_CONFIG_NAME).read_text())["item_dim"] == 384


# ------------------------------------------------------------------------------------------ files and failures


def small_model(tiny_bert_config, **kwargs) -> GramModel:
    torch.manual_seed(0)
    config = GramConfig(
        encoder=tiny_bert_config, head_type="knowledge_tracing", head_config={"num_layers": 1}, **kwargs
    )
    return GramModel(config).eval()


def folder_contents(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (module subfolders included), by its relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_replacing_an_export_is_atomic_and_leaves_nothing_behind(tmp_path, tiny_bert_config, tokenizer):
    target = tmp_path / "encoder"
    small_model(tiny_bert_config, pooling="mean").save_encoder(target, tokenizer)
    second = small_model(tiny_bert_config, pooling="attention", attention_pooling_dim=8)
    assert second.save_encoder(target, tokenizer) == str(target.absolute())
    assert json.loads((target / POOLING_CONFIG_NAME).read_text())["pooling"] == "attention"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder"]


def test_a_failed_export_keeps_the_previous_one(tmp_path, tiny_bert_config, tokenizer, monkeypatch):
    target = tmp_path / "encoder"
    small_model(tiny_bert_config, pooling="mean").save_encoder(target, tokenizer)
    before = folder_contents(target)
    real_write = export_module.write_encoder_export

    def failing_write(*args, **kwargs):
        real_write(*args, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_module, "write_encoder_export", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        small_model(tiny_bert_config, pooling="cls").save_encoder(target, tokenizer)
    assert folder_contents(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder"]


def test_refuses_to_replace_a_folder_that_is_not_an_export(tmp_path, tiny_bert_config):
    (tmp_path / "checkpoint-10").mkdir()
    with pytest.raises(FileExistsError, match="not a gram-hf encoder export"):
        small_model(tiny_bert_config).save_encoder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10"]
    # an empty folder is fine
    (tmp_path / "empty").mkdir()
    small_model(tiny_bert_config).save_encoder(tmp_path / "empty")
    assert (tmp_path / "empty" / "model.safetensors").is_file()


def test_without_a_known_tokenizer_the_card_names_the_base_model(tmp_path, tiny_bert_config, caplog):
    with caplog.at_level("WARNING", logger="gram_hf.export"):
        small_model(tiny_bert_config).save_encoder(tmp_path / "encoder")
    assert "no tokenizer files" in caplog.text
    assert not (tmp_path / "encoder" / "tokenizer_config.json").exists()
    card = (tmp_path / "encoder" / "README.md").read_text()
    assert "No tokenizer was saved" in card
    assert 'AutoTokenizer.from_pretrained("<the base model\'s Hub id or folder>")' in card


def test_explicit_tokenizer_path_that_fails_raises(tmp_path, tiny_bert_config):
    with pytest.raises(OSError):
        small_model(tiny_bert_config).save_encoder(tmp_path / "encoder", tmp_path / "no-such-tokenizer")
    assert not (tmp_path / "encoder").exists()


def test_export_errors(tmp_path, tiny_bert_config):
    with pytest.raises(ValueError, match="has none"):
        small_model(tiny_bert_config).save_encoder(tmp_path / "a", adapter_only=True)
    with pytest.raises(ValueError, match="item-ID table"):
        GramModel.for_item_ids(5, 4, head_type="knowledge_tracing").save_encoder(tmp_path / "b")
    with pytest.raises(ValueError, match="max_length"):
        small_model(tiny_bert_config).save_encoder(tmp_path / "c", max_length=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        small_model(tiny_bert_config).save_encoder(tmp_path / "file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# --------------------------------------------------------------------------------------------------------- Hub


@pytest.fixture
def fake_hub(monkeypatch):
    """Replaces the Hub calls (the only mocked boundary) and records what would be uploaded."""
    calls: dict = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = {"repo_id": repo_id, "token": self.token, **kwargs}
        # Like the Hub: a bare name lands in the token owner's namespace.
        return RepoUrl(f"https://huggingface.co/{repo_id if '/' in repo_id else 'someone/' + repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        folder = Path(folder_path)
        calls["upload_folder"] = {"repo_id": repo_id, "token": self.token, **kwargs}
        calls["files"] = folder_contents(folder)
        return CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/abc",
            commit_message=kwargs["commit_message"],
            commit_description="",
            oid="abc",
        )

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_encoder_to_hub_uploads_the_export(fake_hub, tiny_bert_config, tokenizer, tmp_path):
    model = small_model(tiny_bert_config, pooling="attention", item_dim=16, attention_pooling_dim=8)
    info = model.push_encoder_to_hub(
        "someone/kt-encoder", tokenizer, private=True, token="hf_secret", max_length=MAX_LENGTH
    )
    assert info.oid == "abc"
    assert fake_hub["create_repo"] == {
        "repo_id": "someone/kt-encoder",
        "token": "hf_secret",
        "private": True,
        "repo_type": "model",
        "exist_ok": True,
    }
    upload = fake_hub["upload_folder"]
    assert upload["repo_id"] == "someone/kt-encoder"
    assert upload["token"] == "hf_secret"
    assert upload["repo_type"] == "model"
    assert upload["commit_message"] == "Upload item encoder fine-tuned with gram-hf"
    assert upload["revision"] is None and upload["create_pr"] is False
    assert "adapter_config.json" in upload["delete_patterns"] and "*.safetensors" in upload["delete_patterns"]

    files = fake_hub["files"]
    assert {"config.json", "model.safetensors", "README.md", POOLING_CONFIG_NAME, POOLING_WEIGHTS_NAME} <= set(files)
    assert "tokenizer_config.json" in files
    card = files["README.md"].decode()
    assert "path = 'someone/kt-encoder'" in card  # the snippet loads from the Hub repository
    # the uploaded files are those save_encoder writes locally
    local = Path(model.save_encoder(tmp_path / "local", tokenizer, max_length=MAX_LENGTH))
    assert sorted(files) == sorted(folder_contents(local))
    for name in ("model.safetensors", POOLING_WEIGHTS_NAME, POOLING_CONFIG_NAME, "config.json"):
        assert files[name] == (local / name).read_bytes(), name


def test_push_encoder_to_hub_options(fake_hub, tiny_bert_config):
    model = GramModel(
        GramConfig(
            encoder=tiny_bert_config,
            head_type="knowledge_tracing",
            encoder_lora=build_lora_config(r=2, target_modules="query"),
        )
    )
    model.push_encoder_to_hub(
        "kt-encoder", adapter_only=True, commit_message="LoRA adapter", revision="dev", create_pr=True
    )
    assert fake_hub["create_repo"]["private"] is None
    assert fake_hub["upload_folder"]["repo_id"] == "someone/kt-encoder"  # the id create_repo resolved
    assert "path = 'someone/kt-encoder'" in fake_hub["files"]["README.md"].decode()
    upload = fake_hub["upload_folder"]
    assert (upload["commit_message"], upload["revision"], upload["create_pr"]) == ("LoRA adapter", "dev", True)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(fake_hub["files"])
    assert "model.safetensors" not in fake_hub["files"]


def test_card_snippet_is_what_usage_snippet_returns(exports):
    folder, _, _, _ = exports["attention-projection"]
    card = (Path(folder) / "README.md").read_text()
    pooling_config = json.loads((Path(folder) / POOLING_CONFIG_NAME).read_text())
    snippet = export_module.usage_snippet(pooling_config, folder, tokenizer_source="path")
    assert snippet in card
    assert re.search(r"^import gram_hf|^from gram_hf", snippet, re.M) is None


def test_trainer_saves_the_trained_encoder_with_its_tokenizer(tmp_path, tiny_bert_config, tokenizer):
    from gram_hf import GramTrainer, GramTrainingArguments
    from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, make_synthetic_knowledge_tracing

    data = make_synthetic_knowledge_tracing(num_users=12, num_items=10, min_length=3, max_length=6, seed=1)
    catalog = ItemCatalog(data.item_ids, data.texts, tokenizer, max_length=10)
    model = small_model(tiny_bert_config, pooling="mean")
    args = GramTrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=4, learning_rate=0.1, optim="sgd",
        save_strategy="no", disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    trainer = GramTrainer(model=model, args=args, item_catalog=catalog, data_collator=KnowledgeTracingCollator(),
                          train_dataset=data.train, processing_class=tokenizer)  # fmt: skip
    trainer.train()
    folder = Path(trainer.save_encoder())
    assert folder == tmp_path / "run" / "encoder"
    assert json.loads((folder / POOLING_CONFIG_NAME).read_text())["max_length"] == 10
    # the sentence-transformers files are on by default, truncating as the trainer's catalog did
    assert json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"] == 10
    assert (folder / "modules.json").is_file()
    loaded = AutoModel.from_pretrained(folder)
    tokens = AutoTokenizer.from_pretrained(folder)(["item text"], return_tensors="pt")
    model.eval()
    with torch.no_grad():
        expected = model.encode_items(tokens["input_ids"], tokens["attention_mask"])
        hidden = loaded(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        torch.testing.assert_close((hidden * mask).sum(1) / mask.sum(1), expected, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="repo_id"):
        trainer.push_encoder_to_hub()
