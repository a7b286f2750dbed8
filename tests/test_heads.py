"""The head registry and the GramHead base class."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gram_hf  # noqa: F401  (tasks register their heads on import)
from gram_hf import HEAD_REGISTRY, GramConfig, GramHead, GramModel, HeadOutput, get_head_class, register_head
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingHead

TEST_HEAD = "_test_dot_head"


@pytest.fixture
def clean_registry():
    """Removes the heads a test registers, so the global registry is the same for every test."""
    before = dict(HEAD_REGISTRY)
    yield
    HEAD_REGISTRY.clear()
    HEAD_REGISTRY.update(before)


class DotHead(GramHead):
    item_ref_keys = ("item_ref",)

    def __init__(self, item_dim: int, scale: float = 1.0, **kwargs):
        super().__init__(item_dim, **kwargs)
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, item_vectors, item_ref, labels=None):
        scores = self.scale * item_vectors[item_ref].sum(-1)
        loss = None if labels is None else nn.functional.mse_loss(scores, labels)
        return HeadOutput(loss=loss, scores=scores)


def test_knowledge_tracing_head_is_registered():
    assert get_head_class("knowledge_tracing") is KnowledgeTracingHead
    assert KnowledgeTracingHead.head_type == "knowledge_tracing"


def test_register_and_use_a_new_head(clean_registry, tiny_bert_config):
    registered = register_head(TEST_HEAD)(DotHead)
    assert registered is DotHead
    assert get_head_class(TEST_HEAD) is DotHead
    assert DotHead.head_type == TEST_HEAD
    # registering the same class again under the same name is a no-op
    assert register_head(TEST_HEAD)(DotHead) is DotHead
    assert HEAD_REGISTRY[TEST_HEAD] is DotHead

    model = GramModel(GramConfig(encoder=tiny_bert_config, head_type=TEST_HEAD, head_config={"scale": 2.0}))
    assert isinstance(model.head, DotHead)
    assert model.head.item_dim == 32
    assert model.head.scale.item() == 2.0


def test_register_rejects_non_head_classes(clean_registry):
    class NotAHead(nn.Module):
        pass

    with pytest.raises(TypeError, match="NotAHead must subclass GramHead"):
        register_head(TEST_HEAD)(NotAHead)
    assert TEST_HEAD not in HEAD_REGISTRY


def test_register_rejects_second_class_under_existing_name(clean_registry):
    class OtherHead(GramHead):
        pass

    with pytest.raises(ValueError, match="'knowledge_tracing' is already registered") as info:
        register_head("knowledge_tracing")(OtherHead)
    assert "KnowledgeTracingHead" in str(info.value)
    assert get_head_class("knowledge_tracing") is KnowledgeTracingHead


def test_get_head_class_unknown_name_lists_registered_heads():
    with pytest.raises(ValueError, match="'no_such_head'") as info:
        get_head_class("no_such_head")
    for name in HEAD_REGISTRY:
        assert repr(name) in str(info.value)
    assert "knowledge_tracing" in str(info.value)


def test_model_with_unknown_head_type_raises(tiny_bert_config):
    with pytest.raises(ValueError, match="Unknown head_type 'no_such_head'"):
        GramModel(GramConfig(encoder=tiny_bert_config, head_type="no_such_head"))


def test_gram_head_rejects_unknown_head_config_keys():
    with pytest.raises(TypeError, match=r"unexpected head_config keys: \['alpha', 'beta'\]"):
        GramHead(item_dim=4, beta=1, alpha=2)
    with pytest.raises(TypeError, match="DotHead got unexpected head_config keys"):
        DotHead(item_dim=4, scale=1.0, bogus=True)
    assert GramHead(item_dim=4).item_dim == 4
