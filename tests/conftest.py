"""Shared fixtures: an offline Hugging Face environment, the shipped MiniLM tokenizer and a tiny BERT config."""

from __future__ import annotations

import os
import tempfile

# huggingface_hub reads HF_HUB_OFFLINE when it is imported, so set it before the first import of transformers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# `evaluate` and `datasets` read their cache folders from HF_HOME when first imported (possibly at collection), so a
# throwaway HF_HOME is set before anything imports them; the fixtures below re-point it per session.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="gram_hf_tests_hf_home_")

import pytest  # noqa: E402
from transformers import AutoTokenizer, BertConfig  # noqa: E402

import gram_hf  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _offline_hf_env(tmp_path_factory):
    """No Hub access and Hugging Face caches in a temporary folder, for every test (and session fixtures)."""
    hf_home = tmp_path_factory.mktemp("hf_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setenv("HF_DATASETS_OFFLINE", "1")
    patch.setenv("HF_HOME", str(hf_home))
    patch.setenv("HF_DATASETS_CACHE", str(hf_home / "datasets"))
    yield hf_home
    patch.undo()


@pytest.fixture(autouse=True)
def _offline_hf_env_per_test(monkeypatch, _offline_hf_env):
    """Re-asserts the offline environment per test, so a test that edits the environment cannot leak it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(_offline_hf_env))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(_offline_hf_env / "datasets"))


@pytest.fixture(scope="session")
def tokenizer(_offline_hf_env):
    """The tokenizer of the shipped all-MiniLM-L6-v2 (loaded from the local package, no Hub access)."""
    return AutoTokenizer.from_pretrained(gram_hf.default_encoder_path())


@pytest.fixture
def tiny_bert_config(tokenizer):
    """A 2-layer, hidden-32 BERT config with the MiniLM vocabulary and no dropout (deterministic forwards)."""
    return BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
