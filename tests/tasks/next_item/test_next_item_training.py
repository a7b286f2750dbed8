"""SASRec through GramTrainer on planted-signal synthetic MovieLens: quality, cold start, and GRAM's catalog cost."""

from __future__ import annotations

import logging

import pytest
import torch

from gram_hf import GramConfig, GramModel, GramTrainer, GramTrainingArguments
from gram_hf.tasks.next_item import (
    NextItemCollator,
    NextItemMetrics,
    load_movielens,
    make_synthetic_movielens,
    popularity_recommendations,
)

HEAD_CONFIG = {"max_length": 30, "dropout": 0.1, "num_heads": 2}


@pytest.fixture(autouse=True)
def _single_thread():
    # Tiny matrices: one thread is faster, and far faster on a machine whose cores are shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic_ml")
    make_synthetic_movielens(folder, num_users=300, num_items=120, num_genres=6, max_length=24, seed=0)
    return load_movielens(folder, cache_dir=str(folder / "cache"))


@pytest.fixture(scope="module")
def catalog(movielens, tokenizer):
    return movielens.catalog(tokenizer, max_length=16)


def content_model(bert_config, loss_type):
    torch.manual_seed(0)
    head_config = {**HEAD_CONFIG, "loss_type": loss_type}
    return GramModel(GramConfig(encoder=bert_config, head_type="next_item", head_config=head_config))


def make_trainer(model, data, catalog, tmp_path, **overrides):
    settings = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 256,
        "learning_rate": 3e-3,
        "encoder_learning_rate": 1e-3,
        "num_train_epochs": 8,
        "save_strategy": "no",
        "logging_steps": 1000,
        "disable_tqdm": True,
        "seed": 0,
        **overrides,
    }
    return GramTrainer(
        model=model,
        args=GramTrainingArguments(**settings),
        item_catalog=catalog,
        data_collator=NextItemCollator.from_head(model.head, data.num_items),
        train_dataset=data["train"],
        compute_metrics=NextItemMetrics(data.items["train_count"]),
    )


def evaluate(trainer, model, data):
    trainer.data_collator = NextItemCollator.from_head(model.head, data.num_items, mode="eval")
    return trainer.evaluate(data["test"])


def test_sasrec_beats_popularity_and_content_recommends_cold_start(movielens, catalog, tiny_bert_config, tmp_path):
    popularity = NextItemMetrics(movielens.items["train_count"])
    baseline = popularity.compute(
        *popularity_recommendations(movielens["test"]["items"], movielens.items["train_count"])
    )
    assert movielens.stats["cold_start_items"] > 0

    model = content_model(tiny_bert_config, "cce")
    trainer = make_trainer(model, movielens, catalog, tmp_path, gram_mode="gram", gram_interval="1epoch")
    trainer.train()
    content = evaluate(trainer, model, movielens)
    assert content["eval_ndcg@10"] > 3 * baseline["ndcg@10"], (content, baseline)
    assert content["eval_cold_users"] > 0 and content["eval_cold_hr@10"] > 0, content

    torch.manual_seed(0)
    ids = GramModel.for_item_ids(
        movielens.num_items, 32, head_type="next_item", head_config={**HEAD_CONFIG, "loss_type": "cce"}
    )
    id_trainer = make_trainer(ids, movielens, None, tmp_path, gram_mode="nocontent")
    id_trainer.train()
    id_based = evaluate(id_trainer, ids, movielens)
    assert id_based["eval_ndcg@10"] > 3 * baseline["ndcg@10"], (id_based, baseline)
    assert id_based["eval_cold_hr@10"] == 0, id_based  # an ID never trained is never ranked near the top


@pytest.mark.parametrize(("loss_type", "full"), [("cce", True), ("cce_sampled", False)])
def test_gram_cost_of_full_catalog_and_sampled_losses(movielens, catalog, tiny_bert_config, tmp_path, loss_type, full):
    """Full-catalog losses touch every item each step: the whole catalog is fitted in every window."""
    num_items = movielens.num_items
    model = content_model(tiny_bert_config, loss_type)
    model.head.num_negatives = 1
    # Small batches, so that a sampled batch (sequence items and negatives) covers only part of the catalog.
    trainer = make_trainer(
        model, movielens, catalog, tmp_path, gram_mode="gram", gram_interval="2", max_steps=4,
        per_device_train_batch_size=2,
    )  # fmt: skip
    trainer.train()
    counters = trainer.gram_counters
    if full:
        assert counters["unique_items"] == 4 * num_items
        assert counters["encoder_items_backward"] == 2 * num_items  # two windows, each fits the whole catalog
        assert counters["encoder_items_forward"] == 2 * num_items
        assert bool(trainer.item_table.touched.sum() == 0)
    else:
        assert counters["unique_items"] < 4 * num_items
        assert counters["encoder_items_backward"] < 2 * num_items


@pytest.mark.parametrize(("loss_type", "update", "interval", "warns"), [
    ("cce", "accumulate", "1epoch", True),
    ("cce", "per_batch", "1epoch", False),
    ("cce", "accumulate", "1", False),
    ("cce_sampled", "accumulate", "1epoch", False),
])  # fmt: skip
def test_full_catalog_windows_warn_about_one_encoder_step_per_window(
    movielens, catalog, tiny_bert_config, tmp_path, caplog, loss_type, update, interval, warns
):
    model = content_model(tiny_bert_config, loss_type)
    with caplog.at_level(logging.WARNING, logger="gram_hf.trainer"):
        make_trainer(
            model, movielens, catalog, tmp_path, gram_mode="gram", gram_interval=interval, encoder_update=update
        )
    assert ("encoder one optimizer step per window" in caplog.text) is warns


@pytest.mark.parametrize(("item_encoder", "loss_type", "eta", "interval", "warns"), [
    ("content+id", "cce", 1.0, "1epoch", True),
    ("content+id", "cce", 0.01, "1epoch", False),
    ("content+id", "cce", 1.0, "1", False),  # Single-step GRAM: 1.0 is exactly E2E
    ("content+id", "cce_sampled", 1.0, "1epoch", False),
    ("content", "cce", 1.0, "1epoch", False),  # content-only vectors need the full rate
])  # fmt: skip
def test_hybrid_full_catalog_windows_warn_about_item_learning_rate(
    movielens, catalog, tiny_bert_config, tmp_path, caplog, item_encoder, loss_type, eta, interval, warns
):
    torch.manual_seed(0)
    config = GramConfig(
        encoder=tiny_bert_config, head_type="next_item", head_config={**HEAD_CONFIG, "loss_type": loss_type},
        item_encoder=item_encoder, num_items=movielens.num_items if item_encoder == "content+id" else 0,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="gram_hf.trainer"):
        make_trainer(
            GramModel(config), movielens, catalog, tmp_path, gram_mode="gram", gram_interval=interval,
            encoder_update="per_batch", item_learning_rate=eta,
        )  # fmt: skip
    assert ("use item_learning_rate=0.01" in caplog.text) is warns
