"""Smoke tests of the recipes: every program runs in-process on tiny synthetic data with a tiny encoder and writes its
results, the model and an encoder export that plain `transformers.AutoModel` loads."""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import gram_hf
from gram_hf.scripts import RESULTS_NAME, parse_recipe_args

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"

# Per recipe: a synthetic scale that gives a few learners/impressions in every split, and recipe-specific flags.
SMOKE = {
    "knowledge_tracing": ["--synthetic_scale", "0.005"],
    "toeic": ["--synthetic_scale", "0.00005"],
    "duolingo": ["--synthetic_scale", "0.005"],
    "poj": ["--synthetic_scale", "0.002"],
    # The MIND-large preset has the labelless test split that --predict_test writes a submission for.
    "mind": ["--synthetic_preset", "large", "--synthetic_scale", "0.0001", "--predict_test"],
}
# Recipes whose results the shared smoke test above does not describe (their own tests follow).
OTHER_ARGV = {"next_item": ["--synthetic_scale", "0.01", "--max_length", "8"]}


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"gram_hf_recipe_{name}", RECIPES_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through the module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and a busy machine makes multi-threaded small ops very slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def smoke_argv(name: str, tiny_encoder: str, tmp_path: Path) -> list[str]:
    return [
        *(SMOKE.get(name) or OTHER_ARGV[name]),
        "--encoder_name_or_path", tiny_encoder,
        "--synthetic_dir", str(tmp_path / "synthetic"),
        "--dataset_cache_dir", str(tmp_path / "datasets"),
        "--output_dir", str(tmp_path / "out"),
        "--max_steps", "2",
        "--per_device_train_batch_size", "4",
        "--disable_tqdm", "true",
    ]  # fmt: skip


@pytest.mark.parametrize("name", list(SMOKE))
def test_recipe_runs_and_exports(name, tiny_encoder, tmp_path):
    results = load_recipe(name).main(smoke_argv(name, tiny_encoder, tmp_path))
    out = tmp_path / "out"
    written = json.loads((out / RESULTS_NAME).read_text())
    assert written == json.loads(json.dumps(results))
    assert written["synthetic"] and written["gram_mode"] == "gram" and written["gram_interval"] == "1epoch"
    assert written["steps"] == 2
    # The demo defaults apply where the command line is silent, and only there.
    assert written["demo_settings"]["learning_rate"] == 1e-3
    assert "per_device_train_batch_size" not in written["demo_settings"]
    metrics = written["test_metrics"]
    news = ("test_auc", "test_mrr", "test_ndcg@5", "test_ndcg@10")
    expected = news if name == "mind" else ("test_auc", "test_accuracy")
    for key in expected:
        assert 0.0 <= metrics[key] <= 1.0, key
    if name != "mind":
        assert "test_cold_start_auc" in metrics
    counters = written["gram_counters"]
    assert 0 < counters["gram/encoder_items_backward"] <= counters["gram/unique_items"] < counters["gram/occurrences"]
    assert written["train_seconds"] > 0 and written["total_seconds"] >= written["train_seconds"]

    # The whole model (trainer.save_model) and the encoder export (AutoModel, no gram-hf needed).
    model = AutoModel.from_pretrained(out)
    assert isinstance(model, gram_hf.GramModel)
    assert written["encoder_export"] == str(out / "encoder")
    encoder = AutoModel.from_pretrained(out / "encoder")
    encoder_tokenizer = AutoTokenizer.from_pretrained(out / "encoder")
    inputs = encoder_tokenizer(["a short item text"], return_tensors="pt")
    backbone = model.encoder.backbone.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            encoder(**inputs).last_hidden_state, backbone(**inputs).last_hidden_state, atol=1e-5, rtol=0
        )
    if name == "mind":
        assert written["test_split"] == "dev"
        with zipfile.ZipFile(out / "prediction.zip") as archive:
            lines = archive.read("prediction.txt").decode().splitlines()
        assert lines and all(line.split(" ")[1].startswith("[") for line in lines)


@pytest.mark.bf16
@pytest.mark.parametrize("name", ["knowledge_tracing", "mind"])
def test_bf16_flag_trains_on_a_machine_without_an_accelerator(name, tiny_encoder, tmp_path):
    # TrainingArguments refuses --bf16 on a CPU unless use_cpu is set; the recipes set it when there is no accelerator.
    if torch.cuda.is_available():
        pytest.skip("an accelerator is present: --bf16 runs there")
    results = load_recipe(name).main([*smoke_argv(name, tiny_encoder, tmp_path), "--bf16"])
    assert results["steps"] == 2 and results["test_metrics"]["test_loss"] is not None


def test_synthetic_data_is_generated_once_and_reused(tmp_path):
    from gram_hf.scripts import synthetic_knowledge_tracing

    first = synthetic_knowledge_tracing("poj", "poj", 0.002, seed=1, synthetic_dir=tmp_path)
    assert first.created and first.folder == tmp_path / "poj-poj-0.002-1"
    log = Path(first.paths["log_csv"])
    modified = log.stat().st_mtime_ns
    second = synthetic_knowledge_tracing("poj", "poj", 0.002, seed=1, synthetic_dir=tmp_path)
    assert not second.created and second.paths == first.paths and log.stat().st_mtime_ns == modified
    assert second.info == first.info and second.info["cold_start_items"] >= 1
    # Nothing but the dataset is left in the cache folder (no staging folders).
    assert [path.name for path in tmp_path.iterdir()] == ["poj-poj-0.002-1"]


def test_paper_defaults_for_real_data_and_demo_defaults_only_where_not_given(tmp_path):
    toeic = load_recipe("toeic")
    real = ["--kt1_dir", "KT1", "--questions_csv", "q.csv", "--item_text", "t.csv", "--output_dir", str(tmp_path)]
    args = parse_recipe_args(
        toeic.DataArguments, real, defaults=toeic.DEFAULTS, demo_defaults=toeic.DEMO_DEFAULTS,
        uses_synthetic=lambda data: data.kt1_dir is None,
    )  # fmt: skip
    training = args.training
    assert not args.synthetic and args.demo_settings == {}
    assert training.learning_rate == training.encoder_lr == 1e-4
    assert training.per_device_train_batch_size == 32 and args.data.max_seq_len == 100
    assert training.metric_for_best_model == "auc" and training.greater_is_better and training.load_best_model_at_end
    assert str(training.eval_strategy) in ("epoch", "IntervalStrategy.EPOCH")
    assert args.data.early_stopping_patience == 10 and training.gram_interval == "1epoch"
    assert args.data.features == "part,elapsed_time" and args.data.current_features == "part"

    demo = ["--num_train_epochs", "7", "--output_dir", str(tmp_path)]
    args = parse_recipe_args(
        toeic.DataArguments, demo, defaults=toeic.DEFAULTS, demo_defaults=toeic.DEMO_DEFAULTS,
        uses_synthetic=lambda data: data.kt1_dir is None,
    )  # fmt: skip
    assert args.synthetic and args.training.num_train_epochs == 7 and args.training.learning_rate == 1e-3
    assert "num_train_epochs" not in args.demo_settings and args.demo_settings["learning_rate"] == 1e-3

    with pytest.raises(ValueError, match="missing"):
        toeic.main(["--kt1_dir", "KT1", "--output_dir", str(tmp_path)])


def test_lora_flags_wrap_the_backbone_and_nocontent_builds_an_id_table(tiny_encoder, tmp_path):
    pytest.importorskip("peft")
    from gram_hf import GramTrainingArguments
    from gram_hf.scripts import ModelArguments, build_model

    training = GramTrainingArguments(output_dir=str(tmp_path))
    model_args = ModelArguments(
        encoder_name_or_path=tiny_encoder, lora_r=2, lora_alpha=4, lora_target_modules="query,value"
    )
    model = build_model(model_args, training, task="knowledge_tracing", num_items=10)
    assert model.encoder.has_adapter and model.config.encoder_lora["r"] == 2
    trainable = {name for name, p in model.encoder.backbone.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)

    nocontent = GramTrainingArguments(output_dir=str(tmp_path), gram_mode="nocontent")
    model = build_model(ModelArguments(encoder_name_or_path=tiny_encoder), nocontent, task="knowledge_tracing",
                        num_items=10)  # fmt: skip
    assert model.encoder is None and tuple(model.item_id_table.weight.shape) == (10, 32)


def test_next_item_recipe_ranks_the_catalog_and_exports(tiny_encoder, tmp_path):
    results = load_recipe("next_item").main(
        [*smoke_argv("next_item", tiny_encoder, tmp_path), "--eval_strategy", "steps", "--eval_steps", "2",
         "--save_strategy", "steps", "--save_steps", "2"]
    )  # fmt: skip
    metrics = results["test_metrics"]
    for key in ("test_ndcg@10", "test_hr@10", "test_coverage@10"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["test_surprisal@10"] > 0 and metrics["test_ndcg@10"] <= metrics["test_hr@10"]
    assert results["task"] == "next_item" and results["best_validation"]["metric"] == "ndcg@10"
    assert AutoModel.from_pretrained(tmp_path / "out" / "encoder") is not None

    ids = load_recipe("next_item").main(
        [*smoke_argv("next_item", tiny_encoder, tmp_path / "ids"), "--item_encoder", "id", "--eval_strategy", "no",
         "--save_strategy", "no", "--load_best_model_at_end", "false"]
    )  # fmt: skip
    assert ids["gram_mode"] == "nocontent" and ids["encoder_export"] is None
    with pytest.raises(ValueError, match="item-ID table"):
        load_recipe("next_item").main(["--item_encoder", "id", "--gram_mode", "gram", "--output_dir", str(tmp_path)])


def test_gram_hf_command_runs_the_programs(tmp_path, capsys):
    from gram_hf import cli

    assert cli.main(["--help"]) == 0 and "next_item" in capsys.readouterr().out
    assert cli.main(["nope"]) == 2
    assert "unknown program 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["toeic", "--help"])
    assert exit_info.value.code == 0 and "--kt1_dir" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["knowledge_tracing", "next_item"])
def test_hybrid_item_encoder_on_realistic_synthetic_data(name, tiny_encoder, tmp_path):
    """`--item_encoder content+id` trains a hybrid whose cold-start items (the data's) keep their content vectors; the
    realistic synthetic structure is cached apart from the planted one."""
    argv = [*smoke_argv(name, tiny_encoder, tmp_path), "--item_encoder", "content+id",
            "--synthetic_structure", "realistic", "--eval_strategy", "no", "--save_strategy", "no",
            "--load_best_model_at_end", "false"]  # fmt: skip
    if name == "next_item":
        argv += ["--synthetic_scale", "0.05"]  # enough movies for new releases (cold-start items)
    results = load_recipe(name).main(argv)
    assert results["gram_mode"] == "gram" and "realistic structure" in results["data"]["source"]
    assert (tmp_path / "synthetic").is_dir() and all(
        folder.name.endswith("-realistic") for folder in (tmp_path / "synthetic").iterdir() if folder.is_dir()
    )
    model = AutoModel.from_pretrained(tmp_path / "out")
    assert model.config.item_encoder == "content+id"
    cold = model.cold_start_items
    assert cold.any(), "the data's cold-start items were not marked"
    assert torch.count_nonzero(model.item_id_table.weight[cold]) == 0
    assert AutoModel.from_pretrained(tmp_path / "out" / "encoder") is not None


def test_item_encoder_and_gram_mode_are_one_choice(tmp_path):
    recipe = load_recipe("toeic")
    with pytest.raises(ValueError, match="cannot run --gram_mode gram"):
        recipe.main(["--item_encoder", "id", "--gram_mode", "gram", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="not --item_encoder content\\+id"):
        recipe.main(["--item_encoder", "content+id", "--gram_mode", "nocontent", "--output_dir", str(tmp_path)])
    args = parse_recipe_args(
        recipe.DataArguments, ["--gram_mode", "nocontent", "--output_dir", str(tmp_path)],
        defaults=recipe.DEFAULTS, demo_defaults=recipe.DEMO_DEFAULTS, uses_synthetic=lambda data: True,
    )  # fmt: skip
    assert args.model.item_encoder == "id"


@pytest.mark.parametrize("name", ["knowledge_tracing", "mind"])
def test_recipes_take_the_adaptive_interval(name, tiny_encoder, tmp_path):
    argv = [*smoke_argv(name, tiny_encoder, tmp_path), "--gram_interval", "auto", "--gram_auto_drift", "0"]
    results = load_recipe(name).main(argv)
    assert results["gram_interval"] == "auto" and results["steps"] == 2
    counters = results["gram_counters"]
    # A drift threshold of 0 ends every window after one step: two windows, each one step long.
    assert counters["gram/windows"] == 2 and counters["gram/window_steps"] == 1.0 and "gram/drift" in counters


def test_next_item_new_item_share_ranks_the_test_split_not_the_validation_split(tiny_encoder, tmp_path):
    """`--new_item_share` mixes the new releases into the test ranking (and is saved for serving); the validation
    evaluations of early stopping rank by the model's own scores, as without it."""
    runs = {}
    for share in ("0", "0.5"):
        argv = [*smoke_argv("next_item", tiny_encoder, tmp_path / share), "--synthetic_scale", "0.05",
                "--synthetic_dir", str(tmp_path / "synthetic"), "--eval_strategy", "steps", "--eval_steps", "1",
                "--save_strategy", "steps", "--save_steps", "1", "--new_item_share", share]  # fmt: skip
        runs[share] = load_recipe("next_item").main(argv)
    plain, mixed = runs["0"], runs["0.5"]
    assert plain["test_metrics"]["test_cold_users"] > 0  # new releases are some test users' held-out items
    assert mixed["best_validation"]["value"] == plain["best_validation"]["value"]
    assert mixed["test_metrics"]["test_cold_only_ndcg@10"] == plain["test_metrics"]["test_cold_only_ndcg@10"]
    assert mixed["test_metrics"]["test_cold_hr@10"] > plain["test_metrics"]["test_cold_hr@10"]
    assert AutoModel.from_pretrained(tmp_path / "0.5" / "out").head.new_item_share == 0.5
