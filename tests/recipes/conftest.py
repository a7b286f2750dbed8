"""Fixtures of the program tests: a tiny encoder folder the programs load by `--encoder_name_or_path`."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory, tokenizer):
    """A 2-layer, hidden-32 BERT with the MiniLM vocabulary, saved with the MiniLM tokenizer."""
    folder = tmp_path_factory.mktemp("tiny_encoder")
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
