"""The next_item program on its other datasets: `--dataset csv` (the generic table) and `--dataset gowalla`."""

from __future__ import annotations

import pytest
import torch
from test_recipe_smoke import load_recipe

from gram_hf.scripts.command_line import UsageError
from gram_hf.tasks.next_item import make_synthetic_gowalla


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fast_argv(tmp_path) -> list[str]:
    return [
        "--output_dir", str(tmp_path / "out"), "--dataset_cache_dir", str(tmp_path / "datasets"),
        "--max_steps", "2", "--per_device_train_batch_size", "4", "--max_length", "8", "--eval_strategy", "no",
        "--save_strategy", "no", "--load_best_model_at_end", "false", "--disable_tqdm", "true",
    ]  # fmt: skip


@pytest.fixture
def interactions(tmp_path):
    """A tiny table: 12 users with 6 of 10 items each, renamed columns, ISO times, an ignored column."""
    lines = ["visitor,thing,when,note"]
    for user in range(12):
        for step in range(6):
            lines.append(f"v{user},item{(user + 3 * step) % 10},2021-03-0{1 + step}T10:00:{user:02d}Z,x")
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_dataset_end_to_end_with_an_id_model(interactions, tmp_path):
    results = load_recipe("next_item").main(
        [*fast_argv(tmp_path), "--dataset", "csv", "--interactions", str(interactions), "--user_column", "visitor",
         "--item_column", "thing", "--timestamp_column", "when", "--item_encoder", "id", "--item_dim", "16"]
    )  # fmt: skip
    assert results["gram_mode"] == "nocontent" and results["encoder_export"] is None
    assert results["data"]["source"] == str(interactions) and results["data"]["rows_read"] == 72
    assert results["dataset"].startswith("10 items")
    metrics = results["test_metrics"]
    assert 0.0 <= metrics["test_ndcg@10"] <= metrics["test_hr@10"] <= 1.0


def test_gowalla_dataset_with_location_texts_and_a_content_model(tiny_encoder, tmp_path):
    synthetic = make_synthetic_gowalla(
        tmp_path / "gowalla", num_users=40, num_items=20, num_cities=2, max_length=8, with_texts=True, compress=True
    )
    results = load_recipe("next_item").main(
        [*fast_argv(tmp_path), "--dataset", "gowalla", "--checkins", synthetic.files["checkins"], "--items",
         synthetic.files["items"], "--encoder_name_or_path", tiny_encoder, "--item_encoder", "content",
         "--gram_mode", "e2e"]
    )  # fmt: skip
    assert results["data"]["source"] == f"{synthetic.files['checkins']} + {synthetic.files['items']}"
    assert results["data"]["dropped"]["duplicates"] > 0 and results["gram_mode"] == "e2e"
    assert 0.0 <= results["test_metrics"]["test_hr@10"] <= 1.0


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--dataset", "gowalla"], "--dataset gowalla needs --checkins"),
        (["--dataset", "csv"], "--dataset csv needs --interactions"),
        (["--checkins", "x.txt"], "--checkins is a file of --dataset gowalla, not of movielens"),
        (["--dataset", "amazon", "--items", "t.csv"], "--items is a file of --dataset gowalla or csv, not of amazon"),
        (["--dataset", "csv", "--interactions", "x.csv", "--text_columns", " , "], "--text_columns must name"),
        (["--dataset", "csv", "--interactions", "x.csv", "--missing_text", "skip"], "invalid choice: 'skip'"),
    ],
)
def test_dataset_options_are_checked_before_loading(tmp_path, argv, match):
    with pytest.raises(UsageError, match=match):
        load_recipe("next_item").main([*argv, "--output_dir", str(tmp_path / "out")])


def test_id_only_data_refuses_a_content_model(interactions, tmp_path):
    with pytest.raises(UsageError, match="without --items has no item text for --item_encoder content\\+id"):
        load_recipe("next_item").main([*fast_argv(tmp_path), "--dataset", "csv", "--interactions", str(interactions)])
    assert not (tmp_path / "datasets").exists()  # refused before anything was read
