"""GramTrainer: the invariants of docs/design.md section 4 (1, 2, 3, 4, 6) on a tiny random BERT."""

from __future__ import annotations

import copy

import datasets
import pytest
import torch
from transformers import TrainerCallback

from gram_hf import GramConfig, GramModel, GramTrainer, GramTrainingArguments, ItemCatalog, expand_occurrences
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, make_synthetic_knowledge_tracing

NUM_ITEMS = 24
BATCH_SIZE = 6


@pytest.fixture(scope="module")
def kt_data():
    return make_synthetic_knowledge_tracing(num_users=30, num_items=NUM_ITEMS, min_length=4, max_length=12, seed=3)


@pytest.fixture(scope="module")
def catalog(kt_data, tokenizer):
    return ItemCatalog(kt_data.item_ids, kt_data.texts, tokenizer, max_length=12)


@pytest.fixture
def base_model(tiny_bert_config):
    torch.manual_seed(0)
    return GramModel(GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing", pooling="attention"))


def make_trainer(
    model,
    catalog,
    data,
    tmp_path,
    trainer_cls=GramTrainer,
    callbacks=None,
    eval_dataset=None,
    compute_metrics=None,
    **overrides,
):
    settings = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": BATCH_SIZE,
        "max_steps": 4,
        "learning_rate": 0.05,
        "optim": "sgd",
        "lr_scheduler_type": "constant",
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "train_sampling_strategy": "sequential",
        "seed": 0,
        **overrides,
    }
    return trainer_cls(
        model=model,
        args=GramTrainingArguments(**settings),
        item_catalog=catalog,
        data_collator=KnowledgeTracingCollator(),
        train_dataset=data.train,
        eval_dataset=eval_dataset,
        compute_metrics=compute_metrics,
        callbacks=callbacks,
    )


def train(base_model, catalog, data, tmp_path, **overrides):
    model = copy.deepcopy(base_model)
    trainer = make_trainer(model, catalog, data, tmp_path, **overrides)
    trainer.train()
    return model, trainer


def assert_same_parameters(model_a, model_b, atol):
    params_b = dict(model_b.named_parameters())
    for name, param in model_a.named_parameters():
        torch.testing.assert_close(param, params_b[name], atol=atol, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


def max_change(model_a, model_b, prefix=""):
    params_b = dict(model_b.named_parameters())
    return max((p - params_b[n]).abs().max().item() for n, p in model_a.named_parameters() if n.startswith(prefix))


def sequential_batches(data, num_steps):
    """The batches a sequential sampler yields for `num_steps` steps (cycling epochs), collated."""
    collator = KnowledgeTracingCollator()
    rows = data.train.to_list()
    batches = [collator(rows[i : i + BATCH_SIZE]) for i in range(0, len(rows), BATCH_SIZE)]
    return [batches[step % len(batches)] for step in range(num_steps)]


# ------------------------------------------------------------------------------------------ invariant 1: equivalence


@pytest.mark.parametrize("optim", ["sgd", "adamw_torch"])
@pytest.mark.parametrize("recompute", [False, True])
def test_single_step_gram_equals_e2e(base_model, catalog, kt_data, tmp_path, optim, recompute):
    schedule = {"optim": optim, "lr_scheduler_type": "linear", "warmup_steps": 1, "weight_decay": 0.01}
    if optim == "adamw_torch":
        schedule["learning_rate"] = 1e-3
    e2e, _ = train(base_model, catalog, kt_data, tmp_path, gram_mode="e2e", max_steps=5, **schedule)
    gram, _ = train(
        base_model,
        catalog,
        kt_data,
        tmp_path,
        gram_mode="gram",
        gram_interval="1",
        gram_recompute=recompute,
        encoder_batch_size=5,  # recomputation in several encoder mini-batches
        max_steps=5,
        **schedule,
    )
    assert max_change(e2e, base_model, "encoder.") > 1e-4, "the encoder did not train: the comparison means nothing"
    # Recomputation fits CE(c) to h - g where h came from a separate no-grad pass: fp32 noise of ~1e-7 in CE(c) - h
    # enters the gradient, and Adam's normalisation turns it into ~0.1% of its per-step move (lr = 1e-3). Any real
    # mismatch (eta, schedule, weight decay, a missing occurrence) moves parameters by ~lr, far above both bounds.
    atol = 2e-5 if (recompute and optim == "adamw_torch") else 2e-6
    assert_same_parameters(e2e, gram, atol=atol)


def test_single_step_equivalence_with_gradient_accumulation(base_model, catalog, kt_data, tmp_path):
    common = {"max_steps": 3, "gradient_accumulation_steps": 2, "per_device_train_batch_size": 3}
    e2e, _ = train(base_model, catalog, kt_data, tmp_path, gram_mode="e2e", **common)
    gram, _ = train(base_model, catalog, kt_data, tmp_path, gram_mode="gram", gram_recompute=True, **common)
    assert max_change(e2e, base_model, "encoder.") > 1e-4
    assert_same_parameters(e2e, gram, atol=2e-6)


def test_item_learning_rate_scales_the_encoder_step(base_model, catalog, kt_data, tmp_path):
    # One SGD step: the encoder moves by lr * eta * g, so eta = 2 doubles the encoder's displacement. (A large
    # encoder lr keeps the displacement far above the rounding of the parameters; no clipping, which is not linear.)
    settings = {"gram_mode": "gram", "max_steps": 1, "encoder_learning_rate": 5.0, "max_grad_norm": 0.0}
    one, _ = train(base_model, catalog, kt_data, tmp_path, item_learning_rate=1.0, **settings)
    two, _ = train(base_model, catalog, kt_data, tmp_path, item_learning_rate=2.0, **settings)
    for name, param in base_model.encoder.named_parameters():
        step_one = dict(one.encoder.named_parameters())[name] - param
        step_two = dict(two.encoder.named_parameters())[name] - param
        torch.testing.assert_close(step_two, 2 * step_one, atol=1e-6, rtol=1e-4)


# ----------------------------------------------------------------------------------------- invariant 2: accounting


class RecordingTrainer(GramTrainer):
    """Records every encoder call: (window number, catalog indices, with_grad)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.encode_calls = []
        self.windows_done = 0

    def _encode(self, gram_model, index, with_grad, **kwargs):
        self.encode_calls.append((self.windows_done, index.tolist(), with_grad))
        return super()._encode(gram_model, index, with_grad, **kwargs)

    def _fit_encoder_to_item_table(self, gram_model, step):
        super()._fit_encoder_to_item_table(gram_model, step)
        self.windows_done += 1


def test_e2e_encodes_exactly_the_occurrences(base_model, catalog, kt_data, tmp_path):
    _, trainer = train(base_model, catalog, kt_data, tmp_path, gram_mode="e2e", max_steps=7)
    batches = sequential_batches(kt_data, 7)
    occurrences = sum(int((batch["item_ref"] >= 0).sum()) for batch in batches)
    assert trainer.gram_counters["occurrences"] == occurrences
    assert trainer.gram_counters["encoder_items_backward"] == occurrences
    assert trainer.gram_counters["encoder_items_forward"] == 0
    expected_tokens = sum(
        catalog.num_tokens(batch["item_index"][batch["item_ref"][batch["item_ref"] >= 0]]) for batch in batches
    )
    assert trainer.gram_counters["encoder_tokens_backward"] == expected_tokens


@pytest.mark.parametrize("recompute", [False, True])
def test_single_step_gram_encodes_exactly_the_unique_items(base_model, catalog, kt_data, tmp_path, recompute):
    _, trainer = train(base_model, catalog, kt_data, tmp_path, gram_mode="gram", gram_recompute=recompute, max_steps=7)
    batches = sequential_batches(kt_data, 7)
    unique = sum(batch["item_index"].numel() for batch in batches)
    occurrences = sum(int((batch["item_ref"] >= 0).sum()) for batch in batches)
    counters = trainer.gram_counters
    assert counters["unique_items"] == unique
    assert counters["encoder_items_backward"] == unique
    assert counters["encoder_items_forward"] == (unique if recompute else 0)
    assert occurrences > unique  # the batches repeat items, so the saving is real
    assert trainer.gram_metrics()["gram/r_batch"] == pytest.approx(occurrences / unique)


@pytest.mark.parametrize(("interval", "encoder_epochs"), [("3", 1), ("3", 2), ("0.5epoch", 1)])
def test_multi_step_gram_encodes_each_item_at_most_once_per_window(
    base_model, catalog, kt_data, tmp_path, interval, encoder_epochs
):
    _, trainer = train(
        base_model,
        catalog,
        kt_data,
        tmp_path,
        trainer_cls=RecordingTrainer,
        gram_mode="gram",
        gram_interval=interval,
        encoder_epochs=encoder_epochs,
        encoder_batch_size=4,
        max_steps=8,
    )
    windows = trainer.windows_done
    assert windows >= 3
    batches = sequential_batches(kt_data, 8)
    touched_total = 0
    for window in range(windows):
        no_grad = [i for w, index, grad in trainer.encode_calls if w == window and not grad for i in index]
        with_grad = [i for w, index, grad in trainer.encode_calls if w == window and grad for i in index]
        assert len(no_grad) == len(set(no_grad)), f"window {window} re-encoded an item without grad"
        # every table entry is stale at a window's start, so the items encoded for the CF steps are exactly the
        # touched ones, and each pass of the fit runs each of them forward+backward exactly once
        assert sorted(with_grad) == sorted(no_grad * encoder_epochs)
        touched_total += len(set(no_grad))
    assert trainer.gram_counters["encoder_items_forward"] == touched_total
    assert trainer.gram_counters["encoder_items_backward"] == touched_total * encoder_epochs
    assert trainer.gram_counters["unique_items"] == sum(batch["item_index"].numel() for batch in batches)


# ---------------------------------------------------------------------------- invariant 3: when parameters change


class ParameterSnapshots(TrainerCallback):
    def __init__(self, model):
        self.model = model
        self.snapshots = [copy.deepcopy(model.state_dict())]

    def on_step_end(self, args, state, control, **kwargs):
        self.snapshots.append(copy.deepcopy(self.model.state_dict()))


def changed(before, after, prefix):
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


def test_multi_step_encoder_changes_only_at_window_ends(base_model, catalog, kt_data, tmp_path):
    model = copy.deepcopy(base_model)
    snapshots = ParameterSnapshots(model)
    trainer = make_trainer(
        model, catalog, kt_data, tmp_path, callbacks=[snapshots], gram_mode="gram", gram_interval="3", max_steps=7
    )
    trainer.train()
    states = snapshots.snapshots
    assert len(states) == 8
    encoder_changed = [changed(states[s - 1], states[s], "encoder.") for s in range(1, 8)]
    head_changed = [changed(states[s - 1], states[s], "head.") for s in range(1, 8)]
    # windows end at steps 3 and 6, and at the last step (7)
    assert encoder_changed == [False, False, True, False, False, True, True]
    assert all(head_changed)


def test_epoch_fraction_windows(base_model, catalog, kt_data, tmp_path):
    trainer = make_trainer(copy.deepcopy(base_model), catalog, kt_data, tmp_path, gram_interval="0.5epoch")
    trainer.get_train_dataloader()
    steps_per_epoch = trainer._update_steps_per_epoch
    assert steps_per_epoch == 4  # 24 training users / batch 6
    ends = [s for s in range(1, 13) if trainer._is_window_end(s, max_steps=100)]
    assert ends == [2, 4, 6, 8, 10, 12]
    trainer.args.gram_interval = "1epoch"
    trainer.args.__post_init__()
    assert [s for s in range(1, 13) if trainer._is_window_end(s, max_steps=100)] == [4, 8, 12]
    assert trainer._is_window_end(5, max_steps=5)  # the last step always ends a window


# ------------------------------------------------------------------------ invariant 6: nofinetune and nocontent


def test_nofinetune_never_changes_the_encoder(base_model, catalog, kt_data, tmp_path):
    model, trainer = train(base_model, catalog, kt_data, tmp_path, gram_mode="nofinetune", max_steps=6)
    assert max_change(model, base_model, "encoder.") == 0.0
    assert max_change(model, base_model, "head.") > 0.0
    assert trainer.encoder_optimizer is None
    # item vectors are computed once: every item encoded at most one time, never with grad
    assert trainer.gram_counters["encoder_items_backward"] == 0
    assert trainer.gram_counters["encoder_items_forward"] <= NUM_ITEMS


def test_nocontent_gives_cold_start_items_no_signal(tokenizer, kt_data, tmp_path):
    seen = {i for row in kt_data.train["items"] for i in row}
    cold = sorted(set(range(NUM_ITEMS)) - seen)
    # three more items that no learner ever answers: cold by construction
    torch.manual_seed(0)
    model = GramModel.for_item_ids(NUM_ITEMS + 3, 16, head_type="knowledge_tracing")
    initial = model.item_id_table.weight.detach().clone()
    big_catalog = ItemCatalog(
        kt_data.item_ids + ["cold0", "cold1", "cold2"], kt_data.texts + ["a", "b", "c"], tokenizer
    )
    trainer = make_trainer(model, big_catalog, kt_data, tmp_path, gram_mode="nocontent", max_steps=6)
    trainer.train()
    weights = model.item_id_table.weight.detach()
    cold_rows = cold + [NUM_ITEMS, NUM_ITEMS + 1, NUM_ITEMS + 2]
    assert torch.equal(weights[cold_rows], initial[cold_rows])
    warm_rows = sorted(seen)
    assert not torch.equal(weights[warm_rows], initial[warm_rows])
    assert trainer.gram_counters["encoder_items_backward"] == trainer.gram_counters["encoder_items_forward"] == 0


# --------------------------------------------------------------------------------------- invariant 4: checkpoints


@pytest.mark.parametrize("interval", ["1", "3"])
def test_resume_inside_a_window_equals_training_straight(base_model, catalog, kt_data, tmp_path, interval):
    settings = {
        "gram_mode": "gram",
        "gram_interval": interval,
        "gram_recompute": True,
        "max_steps": 6,
        "optim": "adamw_torch",
        "learning_rate": 1e-3,
        "lr_scheduler_type": "linear",
        "save_strategy": "steps",
        "save_steps": 2,
        "train_sampling_strategy": "random",
    }
    straight, straight_trainer = train(base_model, catalog, kt_data, tmp_path / "a", **settings)
    resumed = copy.deepcopy(base_model)
    trainer = make_trainer(resumed, catalog, kt_data, tmp_path / "b", **settings)
    # step 4 lies strictly inside the window [4, 6] for interval 3
    trainer.train(resume_from_checkpoint=str(tmp_path / "a" / "out" / "checkpoint-4"))
    assert_same_parameters(straight, resumed, atol=1e-6)
    torch.testing.assert_close(trainer.item_table.vectors, straight_trainer.item_table.vectors, atol=1e-6, rtol=0)
    assert trainer.gram_counters == straight_trainer.gram_counters


def test_resume_requires_the_gram_state(base_model, catalog, kt_data, tmp_path):
    settings = {"gram_mode": "gram", "max_steps": 2, "save_strategy": "steps", "save_steps": 2}
    train(base_model, catalog, kt_data, tmp_path, **settings)
    checkpoint = tmp_path / "out" / "checkpoint-2"
    (checkpoint / "gram_state.pt").unlink()
    trainer = make_trainer(copy.deepcopy(base_model), catalog, kt_data, tmp_path / "c", **settings)
    with pytest.raises(FileNotFoundError, match="gram_state.pt"):
        trainer.train(resume_from_checkpoint=str(checkpoint))


# --------------------------------------------------------------------------------------------------- the rest


def test_expand_occurrences_gives_one_row_per_reference():
    item_index = torch.tensor([5, 7, 9])
    refs = {"a": torch.tensor([[0, 2, -1], [1, 0, 0]]), "b": torch.tensor([2, -1])}
    occurrences, new_refs = expand_occurrences(item_index, refs)
    assert occurrences.tolist() == [5, 9, 7, 5, 5, 9]
    assert new_refs["a"].tolist() == [[0, 1, -1], [2, 3, 4]]
    assert new_refs["b"].tolist() == [5, -1]
    for key, ref in refs.items():
        mask = ref >= 0
        assert torch.equal(occurrences[new_refs[key][mask]], item_index[ref[mask]])


def test_counters_are_logged(base_model, catalog, kt_data, tmp_path):
    _, trainer = train(base_model, catalog, kt_data, tmp_path, gram_mode="gram", max_steps=2)
    train_logs = [log for log in trainer.state.log_history if "loss" in log]
    assert len(train_logs) == 2
    for key in ("gram/occurrences", "gram/unique_items", "gram/encoder_items_backward", "gram/r_batch"):
        assert key in train_logs[-1]
    assert train_logs[-1]["gram/occurrences"] == trainer.gram_counters["occurrences"]
    assert train_logs[0]["gram/occurrences"] < train_logs[1]["gram/occurrences"]


def test_evaluate_reports_loss(base_model, catalog, kt_data, tmp_path):
    model = copy.deepcopy(base_model)
    trainer = make_trainer(model, catalog, kt_data, tmp_path, gram_mode="gram", max_steps=1)
    metrics = trainer.evaluate(kt_data.test)
    assert "eval_loss" in metrics and 0.0 < metrics["eval_loss"] < 5.0
    prediction = trainer.predict(kt_data.test)
    scores, scored_items = prediction.predictions
    assert scores.shape == scored_items.shape == prediction.label_ids.shape
    padding = prediction.label_ids == -100
    assert ((scored_items == -100) == padding).all()
    assert scored_items[~padding].min() >= 0 and scored_items[~padding].max() < NUM_ITEMS


def test_trainer_rejects_inconsistent_setups(base_model, catalog, kt_data, tmp_path):
    with pytest.raises(ValueError, match="item-ID table"):
        make_trainer(copy.deepcopy(base_model), catalog, kt_data, tmp_path, gram_mode="nocontent")
    id_model = GramModel.for_item_ids(NUM_ITEMS, 8, head_type="knowledge_tracing")
    with pytest.raises(ValueError, match="content encoder"):
        make_trainer(id_model, catalog, kt_data, tmp_path, gram_mode="gram")
    with pytest.raises(ValueError, match="item_catalog"):
        make_trainer(copy.deepcopy(base_model), None, kt_data, tmp_path, gram_mode="e2e")
    small_id_model = GramModel.for_item_ids(NUM_ITEMS - 1, 8, head_type="knowledge_tracing")
    with pytest.raises(ValueError, match="rows"):
        make_trainer(small_id_model, catalog, kt_data, tmp_path, gram_mode="nocontent")


def test_evaluation_encodes_each_needed_item_exactly_once(tiny_bert_config, tokenizer, tmp_path, monkeypatch):
    num_items = 10_000
    catalog = ItemCatalog([f"i{i}" for i in range(num_items)], [f"item {i}" for i in range(num_items)], tokenizer)
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(0)).tolist()
    # every item twice, in two different learners (and so in different evaluation batches)
    rows = [{"items": list(range(s, s + 20)), "responses": [1, 0] * 10} for s in range(0, num_items, 20)]
    rows += [{"items": order[s : s + 20], "responses": [0, 1] * 10} for s in range(0, num_items, 20)]
    dataset = datasets.Dataset.from_list(rows)
    model = GramModel(GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing"))
    encoded = []
    original = model.encode_items
    monkeypatch.setattr(
        model, "encode_items", lambda **tokens: encoded.append(len(tokens["input_ids"])) or original(**tokens)
    )
    trainer = GramTrainer(
        model=model,
        args=GramTrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=64, disable_tqdm=True),
        item_catalog=catalog,
        data_collator=KnowledgeTracingCollator(),
    )
    metrics = trainer.evaluate(dataset)
    assert sum(encoded) == num_items
    assert metrics["eval_encoder_items"] == num_items
    assert 0.0 < metrics["eval_loss"] < 5.0


def test_evaluation_encodes_again_only_what_the_encoder_changed(base_model, catalog, kt_data, tmp_path):
    trainer = make_trainer(copy.deepcopy(base_model), catalog, kt_data, tmp_path, gram_mode="e2e", max_steps=1)
    items = {split: {i for row in getattr(kt_data, split)["items"] for i in row} for split in ("train", "test")}
    first = trainer.evaluate(kt_data.test)
    assert first["eval_encoder_items"] == len(items["test"])
    # Same weights: nothing to encode, and the kept vectors give what encoding afresh gave.
    again = trainer.evaluate(kt_data.test)
    assert again["eval_encoder_items"] == 0
    assert again["eval_loss"] == first["eval_loss"]
    # Another split under the same weights encodes only the items the first one did not need.
    assert trainer.evaluate(kt_data.train)["eval_encoder_items"] == len(items["train"] - items["test"])
    # Weights changed in place (as an optimizer or load_state_dict changes them): everything is encoded again.
    with torch.no_grad():
        next(trainer.model.encoder.parameters()).mul_(3.0)
    changed = trainer.evaluate(kt_data.test)
    assert changed["eval_encoder_items"] == len(items["test"])
    assert changed["eval_loss"] != first["eval_loss"]
    trainer.train()
    assert trainer.evaluate(kt_data.test)["eval_encoder_items"] == len(items["test"])
    # Weights replaced by other tensors (never changed in place, so at version 0 like the originals).
    trainer.model.encoder.load_state_dict(copy.deepcopy(base_model).encoder.state_dict(), assign=True)
    replaced = trainer.evaluate(kt_data.test)
    assert replaced["eval_encoder_items"] == len(items["test"])
    unkept = make_trainer(trainer.model, catalog, kt_data, tmp_path).evaluate(kt_data.test)
    assert replaced["eval_loss"] == unkept["eval_loss"]


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def test_stopping_inside_a_window_still_fits_the_encoder(base_model, catalog, kt_data, tmp_path):
    model = copy.deepcopy(base_model)
    trainer = make_trainer(
        model, catalog, kt_data, tmp_path, callbacks=[StopAt(3)], gram_mode="gram", gram_interval="4", max_steps=8
    )
    trainer.train()
    assert trainer.state.global_step == 3
    assert max_change(model, base_model, "encoder.") > 0.0
    assert not trainer.item_table.touched.any() and not trainer.item_table.fresh.any()


def test_parameters_the_user_froze_stay_frozen(base_model, catalog, kt_data, tmp_path):
    model = copy.deepcopy(base_model)
    model.encoder.backbone.embeddings.requires_grad_(False)
    make_trainer(model, catalog, kt_data, tmp_path, gram_mode="gram", max_steps=2).train()
    assert max_change(model, base_model, "encoder.backbone.embeddings.") == 0.0
    assert max_change(model, base_model, "encoder.backbone.encoder.") > 0.0


def test_windows_of_an_epoch_fraction_with_odd_epochs(base_model, catalog, kt_data, tmp_path):
    trainer = make_trainer(
        copy.deepcopy(base_model), catalog, kt_data, tmp_path, gram_interval="0.5epoch", per_device_train_batch_size=5
    )
    trainer.get_train_dataloader()
    assert trainer._update_steps_per_epoch == 5  # 24 learners / 5
    assert [s for s in range(1, 11) if trainer._is_window_end(s, max_steps=100)] == [2, 5, 7, 10]


def test_iterable_training_data(base_model, catalog, kt_data, tmp_path):
    stream = kt_data.train.to_iterable_dataset()
    model = copy.deepcopy(base_model)
    trainer = make_trainer(model, catalog, kt_data, tmp_path, gram_mode="gram", gram_interval="2", max_steps=3)
    trainer.train_dataset = stream
    trainer.train()
    assert trainer.state.global_step == 3 and max_change(model, base_model, "encoder.") > 0.0
    trainer = make_trainer(copy.deepcopy(base_model), catalog, kt_data, tmp_path, gram_interval="1epoch", max_steps=3)
    trainer.train_dataset = stream
    with pytest.raises(ValueError, match="no length"):
        trainer.train()


@pytest.mark.bf16
@pytest.mark.parametrize("mode", ["e2e", "gram"])
def test_bf16_autocast_reaches_the_encoder(base_model, catalog, kt_data, tmp_path, mode):
    model = copy.deepcopy(base_model)
    seen = []
    # a Linear (autocast keeps LayerNorm outputs in fp32)
    model.encoder.backbone.encoder.layer[0].intermediate.dense.register_forward_hook(
        lambda m, i, o: seen.append(o.dtype)
    )
    trainer = make_trainer(model, catalog, kt_data, tmp_path, gram_mode=mode, bf16=True, use_cpu=True, max_steps=2)
    trainer.train()
    assert seen and all(dtype == torch.bfloat16 for dtype in seen)
    if trainer.item_table is not None:
        assert trainer.item_table.vectors.dtype == torch.float32


@pytest.mark.parametrize("mode", ["e2e", "gram", "nofinetune", "nocontent"])
def test_early_stopping_on_validation_auc_in_every_mode(base_model, catalog, kt_data, tmp_path, mode):
    from transformers import EarlyStoppingCallback

    from gram_hf.metrics import KnowledgeTracingMetrics

    if mode == "nocontent":
        torch.manual_seed(0)
        model = GramModel.for_item_ids(NUM_ITEMS, 8, head_type="knowledge_tracing")
    else:
        model = copy.deepcopy(base_model)
    trainer = make_trainer(
        model, catalog, kt_data, tmp_path, gram_mode=mode, gram_interval="1epoch", max_steps=-1, num_train_epochs=30,
        eval_strategy="epoch", save_strategy="epoch", metric_for_best_model="auc", load_best_model_at_end=True,
        learning_rate=0.0, callbacks=[EarlyStoppingCallback(early_stopping_patience=2)], eval_dataset=kt_data.test,
        compute_metrics=KnowledgeTracingMetrics(),
    )  # fmt: skip
    trainer.train()
    evaluations = [log for log in trainer.state.log_history if "eval_auc" in log]
    # a learning rate of 0 never improves the AUC: stopped after 1 + patience evaluations, not 30 epochs
    assert len(evaluations) == 3
    assert trainer.state.best_metric == evaluations[0]["eval_auc"]
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{trainer.state.global_step // 3}")


# ----------------------------------------------------------------------- hybrid item vectors (item_encoder content+id)


@pytest.fixture
def hybrid_model(tiny_bert_config):
    torch.manual_seed(0)
    config = GramConfig(
        encoder=tiny_bert_config,
        item_encoder="content+id",
        num_items=NUM_ITEMS,
        head_type="knowledge_tracing",
        pooling="attention",
    )
    return GramModel(config)


@pytest.mark.parametrize(("optim", "id_dropout"), [("sgd", 0.0), ("adamw_torch", 0.0), ("adamw_torch", 0.4)])
def test_hybrid_single_step_gram_equals_e2e(hybrid_model, catalog, kt_data, tmp_path, optim, id_dropout):
    # With ID dropout each forward draws one decision per catalog item: E2E's occurrences and GRAM's unique rows agree.
    hybrid_model.config.item_id_dropout = id_dropout
    schedule = {"optim": optim, "lr_scheduler_type": "linear", "warmup_steps": 1, "weight_decay": 0.01}
    if optim == "adamw_torch":
        schedule["learning_rate"] = 1e-3
    e2e, _ = train(hybrid_model, catalog, kt_data, tmp_path, gram_mode="e2e", max_steps=5, **schedule)
    gram, _ = train(
        hybrid_model, catalog, kt_data, tmp_path, gram_mode="gram", gram_interval="1", max_steps=5, **schedule
    )
    assert max_change(e2e, hybrid_model, "encoder.") > 1e-4, "the encoder did not train"
    assert max_change(e2e, hybrid_model, "item_id_table.") > 2e-5, "the ID part did not train"
    assert_same_parameters(e2e, gram, atol=2e-6)


def test_hybrid_window_pseudo_targets_act_on_the_content_part_only(
    hybrid_model, base_model, catalog, kt_data, tmp_path
):
    """
    One GRAM window step: the ItemTable (content vectors) moves by -eta * dL/dh, where dL/dh is the gradient at the
    hybrid vector h = content + id; the ID part gets the same dL/dh through the CF optimizer (SGD: -lr * dL/dh).
    """
    eta, lr = 0.5, 0.05
    model = copy.deepcopy(hybrid_model)
    with torch.no_grad():  # a non-zero ID part, so that h differs from the content vector
        model.item_id_table.weight.normal_(0, 0.3)
    start = copy.deepcopy(model)

    class AfterFirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:  # inside the window: the table holds the pseudo-targets
                fresh = trainer.item_table.fresh.nonzero().flatten()
                self.table = trainer.item_table.lookup(fresh), fresh
                self.id_rows = model.item_id_table.weight.detach().clone()

    after = AfterFirstStep()
    trainer = make_trainer(
        model,
        catalog,
        kt_data,
        tmp_path,
        callbacks=[after],
        gram_mode="gram",
        gram_interval="5",
        max_steps=2,
        item_learning_rate=eta,
        learning_rate=lr,
        max_grad_norm=0.0,
    )
    trainer.train()
    # Expected: the hybrid's dL/dh on the first batch, with the starting encoder's content vectors.
    batch = sequential_batches(kt_data, 1)[0]
    item_index = batch.pop("item_index")
    tokens = catalog.batch(item_index)
    content = start.encode_items(tokens["input_ids"], tokens["attention_mask"]).detach().requires_grad_(True)
    loss = start.head(start.item_vectors(item_index, content), **batch).loss
    loss.backward()
    grad = content.grad
    table_vectors, table_index = after.table
    assert table_index.tolist() == item_index.tolist()  # exactly the first batch's items were encoded
    torch.testing.assert_close(table_vectors, content.detach() - eta * grad, atol=1e-6, rtol=0)
    id_step = after.id_rows[item_index] - start.item_id_table.weight[item_index]
    torch.testing.assert_close(id_step, -lr * grad, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["e2e", "gram", "nofinetune"])
def test_hybrid_cold_start_items_get_no_id_signal(tiny_bert_config, tokenizer, kt_data, tmp_path, mode):
    seen = {i for row in kt_data.train["items"] for i in row}
    never_seen = sorted(set(range(NUM_ITEMS)) - seen) + [NUM_ITEMS, NUM_ITEMS + 1]
    big_catalog = ItemCatalog(kt_data.item_ids + ["cold0", "cold1"], kt_data.texts + ["a b", "c d"], tokenizer)
    marked = sorted(seen)[:3]  # warm in the data, but declared cold: their ID rows must stay off
    torch.manual_seed(0)
    model = GramModel(
        GramConfig(
            encoder=tiny_bert_config, item_encoder="content+id", num_items=NUM_ITEMS + 2, head_type="knowledge_tracing"
        )
    )
    model.set_cold_start_items(marked)
    trainer = make_trainer(
        model,
        big_catalog,
        kt_data,
        tmp_path,
        gram_mode=mode,
        gram_interval="2",
        max_steps=6,
        optim="adamw_torch",
        learning_rate=1e-2,
        weight_decay=0.1,
    )
    trainer.train()
    weights = model.item_id_table.weight.detach()
    assert torch.count_nonzero(weights[never_seen + marked]) == 0, "a cold-start item's ID row trained"
    warm = sorted(seen - set(marked))
    assert torch.count_nonzero(weights[warm]) > 0
    # A cold-start item's vector is its content vector, also when its row is not zero.
    with torch.no_grad():
        model.item_id_table.weight.fill_(1.0)
        index = torch.tensor(marked + warm[:2])
        tokens = big_catalog.batch(index)
        content = model.encode_items(tokens["input_ids"], tokens["attention_mask"])
        hybrid = model.item_vectors(index, content)
    torch.testing.assert_close(hybrid[:3], content[:3])
    torch.testing.assert_close(hybrid[3:], content[3:] + 1.0)


def test_hybrid_encoder_work_equals_the_content_model(hybrid_model, base_model, catalog, kt_data, tmp_path):
    """The ID part costs no encoder work: the counters of every mode are those of the content-only model."""
    for settings in (
        {"gram_mode": "e2e"},
        {"gram_mode": "gram", "gram_interval": "1"},
        {"gram_mode": "gram", "gram_interval": "3"},
    ):
        _, hybrid = train(hybrid_model, catalog, kt_data, tmp_path, max_steps=5, **settings)
        _, content = train(base_model, catalog, kt_data, tmp_path, max_steps=5, **settings)
        assert hybrid.gram_counters == content.gram_counters, settings


def test_hybrid_rejects_nocontent(hybrid_model, catalog, kt_data, tmp_path):
    with pytest.raises(ValueError, match="nocontent"):
        make_trainer(hybrid_model, catalog, kt_data, tmp_path, gram_mode="nocontent")


# ----------------------------------------------------------------------------- the adaptive interval (gram "auto")

# On this data (SGD, lr 0.05) the drift of a window grows from ~2e-4 after its first step to ~1.4e-3 after eight.
AUTO_DRIFT = 6e-4


class RecordedWindows(GramTrainer):
    """Records the steps whose window ended, and the drift each decision saw."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decisions = []

    def _is_window_end(self, step, max_steps=None):
        ends = super()._is_window_end(step, max_steps)
        if self.args.gram_interval_is_auto:
            self.decisions.append((step, self.item_table.drift(), ends))
        return ends


class FixedWindowEnds(GramTrainer):
    """A fixed schedule given as the list of steps that end a window."""

    window_ends: tuple[int, ...] = ()

    def _is_window_end(self, step, max_steps=None):
        return step in self.window_ends or step >= (max_steps or self.state.max_steps)


def test_auto_interval_that_always_ends_equals_interval_1_and_e2e(base_model, catalog, kt_data, tmp_path):
    e2e, _ = train(base_model, catalog, kt_data, tmp_path, gram_mode="e2e", max_steps=5, lr_scheduler_type="linear")
    auto, trainer = train(
        base_model, catalog, kt_data, tmp_path, gram_mode="gram", gram_interval="auto", gram_auto_drift=0.0,
        max_steps=5, lr_scheduler_type="linear", encoder_batch_size=5,
    )  # fmt: skip
    assert trainer.gram_window_log.windows == 5 and trainer.gram_window_log.mean_window_steps == 1.0
    assert max_change(e2e, base_model, "encoder.") > 1e-4
    # The encoder's scheduler, counted in CF steps under "auto", equals the per-window one of interval 1.
    assert_same_parameters(e2e, auto, atol=2e-6)


def test_auto_interval_that_never_ends_is_one_window_over_the_run(base_model, catalog, kt_data, tmp_path):
    never = {"gram_interval": "auto", "gram_auto_drift": float("inf"), "gram_auto_max_interval": "7"}
    auto, auto_trainer = train(base_model, catalog, kt_data, tmp_path, gram_mode="gram", max_steps=7, **never)
    fixed, fixed_trainer = train(base_model, catalog, kt_data, tmp_path, gram_mode="gram", gram_interval="7",
                                 max_steps=7)  # fmt: skip
    assert auto_trainer.gram_window_log.windows == 1 and auto_trainer.gram_window_log.window_steps == 7
    assert max_change(auto, base_model, "encoder.") > 0.0
    assert_same_parameters(fixed, auto, atol=0.0)
    assert auto_trainer.gram_counters == fixed_trainer.gram_counters


def test_auto_windows_end_where_the_drift_reaches_the_threshold(base_model, catalog, kt_data, tmp_path):
    model = copy.deepcopy(base_model)
    trainer = make_trainer(model, catalog, kt_data, tmp_path, trainer_cls=RecordedWindows, gram_mode="gram",
                           gram_interval="auto", gram_auto_drift=AUTO_DRIFT, gram_auto_max_interval="100",
                           max_steps=12)  # fmt: skip
    trainer.train()
    ends = [step for step, _, ended in trainer.decisions if ended]
    assert 2 <= len(ends) <= 10, trainer.decisions  # the threshold ends windows, but not every step
    for step, drift, ended in trainer.decisions:
        assert ended == (drift >= AUTO_DRIFT or step == 12), (step, drift)
    log = trainer.gram_window_log
    assert log.windows == len(ends) and log.window_steps == 12 and log.start_step == 12
    # The drift starts again from 0 in every window: the first decision after an end sees one step's drift.
    assert all(trainer.decisions[step][1] < AUTO_DRIFT for step in ends[:-1])


def test_auto_decisions_cost_no_encoder_work(base_model, catalog, kt_data, tmp_path):
    # The same windows given as a fixed list train the same model with the same counters: deciding encodes nothing.
    model = copy.deepcopy(base_model)
    auto = make_trainer(model, catalog, kt_data, tmp_path / "auto", trainer_cls=RecordedWindows, gram_mode="gram",
                        gram_interval="auto", gram_auto_drift=AUTO_DRIFT, gram_auto_max_interval="100",
                        max_steps=10)  # fmt: skip
    auto.train()
    ends = tuple(step for step, _, ended in auto.decisions if ended)
    assert len(ends) >= 2
    FixedWindowEnds.window_ends = ends
    fixed_model = copy.deepcopy(base_model)
    fixed = make_trainer(fixed_model, catalog, kt_data, tmp_path / "fixed", trainer_cls=FixedWindowEnds,
                         gram_mode="gram", gram_interval="100", max_steps=10)  # fmt: skip
    fixed.train()
    assert auto.gram_counters == fixed.gram_counters
    # The encoder's learning rate is constant here, so only the decisions could tell the two runs apart.
    assert_same_parameters(fixed_model, model, atol=0.0)


def test_auto_resume_inside_a_window_equals_training_straight(base_model, catalog, kt_data, tmp_path):
    settings = {
        "gram_mode": "gram",
        "gram_interval": "auto",
        "gram_auto_drift": AUTO_DRIFT,
        "gram_auto_max_interval": "100",
        "max_steps": 10,
        "optim": "adamw_torch",
        "learning_rate": 1e-3,
        "lr_scheduler_type": "linear",
        "save_strategy": "steps",
        "save_steps": 2,
        "train_sampling_strategy": "random",
    }
    straight = copy.deepcopy(base_model)
    straight_trainer = make_trainer(straight, catalog, kt_data, tmp_path / "a", trainer_cls=RecordedWindows,
                                    **settings)  # fmt: skip
    straight_trainer.train()
    ends = [step for step, _, ended in straight_trainer.decisions if ended]
    # A checkpoint strictly inside a window: its window is open, with drift accumulated.
    inside = next(s for s in range(2, 10, 2) if s not in ends and any(e > s for e in ends))
    resumed = copy.deepcopy(base_model)
    trainer = make_trainer(resumed, catalog, kt_data, tmp_path / "b", trainer_cls=RecordedWindows, **settings)
    trainer.train(resume_from_checkpoint=str(tmp_path / "a" / "out" / f"checkpoint-{inside}"))
    assert trainer.decisions == straight_trainer.decisions[inside:]
    assert trainer.gram_window_log == straight_trainer.gram_window_log
    assert_same_parameters(straight, resumed, atol=1e-6)
    assert trainer.gram_counters == straight_trainer.gram_counters


def test_auto_windows_are_logged(base_model, catalog, kt_data, tmp_path):
    _, trainer = train(base_model, catalog, kt_data, tmp_path, gram_mode="gram", gram_interval="auto",
                       gram_auto_drift=AUTO_DRIFT, gram_auto_max_interval="100", max_steps=8)  # fmt: skip
    last = [log for log in trainer.state.log_history if "loss" in log][-1]
    metrics = trainer.gram_metrics()
    assert last["gram/windows"] == metrics["gram/windows"] == trainer.gram_window_log.windows >= 2
    assert last["gram/window_steps"] == pytest.approx(8 / trainer.gram_window_log.windows)
    assert 0.0 < last["gram/drift"] == trainer.gram_window_log.last_drift
    _, fixed = train(
        base_model, catalog, kt_data, tmp_path / "fixed", gram_mode="gram", gram_interval="3", max_steps=7
    )
    assert fixed.gram_metrics()["gram/windows"] == 3 and "gram/drift" not in fixed.gram_metrics()


def test_auto_interval_ends_windows_at_epoch_ends_by_default(base_model, catalog, kt_data, tmp_path):
    never = {"gram_interval": "auto", "gram_auto_drift": float("inf")}
    trainer = make_trainer(copy.deepcopy(base_model), catalog, kt_data, tmp_path, trainer_cls=RecordedWindows,
                           gram_mode="gram", max_steps=10, **never)  # fmt: skip
    trainer.train()
    # 4 optimizer steps per epoch: the default gram_auto_max_interval "1epoch" ends windows at steps 4 and 8, and the
    # last step ends the third.
    assert [step for step, _, ended in trainer.decisions if ended] == [4, 8, 10]


def test_auto_decisions_respect_gradient_accumulation(base_model, catalog, kt_data, tmp_path):
    # Decisions are taken at optimizer steps: two micro-batches of 3 decide as one batch of 6.
    settings = {"gram_mode": "gram", "gram_interval": "auto", "gram_auto_drift": AUTO_DRIFT,
                "gram_auto_max_interval": "100", "max_steps": 8}  # fmt: skip
    whole = copy.deepcopy(base_model)
    whole_trainer = make_trainer(whole, catalog, kt_data, tmp_path / "a", trainer_cls=RecordedWindows, **settings)
    whole_trainer.train()
    split = copy.deepcopy(base_model)
    split_trainer = make_trainer(split, catalog, kt_data, tmp_path / "b", trainer_cls=RecordedWindows,
                                 gradient_accumulation_steps=2, per_device_train_batch_size=3, **settings)  # fmt: skip
    split_trainer.train()
    assert [s for s, _, e in split_trainer.decisions if e] == [s for s, _, e in whole_trainer.decisions if e]
    assert len(split_trainer.decisions) == 8 and split_trainer.gram_window_log.windows >= 2
    for (_, a, _), (_, b, _) in zip(split_trainer.decisions, whole_trainer.decisions):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-9)
    assert_same_parameters(whole, split, atol=2e-6)
