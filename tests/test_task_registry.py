"""The task registry: the three tasks are registered, a new task is one `register_task` call, conflicts are refused."""

from __future__ import annotations

import pytest

import gram_hf
from gram_hf import HEAD_REGISTRY, TASK_REGISTRY, GramTask, get_head_class, get_task, register_task
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, KnowledgeTracingHead
from gram_hf.tasks.news_recommendation import NewsRecommendationHead
from gram_hf.tasks.next_item import NextItemCollator, SASRecHead


@pytest.fixture
def clean_registries():
    """Removes what a test registers, so the global registries are the same for every test."""
    tasks, heads = dict(TASK_REGISTRY), dict(HEAD_REGISTRY)
    yield
    TASK_REGISTRY.clear()
    TASK_REGISTRY.update(tasks)
    HEAD_REGISTRY.clear()
    HEAD_REGISTRY.update(heads)


def test_every_task_is_registered_with_its_head():
    assert gram_hf.register_task is register_task
    expected = {
        "knowledge_tracing": KnowledgeTracingHead,
        "news_recommendation": NewsRecommendationHead,
        "next_item": SASRecHead,
    }
    for name, head in expected.items():
        task = get_task(name)
        assert isinstance(task, GramTask) and task.head is head and get_head_class(name) is head
    assert get_task("news_recommendation").default_pooling == "attention"
    assert get_task("next_item").metric_for_best_model == "ndcg@10"


def test_task_parts_build_from_data(tiny_bert_config):
    from gram_hf import GramConfig, GramModel
    from gram_hf.tasks.knowledge_tracing import make_synthetic_knowledge_tracing

    data = make_synthetic_knowledge_tracing(num_users=6, num_items=5, min_length=3, max_length=4, seed=0)
    task = get_task("knowledge_tracing")
    head = GramModel(GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing")).head
    collator = task.make_collator(data, head, "train", max_seq_len=4)
    assert isinstance(collator, KnowledgeTracingCollator) and collator.max_seq_len == 4
    with pytest.raises(ValueError, match="mode"):
        task.make_collator(data, head, "test")
    with pytest.raises(TypeError):
        task.make_collator(data, head, "train", npratio=4)  # not an option of this task


def test_next_item_evaluates_with_a_ranking_collator():
    task = get_task("next_item")
    head = SASRecHead(8, max_length=5, loss_type="ce_sampled")

    class Data:
        num_items = 7
        items = {"train_count": [3, 0, 1, 1, 0, 2, 5]}  # items 1 and 4 never trained

    train, evaluation = task.make_collator(Data, head, "train"), task.make_collator(Data, head, "eval")
    assert isinstance(train, NextItemCollator) and (train.mode, evaluation.mode) == ("train", "eval")
    assert train.loss_type == "ce_sampled" and train.max_length == 5
    # Training scores the items of the train split; evaluation ranks the whole catalog, cold-start targets also among
    # the items that never trained.
    assert train.training_items.tolist() == [0, 2, 3, 5, 6]
    batch = evaluation([{"items": [0, 2, 4]}])
    assert batch["catalog_ref"].tolist() == list(range(7)) and batch["cold_ref"].tolist() == [1, 4]


def test_register_task_refuses_conflicts(clean_registries):
    class OtherHead(KnowledgeTracingHead):
        pass

    with pytest.raises(ValueError, match="registered to KnowledgeTracingHead"):
        register_task("knowledge_tracing", head=OtherHead, collator=print, metrics=print)
    with pytest.raises(TypeError, match="GramHead"):
        register_task("_bad", head=dict, collator=print, metrics=print)
    with pytest.raises(ValueError, match="Unknown task '_missing'"):
        get_task("_missing")
    # registering the very same task again is a no-op
    again = register_task(
        "knowledge_tracing",
        head=KnowledgeTracingHead,
        collator=get_task("knowledge_tracing").collator,
        metrics=get_task("knowledge_tracing").metrics,
        describe=get_task("knowledge_tracing").describe,
        metric_names=dict(get_task("knowledge_tracing").metric_names),
        recommender=get_task("knowledge_tracing").recommender,
    )
    assert again == get_task("knowledge_tracing")


def test_a_new_task_is_one_register_task_call_and_the_runner_trains_it(clean_registries, tmp_path, tokenizer):
    """A plug-in task (a KT head under another name, with its own metric) runs through the generic runner."""
    from transformers import BertConfig, BertModel

    from gram_hf.scripts import ModelArguments, RecipeArguments, ScriptArguments, run_task
    from gram_hf.tasks.knowledge_tracing import load_kt_csv, write_synthetic_kt_csv
    from gram_hf.training_args import GramTrainingArguments

    class ResponseHead(KnowledgeTracingHead):
        """The plug-in's head."""

    calls = []

    def make_metrics(data):
        def compute(prediction):
            calls.append(prediction.predictions[0].shape)
            return {"positions": float((prediction.label_ids != -100).sum())}

        return compute

    register_task(
        "_responses",
        head=ResponseHead,
        collator=lambda data, head, mode: KnowledgeTracingCollator(),
        metrics=make_metrics,
        metric_for_best_model="positions",
        metric_names={"positions": "scored positions"},
    )
    encoder = tmp_path / "encoder"
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=20)  # fmt: skip
    BertModel(config).save_pretrained(encoder)
    tokenizer.save_pretrained(encoder)
    write_synthetic_kt_csv(tmp_path / "raw", "en_es", scale=0.002, seed=0)
    data = load_kt_csv(tmp_path / "raw" / "interactions.csv", tmp_path / "raw" / "items.csv", cold_start_items=2,
                       cache_dir=str(tmp_path / "cache"))  # fmt: skip
    training = GramTrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4, eval_strategy="no",
        save_strategy="no", disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    args = RecipeArguments(
        data=ScriptArguments(early_stopping_patience=0),
        model=ModelArguments(encoder_name_or_path=str(encoder), item_max_length=12),
        training=training,
        synthetic=False,
        demo_settings={},
        explicit=frozenset(),
        start_time=0.0,
    )
    results = run_task("_responses", data, args, recipe="plug-in", source="synthetic")
    assert results["task"] == "_responses" and results["steps"] == 2
    assert calls and results["test_metrics"]["test_positions"] > 0
    model = gram_hf.GramModel.from_pretrained(tmp_path / "out")
    assert isinstance(model.head, ResponseHead) and model.config.head_type == "_responses"
