"""The README's "Use a trained model" examples, run as written on small data and a tiny trained model per task."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from gram_hf import GramConfig, GramModel, GramTrainer, GramTrainingArguments, get_task

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example(task: str) -> str:
    """The code block after `<!-- test:inference:<task> -->` in the README."""
    match = re.search(rf"<!-- test:inference:{task} -->\n```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert match, f"README has no inference example for {task}"
    return match.group(1)


def train_and_save(task_name, data, tokenizer, tiny_bert_config, output_dir, head_config=None):
    """What a program leaves in its output_dir (model, tokenizer, gram_inference.json), from a tiny model."""
    task = get_task(task_name)
    torch.manual_seed(0)
    config = GramConfig(encoder=tiny_bert_config, head_type=task_name, pooling=task.default_pooling,
                        head_config=head_config)  # fmt: skip
    model = GramModel(config)
    args = GramTrainingArguments(
        output_dir=output_dir, gram_mode="gram", gram_interval="1epoch", use_cpu=True, max_steps=2,
        per_device_train_batch_size=4, save_strategy="no", report_to="none", disable_tqdm=True,
    )  # fmt: skip
    trainer = GramTrainer(
        model=model, args=args, item_catalog=task.build_catalog(data, tokenizer, max_length=12),
        data_collator=task.make_collator(data, model.head, "train"),
        eval_data_collator=task.make_collator(data, model.head, "eval"),
        train_dataset=data["train"], processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()
    trainer.save_model()


def run_example(task: str) -> dict:
    namespace: dict = {}
    exec(compile(readme_example(task), f"README.md ({task} example)", "exec"), namespace)
    return namespace


def test_readme_knowledge_tracing_example(tmp_path, monkeypatch, tokenizer, tiny_bert_config, capsys):
    from gram_hf.tasks.knowledge_tracing import load_kt_csv, write_synthetic_kt_csv

    monkeypatch.chdir(tmp_path)
    write_synthetic_kt_csv(".", "en_es", scale=0.01, seed=0)
    data = load_kt_csv("interactions.csv", "items.csv")
    train_and_save("knowledge_tracing", data, tokenizer, tiny_bert_config, "outputs/knowledge_tracing")
    namespace = run_example("knowledge_tracing")
    p_correct = namespace["p_correct"]
    assert p_correct.shape == (2,) and bool(((p_correct > 0) & (p_correct < 1)).all())
    assert "q-new" in namespace["recommender"].item_ids
    assert "tensor" in capsys.readouterr().out


def test_readme_news_example(tmp_path, monkeypatch, tokenizer, tiny_bert_config, capsys):
    from gram_hf.tasks.news_recommendation import load_mind, make_synthetic_mind

    monkeypatch.chdir(tmp_path)
    make_synthetic_mind("MIND", "small", num_users=12, num_news=40, train_impressions=16, dev_impressions=6,
                        mean_candidates=5, mean_history=4, seed=0)  # fmt: skip
    data = load_mind("MIND")
    train_and_save("news_recommendation", data, tokenizer, tiny_bert_config, "outputs/mind",
                   head_config={"query_dim": 16})  # fmt: skip
    capsys.readouterr()
    namespace = run_example("news_recommendation")
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == min(3, len(namespace["candidates"]))
    scores = namespace["scores"]
    assert [len(s) for s in scores] == [len(namespace["candidates"]), min(2, len(namespace["candidates"]))]


def test_readme_next_item_example(tmp_path, monkeypatch, tokenizer, tiny_bert_config, capsys):
    pytest.importorskip("faiss")
    from gram_hf.tasks.next_item import load_movielens, make_synthetic_movielens

    monkeypatch.chdir(tmp_path)
    make_synthetic_movielens("ml-20m", num_users=20, num_items=30, num_genres=3, max_length=10, seed=0)
    data = load_movielens("ml-20m")
    train_and_save("next_item", data, tokenizer, tiny_bert_config, "outputs/next_item",
                   head_config={"max_length": 10, "num_heads": 2})  # fmt: skip
    namespace = run_example("next_item")
    recommender = namespace["recommender"]
    assert recommender.counters["items_encoded"] == data.num_items + 1  # the catalog once, then the new film
    assert [len(top) for top in namespace["lists"]] == [10, 10]
    assert "item_id" in capsys.readouterr().out
