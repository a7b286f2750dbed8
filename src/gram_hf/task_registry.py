"""
The task registry: what a task brings to the engine, registered once (as PEFT registers its methods).

A task is a folder under `gram_hf/tasks/` whose `__init__.py` calls [`register_task`] with its head, collator, metrics
and catalog builder. Everything that trains a task by name (the recipes, `gram-hf <recipe>`, the benchmark harness)
asks the registry instead of switching on task names, so adding a task is adding a folder. The engine itself never
imports a task: this module only holds what tasks put in it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .heads import HEAD_REGISTRY, GramHead, register_head

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

    from .data import InteractionData
    from .items import ItemCatalog

TASK_REGISTRY: dict[str, GramTask] = {}


def _default_splits(data: InteractionData) -> tuple[str, str]:
    return "validation", "test"


def _default_build_catalog(
    data: InteractionData,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int | None = None,
    field_max_lengths: Sequence[int] | None = None,
) -> ItemCatalog:
    return data.catalog(tokenizer, max_length=max_length or 128)


@dataclass(frozen=True)
class GramTask:
    r"""
    A registered task: how to train and evaluate its head on an [`InteractionData`].

    Args:
        name (`str`): the task's name, also the `head_type` of its head.
        head (`type[GramHead]`): the head class.
        collator (`Callable`): `collator(data, head, mode, **options) -> data collator` for `mode` `"train"` or
            `"eval"` (tasks whose evaluation batches differ from training batches, such as next-item's full-catalog
            ranking, return a different collator for `"eval"`). `options` are the task's collator options (e.g.
            knowledge tracing's `max_seq_len`); unknown ones raise `TypeError`.
        metrics (`Callable`): `metrics(data) -> compute_metrics` for the Trainer.
        build_catalog (`Callable`, *optional*): `build_catalog(data, tokenizer, *, max_length=None,
            field_max_lengths=None) -> ItemCatalog`; defaults to `data.catalog(tokenizer, max_length or 128)`.
        default_pooling (`str`, *optional*, defaults to `"mean"`): the content encoder's pooling unless one is given.
        metric_for_best_model (`str`, *optional*, defaults to `"auc"`): the validation metric of early stopping and
            of the best checkpoint.
        greater_is_better (`bool`, *optional*, defaults to `True`): the direction of `metric_for_best_model`.
        splits (`Callable`, *optional*): `splits(data) -> (evaluation split, test split)`; defaults to
            `("validation", "test")`.
        describe (`Callable`, *optional*): `describe(data) -> str`, a one-line summary of the dataset for reports.
        metric_names (`dict[str, str]`, *optional*): the metrics reports print, key -> display name, in order.
        recommender (`type`, *optional*): the task's [`~gram_hf.inference.GramRecommender`] subclass, which
            `GramRecommender.from_pretrained` returns for a model of this task (its scoring methods).
        train_dataset (`Callable`, *optional*): `train_dataset(data, head, **options) -> datasets.Dataset`, the rows
            the training collator receives (e.g. next-item's slices of long sequences); defaults to `data["train"]`.
            `options` are the task's training-data options; unknown ones raise `TypeError`.
        validation_context (`Callable`, *optional*): `validation_context(model) -> context manager` in which the
            validation evaluations of training (early stopping, the best checkpoint) run, e.g. next-item's ranking by
            the model's own scores where the test metrics and serving mix in new releases; the test evaluation runs
            outside it.
    """

    name: str
    head: type[GramHead]
    collator: Callable[..., Callable]
    metrics: Callable[[InteractionData], Callable]
    build_catalog: Callable[..., ItemCatalog] = _default_build_catalog
    default_pooling: str = "mean"
    metric_for_best_model: str = "auc"
    greater_is_better: bool = True
    splits: Callable[[InteractionData], tuple[str, str]] = _default_splits
    describe: Callable[[InteractionData], str] | None = None
    metric_names: tuple[tuple[str, str], ...] = ()
    recommender: type | None = None
    train_dataset: Callable[..., datasets.Dataset] | None = None
    validation_context: Callable[[Any], AbstractContextManager] | None = None

    def validating(self, model: Any) -> AbstractContextManager:
        """The context of the validation evaluations of training for `model` (see `validation_context`)."""
        return nullcontext() if self.validation_context is None else self.validation_context(model)

    def training_rows(self, data: InteractionData, head: GramHead, **options: Any) -> datasets.Dataset:
        """The training split as the training collator's rows (see `train_dataset`)."""
        if self.train_dataset is None:
            if options:
                raise TypeError(f"Task {self.name!r} takes no training-data options, got {sorted(options)}.")
            return data["train"]
        return self.train_dataset(data, head, **options)

    def make_collator(self, data: InteractionData, head: GramHead, mode: str = "train", **options: Any) -> Callable:
        """The task's data collator for `mode` (`"train"` or `"eval"`)."""
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}.")
        return self.collator(data, head, mode, **options)


def register_task(
    name: str,
    *,
    head: type[GramHead],
    collator: Callable[..., Callable],
    metrics: Callable[[InteractionData], Callable],
    build_catalog: Callable[..., ItemCatalog] | None = None,
    default_pooling: str = "mean",
    metric_for_best_model: str = "auc",
    greater_is_better: bool = True,
    splits: Callable[[InteractionData], tuple[str, str]] | None = None,
    describe: Callable[[InteractionData], str] | None = None,
    metric_names: dict[str, str] | None = None,
    recommender: type | None = None,
    train_dataset: Callable[..., datasets.Dataset] | None = None,
    validation_context: Callable[[Any], AbstractContextManager] | None = None,
) -> GramTask:
    """
    Registers a task under `name` (see [`GramTask`] for the arguments) and its head as `head_type=name`.

    Called from the task's `gram_hf/tasks/<task>/__init__.py`. Registering the same task again is a no-op; another
    task under a taken name raises `ValueError`.

    Example:

    ```python
    >>> register_task(
    ...     "knowledge_tracing", head=KnowledgeTracingHead, collator=make_collator, metrics=make_metrics,
    ...     metric_names={"auc": "AUC", "cold_start_auc": "cold-start AUC"},
    ... )
    ```
    """
    if not (isinstance(head, type) and issubclass(head, GramHead)):
        raise TypeError(f"head must be a GramHead subclass, got {head!r}.")
    if HEAD_REGISTRY.get(name, head) is not head:
        raise ValueError(f"head_type {name!r} is registered to {HEAD_REGISTRY[name].__name__}, not {head.__name__}.")
    task = GramTask(
        name=name,
        head=head,
        collator=collator,
        metrics=metrics,
        build_catalog=build_catalog or _default_build_catalog,
        default_pooling=default_pooling,
        metric_for_best_model=metric_for_best_model,
        greater_is_better=greater_is_better,
        splits=splits or _default_splits,
        describe=describe,
        metric_names=tuple((metric_names or {}).items()),
        recommender=recommender,
        train_dataset=train_dataset,
        validation_context=validation_context,
    )
    registered = TASK_REGISTRY.get(name)
    if registered is not None and registered != task:
        raise ValueError(f"A task named {name!r} is already registered (head {registered.head.__name__}).")
    register_head(name)(head)
    TASK_REGISTRY[name] = task
    return task


def get_task(name: str) -> GramTask:
    """The task registered under `name`."""
    if name not in TASK_REGISTRY:
        raise ValueError(f"Unknown task {name!r}; registered tasks: {sorted(TASK_REGISTRY)}.")
    return TASK_REGISTRY[name]


__all__ = ["TASK_REGISTRY", "GramTask", "get_task", "register_task"]
