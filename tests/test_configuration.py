"""GramConfig: validation, sub-config round trip and Auto* registration."""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig, BertConfig

import gram_hf  # noqa: F401  (registers the "gram" model type)
from gram_hf import GramConfig


def test_bad_pooling_names_allowed_values():
    with pytest.raises(ValueError, match="pooling") as info:
        GramConfig(pooling="max", head_type="knowledge_tracing")
    message = str(info.value)
    for allowed in ("mean", "cls", "attention"):
        assert allowed in message
    assert "'max'" in message


def test_bad_item_encoder_names_allowed_values():
    with pytest.raises(ValueError, match="item_encoder") as info:
        GramConfig(item_encoder="image", head_type="knowledge_tracing")
    message = str(info.value)
    assert "content" in message and "'id'" in message
    assert "'image'" in message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_items": 10},  # no item_dim
        {"item_dim": 8},  # num_items defaults to 0
        {"item_dim": 8, "num_items": 0},
        {"item_dim": 8, "num_items": -3},
    ],
)
def test_id_encoder_needs_item_dim_and_num_items(kwargs):
    with pytest.raises(ValueError, match="item_dim and num_items"):
        GramConfig(item_encoder="id", head_type="knowledge_tracing", **kwargs)


def test_id_encoder_valid_config():
    config = GramConfig(item_encoder="id", item_dim=8, num_items=10, head_type="knowledge_tracing")
    assert config.encoder is None
    assert config.item_dim == 8


@pytest.mark.parametrize("item_dim", [0, -4])
def test_non_positive_item_dim_rejected(item_dim, tiny_bert_config):
    with pytest.raises(ValueError, match="item_dim"):
        GramConfig(encoder=tiny_bert_config, item_dim=item_dim, head_type="knowledge_tracing")


def test_item_dim_resolves_to_encoder_hidden_size(tiny_bert_config):
    config = GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing")
    assert config.item_dim == tiny_bert_config.hidden_size == 32


def test_item_dim_given_is_kept(tiny_bert_config):
    config = GramConfig(encoder=tiny_bert_config, item_dim=12, head_type="knowledge_tracing")
    assert config.item_dim == 12


def test_item_dim_without_encoder_stays_none():
    assert GramConfig(head_type="knowledge_tracing").item_dim is None


def test_item_vector_dim_is_a_deprecated_alias_of_item_dim(tiny_bert_config):
    resolved = GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing")
    projected = GramConfig(encoder=tiny_bert_config, item_dim=12, head_type="knowledge_tracing")
    for config, expected in ((resolved, 32), (projected, 12)):
        with pytest.warns(FutureWarning, match=r"item_vector_dim is deprecated.*GramConfig\.item_dim"):
            assert config.item_vector_dim == config.item_dim == expected
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="neither item_dim nor an encoder"):
        _ = GramConfig(head_type="knowledge_tracing").item_vector_dim


def test_encoder_dict_becomes_config_of_its_model_type():
    default = GramConfig(encoder={"hidden_size": 24}, head_type="knowledge_tracing")
    assert isinstance(default.encoder, BertConfig)
    assert default.item_dim == 24
    roberta = GramConfig(encoder={"model_type": "roberta", "hidden_size": 20}, head_type="knowledge_tracing")
    assert type(roberta.encoder).__name__ == "RobertaConfig"
    assert roberta.item_dim == 20


def test_head_config_defaults_to_empty_dict_and_is_copied():
    assert GramConfig(head_type="knowledge_tracing").head_config == {}
    head_config = {"num_layers": 1}
    config = GramConfig(head_type="knowledge_tracing", head_config=head_config)
    config.head_config["num_layers"] = 3
    assert head_config == {"num_layers": 1}


def test_save_load_round_trip_keeps_encoder_and_head_config(tmp_path, tiny_bert_config):
    config = GramConfig(
        encoder=tiny_bert_config,
        pooling="attention",
        attention_pooling_dim=7,
        item_dim=16,
        head_type="knowledge_tracing",
        head_config={"hidden_size": 24, "num_layers": 1, "dropout": 0.1},
    )
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "gram"
    assert saved["encoder"]["model_type"] == "bert"

    loaded = GramConfig.from_pretrained(tmp_path)
    assert isinstance(loaded.encoder, BertConfig)
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        assert getattr(loaded.encoder, key) == getattr(tiny_bert_config, key)
    assert loaded.encoder.hidden_dropout_prob == 0.0
    assert loaded.head_type == "knowledge_tracing"
    assert loaded.head_config == {"hidden_size": 24, "num_layers": 1, "dropout": 0.1}
    assert loaded.pooling == "attention"
    assert loaded.attention_pooling_dim == 7
    assert loaded.item_dim == 16


def test_id_config_round_trip_keeps_no_encoder(tmp_path):
    config = GramConfig(item_encoder="id", item_dim=8, num_items=33, head_type="knowledge_tracing")
    config.save_pretrained(tmp_path)
    loaded = GramConfig.from_pretrained(tmp_path)
    assert loaded.encoder is None
    assert (loaded.item_encoder, loaded.item_dim, loaded.num_items) == ("id", 8, 33)


def test_auto_config_loads_gram_config(tmp_path, tiny_bert_config):
    GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing").save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, GramConfig)
    assert isinstance(loaded.encoder, BertConfig)
    assert loaded.item_dim == 32


def test_resolved_item_dim_is_saved(tmp_path, tiny_bert_config):
    GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing").save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["item_dim"] == 32


def test_config_saved_with_null_item_dim_still_loads_and_resolves(tmp_path, tiny_bert_config):
    # Configs saved before item_dim was resolved at construction hold `"item_dim": null` for "the hidden size".
    GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing").save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "item_dim": None}))
    for loaded in (AutoConfig.from_pretrained(tmp_path), GramConfig.from_pretrained(tmp_path)):
        assert loaded.item_dim == 32


def test_loading_an_invalid_saved_config_is_validated(tmp_path, tiny_bert_config):
    GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing").save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    data = json.loads(path.read_text())
    data["pooling"] = "max"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="pooling must be one of"):
        AutoConfig.from_pretrained(tmp_path)


def test_encoder_lora_is_stored_as_a_plain_dict_and_round_trips(tmp_path, tiny_bert_config):
    from peft import LoraConfig

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["value", "query"], base_model_name_or_path="somewhere")
    config = GramConfig(
        encoder=tiny_bert_config, head_type="knowledge_tracing", encoder_lora=lora, encoder_name_or_path=tmp_path
    )
    assert isinstance(config.encoder_lora, dict)
    assert config.encoder_lora["peft_type"] == "LORA"
    assert config.encoder_lora["target_modules"] == ["query", "value"]  # a set in peft, a sorted list here
    assert "base_model_name_or_path" not in config.encoder_lora  # the origin is encoder_name_or_path
    assert config.encoder_name_or_path == str(tmp_path)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["encoder_lora"]["r"] == 4
    loaded = GramConfig.from_pretrained(tmp_path)
    assert loaded.encoder_lora == config.encoder_lora
    assert loaded.encoder_name_or_path == str(tmp_path)


def test_encoder_lora_without_it_is_not_saved(tmp_path, tiny_bert_config):
    GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing").save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved.get("encoder_lora") is None
    assert GramConfig.from_pretrained(tmp_path).encoder_lora is None


def test_encoder_lora_validation(tiny_bert_config):
    with pytest.raises(ValueError, match="item_encoder='id'"):
        GramConfig(item_encoder="id", item_dim=8, num_items=5, head_type="knowledge_tracing", encoder_lora={"r": 4})
    with pytest.raises(ValueError, match="peft_type 'LORA'"):
        GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing", encoder_lora={"peft_type": "IA3"})
    with pytest.raises(TypeError, match="encoder_lora"):
        GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing", encoder_lora=4)
    with pytest.raises(TypeError, match="JSON-serializable"):
        GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing", encoder_lora={"r": 4, "x": object()})
    # a dict without peft_type is a LoRA config
    config = GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing", encoder_lora={"r": 4})
    assert config.encoder_lora == {"r": 4, "peft_type": "LORA"}


def test_config_builds_its_encoder_config_without_sub_config_specs():
    """
    transformers before 5.19 (5.17 on the GPU image) has no `SubConfigSpec`: `GramConfig` then declares `sub_configs`
    by class and builds the encoder config from a dict itself. Run in a fresh interpreter with the name removed.
    """
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import transformers
        import transformers.configuration_utils as utils
        from transformers import AutoConfig, BertConfig, Trainer
        spec = utils.SubConfigSpec
        del utils.SubConfigSpec  # hidden while gram_hf's configuration module is imported, as in transformers 5.17
        try:
            import gram_hf.configuration as configuration
        finally:
            utils.SubConfigSpec = spec
        from gram_hf import GramConfig
        assert configuration.SubConfigSpec is None and GramConfig.sub_configs == {"encoder": configuration.AutoConfig}
        encoder = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
        config = GramConfig(encoder=encoder.to_dict(), head_type="knowledge_tracing")
        assert isinstance(config.encoder, BertConfig) and config.encoder.intermediate_size == 37
        assert config.item_dim == 32
        again = GramConfig.from_dict(config.to_dict())
        assert isinstance(again.encoder, BertConfig) and again.encoder.intermediate_size == 37
        assert GramConfig(item_encoder="id", item_dim=8, num_items=5).encoder is None
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
