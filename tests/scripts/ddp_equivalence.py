"""
Trains one GramModel per configuration and saves its final state, for the multi-process test (invariant 5).

Run once under `accelerate launch --multi_gpu --num_processes 2` with per-device batch b, and in a single process with
batch 2b (the test imports `run` for that); every process saves `<out>/rank<k>.pt` with its parameters, ItemTable and
counters for every configuration.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer, BertConfig  # noqa: E402

import gram_hf  # noqa: E402
from gram_hf import GramConfig, GramModel, GramTrainer, GramTrainingArguments, ItemCatalog  # noqa: E402
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator  # noqa: E402

NUM_ITEMS = 24
NUM_USERS = 16
SEQ_LEN = 8  # equal lengths: each process's mean loss then weighs its positions like the combined batch's mean
STEPS = 4
AUTO_DRIFT = 1e-3

CONFIGS = {
    "e2e": {"gram_mode": "e2e"},
    "gram_1": {"gram_mode": "gram", "gram_interval": "1"},
    "gram_1_adamw": {"gram_mode": "gram", "gram_interval": "1", "optim": "adamw_torch", "learning_rate": 1e-2},
    "gram_3": {"gram_mode": "gram", "gram_interval": "3"},
    "gram_3_per_batch": {"gram_mode": "gram", "gram_interval": "3", "encoder_update": "per_batch"},
    # Systematic drift here (AdamW, lr 0.1; random answers make SGD's pseudo-target updates cancel out): 0, 3e-4,
    # 1.4e-2 after steps 1-3, so the threshold ends the first window at step 3 (each process decides from its own copy
    # of the ItemTable), and the last step ends the second.
    "gram_auto": {
        "gram_mode": "gram",
        "gram_interval": "auto",
        "gram_auto_drift": AUTO_DRIFT,
        "gram_auto_max_interval": "100",
        "optim": "adamw_torch",
        "learning_rate": 0.1,
        # Adam turns the rounding noise of gradients that are zero in exact arithmetic (attention key biases) into
        # steps of the learning rate: a small one for the encoder keeps them within the comparison's tolerance.
        "encoder_learning_rate": 1e-3,
    },
    "gram_1_accumulation": {"gram_mode": "gram", "gram_interval": "1", "gram_recompute": True, "ga": 2},
    "nofinetune": {"gram_mode": "nofinetune"},
    "nocontent": {"gram_mode": "nocontent"},
}


def make_data():
    generator = torch.Generator().manual_seed(0)
    rows = []
    for user in range(NUM_USERS):
        items = torch.randint(0, NUM_ITEMS, (SEQ_LEN,), generator=generator).tolist()
        responses = torch.randint(0, 2, (SEQ_LEN,), generator=generator).tolist()
        rows.append({"user_id": f"u{user}", "items": items, "responses": responses})
    texts = [f"item {i} about {'hard rare' if i % 3 else 'easy simple'} topic {i % 5}" for i in range(NUM_ITEMS)]
    return datasets.Dataset.from_list(rows), [f"q{i}" for i in range(NUM_ITEMS)], texts


def make_model(mode: str) -> GramModel:
    torch.manual_seed(0)
    if mode == "nocontent":
        return GramModel.for_item_ids(NUM_ITEMS, 16, head_type="knowledge_tracing")
    encoder = BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=20,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return GramModel(GramConfig(encoder=encoder, head_type="knowledge_tracing", pooling="mean"))


def run(batch_size: int, output_dir: str) -> dict:
    """Trains every configuration with per-device batch `batch_size`; returns (and saves) the final states."""
    dataset, item_ids, texts = make_data()
    tokenizer = AutoTokenizer.from_pretrained(gram_hf.default_encoder_path())
    catalog = ItemCatalog(item_ids, texts, tokenizer, max_length=16)
    results = {}
    for name, config in CONFIGS.items():
        config = dict(config)
        accumulation = config.pop("ga", 1)
        settings = {
            "output_dir": os.path.join(output_dir, name),
            "per_device_train_batch_size": batch_size // accumulation,
            "gradient_accumulation_steps": accumulation,
            "max_steps": STEPS,
            "learning_rate": 0.05,
            "optim": "sgd",
            "lr_scheduler_type": "constant",
            "save_strategy": "no",
            "logging_steps": 1,
            "disable_tqdm": True,
            "train_sampling_strategy": "sequential",
            "encoder_batch_size": 5,
            "encoder_eval_batch_size": 7,
            "seed": 0,
            "use_cpu": True,
            **config,
        }
        model = make_model(settings["gram_mode"])
        trainer = GramTrainer(
            model=model,
            args=GramTrainingArguments(**settings),
            item_catalog=catalog,
            data_collator=KnowledgeTracingCollator(),
            train_dataset=dataset,
        )
        trainer.train()
        results[name] = {
            "parameters": {k: v.detach().cpu().clone() for k, v in trainer.gram_model.named_parameters()},
            "item_table": None if trainer.item_table is None else trainer.item_table.vectors.cpu().clone(),
            "counters": dict(trainer.gram_counters),
            "windows": trainer.gram_window_log.state_dict(),
            "world_size": trainer.accelerator.num_processes,
        }
        trainer.accelerator.wait_for_everyone()
    rank = int(os.environ.get("RANK", "0"))
    torch.save(results, os.path.join(output_dir, f"rank{rank}.pt"))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--per_device_batch_size", type=int, required=True)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()
    run(args.per_device_batch_size, args.output_dir)
    sys.exit(0)
