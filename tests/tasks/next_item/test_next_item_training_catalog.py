"""The training catalog: training batches score only the items of the train split (an item first seen after training
is no negative), exactly, and in every training mode."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from gram_hf import GramConfig, GramModel, GramTrainer, GramTrainingArguments
from gram_hf.tasks.next_item import NextItemCollator, SASRecHead, load_movielens, make_synthetic_movielens
from gram_hf.tasks.next_item.task import make_collator

TRAINING_ITEMS = [0, 2, 3, 5, 6]  # 1 and 4 are never trained (cold-start)
FEATURES = [{"items": [2, 3, 5, 6]}, {"items": [1, 5, 0]}, {"items": [6, 0]}]


def test_full_catalog_batch_scores_the_training_catalog_only():
    batch = NextItemCollator(num_items=7, loss_type="cce", training_items=TRAINING_ITEMS)(FEATURES)
    item_index = batch["item_index"]
    # Item 1 is an input (a first item is never a target), so it is encoded, but it is no column of the output layer.
    assert item_index.tolist() == [0, 1, 2, 3, 5, 6]
    assert item_index[batch["catalog_ref"]].tolist() == TRAINING_ITEMS
    assert item_index[batch["input_ref"][batch["input_ref"] >= 0]].tolist() == [2, 3, 5, 1, 5, 6]
    labels = batch["labels"]
    columns = [TRAINING_ITEMS[column] if column >= 0 else None for column in labels.flatten().tolist()]
    assert columns == [3, 5, 6, 5, 0, None, 0, None, None]
    # The whole catalog without training_items, as before; a training catalog of every item is the same.
    for options in ({}, {"training_items": list(range(7))}):
        whole = NextItemCollator(num_items=7, loss_type="cce", **options)(FEATURES)
        assert whole["catalog_ref"].tolist() == list(range(7))


def test_loss_over_the_training_catalog_is_cross_entropy_over_its_columns():
    torch.manual_seed(0)
    head = SASRecHead(item_dim=8, max_length=5, loss_type="cce", num_blocks=1, dropout=0.0).train()
    vectors = torch.randn(7, 8)
    batch = NextItemCollator.from_head(head, 7, training_items=TRAINING_ITEMS)(FEATURES)
    item_vectors = vectors[batch["item_index"]]
    loss = head(item_vectors, **{k: v for k, v in batch.items() if k != "item_index"}).loss
    states = head.encode_sequence(item_vectors, batch["input_ref"])
    valid = batch["labels"] != -100
    logits = states[valid] @ vectors[TRAINING_ITEMS].T
    torch.testing.assert_close(loss, F.cross_entropy(logits, batch["labels"][valid]), atol=1e-5, rtol=1e-5)


def test_sampled_negatives_come_from_the_training_catalog():
    generator = torch.Generator().manual_seed(0)
    collator = NextItemCollator(num_items=7, loss_type="ce_sampled", num_negatives=50, training_items=TRAINING_ITEMS,
                                generator=generator)  # fmt: skip
    batch = collator(FEATURES)
    negatives = batch["negative_ref"]
    drawn = set(batch["item_index"][negatives[negatives >= 0]].tolist())
    assert drawn and drawn <= set(TRAINING_ITEMS)


def test_bad_training_catalogs():
    with pytest.raises(ValueError, match="not in training_items"):
        NextItemCollator(num_items=7, loss_type="cce", training_items=[0, 2, 3, 5])(FEATURES)
    for items in ([], [3, 2], [0, 7], [[0, 1]]):
        with pytest.raises(ValueError, match="training_items"):
            NextItemCollator(num_items=7, training_items=items)


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic_ml_cold")
    make_synthetic_movielens(folder, num_users=60, num_items=40, num_genres=4, max_length=12, seed=1,
                             new_item_fraction=0.25, new_item_rate=0.8)  # fmt: skip
    return load_movielens(folder, min_item_interactions=1, cache_dir=str(folder / "cache"))


def test_the_task_trains_on_the_train_split_items(movielens):
    cold = [index for index, flag in enumerate(movielens.items["cold_start"]) if flag]
    assert cold, "the fixture needs cold-start items"
    head = SASRecHead(item_dim=8, max_length=12)
    train = make_collator(movielens, head, "train")
    assert set(train.training_items.tolist()) == set(range(movielens.num_items)) - set(cold)
    # Evaluation ranks every item, and cold-start targets also among the cold-start items.
    batch = make_collator(movielens, head, "eval")([{"items": [0, 1, 2]}])
    assert batch["catalog_ref"].tolist() == list(range(movielens.num_items)) and batch["cold_ref"].tolist() == cold


@pytest.mark.parametrize(
    ("loss_type", "sharing"),
    [("cce", "position"), ("cce_sampled", "position"), ("cce_sampled", "sequence"), ("cce_sampled", "batch")],
)
def test_single_step_gram_equals_e2e_with_a_training_catalog(movielens, tokenizer, tiny_bert_config, tmp_path,
                                                            loss_type, sharing):  # fmt: skip
    catalog = movielens.catalog(tokenizer, max_length=12)
    torch.manual_seed(0)
    head_config = {"max_length": 12, "dropout": 0.0, "loss_type": loss_type, "num_negatives": 4,
                   "negative_sharing": sharing}  # fmt: skip
    config = GramConfig(encoder=tiny_bert_config, head_type="next_item", head_config=head_config)
    base = GramModel(config)
    cold = torch.tensor([bool(flag) for flag in movielens.items["cold_start"]])
    results = {}
    for mode, interval in (("e2e", "1"), ("gram", "1"), ("gram", "2")):
        model = copy.deepcopy(base)
        args = GramTrainingArguments(
            output_dir=str(tmp_path / mode), per_device_train_batch_size=8, learning_rate=1e-2,
            encoder_learning_rate=1e-2, max_steps=3, optim="sgd", save_strategy="no", report_to="none",
            disable_tqdm=True, seed=0, gram_mode=mode, gram_interval=interval, use_cpu=True,
        )  # fmt: skip
        trainer = GramTrainer(model=model, args=args, item_catalog=catalog, train_dataset=movielens["train"],
                              data_collator=make_collator(movielens, model.head, "train"))  # fmt: skip
        trainer.train()
        results[mode, interval] = (model, trainer)
    e2e, gram = results["e2e", "1"][0], results["gram", "1"][0]
    moved = max((p - q).abs().max().item() for p, q in zip(e2e.encoder.parameters(), base.encoder.parameters()))
    assert moved > 1e-4
    for (name, p), q in zip(e2e.named_parameters(), gram.parameters()):
        torch.testing.assert_close(p, q, atol=2e-6, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
    # GRAM never touched a cold-start item: none of them was scored, so none was ever encoded into the item table.
    trainer = results["gram", "2"][1]
    if loss_type == "cce":
        assert trainer.gram_counters["unique_items"] == 3 * int((~cold).sum())
    assert bool((trainer.item_table.vectors[cold] == 0).all())
    assert bool((trainer.item_table.vectors[~cold].abs().sum(-1) > 0).any())
