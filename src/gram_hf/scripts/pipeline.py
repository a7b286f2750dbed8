"""
The one path every gram-hf program takes, for any registered task: build the [`GramModel`] (the task's head and
pooling), the catalog, the collators and the metrics from the task registry; train with early stopping; evaluate on
the task's test split; export and report.

A program is a few lines:

```python
args = parse_recipe_args(DataArguments, argv, defaults=..., demo_defaults=..., uses_synthetic=...)
with args.training.main_process_first(desc="loading data"):
    data = load_my_dataset(args.data)  # real files, or the cached synthetic ones
results = run_task("knowledge_tracing", data, args, recipe="toeic", source=source)
```
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from transformers import EarlyStoppingCallback, set_seed

from ..modeling import GramModel
from ..task_registry import GramTask, get_task
from ..trainer import GramTrainer
from .arguments import parse_recipe_args, split_list
from .report import data_summary, export_and_report

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

    from ..data import InteractionData
    from ..items import ItemCatalog
    from ..training_args import GramTrainingArguments
    from .arguments import ModelArguments, RecipeArguments

logger = logging.getLogger(__name__)


def build_model(
    model_args: ModelArguments,
    training_args: GramTrainingArguments,
    *,
    task: str | GramTask,
    num_items: int,
    head_config: Mapping[str, Any] | None = None,
    cold_start_items: Sequence[bool] | None = None,
) -> GramModel:
    """
    The program's [`GramModel`] for `task`: the content encoder from `model_args.encoder_name_or_path` (default: the
    shipped MiniLM) with the task's pooling (unless `--pooling`) and an optional LoRA adapter (`--lora_r`), or, for
    `--gram_mode nocontent` (`--item_encoder id`), an item-ID table of `num_items` rows; with `--item_encoder
    content+id`, both (the ID rows of `cold_start_items`, a mask over the catalog, switched off); the task's head with
    `head_config` and the command line's head options (`--head_config`, `--head_dropout`, which win).
    """
    task = get_task(task) if isinstance(task, str) else task
    head_config = {**(head_config or {}), **model_args.head_kwargs()}
    set_seed(training_args.seed)  # the new weights (head, pooling, projection, adapter) start the same everywhere
    if training_args.gram_mode == "nocontent" or model_args.item_encoder == "id":
        if model_args.lora_r is not None:
            raise ValueError("--lora_r adapts the content encoder; gram_mode='nocontent' has none.")
        item_dim = model_args.item_dim
        if item_dim is None:
            from transformers import AutoConfig

            item_dim = AutoConfig.from_pretrained(model_args.encoder_path).hidden_size
        return GramModel.for_item_ids(num_items, item_dim, head_type=task.name, head_config=head_config)
    model = GramModel.from_encoder_pretrained(
        model_args.encoder_path,
        head_type=task.name,
        head_config=head_config,
        pooling=model_args.pooling or task.default_pooling,
        item_dim=model_args.item_dim,
        attention_pooling_dim=model_args.attention_pooling_dim,
        lora_config=model_args.to_lora_config(),
        item_encoder=model_args.item_encoder,
        num_items=num_items if model_args.item_encoder == "content+id" else 0,
        item_id_dropout=model_args.item_id_dropout if model_args.item_encoder == "content+id" else 0.0,
    )
    if model_args.item_encoder == "content+id" and cold_start_items is not None:
        model.set_cold_start_items(cold_start_items)
    return model


def load_tokenizer(model_args: ModelArguments) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_args.encoder_path)


def make_trainer(
    args: RecipeArguments,
    *,
    model: GramModel,
    catalog: ItemCatalog | None,
    tokenizer: PreTrainedTokenizerBase | None,
    collator: Callable,
    compute_metrics: Callable,
    train_dataset: datasets.Dataset,
    eval_dataset: datasets.Dataset | None,
    eval_collator: Callable | None = None,
) -> GramTrainer:
    """A [`GramTrainer`] with early stopping on the validation metric (`--early_stopping_patience`, 0 = off)."""
    training_args = args.training
    if tokenizer is not None and tokenizer.pad_token_id is not None:
        # Saves the Trainer from "aligning" the config with the tokenizer (and warning about it).
        model.config.pad_token_id = tokenizer.pad_token_id
    callbacks = []
    patience = args.data.early_stopping_patience
    if patience > 0 and eval_dataset is not None and training_args.eval_strategy != "no":
        if not training_args.metric_for_best_model:
            raise ValueError("Early stopping needs --metric_for_best_model (e.g. auc).")
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    return GramTrainer(
        model=model,
        args=training_args,
        item_catalog=catalog,
        data_collator=collator,
        eval_data_collator=eval_collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=callbacks,
    )


def train_and_evaluate(
    trainer: GramTrainer,
    args: RecipeArguments,
    *,
    test_dataset: datasets.Dataset,
    test_split: str,
    recipe: str,
    source: str,
) -> dict[str, Any]:
    """
    Trains (resuming from `--resume_from_checkpoint` when given), evaluates on `test_dataset` with metric prefix
    `test` (the best checkpoint's model when `load_best_model_at_end`), and gathers the results: metrics, wall time and
    GRAM's cost counters. Every process returns the same results.
    """
    training_args = args.training
    start = time.perf_counter()
    # parse_recipe_args checked the checkpoint (and made `True` the last complete one in output_dir).
    model = trainer.gram_model
    with get_task(model.config.head_type).validating(model):
        train_output = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    train_seconds = time.perf_counter() - start
    # Early stopping watches validation metrics; the final evaluation is not one of them.
    trainer.remove_callback(EarlyStoppingCallback)
    test_metrics = trainer.evaluate(test_dataset, metric_key_prefix="test")
    counters = trainer.gram_metrics()
    results = {
        "recipe": recipe,
        "data": {"source": source},
        "synthetic": args.synthetic,
        "demo_settings": dict(args.demo_settings),
        "implied_settings": dict(args.implied_settings),
        "gram_mode": training_args.gram_mode,
        "gram_interval": training_args.gram_interval,
        "encoder": None if trainer.gram_model.encoder is None else args.model.encoder_path,
        "test_split": test_split,
        "test_metrics": test_metrics,
        "best_validation": {
            "metric": training_args.metric_for_best_model,
            "value": trainer.state.best_metric,
            "checkpoint": trainer.state.best_model_checkpoint,
        },
        "train_metrics": train_output.metrics,
        "epochs": trainer.state.epoch,
        "steps": trainer.state.global_step,
        "train_seconds": train_seconds,
        "gram_counters": counters,
        "world_size": training_args.world_size,
    }
    return results


def run_task(
    task: str | GramTask,
    data: InteractionData,
    args: RecipeArguments,
    *,
    recipe: str,
    source: str,
    head_config: Mapping[str, Any] | None = None,
    collator_options: Mapping[str, Any] | None = None,
    train_options: Mapping[str, Any] | None = None,
    after_training: Callable[[GramTrainer, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """
    Trains and evaluates the registered `task` on a loaded dataset: the model ([`build_model`]), the catalog, the
    task's collators and metrics, early stopping on the task's validation metric, the final metrics on the task's test
    split, then `after_training(trainer, results)` if given (e.g. a leaderboard submission), the export and the
    results table. Returns the results (also in `<output_dir>/results.json`).

    Args:
        task (`str` or [`GramTask`]): a registered task name, e.g. `"knowledge_tracing"`.
        data ([`InteractionData`]): what the task's loader returned.
        args ([`RecipeArguments`]): what [`parse_recipe_args`] returned.
        recipe (`str`), source (`str`): the program's name and a description of the data, for the results.
        head_config (`Mapping`, *optional*): head options from the data (e.g. knowledge tracing's features).
        collator_options (`Mapping`, *optional*): the task's collator options (e.g. `max_seq_len`).
        train_options (`Mapping`, *optional*): the task's training-data options (e.g. next-item's `slice_stride`).
        after_training (`Callable`, *optional*): runs after the test evaluation, before the export.
    """
    task = get_task(task) if isinstance(task, str) else task
    model_args, training_args = args.model, args.training
    eval_split, test_split = task.splits(data)
    cold_start = data.items["cold_start"] if "cold_start" in data.items.column_names else None
    model = build_model(
        model_args, training_args, task=task, num_items=data.num_items, head_config=head_config,
        cold_start_items=cold_start,
    )  # fmt: skip
    tokenizer = catalog = None
    if model.encoder is not None:
        tokenizer = load_tokenizer(model_args)
        field_lengths = [int(n) for n in split_list(model_args.item_field_max_lengths)] or None
        with training_args.main_process_first(desc="tokenizing items"):
            catalog = task.build_catalog(
                data, tokenizer, max_length=model_args.item_max_length, field_max_lengths=field_lengths
            )
    options = dict(collator_options or {})
    train_rows = task.training_rows(data, model.head, **dict(train_options or {}))
    if len(train_rows) != len(data["train"]):
        logger.info("Training on %d rows from the train split's %d.", len(train_rows), len(data["train"]))
    trainer = make_trainer(
        args,
        model=model,
        catalog=catalog,
        tokenizer=tokenizer,
        collator=task.make_collator(data, model.head, "train", **options),
        eval_collator=task.make_collator(data, model.head, "eval", **options),
        compute_metrics=task.metrics(data),
        train_dataset=train_rows,
        eval_dataset=_non_empty(data, eval_split, training_args),
    )
    results = train_and_evaluate(
        trainer, args, test_dataset=data[test_split], test_split=test_split, recipe=recipe, source=source
    )
    results["data"] = data_summary(source, data.stats)
    results["task"] = task.name
    if task.describe is not None:
        results["dataset"] = task.describe(data)
    if after_training is not None:
        after_training(trainer, results)
    return export_and_report(trainer, args, results)


def run_program(
    data_class: type,
    argv: Sequence[str] | None,
    *,
    recipe: str,
    task: str,
    defaults: Mapping[str, Any],
    demo_defaults: Mapping[str, Any],
    uses_synthetic: Callable[[Any], bool],
    description: str,
    load: Callable[[RecipeArguments], tuple[InteractionData, str, dict[str, Any]]],
) -> dict[str, Any]:
    """
    A whole program: parses `argv` (default: the command line) into `(data_class, ModelArguments,
    GramTrainingArguments)` with `defaults` (and `demo_defaults` for the embedded default, see [`parse_recipe_args`]),
    loads the data on the main process first with `load(args) -> (data, source, options)`, and runs [`run_task`] for
    `task` with those options. Returns the results (also in `<output_dir>/results.json`).
    """
    args = parse_recipe_args(
        data_class, argv, defaults=defaults, demo_defaults=demo_defaults, uses_synthetic=uses_synthetic
    )
    with args.training.main_process_first(desc=f"loading {description}"):
        data, source, options = load(args)
    return run_task(task, data, args, recipe=recipe, source=source, **options)


def _non_empty(data: InteractionData, split: str, training_args: GramTrainingArguments) -> datasets.Dataset | None:
    """The evaluation split, or `None` (with a warning) when it is empty and no evaluation is asked for."""
    if split in data and len(data[split]):
        return data[split]
    if training_args.eval_strategy != "no":
        raise ValueError(
            f"The {split} split is empty, but evaluation (and early stopping) needs it: use more data or a larger "
            "--validation_fraction, or train without it (--eval_strategy no --save_strategy no "
            "--load_best_model_at_end false)."
        )
    logger.warning("No %s split: training runs without evaluation or early stopping.", split)
    return None


__all__ = ["build_model", "load_tokenizer", "make_trainer", "run_program", "run_task", "train_and_evaluate"]
