"""
A small GRAM training run that SIGKILLs itself in the middle of saving a checkpoint, for the crash-safety test.

`python kill_during_save.py OUTPUT_DIR KILL_AT_STEP` trains with a checkpoint every 2 steps and kills the process
after the model weights of checkpoint-KILL_AT_STEP are written but before its optimizer and GRAM state are.
The test imports `make_trainer` to resume and to train the same run straight.
"""

from __future__ import annotations

import os
import signal
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoTokenizer, BertConfig  # noqa: E402

import gram_hf  # noqa: E402
from gram_hf import GramConfig, GramModel, GramTrainer, GramTrainingArguments, ItemCatalog  # noqa: E402
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, make_synthetic_knowledge_tracing  # noqa: E402

MAX_STEPS = 6


class KillingTrainer(GramTrainer):
    kill_at_step: int | None = None

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if self.state.global_step == self.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        super()._save_optimizer_and_scheduler(output_dir)


def make_trainer(output_dir: str, kill_at_step: int | None = None) -> GramTrainer:
    data = make_synthetic_knowledge_tracing(num_users=24, num_items=20, min_length=4, max_length=10, seed=5)
    tokenizer = AutoTokenizer.from_pretrained(gram_hf.default_encoder_path())
    catalog = ItemCatalog(data.item_ids, data.texts, tokenizer, max_length=12)
    torch.manual_seed(0)
    encoder = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=20,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = GramModel(GramConfig(encoder=encoder, head_type="knowledge_tracing"))
    args = GramTrainingArguments(
        output_dir=output_dir,
        gram_mode="gram",
        gram_interval="3",
        per_device_train_batch_size=4,
        max_steps=MAX_STEPS,
        learning_rate=1e-3,
        optim="adamw_torch",
        save_strategy="steps",
        save_steps=2,
        disable_tqdm=True,
        report_to="none",
        seed=0,
        use_cpu=True,
    )
    trainer_cls = KillingTrainer if kill_at_step is not None else GramTrainer
    trainer = trainer_cls(
        model=model,
        args=args,
        item_catalog=catalog,
        data_collator=KnowledgeTracingCollator(),
        train_dataset=data.train,
    )
    trainer.kill_at_step = kill_at_step
    return trainer


if __name__ == "__main__":
    make_trainer(sys.argv[1], kill_at_step=int(sys.argv[2])).train()
