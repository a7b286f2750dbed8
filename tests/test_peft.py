"""PEFT LoRA on the content encoder: flags, adapter placement, save/load round trips, merging and GRAM training."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel
from transformers import AutoModel, BertModel, HfArgumentParser

from gram_hf import GramConfig, GramModel, GramTrainer, GramTrainingArguments, ItemCatalog
from gram_hf.adapters import LoraArguments, build_lora_config, parse_target_modules
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, make_synthetic_knowledge_tracing

TEXTS = ["a simple question about the river", "an advanced question about the market in the city", "", "basic"]


def lora(r: int = 4, **kwargs) -> LoraConfig:
    return build_lora_config(r=r, lora_alpha=8, target_modules="query,value", **kwargs)


def make_model(tiny_bert_config, seed: int = 0, **kwargs) -> GramModel:
    torch.manual_seed(seed)
    config = GramConfig(
        encoder=tiny_bert_config,
        head_type="knowledge_tracing",
        head_config={"num_layers": 1},
        pooling="attention",
        attention_pooling_dim=8,
        item_dim=16,
        **kwargs,
    )
    return GramModel(config).eval()


def perturb_adapter_(model: GramModel, std: float = 0.2) -> None:
    with torch.no_grad():
        for name, param in model.encoder.backbone.named_parameters():
            if "lora_" in name:
                param.normal_(0.0, std)


def requires_grad_map(model: torch.nn.Module) -> dict[str, bool]:
    return {name: param.requires_grad for name, param in model.named_parameters()}


@pytest.fixture
def catalog(tokenizer):
    return ItemCatalog([f"q{i}" for i in range(len(TEXTS))], TEXTS, tokenizer, max_length=16)


@pytest.fixture
def kt_batch():
    return KnowledgeTracingCollator()(
        [{"items": [3, 1, 3, 0], "responses": [1, 0, 1, 1]}, {"items": [2, 1], "responses": [0, 1]}]
    )


def encode(model: GramModel, catalog: ItemCatalog) -> torch.Tensor:
    with torch.no_grad():
        return model.encode_items(**catalog.batch(list(range(len(TEXTS)))))


# ------------------------------------------------------------------------------------------------- flags


def test_parse_target_modules():
    assert parse_target_modules(None) is None
    assert parse_target_modules("query, value") == ["query", "value"]
    assert parse_target_modules("all-linear") == "all-linear"
    assert parse_target_modules(["query", "key"]) == ["query", "key"]
    for bad in ("", " , ", []):
        with pytest.raises(ValueError, match="lora_target_modules"):
            parse_target_modules(bad)


def test_build_lora_config_validates():
    config = build_lora_config(r=4, lora_alpha=8, target_modules="query,key", lora_dropout=0.1, use_rslora=True)
    assert isinstance(config, LoraConfig)
    assert (config.r, config.lora_alpha, config.lora_dropout, config.use_rslora) == (4, 8, 0.1, True)
    assert set(config.target_modules) == {"query", "key"}
    for kwargs, name in [({"r": 0}, "lora_r"), ({"lora_alpha": 0}, "lora_alpha"), ({"lora_dropout": 1.0}, "dropout")]:
        with pytest.raises(ValueError, match=name):
            build_lora_config(**kwargs)


def test_lora_arguments_from_the_command_line():
    (args,) = HfArgumentParser(LoraArguments).parse_args_into_dataclasses(
        ["--lora_r", "4", "--lora_alpha", "8", "--lora_target_modules", "query,key,value", "--lora_dropout", "0.1"]
    )
    config = args.to_lora_config()
    assert (config.r, config.lora_alpha, config.lora_dropout) == (4, 8, 0.1)
    assert set(config.target_modules) == {"query", "key", "value"}
    (off,) = HfArgumentParser(LoraArguments).parse_args_into_dataclasses([])
    assert off.to_lora_config() is None
    with pytest.raises(ValueError, match="lora_r"):
        LoraArguments(lora_r=0)


# --------------------------------------------------------------------------------------------- the adapter


def test_adapter_starts_as_the_identity_and_trains_only_adapter_pooling_projection(tiny_bert_config, catalog):
    model = make_model(tiny_bert_config)
    before = encode(model, catalog)
    all_params = model.num_encoder_parameters()
    assert model.num_trainable_encoder_parameters() == all_params  # no adapter: everything trains

    model.add_encoder_adapter(lora())
    assert isinstance(model.encoder.backbone, PeftModel) and model.encoder.has_adapter
    torch.testing.assert_close(encode(model, catalog), before, atol=0, rtol=0)  # B = 0: unchanged vectors
    trainable = {n for n, p in model.encoder.named_parameters() if p.requires_grad}
    assert all("lora_" in n for n in trainable if n.startswith("backbone."))
    assert {n for n in trainable if not n.startswith("backbone.")} == {
        "pooling.projection.weight",
        "pooling.projection.bias",
        "pooling.query.weight",
        "projection.weight",
        "projection.bias",
    }
    # 2 layers x (query, value) x (A: r x 32 + B: 32 x r); pooling 32*8 + 8 + 8; projection 32*16 + 16
    lora_params = 2 * 2 * (4 * 32 + 32 * 4)
    pooling_projection = (32 * 8 + 8 + 8) + (32 * 16 + 16)
    assert model.num_trainable_encoder_parameters() == lora_params + pooling_projection
    assert model.num_encoder_parameters() == all_params + lora_params
    trainable_in_peft, _ = model.encoder.backbone.get_nb_trainable_parameters()
    assert trainable_in_peft == lora_params
    summary = model.trainable_encoder_parameters_summary()
    assert summary.startswith(
        f"content encoder (LoRA r=4): trainable params: {lora_params + pooling_projection:,} || all"
    )
    assert model.config.encoder_lora["r"] == 4
    assert model.config.encoder_lora["target_modules"] == ["query", "value"]


def test_adapter_errors(tiny_bert_config):
    model = make_model(tiny_bert_config)
    model.add_encoder_adapter(lora())
    with pytest.raises(ValueError, match="already has a PEFT adapter"):
        model.add_encoder_adapter(lora())
    id_model = GramModel.for_item_ids(5, 4, head_type="knowledge_tracing")
    with pytest.raises(ValueError, match="item-ID table"):
        id_model.add_encoder_adapter(lora())
    assert id_model.num_trainable_encoder_parameters() == 0
    with pytest.raises(ValueError, match="no adapter"):
        make_model(tiny_bert_config).merge_encoder_adapter()


def test_from_encoder_pretrained_with_lora(tmp_path, tiny_bert_config):
    torch.manual_seed(1)
    BertModel(tiny_bert_config).save_pretrained(tmp_path / "base")
    model = GramModel.from_encoder_pretrained(tmp_path / "base", head_type="knowledge_tracing", lora_config=lora(r=2))
    assert model.config.encoder_name_or_path == str(tmp_path / "base")
    assert isinstance(model.encoder.backbone, PeftModel)
    assert model.config.encoder_lora["r"] == 2
    base = BertModel.from_pretrained(tmp_path / "base")
    # the pre-trained weights sit under the adapter, frozen
    query = model.encoder.backbone.get_base_model().encoder.layer[1].attention.self.query.base_layer
    torch.testing.assert_close(query.weight, base.encoder.layer[1].attention.self.query.weight, atol=0, rtol=0)
    assert not query.weight.requires_grad


def test_model_built_from_a_lora_config_starts_at_the_identity(tiny_bert_config):
    model = make_model(tiny_bert_config, encoder_lora=lora())
    assert isinstance(model.encoder.backbone, PeftModel)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(torch.count_nonzero(p) == 0 for p in lora_b)  # post_init did not re-initialise LoRA
    assert all(p.requires_grad == ("lora_" in n) for n, p in model.encoder.backbone.named_parameters())


@pytest.mark.parametrize("loader", ["GramModel", "AutoModel"])
def test_save_pretrained_round_trip(tmp_path, tiny_bert_config, catalog, kt_batch, loader):
    model = make_model(tiny_bert_config)
    model.add_encoder_adapter(lora())
    perturb_adapter_(model)
    model.save_pretrained(tmp_path)
    reloaded = (GramModel if loader == "GramModel" else AutoModel).from_pretrained(tmp_path).eval()
    assert type(reloaded) is GramModel and isinstance(reloaded.encoder.backbone, PeftModel)
    assert reloaded.config.encoder_lora == model.config.encoder_lora
    expected, got = model.state_dict(), reloaded.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    # loading makes every parameter trainable; the adapter's freezing is restored
    assert requires_grad_map(reloaded) == requires_grad_map(model)
    assert reloaded.num_trainable_encoder_parameters() == model.num_trainable_encoder_parameters()
    tokens = catalog.batch(kt_batch["item_index"])
    with torch.no_grad():
        a = model(item_input_ids=tokens["input_ids"], item_attention_mask=tokens["attention_mask"], **kt_batch)
        b = reloaded(item_input_ids=tokens["input_ids"], item_attention_mask=tokens["attention_mask"], **kt_batch)
    torch.testing.assert_close(b.scores, a.scores, atol=0, rtol=0)
    torch.testing.assert_close(encode(reloaded, catalog), encode(model, catalog), atol=0, rtol=0)


def test_merge_encoder_adapter(tmp_path, tiny_bert_config, catalog):
    model = make_model(tiny_bert_config)
    model.add_encoder_adapter(lora())
    perturb_adapter_(model)
    before = encode(model, catalog)
    model.merge_encoder_adapter()
    assert type(model.encoder.backbone) is BertModel and not model.encoder.has_adapter
    assert model.config.encoder_lora is None
    torch.testing.assert_close(encode(model, catalog), before, atol=1e-6, rtol=1e-6)
    assert model.num_trainable_encoder_parameters() == model.num_encoder_parameters()
    model.save_pretrained(tmp_path)
    torch.testing.assert_close(encode(GramModel.from_pretrained(tmp_path).eval(), catalog), encode(model, catalog))


# ------------------------------------------------------------------------------------------ GRAM training


@pytest.fixture(scope="module")
def kt_data():
    return make_synthetic_knowledge_tracing(num_users=18, num_items=12, min_length=4, max_length=10, seed=5)


@pytest.fixture(scope="module")
def kt_catalog(kt_data, tokenizer):
    return ItemCatalog(kt_data.item_ids, kt_data.texts, tokenizer, max_length=12)


def make_trainer(model, catalog, data, output_dir, **overrides) -> GramTrainer:
    settings = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": 6,
        "max_steps": 4,
        "learning_rate": 0.05,
        "optim": "sgd",
        "lr_scheduler_type": "constant",
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "train_sampling_strategy": "sequential",
        "seed": 0,
        **overrides,
    }
    return GramTrainer(
        model=model,
        args=GramTrainingArguments(**settings),
        item_catalog=catalog,
        data_collator=KnowledgeTracingCollator(),
        train_dataset=data.train,
    )


@pytest.fixture
def lora_model(tiny_bert_config):
    model = make_model(tiny_bert_config)
    model.add_encoder_adapter(lora())
    return model.train()


@pytest.mark.parametrize(("mode", "interval"), [("gram", "1"), ("gram", "2"), ("e2e", "1")])
def test_training_changes_only_adapter_pooling_projection_and_head(
    lora_model, kt_catalog, kt_data, tmp_path, mode, interval
):
    # LoRA's A gets no gradient while B = 0, and the random head's gradients are small: start from a non-zero B and
    # take large encoder steps, so that every adapter matrix visibly moves.
    perturb_adapter_(lora_model)
    initial = copy.deepcopy(lora_model)
    trainer = make_trainer(
        lora_model, kt_catalog, kt_data, tmp_path, gram_mode=mode, gram_interval=interval, encoder_learning_rate=5.0
    )
    trainer.train()
    # The encoder optimizer holds exactly the trainable encoder parameters: adapter, pooling, projection.
    optimized = [p for group in trainer.encoder_optimizer.param_groups for p in group["params"]]
    trainable = [p for p in lora_model.encoder.parameters() if p.requires_grad]
    assert {id(p) for p in optimized} == {id(p) for p in trainable}
    assert sum(p.numel() for p in optimized) == lora_model.num_trainable_encoder_parameters() == 1824

    before = dict(initial.named_parameters())
    changed = {n for n, p in lora_model.named_parameters() if not torch.equal(p, before[n])}
    frozen = {n for n, p in lora_model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("encoder.backbone.") and "lora_" not in n for n in frozen)
    assert not changed & frozen, f"frozen base weights changed: {sorted(changed & frozen)[:5]}"
    lora_names = {n for n in before if "lora_" in n}
    assert lora_names <= changed
    assert {n for n in before if n.startswith(("encoder.pooling.", "encoder.projection."))} <= changed
    assert any(n.startswith("head.") for n in changed)


def test_nofinetune_freezes_the_adapter_too(lora_model, kt_catalog, kt_data, tmp_path):
    make_trainer(lora_model, kt_catalog, kt_data, tmp_path, gram_mode="nofinetune")
    assert lora_model.num_trainable_encoder_parameters() == 0


def test_checkpoint_resume_with_lora(lora_model, kt_catalog, kt_data, tmp_path):
    settings = {
        "gram_mode": "gram",
        "gram_interval": "2",
        "max_steps": 4,
        "optim": "adamw_torch",
        "learning_rate": 1e-2,
        "save_strategy": "steps",
        "save_steps": 2,
    }
    straight = copy.deepcopy(lora_model)
    make_trainer(straight, kt_catalog, kt_data, tmp_path / "a", **settings).train()
    # The checkpoint is a loadable LoRA GramModel equal to the trained one.
    checkpoint = GramModel.from_pretrained(tmp_path / "a" / "checkpoint-4")
    assert isinstance(checkpoint.encoder.backbone, PeftModel)
    for name, param in checkpoint.named_parameters():
        assert torch.equal(param, dict(straight.named_parameters())[name]), name
    assert requires_grad_map(checkpoint) == requires_grad_map(straight)
    # Resuming from step 2 (encoder optimizer state of the adapter included) ends where training straight ended.
    resumed = copy.deepcopy(lora_model)
    make_trainer(resumed, kt_catalog, kt_data, tmp_path / "b", **settings).train(
        resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-2")
    )
    for name, param in resumed.named_parameters():
        torch.testing.assert_close(param, dict(straight.named_parameters())[name], atol=1e-6, rtol=0)


def test_a_saved_lora_config_from_a_newer_peft_still_loads(caplog):
    from gram_hf.adapters import as_lora_config

    saved = {**GramConfig(encoder_lora=lora(), head_type="knowledge_tracing").encoder_lora, "future_option": 1}
    with caplog.at_level("WARNING", logger="gram_hf.adapters"):
        config = as_lora_config(saved)
    assert "future_option" in caplog.text
    assert (config.r, config.lora_alpha, set(config.target_modules)) == (4, 8, {"query", "value"})


def test_hybrid_with_lora_trains_adapter_and_id_part_and_exports_the_content_part(
    tiny_bert_config, kt_catalog, kt_data, tmp_path
):
    """LoRA and hybrid item vectors together: the base weights stay frozen, the adapter and the ID part train, and the
    encoder export is a plain AutoModel folder giving the content part of the vectors (the ID part stays behind)."""
    from gram_hf.export import save_encoder

    model = make_model(tiny_bert_config, item_encoder="content+id", num_items=len(kt_data.item_ids))
    model.add_encoder_adapter(lora())
    perturb_adapter_(model)
    model.train()
    initial = copy.deepcopy(model)
    make_trainer(model, kt_catalog, kt_data, tmp_path / "run", gram_mode="gram", gram_interval="2").train()
    before = dict(initial.named_parameters())
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and not changed & frozen
    assert "item_id_table.weight" in changed and any("lora_" in n for n in changed)
    folder = save_encoder(model, tmp_path / "encoder")
    assert type(AutoModel.from_pretrained(folder)) is BertModel
    config = json.loads((Path(folder) / "gram_pooling.json").read_text())
    assert config["item_encoder"] == "content+id"
    assert "hybrid item vectors" in (Path(folder) / "README.md").read_text()
