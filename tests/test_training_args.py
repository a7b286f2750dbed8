"""GramTrainingArguments: defaults, gram_interval parsing and validation."""

from __future__ import annotations

import pytest
from transformers import HfArgumentParser

from gram_hf import GramTrainingArguments
from gram_hf.training_args import ENCODER_UPDATES, GRAM_MODES, parse_gram_interval

INTERVAL_FORMS = ("positive integer", "'<float>epoch'")


def make_args(tmp_path, **kwargs) -> GramTrainingArguments:
    return GramTrainingArguments(output_dir=str(tmp_path), **kwargs)


def test_defaults(tmp_path):
    args = make_args(tmp_path)
    assert args.remove_unused_columns is False
    assert args.report_to == []  # "none" is resolved by TrainingArguments to no integration
    assert args.gram_mode == "gram"
    assert args.gram_interval == "1"
    assert (args.gram_interval_steps, args.gram_interval_epochs) == (1, None)
    assert args.item_learning_rate == 1.0
    assert args.encoder_update == "accumulate"
    assert args.encoder_epochs == 1
    assert args.gram_recompute is False


@pytest.mark.parametrize(
    ("value", "steps", "epochs"),
    [
        (1, 1, None),
        ("10", 10, None),
        (3, 3, None),
        (" 7 ", 7, None),
        ("0.5epoch", None, 0.5),
        ("1epoch", None, 1.0),
        ("2 epochs", None, 2.0),
        ("1.5epochs", None, 1.5),
        (".25epoch", None, 0.25),
    ],
)
def test_parse_gram_interval_accepted(value, steps, epochs):
    assert parse_gram_interval(value) == (steps, epochs)


@pytest.mark.parametrize(
    "value", ["0", 0, "-1", -1, "abc", "0epoch", "0.0epochs", "1.5", "1e3", "epoch", "", "2 days"]
)
def test_parse_gram_interval_rejected_with_allowed_forms(value):
    with pytest.raises(ValueError, match="gram_interval") as info:
        parse_gram_interval(value)
    for form in INTERVAL_FORMS:
        assert form in str(info.value)
    assert repr(value) in str(info.value)


def test_parse_gram_interval_unicode_digit_names_allowed_forms():
    with pytest.raises(ValueError, match="gram_interval must be"):
        parse_gram_interval("²")


@pytest.mark.parametrize(
    ("value", "steps", "epochs", "stored"),
    [
        (3, 3, None, "3"),
        ("10", 10, None, "10"),
        (" 0.5epoch ", None, 0.5, "0.5epoch"),
        ("2 epochs", None, 2.0, "2 epochs"),
    ],
)
def test_training_args_interval(tmp_path, value, steps, epochs, stored):
    args = make_args(tmp_path, gram_interval=value)
    assert args.gram_interval_steps == steps
    assert args.gram_interval_epochs == epochs
    assert args.gram_interval == stored


@pytest.mark.parametrize("value", ["0", "-1", "abc", "0epoch"])
def test_training_args_invalid_interval(tmp_path, value):
    with pytest.raises(ValueError, match="gram_interval must be a positive integer") as info:
        make_args(tmp_path, gram_interval=value)
    assert "'0.5epoch'" in str(info.value)


def test_invalid_gram_mode_names_allowed_values(tmp_path):
    with pytest.raises(ValueError, match="gram_mode") as info:
        make_args(tmp_path, gram_mode="fast")
    for mode in GRAM_MODES:
        assert mode in str(info.value)


def test_invalid_encoder_update_names_allowed_values(tmp_path):
    with pytest.raises(ValueError, match="encoder_update") as info:
        make_args(tmp_path, encoder_update="sometimes")
    for update in ENCODER_UPDATES:
        assert update in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("encoder_batch_size", 0),
        ("encoder_batch_size", -2),
        ("encoder_eval_batch_size", 0),
        ("encoder_epochs", 0),
        ("encoder_epochs", 1.5),
    ],
)
def test_non_positive_integer_fields_raise(tmp_path, name, value):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        make_args(tmp_path, **{name: value})


@pytest.mark.parametrize("value", [0, 0.0, -0.1, float("nan")])
def test_item_learning_rate_must_be_positive(tmp_path, value):
    with pytest.raises(ValueError, match="item_learning_rate must be > 0"):
        make_args(tmp_path, item_learning_rate=value)


def test_negative_encoder_learning_rate_raises(tmp_path):
    with pytest.raises(ValueError, match="encoder_learning_rate"):
        make_args(tmp_path, encoder_learning_rate=-1e-5)


@pytest.mark.parametrize("mode", ["gram", "e2e"])
def test_fp16_refused_with_encoder_training(tmp_path, mode):
    with pytest.raises(ValueError, match="fp16 is not supported") as info:
        make_args(tmp_path, gram_mode=mode, fp16=True)
    assert repr(mode) in str(info.value)
    assert "bf16" in str(info.value)


def test_encoder_lr_falls_back_to_learning_rate(tmp_path):
    assert make_args(tmp_path, learning_rate=3e-4).encoder_lr == 3e-4
    assert make_args(tmp_path, learning_rate=3e-4, encoder_learning_rate=2e-5).encoder_lr == 2e-5
    assert make_args(tmp_path, learning_rate=3e-4, encoder_learning_rate=0.0).encoder_lr == 0.0


def test_hf_argument_parser(tmp_path):
    parser = HfArgumentParser(GramTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        args=[
            "--output_dir",
            str(tmp_path),
            "--gram_mode",
            "e2e",
            "--gram_interval",
            "0.5epoch",
            "--learning_rate",
            "0.01",
            "--encoder_batch_size",
            "8",
        ]
    )
    assert isinstance(args, GramTrainingArguments)
    assert args.gram_mode == "e2e"
    assert args.gram_interval == "0.5epoch"
    assert (args.gram_interval_steps, args.gram_interval_epochs) == (None, 0.5)
    assert args.encoder_batch_size == 8
    assert args.encoder_lr == 0.01
    assert args.remove_unused_columns is False


def test_hf_argument_parser_rejects_unknown_mode(tmp_path, capsys):
    parser = HfArgumentParser(GramTrainingArguments)
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(args=["--output_dir", str(tmp_path), "--gram_mode", "fast"])
    assert "invalid choice" in capsys.readouterr().err


def test_hf_argument_parser_rejects_bad_interval(tmp_path):
    parser = HfArgumentParser(GramTrainingArguments)
    with pytest.raises(ValueError, match="gram_interval"):
        parser.parse_args_into_dataclasses(args=["--output_dir", str(tmp_path), "--gram_interval", "half"])


@pytest.mark.parametrize("mode", ["e2e", "gram"])
def test_metric_driven_schedulers_are_refused_with_an_encoder_optimizer(tmp_path, mode):
    plateau = {"output_dir": str(tmp_path), "lr_scheduler_type": "reduce_lr_on_plateau", "eval_strategy": "epoch"}
    with pytest.raises(ValueError, match="step-based scheduler"):
        GramTrainingArguments(gram_mode=mode, **plateau)
    GramTrainingArguments(gram_mode="nofinetune", **plateau)


@pytest.mark.parametrize("value", ["auto", " AUTO "])
def test_auto_interval(tmp_path, value):
    args = make_args(tmp_path, gram_interval=value)
    assert args.gram_interval == "auto" and args.gram_interval_is_auto
    # The longest window, default one epoch: the schedule of the ends that always happen.
    assert (args.gram_interval_steps, args.gram_interval_epochs) == (None, 1.0)
    assert args.gram_window_schedule(10, steps_per_epoch=4).window_ends() == [4, 8, 10]
    steps = make_args(tmp_path, gram_interval="auto", gram_auto_max_interval="3")
    assert steps.gram_window_schedule(7).window_ends() == [3, 6, 7]
    assert not make_args(tmp_path, gram_mode="e2e", gram_interval="auto").gram_interval_is_auto


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gram_auto_drift": -0.1}, "gram_auto_drift must be >= 0"),
        ({"gram_auto_drift": float("nan")}, "gram_auto_drift must be >= 0"),
        ({"gram_auto_max_interval": "0"}, "gram_auto_max_interval: gram_interval must be"),
        ({"gram_auto_max_interval": "auto"}, "gram_auto_max_interval: gram_interval must be"),
    ],
)
def test_auto_interval_invalid_knobs(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        make_args(tmp_path, gram_interval="auto", **overrides)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("tensorboard,trackio", ["tensorboard", "trackio"]), (" tensorboard ", "tensorboard"), ("none", "none"),
     (["tensorboard", "trackio"], ["tensorboard", "trackio"])],
)  # fmt: skip
def test_report_to_takes_a_comma_separated_list(tmp_path, value, expected):
    args = make_args(tmp_path, report_to=value)
    assert args.report_to == ([] if expected == "none" else expected if isinstance(expected, list) else [expected])


def test_item_id_learning_rate_validated_and_given_to_the_id_table(tmp_path):
    import torch

    from gram_hf import GramModel, GramTrainer

    with pytest.raises(ValueError, match="item_id_learning_rate must be >= 0"):
        GramTrainingArguments(output_dir=str(tmp_path), item_id_learning_rate=-1.0)
    model = GramModel.for_item_ids(10, 8, head_type="knowledge_tracing")
    args = GramTrainingArguments(output_dir=str(tmp_path), gram_mode="nocontent", learning_rate=1e-3,
                                 item_id_learning_rate=0.05, optim="sgd", use_cpu=True, report_to="none")  # fmt: skip
    trainer = GramTrainer(model=model, args=args, data_collator=lambda rows: rows)
    optimizer = trainer.create_optimizer()
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert rates[id(model.item_id_table.weight)] == 0.05
    assert {rates[id(p)] for p in model.head.parameters()} == {1e-3}
    # One SGD step moves the table by 0.05 x its gradient and the head by 1e-3 x its gradient.
    table_before, head_param = model.item_id_table.weight.detach().clone(), next(model.head.parameters())
    head_before = head_param.detach().clone()
    for param in (model.item_id_table.weight, head_param):
        param.grad = torch.ones_like(param)
    optimizer.step()
    assert torch.allclose(table_before - model.item_id_table.weight, torch.full_like(table_before, 0.05))
    assert torch.allclose(head_before - head_param.detach(), torch.full_like(head_before, 1e-3))
    trainer.create_scheduler(10, optimizer)
    assert trainer.lr_scheduler.get_last_lr()[-1] == 0.05
