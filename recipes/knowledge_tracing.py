"""
Knowledge tracing with GRAM on the embedded default: synthetic learners and items whose text carries the signal, and
the shipped all-MiniLM-L6-v2 encoder. Runs offline on a CPU in a few minutes:

    python recipes/knowledge_tracing.py
    python recipes/knowledge_tracing.py --gram_mode e2e --output_dir outputs/kt-e2e

Every `GramTrainingArguments` / `TrainingArguments` flag works (`--gram_interval 1`, `--bf16`, `--max_steps`, ...).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
from transformers import AutoTokenizer, HfArgumentParser, set_seed

from gram_hf import GramModel, GramTrainer, GramTrainingArguments, ItemCatalog, default_encoder_path
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, make_synthetic_knowledge_tracing

logger = logging.getLogger(__name__)


@dataclass
class DataArguments:
    num_users: int = field(default=600, metadata={"help": "Synthetic learners."})
    num_items: int = field(default=150, metadata={"help": "Synthetic items (questions with text)."})
    max_seq_len: int = field(default=50, metadata={"help": "Longest learner sequence."})
    item_max_length: int = field(default=32, metadata={"help": "Item text is truncated to this many tokens."})
    synthetic_seed: int = field(default=0, metadata={"help": "Seed of the synthetic data."})


@dataclass
class ModelArguments:
    encoder_name_or_path: str | None = field(
        default=None, metadata={"help": "Backbone of the content encoder; default: the shipped all-MiniLM-L6-v2."}
    )
    pooling: str = field(default="mean", metadata={"help": "mean | cls | attention."})
    lstm_dropout: float = field(default=0.1, metadata={"help": "Dropout of the knowledge-tracing LSTM."})


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula (ties get average ranks)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    positives = labels == 1
    num_pos, num_neg = positives.sum(), (~positives).sum()
    if num_pos == 0 or num_neg == 0:
        return float("nan")
    return float((ranks[positives].sum() - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg))


def compute_metrics(prediction) -> dict[str, float]:
    scores, _ = prediction.predictions  # (scores, catalog index of each scored position)
    scores, labels = scores.reshape(-1), prediction.label_ids.reshape(-1)
    mask = labels != -100
    scores, labels = scores[mask], labels[mask]
    return {"auc": roc_auc(labels, scores), "accuracy": float(((scores > 0) == (labels == 1)).mean())}


def main() -> None:
    parser = HfArgumentParser((DataArguments, ModelArguments, GramTrainingArguments))
    # The recipe's defaults: GRAM with one encoder fit per epoch, the paper's batch of 32 learners.
    parser.set_defaults(
        output_dir="outputs/knowledge_tracing",
        gram_interval="1epoch",
        num_train_epochs=5,
        learning_rate=1e-3,
        encoder_learning_rate=1e-4,
        item_learning_rate=1.0,
        per_device_train_batch_size=32,
        warmup_steps=0.1,
        logging_steps=10,
        eval_strategy="epoch",
        save_strategy="no",
    )
    data_args, model_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING)
    set_seed(training_args.seed)

    data = make_synthetic_knowledge_tracing(
        num_users=data_args.num_users,
        num_items=data_args.num_items,
        max_length=data_args.max_seq_len,
        seed=data_args.synthetic_seed,
    )
    encoder_path = model_args.encoder_name_or_path or default_encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(encoder_path)
    catalog = ItemCatalog(data.item_ids, data.texts, tokenizer, max_length=data_args.item_max_length)
    head_config = {"dropout": model_args.lstm_dropout}
    if training_args.gram_mode == "nocontent":
        model = GramModel.for_item_ids(catalog.num_items, 384, head_type="knowledge_tracing", head_config=head_config)
    else:
        model = GramModel.from_encoder_pretrained(
            encoder_path, head_type="knowledge_tracing", head_config=head_config, pooling=model_args.pooling
        )

    trainer = GramTrainer(
        model=model,
        args=training_args,
        item_catalog=catalog,
        data_collator=KnowledgeTracingCollator(),
        train_dataset=data.train,
        eval_dataset=data.test,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
    )
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    metrics = trainer.evaluate()
    counters = trainer.gram_counters
    encoder_items = counters["encoder_items_forward"] + counters["encoder_items_backward"]

    if trainer.is_world_process_zero():
        rows = [
            ("mode", f"{training_args.gram_mode} (interval {training_args.gram_interval})"),
            ("test AUC", f"{metrics['eval_auc']:.4f}"),
            ("test accuracy", f"{metrics['eval_accuracy']:.4f}"),
            ("test loss", f"{metrics['eval_loss']:.4f}"),
            ("training wall time", f"{train_seconds:.1f} s"),
            ("item occurrences (E2E encodes each, fwd+bwd)", f"{counters['occurrences']:,}"),
            ("encoder items, no-grad forward", f"{counters['encoder_items_forward']:,}"),
            ("encoder items, forward+backward", f"{counters['encoder_items_backward']:,}"),
            ("R_batch (occurrences / unique items)", f"{trainer.gram_metrics()['gram/r_batch']:.2f}"),
        ]
        width = max(len(name) for name, _ in rows)
        print("\n" + "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows) + "\n")
        trainer.save_model()
        with open(os.path.join(training_args.output_dir, "results.json"), "w") as handle:
            json.dump({**metrics, **trainer.gram_metrics(), "train_seconds": train_seconds,
                       "encoder_items": encoder_items}, handle, indent=2)  # fmt: skip
        print(f"Model saved to {training_args.output_dir}")


if __name__ == "__main__":
    main()
