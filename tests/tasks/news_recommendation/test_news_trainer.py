"""News recommendation end to end: synthetic MIND, load_mind, catalog, GramTrainer (gram and e2e), prediction."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from gram_hf import GramConfig, GramModel, GramTrainer, GramTrainingArguments
from gram_hf.tasks.news_recommendation import (
    NEWS_DEFAULT_POOLING,
    NewsRecommendationCollator,
    build_news_catalog,
    load_mind,
    make_synthetic_mind,
    write_mind_prediction_from_output,
)


@pytest.fixture(scope="module")
def mind(tmp_path_factory):
    root = tmp_path_factory.mktemp("mind")
    make_synthetic_mind(root / "raw", "large", num_users=20, num_news=60, train_impressions=12, dev_impressions=6,
                        test_impressions=5, mean_candidates=6, mean_history=5, seed=0)  # fmt: skip
    return load_mind(root / "raw", cache_dir=root / "cache", text_fields=("title", "abstract"))


@pytest.fixture(scope="module")
def catalog(mind, tokenizer):
    return build_news_catalog(mind, tokenizer, max_lengths={"title": 10, "abstract": 8})


@pytest.fixture
def base_model(tiny_bert_config):
    torch.manual_seed(0)
    config = GramConfig(
        encoder=tiny_bert_config,
        head_type="news_recommendation",
        pooling=NEWS_DEFAULT_POOLING,
        head_config={"query_dim": 16, "dropout": 0.0},
    )
    return GramModel(config)


def make_trainer(model, catalog, mind, tmp_path, **overrides):
    settings = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "max_steps": 2,
        "dataloader_pin_memory": False,
        "learning_rate": 0.05,
        "optim": "sgd",
        "lr_scheduler_type": "constant",
        "save_strategy": "no",
        "disable_tqdm": True,
        "train_sampling_strategy": "sequential",
        "seed": 0,
        **overrides,
    }
    return GramTrainer(
        model=model,
        args=GramTrainingArguments(**settings),
        item_catalog=catalog,
        data_collator=NewsRecommendationCollator(),
        train_dataset=mind["train"],
        eval_dataset=mind["validation"],
    )


@pytest.mark.parametrize("mode", ["gram", "e2e"])
def test_train_evaluate_and_predict(base_model, catalog, mind, tmp_path, mode):
    trainer = make_trainer(base_model, catalog, mind, tmp_path, gram_mode=mode)
    trainer.train()
    counters = trainer.gram_counters
    assert counters["occurrences"] > counters["unique_items"] > 0
    expected_encodes = counters["occurrences"] if mode == "e2e" else counters["unique_items"]
    assert counters["encoder_items_backward"] == expected_encodes
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"])
    output = trainer.predict(mind["test"])
    scores, scored_items = output.predictions
    assert scores.shape == scored_items.shape == (len(mind["test"]), max(map(len, mind["test"]["candidates"])))
    path = write_mind_prediction_from_output(output, mind["test"], tmp_path / "submission")
    lines = (path.parent / "prediction.txt").read_text().splitlines()
    assert [int(line.split(" ")[0]) for line in lines] == mind["test"]["impression_id"]
    for line, candidates in zip(lines, mind["test"]["candidates"]):
        ranks = sorted(int(r) for r in line.split(" ")[1].strip("[]").split(","))
        assert ranks == list(range(1, len(candidates) + 1))


def test_single_step_gram_equals_e2e(base_model, catalog, mind, tmp_path):
    """The head treats every reference independently, so one encode per unique item gives the E2E gradient."""
    models = {}
    for mode in ("e2e", "gram"):
        models[mode] = copy.deepcopy(base_model)
        make_trainer(models[mode], catalog, mind, tmp_path, gram_mode=mode, max_steps=2).train()
    changed = max((p - q).abs().max().item() for p, q in zip(models["e2e"].parameters(), base_model.parameters()))
    assert changed > 1e-4
    for (name, p), q in zip(models["e2e"].named_parameters(), models["gram"].parameters()):
        torch.testing.assert_close(p, q, atol=2e-6, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
