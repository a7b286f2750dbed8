"""
Training speed of every mode on one synthetic preset: wall time per epoch, interactions/s, peak memory, the trainer's
encoder-work counters and the speed-up over end-to-end training (E2E).

Every mode runs in its own subprocess on the same data (raw files written once, read by the real loader, cached) and
the same initial encoder. Slow modes (E2E, Single-step and 10-step GRAM by default) are timed over a fixed number of
optimizer steps after a warm-up and extrapolated to an epoch; the table says which. Epoch-window modes (0.5E, 1E),
NoFinetune and NoContent run a full epoch, so GRAM 1E's end-of-epoch encoder fit is measured, not estimated.

Writes `speed_<name>.json` (with the exact command, versions and hardware), `speed_<name>.md` and `speed_<name>.png`
into `benchmarks/results/<device tag>/`.

    python benchmarks/speed.py --dataset duolingo --preset en_es --scale 1.0
    python benchmarks/speed.py --dataset ednet --preset toeic --scale 0.001 --measure-steps 1
    python benchmarks/speed.py --encoder tinybert-shape --scale 0.25
    python benchmarks/speed.py --device cuda --bf16            # on a GPU: peak memory is max_memory_allocated
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SLOW_MODES = ("e2e", "gram-1s", "gram-10s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="duolingo", choices=["duolingo", "ednet", "poj", "mind"],
                        help="Raw format of the synthetic data (mind = news recommendation).")  # fmt: skip
    parser.add_argument(
        "--preset",
        default=None,
        help="en_es, fr_en, poj, toeic (knowledge tracing) or small (MIND); default: the dataset's.",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="The generator's scale (1.0 = the paper's size).")
    parser.add_argument(
        "--encoder",
        default="minilm",
        choices=sorted(common.ENCODERS),
        help="Content encoder: " + "; ".join(f"{k}: {v}" for k, v in common.ENCODERS.items()),
    )
    parser.add_argument("--modes", nargs="+", default=list(common.DEFAULT_MODES), choices=list(common.MODES),
                        help="Modes to run (e2e is the reference of the speed-ups).")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32, help="CF batch (learner sequences or news examples).")
    parser.add_argument("--encoder-batch-size", type=int, default=32,
                        help="Items per encoder forward+backward in GRAM's encoder fits.")  # fmt: skip
    parser.add_argument("--encoder-eval-batch-size", type=int, default=256,
                        help="Items per no-grad encoder batch (lazy item-table fills).")  # fmt: skip
    parser.add_argument("--e2e-accumulation", type=int, default=1,
                        help="E2E only: split each CF batch into this many micro-batches (gradient accumulation; the "
                        "same encoder work, less memory). GRAM modes always take the CF batch whole.")  # fmt: skip
    parser.add_argument("--item-max-length", type=int, default=128, help="Item text truncated to this many tokens.")
    parser.add_argument("--max-seq-len", type=int, default=100, help="KT sequences chunked to this many interactions.")
    parser.add_argument(
        "--full-epoch-modes",
        nargs="*",
        default=None,
        help="Modes timed over a full epoch (default: every mode but e2e, gram-1s, gram-10s).",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=1,
        help="Extrapolated modes: steps not timed first (rounded up to whole windows).",
    )
    parser.add_argument(
        "--measure-steps",
        type=int,
        default=3,
        help="Extrapolated modes: optimizer steps timed (rounded up to whole windows).",
    )
    parser.add_argument(
        "--measure-seconds",
        type=float,
        default=float("inf"),
        help="Extrapolated modes: stop timing after this many seconds (at a window end, >= 1 window).",
    )
    parser.add_argument(
        "--name", default=None, help="Output file stem (default: <dataset>_<preset>_<encoder>_s<scale>)."
    )
    common.add_common_arguments(parser)
    return parser.parse_args(argv)


def accounting(result: dict[str, Any]) -> dict[str, Any]:
    """
    DESIGN.md's invariant 2 on the measured counters: E2E encodes (forward+backward) exactly the occurrences, GRAM
    interval 1 exactly the unique items, longer windows at most one no-grad encode and one forward+backward per item
    per window (checked for epoch windows: per item per epoch).
    """
    counters = result["counters_measured"]
    backward, forward = counters["encoder_items_backward"], counters["encoder_items_forward"]
    mode = result["mode"]
    if mode == "e2e":
        return {"rule": "fwd+bwd items == occurrences", "ok": backward == counters["occurrences"] and forward == 0}
    if mode == "gram-1s":
        return {"rule": "fwd+bwd items == unique items", "ok": backward == counters["unique_items"] and forward == 0}
    if mode in ("gram-1e", "gram-0.5e") and result["full_epoch"]:
        windows = 1 if mode == "gram-1e" else 2
        items = result.get("catalog_items", 0)
        ok = backward <= windows * items and forward <= windows * items
        return {"rule": f"<= {windows} no-grad and {windows} fwd+bwd per catalog item ({items:,}) per epoch", "ok": ok}
    return {"rule": "-", "ok": None}


def derive(results: list[dict[str, Any]]) -> None:
    """Adds speed-ups, counted ideals and memory ratios relative to E2E to every result (in place)."""
    reference = next((r for r in results if r["mode"] == "e2e"), None)
    cf_per_step = None
    nofinetune = next((r for r in results if r["mode"] == "nofinetune"), None)
    if nofinetune is not None:
        # The CF module's cost alone: NoFinetune's epoch minus its one no-grad encoding of the items.
        cf_epoch = nofinetune["epoch_seconds"] - nofinetune["phase_seconds_per_epoch"]["encoder_nograd"]
        cf_per_step = cf_epoch / nofinetune["steps_per_epoch"]
    for result in results:
        result["accounting"] = accounting(result)
        counters = result["counters_per_epoch"]
        work = counters["encoder_tokens_backward"] + common.NO_GRAD_COST * counters["encoder_tokens_forward"]
        result["encoder_token_work_per_epoch"] = work
        phases = result["phase_seconds_per_epoch"]
        result["encoder_seconds_per_epoch"] = (
            phases["encoder_fit"] + phases["encoder_nograd"]
            if result["gram_mode"] in ("gram", "nofinetune") and result["gram_interval"] != "1"
            else None
        )
        if cf_per_step is not None:
            result["cf_seconds_per_epoch_estimate"] = cf_per_step * result["steps_per_epoch"]
        if reference is None:
            continue
        result["speedup_vs_e2e"] = reference["epoch_seconds"] / result["epoch_seconds"]
        ref_counters = reference["counters_per_epoch"]
        ref_work = ref_counters["encoder_tokens_backward"]
        result["counted_ideal_speedup"] = ref_work / work if work else math.inf
        if result["mode"] == "gram-1s":
            result["counted_ideal_speedup_items"] = result["r_batch"]
            result["speedup_over_ideal"] = result["speedup_vs_e2e"] / result["r_batch"]
        ref_memory = reference["memory"]
        memory = result["memory"]
        result["memory_ratio_vs_e2e"] = {
            "train_rss_increase": memory["train_rss_increase_bytes"] / max(ref_memory["train_rss_increase_bytes"], 1),
            "peak_rss": memory["peak_rss_during_train_bytes"] / ref_memory["peak_rss_during_train_bytes"],
        }
        if "cuda_max_memory_allocated_bytes" in memory:
            result["memory_ratio_vs_e2e"]["cuda_max_memory_allocated"] = (
                memory["cuda_max_memory_allocated_bytes"] / ref_memory["cuda_max_memory_allocated_bytes"]
            )
        # Encoder-only speed-up: E2E's epoch minus the CF cost (NoFinetune's) against the mode's encoder phases.
        if cf_per_step is not None and result.get("encoder_seconds_per_epoch"):
            e2e_encoder = reference["epoch_seconds"] - cf_per_step * reference["steps_per_epoch"]
            result["encoder_only_speedup_vs_e2e"] = e2e_encoder / result["encoder_seconds_per_epoch"]


def render_markdown(payload: dict[str, Any]) -> str:
    env, results, summary = payload["environment"], payload["results"], payload["data_summary"]
    config = payload["config"]
    lines = [
        f"### Speed: {payload['data_description']}, encoder {config['encoder']}",
        "",
        f"Machine: {common.hardware_line(env)}. Encoder: {common.ENCODERS[config['encoder']]}. "
        f"Data: {payload['data_description']} ({format(summary['users'], ',') if 'users' in summary else '-'} users, "
        f"{summary['interactions']:,} interactions, {summary['items']:,} items, R_dataset = interactions / items = "
        f"{summary['r_dataset']:.1f}; one epoch = {summary['train_interactions']:,} training interactions). "
        f"CF batch {config['batch_size']}"
        + (
            f" (E2E in {config['e2e_accumulation']} accumulated micro-batches)"
            if config.get("e2e_accumulation", 1) > 1
            else ""
        )
        + f", encoder batch {config['encoder_batch_size']}, item text <= "
        f"{config['item_max_length']} tokens, {'bf16' if config['bf16'] else 'fp32'}. Load average before/after each "
        "run in the JSON.",
        "",
    ]
    header = ["Mode", "Epoch time", "How measured", "Interactions/s", "Speed-up vs E2E", "Counted ideal",
              "Enc. fwd+bwd items/epoch", "Enc. no-grad items/epoch", "R_batch",
              "Peak RSS (train increase)", "Counters check"]  # fmt: skip
    rows = []
    for r in results:
        counters = r["counters_per_epoch"]
        ideal = r.get("counted_ideal_speedup")
        rows.append([
            r["label"],
            common.fmt_seconds(r["epoch_seconds"]),
            r["measurement"],
            f"{r['interactions_per_second']:,.0f}",
            f"{r['speedup_vs_e2e']:.1f}x" if "speedup_vs_e2e" in r else "-",
            f"{ideal:.1f}x" if ideal is not None and math.isfinite(ideal) else "-",
            common.fmt_count(counters["encoder_items_backward"]),
            common.fmt_count(counters["encoder_items_forward"]),
            f"{r['r_batch']:.2f}",
            f"{common.fmt_bytes(r['memory']['peak_rss_during_train_bytes'])} "
            f"(+{common.fmt_bytes(r['memory']['train_rss_increase_bytes'])})",
            {True: "ok", False: "FAIL", None: "-"}[r["accounting"]["ok"]],
        ])  # fmt: skip
    lines.append(common.markdown_table(header, rows))
    lines += [
        "",
        "Counted ideal = E2E's encoder tokens through forward+backward / the mode's (forward+backward tokens + 1/3 x "
        "no-grad tokens), i.e. the speed-up if only encoder work cost time. R_batch = occurrences / unique items per "
        "batch (the Single-step GRAM bound). Peak RSS = highest resident set size sampled during training (in "
        "parentheses: increase over the RSS before training). Counters check: E2E fwd+bwd items = occurrences, "
        "GRAM 1S = "
        "unique items, GRAM 0.5E/1E at most one no-grad and one fwd+bwd encode per item per window.",
    ]
    breakdown = [r for r in results if r.get("encoder_seconds_per_epoch") is not None]
    if breakdown:
        lines += [
            "",
            "Where the time of an epoch goes (seconds per epoch; CF = everything but the encoder phases):",
            "",
        ]
        rows = []
        for r in breakdown:
            phases = r["phase_seconds_per_epoch"]
            cf = r["epoch_seconds"] - phases["encoder_fit"] - phases["encoder_nograd"]
            rows.append([
                r["label"],
                common.fmt_seconds(r["epoch_seconds"]),
                f"{cf:.1f} s ({100 * cf / r['epoch_seconds']:.0f}%)",
                f"{phases['encoder_nograd']:.1f} s",
                f"{phases['encoder_fit']:.1f} s",
                f"{r['encoder_only_speedup_vs_e2e']:.1f}x" if "encoder_only_speedup_vs_e2e" in r else "-",
            ])  # fmt: skip
        lines.append(common.markdown_table(
            ["Mode", "Epoch", "CF + overhead", "Encoder no-grad", "Encoder fit", "Encoder-only speed-up vs E2E"], rows
        ))  # fmt: skip
        lines += [
            "",
            "Encoder-only speed-up = (E2E epoch - CF cost) / (the mode's no-grad + fit seconds), the CF cost "
            "taken from NoFinetune (its epoch minus its one item encoding).",
        ]
    lines += ["", f"Command: `{env['command']}`", ""]
    return "\n".join(lines)


def render_chart(payload: dict[str, Any], path: Path) -> None:
    plt = common.pyplot()
    results = payload["results"]
    labels = [r["label"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    seconds = [r["epoch_seconds"] for r in results]
    colors = ["#999999" if not r["full_epoch"] else "#1f77b4" for r in results]
    bars = left.bar(labels, seconds, color=colors)
    left.set_yscale("log")
    left.set_ylabel("seconds per epoch (log)")
    left.set_title("Wall time per epoch (grey: extrapolated from steps)")
    for bar, r in zip(bars, results):
        if "speedup_vs_e2e" in r:
            left.annotate(f"{r['speedup_vs_e2e']:.1f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=8)  # fmt: skip
    key = "cuda_max_memory_allocated_bytes" if "cuda_max_memory_allocated_bytes" in results[0]["memory"] else None
    memory = [(r["memory"][key] if key else r["memory"]["train_rss_increase_bytes"]) / 2**20 for r in results]
    right.bar(labels, memory, color="#ff7f0e")
    right.set_ylabel("MiB")
    right.set_title("GPU max_memory_allocated" if key else "Peak RSS increase during training")
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=30)
    config = payload["config"]
    machine = payload["environment"].get("gpu") if key else payload["environment"]["cpu"]
    fig.suptitle(f"{payload['data_description']}, encoder {config['encoder']}, {machine}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict[str, Any]:
    preset = args.preset or {"duolingo": "en_es", "ednet": "toeic", "poj": "poj", "mind": "small"}[args.dataset]
    spec = common.DataSpec(dataset=args.dataset, preset=preset, scale=args.scale, seed=args.seed,
                           item_max_length=args.item_max_length, max_seq_len=args.max_seq_len)  # fmt: skip
    common.prepare_data(spec, args.workdir)
    data = common.load_data(spec, args.workdir)
    summary = common.data_summary(data, spec)
    del data
    full_epoch_modes = set(args.full_epoch_modes if args.full_epoch_modes is not None else
                           [m for m in common.MODES if m not in SLOW_MODES])  # fmt: skip
    name = args.name or f"{args.dataset}_{preset}_{args.encoder}_s{args.scale:g}"
    out_dir = common.results_dir(args)
    environment = common.environment_info(args.device, args.threads)
    results = []
    for mode in args.modes:
        config = {
            "mode": mode,
            "data": {k: v for k, v in vars(spec).items()},
            "workdir": args.workdir,
            "encoder": args.encoder,
            "batch_size": args.batch_size,
            "encoder_batch_size": args.encoder_batch_size,
            "encoder_eval_batch_size": args.encoder_eval_batch_size,
            "device": args.device,
            "bf16": args.bf16,
            "threads": args.threads,
            "seed": args.seed,
            "full_epoch": mode in full_epoch_modes,
            "warmup_steps": args.warmup_steps,
            "measure_steps": args.measure_steps,
            "measure_seconds": args.measure_seconds,
            "gradient_accumulation_steps": args.e2e_accumulation if mode == "e2e" else 1,
        }
        print(f"[speed] {name}: {mode} ...", flush=True)
        result = common.run_in_subprocess("speed", config, log_dir=out_dir / "logs" / f"speed_{name}")
        print(f"[speed] {name}: {mode}: {common.fmt_seconds(result['epoch_seconds'])} per epoch "
              f"({result['measurement']})", flush=True)  # fmt: skip
        results.append(result)
    derive(results)
    payload = {
        "benchmark": "speed",
        "data_description": spec.describe(),
        "data_spec": vars(spec),
        "data_summary": summary,
        "config": {k: v for k, v in vars(args).items() if k not in ("workdir", "output_dir")},
        "environment": environment,
        "results": results,
    }
    common.write_json(out_dir / f"speed_{name}.json", payload)
    (out_dir / f"speed_{name}.md").write_text(render_markdown(payload))
    render_chart(payload, out_dir / f"speed_{name}.png")
    print(render_markdown(payload))
    return payload


def main(argv: list[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
