"""bf16 on every CPU: recurrent layers under autocast, every head trained with `--bf16`, and the AVX2 path checked."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gram_hf import GramConfig, GramModel, GramTrainer, GramTrainingArguments, ItemCatalog, precision
from gram_hf.precision import run_recurrent

# Set in the child process of `test_bf16_tests_pass_with_onednn_capped_at_avx2`, so it does not start another.
CAPPED_ENV = "GRAM_HF_TEST_ISA_CAPPED"
# oneDNN and ATen read these when they initialise, so the cap needs a fresh process. On a CPU with native bf16 (e.g.
# AVX512-BF16) they reproduce an AVX2-only CPU: oneDNN then has no bf16 RNN primitive.
AVX2_CAP = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def lstm():
    torch.manual_seed(0)
    return nn.LSTM(6, 5, num_layers=2, batch_first=True)


@pytest.fixture
def no_cpu_kernel(monkeypatch):
    """This CPU as one without a bf16 recurrent kernel, whatever it really has."""
    monkeypatch.setattr(precision, "cpu_autocast_supports_recurrent", lambda dtype: False)


def test_run_recurrent_outside_autocast_is_the_plain_call(lstm):
    inputs = torch.randn(3, 4, 6)
    states, (hidden, cell) = run_recurrent(lstm, inputs)
    expected, (expected_hidden, _) = lstm(inputs)
    assert states.dtype == torch.float32
    assert torch.equal(states, expected) and torch.equal(hidden, expected_hidden)


@pytest.mark.bf16
def test_run_recurrent_falls_back_to_fp32_without_a_cpu_kernel(lstm, no_cpu_kernel):
    inputs = torch.randn(3, 4, 6, requires_grad=True)
    initial = (torch.zeros(2, 3, 5, dtype=torch.bfloat16), torch.zeros(2, 3, 5, dtype=torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        states, _ = run_recurrent(lstm, inputs.to(torch.bfloat16), initial)
        after = nn.functional.linear(states, torch.eye(5))  # the layers after it autocast again
    expected, _ = lstm(inputs.to(torch.bfloat16).float())
    assert states.dtype == torch.float32 and torch.equal(states, expected)
    assert after.dtype == torch.bfloat16
    states.sum().backward()
    assert inputs.grad is not None and lstm.weight_ih_l0.grad is not None


@pytest.mark.bf16
def test_run_recurrent_refuses_low_precision_weights_it_cannot_run(lstm, no_cpu_kernel):
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(ValueError, match="must run in float32"):
        run_recurrent(lstm.to(torch.bfloat16), torch.randn(1, 2, 6, dtype=torch.bfloat16))


@pytest.mark.bf16
def test_run_recurrent_under_cpu_autocast_runs_on_this_cpu(lstm):
    # Whatever the probe finds: the native bf16 kernel (bf16 outputs) or the fp32 fallback.
    inputs = torch.randn(2, 3, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        states, _ = run_recurrent(lstm, inputs)
    native = precision.cpu_autocast_supports_recurrent(torch.bfloat16)
    assert states.dtype == (torch.bfloat16 if native else torch.float32)
    assert torch.allclose(states.float(), lstm(inputs)[0], atol=0.05)


# ------------------------------------------------------------------ every head trains with --bf16 on this CPU


def knowledge_tracing_setup(tokenizer, tiny_bert_config, tmp_path):
    from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, make_synthetic_knowledge_tracing

    data = make_synthetic_knowledge_tracing(num_users=16, num_items=20, min_length=4, max_length=10, seed=0)
    catalog = ItemCatalog(data.item_ids, data.texts, tokenizer, max_length=10)
    config = GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing", pooling="mean")
    return config, catalog, KnowledgeTracingCollator(), KnowledgeTracingCollator(), data.train, data.test


def news_recommendation_setup(tokenizer, tiny_bert_config, tmp_path):
    from gram_hf.tasks.news_recommendation import (
        NEWS_DEFAULT_POOLING,
        NewsRecommendationCollator,
        build_news_catalog,
        load_mind,
        make_synthetic_mind,
    )

    make_synthetic_mind(tmp_path / "mind", "small", num_users=12, num_news=40, train_impressions=16,
                        dev_impressions=6, mean_candidates=5, mean_history=4, seed=0)  # fmt: skip
    data = load_mind(tmp_path / "mind", cache_dir=tmp_path / "cache", text_fields=("title",))
    catalog = build_news_catalog(data, tokenizer, max_lengths={"title": 10})
    config = GramConfig(encoder=tiny_bert_config, head_type="news_recommendation", pooling=NEWS_DEFAULT_POOLING,
                        head_config={"query_dim": 16, "dropout": 0.0})  # fmt: skip
    collator = NewsRecommendationCollator(max_history=4)
    return config, catalog, collator, collator, data["train"], data["validation"]


def next_item_setup(tokenizer, tiny_bert_config, tmp_path):
    from gram_hf.tasks.next_item import NextItemCollator, load_movielens, make_synthetic_movielens

    make_synthetic_movielens(tmp_path / "ml", num_users=20, num_items=30, num_genres=3, max_length=10, seed=0)
    data = load_movielens(tmp_path / "ml", cache_dir=str(tmp_path / "cache"))
    catalog = data.catalog(tokenizer, max_length=10)
    head_config = {"max_length": 10, "dropout": 0.0, "num_heads": 2, "loss_type": "cce"}
    config = GramConfig(encoder=tiny_bert_config, head_type="next_item", head_config=head_config)
    model_head = GramModel(config).head
    train_collator = NextItemCollator.from_head(model_head, data.num_items)
    eval_collator = NextItemCollator.from_head(model_head, data.num_items, mode="eval")
    return config, catalog, train_collator, eval_collator, data["train"], data["test"]


SETUPS = {
    "knowledge_tracing": knowledge_tracing_setup,
    "news_recommendation": news_recommendation_setup,
    "next_item": next_item_setup,
}


@pytest.mark.bf16
@pytest.mark.parametrize("mode", ["gram", "e2e"])
@pytest.mark.parametrize("task", sorted(SETUPS))
def test_every_head_trains_and_evaluates_with_bf16_on_cpu(task, mode, tokenizer, tiny_bert_config, tmp_path):
    config, catalog, train_collator, eval_collator, train_data, eval_data = SETUPS[task](
        tokenizer, tiny_bert_config, tmp_path
    )
    torch.manual_seed(0)
    model = GramModel(config)
    initial = copy.deepcopy(model)
    seen = []
    # a Linear inside the encoder: autocast must reach it (LayerNorm outputs stay fp32 under autocast)
    model.encoder.backbone.encoder.layer[0].intermediate.dense.register_forward_hook(
        lambda module, inputs, output: seen.append(output.dtype)
    )
    args = GramTrainingArguments(
        output_dir=str(tmp_path / "out"), gram_mode=mode, gram_interval="2", bf16=True, use_cpu=True, max_steps=3,
        per_device_train_batch_size=4, per_device_eval_batch_size=8, learning_rate=1e-2, encoder_learning_rate=1e-2,
        logging_steps=1, save_strategy="no", disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = GramTrainer(model=model, args=args, item_catalog=catalog, data_collator=train_collator,
                          train_dataset=train_data)  # fmt: skip
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses), losses
    assert seen and all(dtype == torch.bfloat16 for dtype in seen)
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    if trainer.item_table is not None:
        assert trainer.item_table.vectors.dtype == torch.float32
    for part in ("encoder", "head"):
        before = dict(getattr(initial, part).named_parameters())
        changed = any(not torch.equal(p, before[n]) for n, p in getattr(model, part).named_parameters())
        assert changed, f"the {part} did not train"

    trainer.data_collator = eval_collator
    metrics = trainer.evaluate(eval_data)
    assert math.isfinite(metrics["eval_loss"]), metrics


# ------------------------------------------------------------------ the AVX2 path on every machine


@pytest.mark.skipif(os.environ.get(CAPPED_ENV) == "1", reason="already the capped run")
@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64", reason="x86-64 only")
def test_bf16_tests_pass_with_onednn_capped_at_avx2(tmp_path):
    """
    Every bf16 test again in a process whose oneDNN and ATen are capped at AVX2, so that a CI machine with native bf16
    also checks the path of a CPU without it (where torch's autocast LSTM raises instead of training).
    """
    env = {**os.environ, **AVX2_CAP, CAPPED_ENV: "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-m", "bf16", "-p", "no:cacheprovider",
               f"--basetemp={tmp_path / 'basetemp'}", str(TESTS)]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]

    probe = "import torch, gram_hf.precision as p; print(p.cpu_autocast_supports_recurrent(torch.bfloat16))"
    capped = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    # With oneDNN capped at AVX2 the autocast LSTM has no kernel: the run above exercised the fp32 fallback.
    assert capped.stdout.strip() == "False", capped.stdout + capped.stderr
