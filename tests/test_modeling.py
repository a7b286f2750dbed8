"""GramModel: construction, pooling/projection, save + AutoModel reload and the forward contract."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

import gram_hf  # noqa: F401  (registers GramConfig / GramModel with the Auto classes)
from gram_hf import ContentEncoder, GramConfig, GramModel, HeadOutput, ItemCatalog
from gram_hf.pooling import AdditiveAttentionPooling, ClsPooling, MeanPooling
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, KnowledgeTracingHead

TEXTS = [
    "a simple question about the river",
    "an advanced and intricate question about the market in the city",
    "",
    "basic",
    "the student reads a rare technical letter",
]


def make_model(tiny_bert_config, seed: int = 0, **kwargs) -> GramModel:
    torch.manual_seed(seed)
    config = GramConfig(
        encoder=tiny_bert_config, head_type="knowledge_tracing", head_config={"num_layers": 1}, **kwargs
    )
    return GramModel(config).eval()


@pytest.fixture
def catalog(tokenizer):
    return ItemCatalog([f"q{i}" for i in range(len(TEXTS))], TEXTS, tokenizer, max_length=16)


@pytest.fixture
def kt_batch():
    collator = KnowledgeTracingCollator()
    return collator(
        [
            {"items": [4, 1, 4, 0], "responses": [1, 0, 1, 1]},
            {"items": [2, 1], "responses": [0, 1]},
        ]
    )


def assert_same_state_dict(first: torch.nn.Module, second: torch.nn.Module) -> None:
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_model_parts(tiny_bert_config):
    model = make_model(tiny_bert_config)
    assert isinstance(model.encoder, ContentEncoder)
    assert model.item_id_table is None
    assert isinstance(model.head, KnowledgeTracingHead)
    assert model.head.item_dim == model.item_dim == 32
    assert model.head.lstm.num_layers == 1  # head_config reached the head
    assert model.encoder.projection is None


def test_missing_head_type_or_encoder_raises(tiny_bert_config):
    with pytest.raises(ValueError, match="head_type"):
        GramModel(GramConfig(encoder=tiny_bert_config))
    with pytest.raises(ValueError, match="needs GramConfig.encoder"):
        GramModel(GramConfig(head_type="knowledge_tracing"))


def test_unknown_head_config_key_raises(tiny_bert_config):
    config = GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing", head_config={"bogus": 1})
    with pytest.raises(TypeError, match="bogus"):
        GramModel(config)


@pytest.mark.parametrize("pooling", ["mean", "cls", "attention"])
def test_save_and_auto_model_reload(tmp_path, tiny_bert_config, pooling):
    model = make_model(tiny_bert_config, pooling=pooling, item_dim=16, attention_pooling_dim=8)
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert type(reloaded) is GramModel
    assert isinstance(reloaded.config, GramConfig)
    assert reloaded.config.pooling == pooling
    assert reloaded.config.head_config == {"num_layers": 1}
    assert_same_state_dict(model, reloaded)


def test_reload_reproduces_outputs(tmp_path, tiny_bert_config, catalog, kt_batch):
    model = make_model(tiny_bert_config, pooling="attention", attention_pooling_dim=8)
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    tokens = catalog.batch(kt_batch["item_index"])
    with torch.no_grad():
        expected = model(item_input_ids=tokens["input_ids"], item_attention_mask=tokens["attention_mask"], **kt_batch)
        got = reloaded(item_input_ids=tokens["input_ids"], item_attention_mask=tokens["attention_mask"], **kt_batch)
    torch.testing.assert_close(got.scores, expected.scores)
    torch.testing.assert_close(got.loss, expected.loss)


@pytest.mark.parametrize(
    ("pooling", "pooling_class"),
    [("mean", MeanPooling), ("cls", ClsPooling), ("attention", AdditiveAttentionPooling)],
)
def test_pooling_choices_give_one_vector_per_item(tiny_bert_config, catalog, pooling, pooling_class):
    model = make_model(tiny_bert_config, pooling=pooling, attention_pooling_dim=8)
    assert isinstance(model.encoder.pooling, pooling_class)
    tokens = catalog.batch([0, 1, 2, 1])
    with torch.no_grad():
        vectors = model.encode_items(**tokens)
    assert vectors.shape == (4, 32)
    assert torch.isfinite(vectors).all()
    torch.testing.assert_close(vectors[1], vectors[3])  # same item, same vector
    assert not torch.allclose(vectors[0], vectors[1])


def test_cls_pooling_reads_first_token_state(tiny_bert_config, catalog):
    model = make_model(tiny_bert_config, pooling="cls")
    tokens = catalog.batch([0, 1])
    with torch.no_grad():
        hidden = model.encoder.backbone(**tokens).last_hidden_state
        vectors = model.encode_items(**tokens)
    torch.testing.assert_close(vectors, hidden[:, 0])


def test_item_vectors_do_not_depend_on_batch_padding(tiny_bert_config, catalog):
    """An item's vector is the same alone and padded next to a longer item (mean pooling ignores padding)."""
    model = make_model(tiny_bert_config, pooling="mean")
    with torch.no_grad():
        alone = model.encode_items(**catalog.batch([3]))
        padded = model.encode_items(**catalog.batch([3, 1]))
    assert catalog.batch([3, 1])["attention_mask"][0].eq(0).any()
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)


def test_projection_when_item_dim_differs(tiny_bert_config, catalog):
    model = make_model(tiny_bert_config, item_dim=16)
    assert isinstance(model.encoder.projection, torch.nn.Linear)
    assert (model.encoder.projection.in_features, model.encoder.projection.out_features) == (32, 16)
    assert model.encoder.output_dim == model.item_dim == model.head.item_dim == 16
    with torch.no_grad():
        vectors = model.encode_items(**catalog.batch([0, 1, 2]))
    assert vectors.shape == (3, 16)


def test_no_projection_when_item_dim_equals_hidden_size(tiny_bert_config):
    model = make_model(tiny_bert_config, item_dim=32)
    assert model.encoder.projection is None
    assert model.encoder.output_dim == 32


def test_for_item_ids(kt_batch):
    torch.manual_seed(0)
    model = GramModel.for_item_ids(7, 6, head_type="knowledge_tracing", head_config={"num_layers": 1})
    assert model.encoder is None
    assert model.config.item_encoder == "id"
    assert tuple(model.item_id_table.weight.shape) == (7, 6)
    assert model.item_dim == model.head.item_dim == 6
    output = model(**kt_batch)
    assert isinstance(output, HeadOutput)
    assert output.scores.shape == kt_batch["item_ref"].shape
    # item_index selects the rows: the forward equals one on the looked-up vectors
    expected = model(item_vectors=model.item_id_table.weight[kt_batch["item_index"]], **kt_batch)
    torch.testing.assert_close(output.loss, expected.loss)
    # the loss trains the table rows of the batch's items only
    output.loss.backward()
    grad_rows = model.item_id_table.weight.grad.abs().sum(1) > 0
    assert grad_rows.nonzero().squeeze(1).tolist() == kt_batch["item_index"].tolist()


def test_for_item_ids_save_reload(tmp_path):
    model = GramModel.for_item_ids(7, 6, head_type="knowledge_tracing")
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert type(reloaded) is GramModel
    assert reloaded.encoder is None
    assert_same_state_dict(model, reloaded)


def test_item_embeddings_is_a_deprecated_read_only_alias_of_item_id_table(tiny_bert_config):
    model = GramModel.for_item_ids(7, 6, head_type="knowledge_tracing")
    assert "item_id_table.weight" in model.state_dict()
    assert not any(key.startswith("item_embeddings") for key in model.state_dict())
    with pytest.warns(FutureWarning, match=r"item_embeddings is deprecated.*GramModel\.item_id_table"):
        assert model.item_embeddings is model.item_id_table
    with pytest.raises(AttributeError):
        model.item_embeddings = None
    with pytest.warns(FutureWarning):
        assert make_model(tiny_bert_config).item_embeddings is None


def save_with_legacy_table_key(model: GramModel, folder) -> None:
    """`save_pretrained`, then the weights file as a GramModel saved before the rename wrote it."""
    model.save_pretrained(folder)
    path = folder / "model.safetensors"
    weights = load_file(path)
    weights["item_embeddings.weight"] = weights.pop("item_id_table.weight")
    save_file(weights, path, metadata={"format": "pt"})


def test_checkpoint_with_legacy_item_embeddings_key_loads(tmp_path, kt_batch):
    torch.manual_seed(0)
    model = GramModel.for_item_ids(7, 6, head_type="knowledge_tracing", head_config={"num_layers": 1}).eval()
    save_with_legacy_table_key(model, tmp_path / "old")
    for loader in (GramModel, AutoModel):
        reloaded = loader.from_pretrained(tmp_path / "old").eval()
        assert type(reloaded) is GramModel
        assert_same_state_dict(model, reloaded)
        torch.testing.assert_close(reloaded(**kt_batch).loss, model(**kt_batch).loss)
    # Saved again: with the current key (not the format it was loaded from), and the same weights.
    reloaded.save_pretrained(tmp_path / "again")
    assert "item_id_table.weight" in load_file(tmp_path / "again" / "model.safetensors")
    assert_same_state_dict(model, GramModel.from_pretrained(tmp_path / "again"))


def test_state_dict_with_legacy_item_embeddings_key_loads(tmp_path):
    # `Trainer` resumes a checkpoint with `model.load_state_dict(...)`, not `from_pretrained`.
    torch.manual_seed(0)
    model = GramModel.for_item_ids(7, 6, head_type="knowledge_tracing")
    save_with_legacy_table_key(model, tmp_path)
    legacy = load_file(tmp_path / "model.safetensors")
    assert "item_embeddings.weight" in legacy and "item_id_table.weight" not in legacy
    torch.manual_seed(1)
    fresh = GramModel.for_item_ids(7, 6, head_type="knowledge_tracing")
    fresh.load_state_dict(legacy, strict=True)
    assert_same_state_dict(model, fresh)


def test_id_model_needs_item_index(kt_batch):
    model = GramModel.for_item_ids(7, 6, head_type="knowledge_tracing")
    batch = {k: v for k, v in kt_batch.items() if k != "item_index"}
    with pytest.raises(ValueError, match="item_index"):
        model(**batch)


def test_encode_items_on_id_model_raises(catalog):
    model = GramModel.for_item_ids(7, 6, head_type="knowledge_tracing")
    with pytest.raises(ValueError, match="item-ID table"):
        model.encode_items(**catalog.batch([0, 1]))


def test_content_model_needs_vectors_or_tokens(tiny_bert_config, kt_batch):
    model = make_model(tiny_bert_config)
    with pytest.raises(ValueError, match="item_vectors"):
        model(**kt_batch)


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_forward_from_tokens_equals_forward_from_vectors(tiny_bert_config, catalog, kt_batch, pooling):
    model = make_model(tiny_bert_config, pooling=pooling, item_dim=16, attention_pooling_dim=8)
    tokens = catalog.batch(kt_batch["item_index"])
    with torch.no_grad():
        from_tokens = model(
            item_input_ids=tokens["input_ids"], item_attention_mask=tokens["attention_mask"], **kt_batch
        )
        vectors = model.encode_items(tokens["input_ids"], tokens["attention_mask"])
        from_vectors = model(item_vectors=vectors, **kt_batch)
    assert from_tokens.scores.shape == kt_batch["item_ref"].shape
    torch.testing.assert_close(from_tokens.scores, from_vectors.scores)
    torch.testing.assert_close(from_tokens.loss, from_vectors.loss)
    assert torch.isfinite(from_tokens.loss)
    # precomputed vectors take precedence over tokens
    with torch.no_grad():
        other = model(
            item_vectors=torch.zeros_like(vectors),
            item_input_ids=tokens["input_ids"],
            item_attention_mask=tokens["attention_mask"],
            **kt_batch,
        )
    assert not torch.allclose(other.scores, from_vectors.scores)


def test_gradient_reaches_the_encoder(tiny_bert_config, catalog, kt_batch):
    model = make_model(tiny_bert_config).train()
    tokens = catalog.batch(kt_batch["item_index"])
    output = model(item_input_ids=tokens["input_ids"], item_attention_mask=tokens["attention_mask"], **kt_batch)
    output.loss.backward()
    embedding_grad = model.encoder.backbone.embeddings.word_embeddings.weight.grad
    assert embedding_grad is not None and embedding_grad.abs().sum() > 0
    assert model.head.output.weight.grad.abs().sum() > 0


def test_from_encoder_pretrained_records_the_encoder_origin(tmp_path, tiny_bert_config):
    from transformers import BertModel

    BertModel(tiny_bert_config).save_pretrained(tmp_path / "base")
    model = GramModel.from_encoder_pretrained(tmp_path / "base", head_type="knowledge_tracing")
    assert model.config.encoder_name_or_path == str(tmp_path / "base")
    assert model.config.encoder_lora is None and not model.encoder.has_adapter
    model.save_pretrained(tmp_path / "gram")
    assert GramConfig.from_pretrained(tmp_path / "gram").encoder_name_or_path == str(tmp_path / "base")


def test_encoder_parameter_counts(tiny_bert_config):
    model = make_model(tiny_bert_config, pooling="attention", item_dim=16, attention_pooling_dim=8)
    total = sum(p.numel() for p in model.encoder.parameters())
    assert model.num_encoder_parameters() == model.num_trainable_encoder_parameters() == total
    model.encoder.backbone.requires_grad_(False)
    assert model.num_trainable_encoder_parameters() == (32 * 8 + 8 + 8) + (32 * 16 + 16)
    assert model.trainable_encoder_parameters_summary() == (
        f"content encoder: trainable params: 800 || all params: {total:,} || trainable%: {100 * 800 / total:.4f}"
    )
    assert model.encoder.pooling_state_dict().keys() == {
        "pooling.projection.weight",
        "pooling.projection.bias",
        "pooling.query.weight",
        "projection.weight",
        "projection.bias",
    }


# ----------------------------------------------------------------------- hybrid item vectors (item_encoder content+id)


def test_hybrid_config_validation(tiny_bert_config):
    with pytest.raises(ValueError, match="num_items"):
        GramConfig(encoder=tiny_bert_config, item_encoder="content+id", head_type="knowledge_tracing")
    with pytest.raises(ValueError, match="item_encoder must be one of"):
        GramConfig(encoder=tiny_bert_config, item_encoder="id+content", num_items=3, head_type="knowledge_tracing")
    config = GramConfig(
        encoder=tiny_bert_config, item_encoder="content+id", num_items=5, head_type="knowledge_tracing"
    )
    assert config.has_content_encoder and config.has_item_id_table and config.item_dim == 32


def test_hybrid_starts_as_the_content_model(tiny_bert_config, catalog, kt_batch):
    """The ID part starts at zero: a new hybrid computes exactly what the content model with the same weights does."""
    content = make_model(tiny_bert_config)
    hybrid = make_model(tiny_bert_config, item_encoder="content+id", num_items=len(TEXTS))
    assert torch.count_nonzero(hybrid.item_id_table.weight) == 0
    hybrid.load_state_dict(content.state_dict(), strict=False)
    tokens = catalog.batch(kt_batch["item_index"])
    with torch.no_grad():
        expected = content(
            item_input_ids=tokens["input_ids"], item_attention_mask=tokens["attention_mask"], **kt_batch
        )
        got = hybrid(item_input_ids=tokens["input_ids"], item_attention_mask=tokens["attention_mask"], **kt_batch)
    torch.testing.assert_close(got.scores, expected.scores)
    assert {n for n, _ in hybrid.cf_module.named_parameters()} == {
        *(f"head.{n}" for n, _ in hybrid.head.named_parameters()),
        "item_id_table.weight",
    }


def test_hybrid_item_vectors_and_cold_start_mask(tiny_bert_config):
    hybrid = make_model(tiny_bert_config, item_encoder="content+id", num_items=4)
    with torch.no_grad():
        hybrid.item_id_table.weight.copy_(torch.arange(4.0).unsqueeze(1).expand(4, 32))
    content = torch.ones(4, 32)
    index = torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(hybrid.item_vectors(index, content)[:, 0], torch.tensor([1.0, 2.0, 3.0, 4.0]))
    hybrid.set_cold_start_items([1, 3])
    torch.testing.assert_close(hybrid.item_vectors(index, content)[:, 0], torch.tensor([1.0, 1.0, 3.0, 1.0]))
    hybrid.set_cold_start_items(torch.tensor([False, False, False, True]))
    assert hybrid.cold_start_items.tolist() == [False, False, False, True]
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        hybrid.set_cold_start_items([4])
    with pytest.raises(ValueError, match="4 entries"):
        hybrid.set_cold_start_items(torch.tensor([True]))
    with pytest.raises(ValueError, match="hybrid"):
        make_model(tiny_bert_config).set_cold_start_items([0])


def test_hybrid_save_reload_keeps_the_id_part_and_the_cold_start_items(tmp_path, tiny_bert_config, catalog, kt_batch):
    hybrid = make_model(tiny_bert_config, item_encoder="content+id", num_items=len(TEXTS))
    with torch.no_grad():
        hybrid.item_id_table.weight.normal_()
    hybrid.set_cold_start_items([2])
    hybrid.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.item_encoder == "content+id"
    assert reloaded.cold_start_items.tolist() == [False, False, True, False, False]
    assert_same_state_dict(hybrid, reloaded)
    tokens = catalog.batch(kt_batch["item_index"])
    with torch.no_grad():
        expected = hybrid(item_input_ids=tokens["input_ids"], item_attention_mask=tokens["attention_mask"], **kt_batch)
        got = reloaded(item_input_ids=tokens["input_ids"], item_attention_mask=tokens["attention_mask"], **kt_batch)
    torch.testing.assert_close(got.scores, expected.scores)


def test_hybrid_forward_needs_item_index(tiny_bert_config, catalog, kt_batch):
    hybrid = make_model(tiny_bert_config, item_encoder="content+id", num_items=len(TEXTS))
    tokens = catalog.batch(kt_batch["item_index"])
    batch = {k: v for k, v in kt_batch.items() if k != "item_index"}
    with pytest.raises(ValueError, match="needs `item_index`"):
        hybrid(item_input_ids=tokens["input_ids"], item_attention_mask=tokens["attention_mask"], **batch)


def test_hybrid_id_dropout_acts_in_training_only(tiny_bert_config):
    with pytest.raises(ValueError, match="item_id_dropout"):
        GramConfig(encoder=tiny_bert_config, item_id_dropout=0.2, head_type="knowledge_tracing")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        GramConfig(encoder=tiny_bert_config, item_encoder="content+id", num_items=4, item_id_dropout=1.0,
                   head_type="knowledge_tracing")  # fmt: skip
    hybrid = make_model(tiny_bert_config, item_encoder="content+id", num_items=400, item_id_dropout=0.5)
    with torch.no_grad():
        hybrid.item_id_table.weight.fill_(1.0)
    index, content = torch.arange(400), torch.zeros(400, 32)
    assert torch.equal(hybrid.eval().item_vectors(index, content), torch.ones(400, 32))
    torch.manual_seed(0)
    kept = hybrid.train().item_vectors(index, content)[:, 0]
    assert set(kept.tolist()) == {0.0, 1.0} and 120 < int(kept.sum()) < 280  # about half the ID parts kept
    twice = hybrid.item_vectors(torch.tensor([7, 7]), torch.zeros(2, 32))
    assert torch.equal(twice[0], twice[1])  # one decision per item and forward
