"""
What a gram-hf program leaves behind: the saved model, the encoder export (and Hub uploads when asked),
`<output_dir>/results.json` and the results table it prints.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..trainer import GramTrainer
    from .arguments import RecipeArguments

logger = logging.getLogger(__name__)

RESULTS_NAME = "results.json"


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN/inf become None, numpy scalars Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def data_summary(source: str, stats: Mapping[str, Any]) -> dict[str, Any]:
    """
    The `data` block of the results: where the data came from and what the loader left out, from its
    `InteractionData.stats`: `rows_read` (raw rows), `dropped` (reason -> rows in no split) and `removed_from_train`
    (reason -> rows only `train` lost, e.g. the cold-start items' interactions). Counts a loader does not report are
    left out.
    """
    summary: dict[str, Any] = {"source": source}
    for key in ("rows_read", "dropped", "removed_from_train"):
        if stats.get(key) is not None:
            summary[key] = stats[key]
    return summary


def _remove_checkpoints(trainer: GramTrainer, args: RecipeArguments) -> dict[str, Any]:
    """
    The checkpoints left in `output_dir`, after removing them when the run does not keep them
    ([`RecipeArguments.keep_checkpoints`]: the embedded default without a checkpoint option). They hold the optimizers'
    state, needed only to resume; the model and the encoder export are already saved.
    """
    from ..checkpointing import complete_checkpoints

    output_dir = args.training.output_dir
    checkpoints = [path for path in Path(output_dir).glob("checkpoint-*") if path.is_dir()]
    if args.keep_checkpoints or not checkpoints:
        return {"kept": [os.path.abspath(path) for path in complete_checkpoints(output_dir)], "removed": 0}
    if args.training.should_save:
        size = sum(file.stat().st_size for path in checkpoints for file in path.rglob("*") if file.is_file())
        for path in checkpoints:
            shutil.rmtree(path, ignore_errors=True)
        logger.info(
            f"Removed {len(checkpoints)} checkpoint(s) ({size / 2**20:,.0f} MiB) from {output_dir}: the embedded "
            "default keeps the model and the encoder export; --save_strategy, --save_steps or --save_total_limit "
            "keep checkpoints."
        )
    trainer.accelerator.wait_for_everyone()
    return {"kept": [], "removed": len(checkpoints)}


def export_and_report(trainer: GramTrainer, args: RecipeArguments, results: dict[str, Any]) -> dict[str, Any]:
    """
    Saves the model (`trainer.save_model`, the whole [`GramModel`]), exports the encoder (`--save_encoder`, on by
    default), pushes to the Hub when asked (`--push_to_hub`, `--push_encoder_to_hub REPO`), removes the checkpoints
    unless the run keeps them ([`RecipeArguments.keep_checkpoints`]), then writes `<output_dir>/results.json` and
    prints the results table (main process only).
    """
    training_args, data_args = args.training, args.data
    trainer.save_model()
    if trainer.is_world_process_zero():
        trainer.save_state()
    encoder_path = None
    has_encoder = trainer.gram_model.encoder is not None
    if has_encoder and data_args.save_encoder:
        encoder_path = trainer.save_encoder(data_args.encoder_output_dir, adapter_only=data_args.encoder_adapter_only)
    if has_encoder and data_args.push_encoder_to_hub:
        trainer.push_encoder_to_hub(data_args.push_encoder_to_hub, adapter_only=data_args.encoder_adapter_only)
    if training_args.push_to_hub:
        encoder = args.model.encoder_name_or_path  # a Hub id or folder the user named (None: the shipped MiniLM)
        trainer.push_to_hub(finetuned_from=encoder, tags=["gram-hf", results["recipe"]])
    results = {
        **results,
        "checkpoints": _remove_checkpoints(trainer, args),
        "model_dir": os.path.abspath(training_args.output_dir),
        "encoder_export": encoder_path,
        "total_seconds": time.perf_counter() - args.start_time,
    }
    results = _clean(results)
    if trainer.is_world_process_zero():
        path = Path(training_args.output_dir) / RESULTS_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(results, indent=2), encoding="utf-8")
        os.replace(temporary, path)
        print("\n" + format_results_table(results) + "\n", flush=True)
    trainer.accelerator.wait_for_everyone()
    return results


def _metric_names(results: Mapping[str, Any]) -> dict[str, str]:
    """The metrics the table shows, key -> name: the task's (`register_task(metric_names=...)`), else all tasks'."""
    from ..task_registry import TASK_REGISTRY

    task = TASK_REGISTRY.get(results.get("task"))
    tasks = [task] if task is not None else list(TASK_REGISTRY.values())
    return {key: name for each in tasks for key, name in each.metric_names}


def format_results_table(results: Mapping[str, Any]) -> str:
    """The short results table a recipe prints: data, mode, metrics, wall time and encoder work vs E2E."""
    data = results["data"] if isinstance(results["data"], Mapping) else {"source": results["data"]}
    rows: list[tuple[str, str]] = [("recipe", str(results["recipe"])), ("data", str(data["source"]))]
    if results.get("dataset"):
        rows.append(("dataset", str(results["dataset"])))
    rows += _data_rows(data)
    demo = {k: v for k, v in (results.get("demo_settings") or {}).items() if not k.startswith("synthetic_")}
    if demo:
        settings = ", ".join(f"{key}={value}" for key, value in demo.items())
        rows.append(("demo settings (not given on the command line)", settings))
    if results.get("implied_settings"):
        settings = ", ".join(f"{key}={value}" for key, value in results["implied_settings"].items())
        rows.append(("settings following the options given", settings))
    mode = results["gram_mode"]
    rows.append(("mode", f"{mode} (interval {results['gram_interval']})" if mode == "gram" else mode))
    if results.get("encoder"):
        rows.append(("content encoder", str(results["encoder"])))
    epochs = results.get("epochs") or 0
    rows.append(("trained", f"{results['steps']} steps, {epochs:.2f} epochs, {results['world_size']} process(es)"))
    best = results.get("best_validation") or {}
    if best.get("value") is not None:
        rows.append((f"best validation {best['metric']}", f"{best['value']:.4f}"))
    metrics = results["test_metrics"]
    split = results["test_split"]
    for key, name in _metric_names(results).items():
        value = metrics.get(f"test_{key}")
        if f"test_{key}" in metrics:
            rows.append((f"{split} {name}", "n/a (one class only)" if value is None else f"{value:.4f}"))
    rows.append(("training wall time", f"{results['train_seconds']:.1f} s (total {results['total_seconds']:.1f} s)"))
    counters = results["gram_counters"]
    occurrences = int(counters["gram/occurrences"])
    backward = int(counters["gram/encoder_items_backward"])
    rows.append(("item occurrences (E2E: one encoder fwd+bwd each)", f"{occurrences:,}"))
    rows.append(("encoder items, no-grad forward", f"{int(counters['gram/encoder_items_forward']):,}"))
    saving = f" ({occurrences / backward:.1f}x fewer than E2E)" if 0 < backward < occurrences else ""
    rows.append(("encoder items, forward+backward", f"{backward:,}{saving}"))
    rows.append(("R_batch (occurrences / unique items per batch)", f"{counters['gram/r_batch']:.2f}"))
    rows.append(("model (trainer.save_model)", str(results["model_dir"])))
    checkpoints = results.get("checkpoints") or {}
    if checkpoints.get("removed"):
        rows.append(("checkpoints", f"{checkpoints['removed']} removed after training (embedded default)"))
    elif checkpoints.get("kept"):
        rows.append(("checkpoints", ", ".join(Path(path).name for path in checkpoints["kept"])))
    export = results.get("encoder_export") or ("not saved" if results.get("encoder") else "none (item-ID table)")
    rows.append(("encoder export (AutoModel)", str(export)))
    width = max(len(name) for name, _ in rows)
    title = f" gram-hf {results['recipe']} results "
    rule = "=" * min(119, width + 2 + max(len(value) for _, value in rows))
    lines = [title.center(len(rule), "="), *(f"{name.ljust(width)}  {value}" for name, value in rows), rule]
    return "\n".join(lines)


def _counts(counts: Mapping[str, Any]) -> str:
    """`{"unknown_item": 12, "empty": 0}` -> `12 (unknown_item 12)`; non-zero reasons only."""
    named = {reason: count for reason, count in counts.items() if count}
    total = sum(count for count in named.values() if isinstance(count, int | float))
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in named.items())
    return f"{total:,} ({reasons})" if named else f"{total:,}"


def _data_rows(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The table's account of the rows read, dropped and removed from train (a loader's `stats`, when it has them)."""
    if not {"rows_read", "dropped", "removed_from_train"} & set(data):
        return []
    parts = []
    if data.get("rows_read") is not None:
        parts.append(f"{data['rows_read']:,} read")
    parts.append(f"dropped {_counts(data.get('dropped') or {})}")
    rows = [("data rows", "; ".join(parts))]
    if data.get("removed_from_train"):
        rows.append(("removed from train only", _counts(data["removed_from_train"])))
    return rows


__all__ = ["RESULTS_NAME", "data_summary", "export_and_report", "format_results_table"]
