"""
Training speed of every mode on one synthetic preset: wall time per epoch, interactions/s, peak memory, the trainer's
encoder-work counters and the speed-up over end-to-end training (E2E).

Every mode runs in its own subprocess on the same data (raw files written once, read by the real loader, cached) and
the same initial encoder. Slow modes (E2E, Single-step and 10-step GRAM by default) are timed over a fixed number of
optimizer steps after a warm-up and extrapolated to an epoch; the table says which. Epoch-window modes (0.5E, 1E),
NoFinetune and NoContent run a full epoch, so GRAM 1E's end-of-epoch encoder fit is measured, not estimated.

A speed-up is only as good as its baseline: with the whole CF batch in one forward, E2E can spend much of its time on
activation memory (12 GB at batch 32 on the Spanish preset). So E2E also runs, each configuration in its own
subprocess, with the CF batch split into accumulated micro-batches (`--e2e-accumulation-sweep`, by default 2, 4 and 8
besides 1, and further while the smallest is the fastest: the same effective batch and encoder work, less memory and
padding), and GRAM's speed-ups are reported against both E2E with the CF batch whole and the fastest E2E
configuration ("E2E best").

Writes `speed_<name>.json` (with the exact command, versions and hardware), `speed_<name>.md` and `speed_<name>.png`
into `benchmarks/results/<device tag>/`.

    python benchmarks/speed.py --dataset duolingo --preset en_es --scale 1.0
    python benchmarks/speed.py --dataset duolingo --preset en_es --scale 0.1 --no-e2e-sweep   # E2E at batch 32 only
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
DEFAULT_E2E_SWEEP = (1, 2, 4, 8)
"""E2E's micro-batches per optimizer step tried by default (those that divide the CF batch)."""


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
    e2e = parser.add_mutually_exclusive_group()
    e2e.add_argument("--e2e-accumulation-sweep", type=int, nargs="+", default=None, metavar="N",
                     help="E2E runs once per N, its CF batch split into N micro-batches (gradient accumulation: the "
                     "same effective batch and encoder work, less activation memory); the fastest is 'E2E best' and "
                     "the smallest N the reference 'E2E'. Every N must divide --batch-size. Default: "
                     f"{' '.join(map(str, DEFAULT_E2E_SWEEP))}, those that divide --batch-size, then the next "
                     "divisors while the smallest micro-batch is still the fastest (given values run exactly). GRAM "
                     "modes always take the CF batch whole.")  # fmt: skip
    e2e.add_argument("--e2e-accumulation", type=int, default=None, metavar="N",
                     help="One E2E configuration only (no sweep; the best is not searched): same as "
                     "--e2e-accumulation-sweep N.")  # fmt: skip
    e2e.add_argument("--no-e2e-sweep", action="store_true",
                     help="E2E with the CF batch whole only (no sweep): as --e2e-accumulation-sweep 1.")  # fmt: skip
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
    args = parser.parse_args(argv)
    # Only the default sweep grows past its list (explicit values are run exactly as given).
    args.e2e_sweep_extend = args.e2e_accumulation_sweep is None and args.e2e_accumulation is None
    args.e2e_sweep_extend = args.e2e_sweep_extend and not args.no_e2e_sweep
    try:
        args.e2e_accumulation_sweep, args.e2e_sweep_skipped = e2e_accumulations(args)
    except ValueError as error:
        parser.error(str(error))
    # The reference E2E (the old single `e2e_accumulation`, which the report and older readers use).
    args.e2e_accumulation = args.e2e_accumulation_sweep[0]
    return args


def e2e_accumulations(args: argparse.Namespace) -> tuple[list[int], list[int]]:
    """
    E2E's accumulation steps to run (sorted, the reference first) and the default ones skipped because they do not
    divide the CF batch. Values given explicitly must divide it: a silently dropped value would look searched.
    """
    if args.e2e_accumulation is not None:
        values, explicit = [args.e2e_accumulation], True
    elif args.no_e2e_sweep:
        values, explicit = [1], True
    elif args.e2e_accumulation_sweep is not None:
        values, explicit = args.e2e_accumulation_sweep, True
    else:
        values, explicit = list(DEFAULT_E2E_SWEEP), False
    if any(value < 1 for value in values):
        raise ValueError(f"E2E accumulation steps must be >= 1, got {values}.")
    skipped = sorted({value for value in values if args.batch_size % value})
    if skipped and explicit:
        raise ValueError(f"E2E accumulation {skipped} does not divide --batch-size {args.batch_size}.")
    kept = sorted({value for value in values if not args.batch_size % value})
    return kept, skipped


def next_e2e_accumulation(e2e_results: list[dict[str, Any]], batch_size: int) -> int | None:
    """
    The default sweep's extension: while the smallest micro-batch run so far is also the fastest, the next divisor of
    the CF batch above its accumulation (micro-batch 2, then 1 at batch 32), so that "E2E best" is not just the edge of
    the list; `None` once a larger micro-batch wins or the micro-batch is 1.
    """
    if len(e2e_results) < 2:
        return None
    last = max(e2e_results, key=common.e2e_accumulation)
    if min(e2e_results, key=lambda r: r["epoch_seconds"]) is not last:
        return None
    larger = [n for n in range(common.e2e_accumulation(last) + 1, batch_size + 1) if batch_size % n == 0]
    return larger[0] if larger else None


def e2e_label(result: dict[str, Any], short: bool = False) -> str:
    """`E2E, micro-batch 8 (4 accumulated)`, or `E2E mb 8` for the chart."""
    micro, accumulation = result["micro_batch_size"], common.e2e_accumulation(result)
    if short:
        return f"E2E mb {micro}"
    return f"E2E, micro-batch {micro}" + (f" ({accumulation} accumulated)" if accumulation > 1 else "")


def accounting(result: dict[str, Any]) -> dict[str, Any]:
    """
    docs/design.md's invariant 2 on the measured counters: E2E encodes (forward+backward) exactly the occurrences, GRAM
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


def derive(results: list[dict[str, Any]], batch_size: int | None = None) -> dict[str, Any] | None:
    """
    Adds speed-ups, counted ideals and memory ratios relative to E2E to every result (in place): `*_vs_e2e` against
    the reference E2E (the fewest micro-batches: the CF batch whole by default) and, where more than one E2E
    configuration ran, `*_vs_e2e_best` against the fastest. Returns the summary of E2E's configurations (the JSON's
    `e2e_sweep`; `None` without E2E). `batch_size` is the CF batch, for results that do not record their micro-batch.
    """
    reference, best = common.e2e_reference_and_best(results)
    cf_per_step = None
    nofinetune = next((r for r in results if r["mode"] == "nofinetune"), None)
    if nofinetune is not None:
        # The CF module's cost alone: NoFinetune's epoch minus its one no-grad encoding of the items.
        cf_epoch = nofinetune["epoch_seconds"] - nofinetune["phase_seconds_per_epoch"]["encoder_nograd"]
        cf_per_step = cf_epoch / nofinetune["steps_per_epoch"]
    for result in results:
        if result["mode"] == "e2e":
            result["micro_batch_size"] = common.e2e_micro_batch(result, batch_size)
            result["e2e_reference"] = result is reference
            result["e2e_best"] = result is best
            if best is not None:
                result["label"] = e2e_label(result)
    for result in results:
        result["accounting"] = accounting(result)
        padded = result.get("encoder_grad_forward_padded_tokens_measured")
        real = result["counters_measured"]["encoder_tokens_backward"]
        if padded and result["mode"] in ("e2e", "gram-1s") and real:
            # Token slots per real token of the gradient forwards (1.0 = no padding): the encoder computes them all.
            result["encoder_padding_ratio"] = padded / real
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
        # Every E2E configuration does the same encoder work (the counters say so), so one counted ideal serves both.
        ref_counters = reference["counters_per_epoch"]
        ref_work = ref_counters["encoder_tokens_backward"]
        result["counted_ideal_speedup"] = ref_work / work if work else math.inf
        for suffix, baseline in (("", reference), ("_best", best)):
            if baseline is None:
                continue
            speedup = baseline["epoch_seconds"] / result["epoch_seconds"]
            result[f"speedup_vs_e2e{suffix}"] = speedup
            if result["mode"] == "gram-1s":
                result["counted_ideal_speedup_items"] = result["r_batch"]
                result[f"speedup_over_ideal{suffix}"] = speedup / result["r_batch"]
            ref_memory = baseline["memory"]
            memory = result["memory"]
            ratios = {
                "train_rss_increase": memory["train_rss_increase_bytes"]
                / max(ref_memory["train_rss_increase_bytes"], 1),
                "peak_rss": memory["peak_rss_during_train_bytes"] / ref_memory["peak_rss_during_train_bytes"],
            }
            if "cuda_max_memory_allocated_bytes" in memory:
                ratios["cuda_max_memory_allocated"] = (
                    memory["cuda_max_memory_allocated_bytes"] / ref_memory["cuda_max_memory_allocated_bytes"]
                )
            result[f"memory_ratio_vs_e2e{suffix}"] = ratios
            # Encoder-only speed-up: E2E's epoch minus the CF cost (NoFinetune's) against the mode's encoder phases.
            if cf_per_step is not None and result.get("encoder_seconds_per_epoch"):
                e2e_encoder = baseline["epoch_seconds"] - cf_per_step * baseline["steps_per_epoch"]
                result[f"encoder_only_speedup_vs_e2e{suffix}"] = e2e_encoder / result["encoder_seconds_per_epoch"]
    if reference is None:
        return None
    runs = sorted((r for r in results if r["mode"] == "e2e"), key=common.e2e_accumulation)
    configs = []
    for run in runs:
        memory = run["memory"]
        config = {
            "accumulation": common.e2e_accumulation(run),
            "micro_batch_size": run["micro_batch_size"],
            "epoch_seconds": run["epoch_seconds"],
            "seconds_per_step": run["seconds_per_step"],
            "measurement": run["measurement"],
            "peak_rss_during_train_bytes": memory["peak_rss_during_train_bytes"],
            "train_rss_increase_bytes": memory["train_rss_increase_bytes"],
            "speedup_vs_reference": reference["epoch_seconds"] / run["epoch_seconds"],
            "encoder_padding_ratio": run.get("encoder_padding_ratio"),
            "best": run is best,
        }
        if "cuda_max_memory_allocated_bytes" in memory:
            config["cuda_max_memory_allocated_bytes"] = memory["cuda_max_memory_allocated_bytes"]
        configs.append(config)
    return {
        "searched": best is not None,
        "batch_size": batch_size,
        "accumulations": [c["accumulation"] for c in configs],
        "reference_accumulation": common.e2e_accumulation(reference),
        "reference_micro_batch_size": reference["micro_batch_size"],
        "best_accumulation": common.e2e_accumulation(best) if best else None,
        "best_micro_batch_size": best["micro_batch_size"] if best else None,
        "best_speedup_vs_reference": reference["epoch_seconds"] / best["epoch_seconds"] if best else None,
        # The fastest at the smallest micro-batch tried, above 1: a smaller one might be faster still.
        "best_at_sweep_edge": best is runs[-1] and best["micro_batch_size"] > 1 if best else None,
        "configs": configs,
    }


HEADLINE_MODES = ("gram-1e", "gram-0.5e", "gram-10s", "gram-1s")
"""The mode whose speed-up the E2E sentence splits into E2E's memory and the method: the first present."""


def _memory(result: dict[str, Any]) -> tuple[float, str]:
    """The peak memory that matters on the run's device (bytes) and its name."""
    memory = result["memory"]
    if "cuda_max_memory_allocated_bytes" in memory:
        return memory["cuda_max_memory_allocated_bytes"], "GPU max allocated"
    return memory["peak_rss_during_train_bytes"], "peak RSS"


def e2e_sentences(payload: dict[str, Any]) -> list[str]:
    """
    What the E2E baseline is: with the sweep, how much faster E2E's best micro-batch is than the CF batch whole and
    how a headline speed-up splits into that factor (E2E's memory) and the speed-up over E2E best (the method), with
    the counted ideal; without it, that the best was not searched. Works on results written before the sweep.
    """
    results, batch = payload["results"], payload["config"].get("batch_size")
    reference, best = common.e2e_reference_and_best(results)
    if reference is None:
        return []
    ref_micro = common.e2e_micro_batch(reference, batch)
    if best is None:
        return [
            f"E2E's fastest micro-batch was not searched: E2E ran at micro-batch {ref_micro} only, so every speed-up "
            "here is against that one configuration and may include what E2E loses to its activation memory there "
            "(`speed.py`'s default `--e2e-accumulation-sweep` measures E2E at its fastest)."
        ]
    others = [common.e2e_micro_batch(r, batch) for r in results if r["mode"] == "e2e" and r is not reference]
    tried = ", ".join(str(m) for m in others)
    if best is reference:
        return [
            f"E2E is fastest with the CF batch whole (micro-batch {ref_micro}; also tried: micro-batch {tried} with "
            "gradient accumulation, the same effective batch and encoder work): the speed-ups against E2E owe "
            "nothing to E2E's memory here."
        ]
    factor = reference["epoch_seconds"] / best["epoch_seconds"]
    best_micro = common.e2e_micro_batch(best, batch)
    (ref_bytes, name), (best_bytes, _) = _memory(reference), _memory(best)
    text = (
        f"E2E's fastest configuration at the same effective batch of {batch} is micro-batch {best_micro} "
        f"({common.e2e_accumulation(best)} accumulated micro-batches per optimizer step; the same encoder work, per "
        f"the counters): {common.fmt_seconds(reference['epoch_seconds'])} -> "
        f"{common.fmt_seconds(best['epoch_seconds'])} per epoch, {factor:.2f}x faster than at micro-batch "
        f"{ref_micro}, {name} {common.fmt_bytes(ref_bytes)} -> {common.fmt_bytes(best_bytes)}"
    )
    smallest = max(results, key=lambda r: common.e2e_accumulation(r) if r["mode"] == "e2e" else 0)
    if best is smallest and best_micro > 1:
        text += " (the smallest micro-batch tried: a smaller one might be faster still)"
    if "encoder_padding_ratio" in reference and "encoder_padding_ratio" in best:
        # E2E encodes a micro-batch's items in one forward padded to its longest item: fewer items, less padding.
        text += (
            f"; its one encoder forward per micro-batch computes {reference['encoder_padding_ratio']:.1f} token slots "
            f"per real token at micro-batch {ref_micro}, {best['encoder_padding_ratio']:.1f} at {best_micro}"
        )
    text += (
        f". That factor is E2E's memory (activations{' and padding' if 'encoder_padding_ratio' in best else ''} of "
        f"a larger forward), not the method, and is in every 'vs E2E (micro-batch {ref_micro})' figure"
    )
    headline = next((r for mode in HEADLINE_MODES for r in results if r["mode"] == mode), None)
    if headline is not None and "speedup_vs_e2e_best" in headline:
        ideal = headline.get("counted_ideal_speedup", math.inf)
        text += (
            f": {headline['label']}'s {headline['speedup_vs_e2e']:.1f}x over E2E at micro-batch {ref_micro} = "
            f"{factor:.2f}x (E2E's memory) x {headline['speedup_vs_e2e_best']:.1f}x over E2E best (the method)"
        )
        if math.isfinite(ideal):
            text += (
                f"; its counted ideal (encoder work alone) is {ideal:.1f}x, so it reaches "
                f"{headline['speedup_vs_e2e_best'] / ideal:.2f} of it against E2E best "
                f"({headline['speedup_vs_e2e'] / ideal:.2f} against E2E at micro-batch {ref_micro})"
            )
    return [text + "."]


def render_markdown(payload: dict[str, Any]) -> str:
    env, results, summary = payload["environment"], payload["results"], payload["data_summary"]
    config = payload["config"]
    batch = config["batch_size"]
    reference, best = common.e2e_reference_and_best(results)
    ref_micro = common.e2e_micro_batch(reference, batch) if reference else None
    notes = []
    if best is not None:
        accumulations = sorted(common.e2e_accumulation(r) for r in results if r["mode"] == "e2e")
        notes.append(f"E2E also split into {', '.join(str(a) for a in accumulations if a > 1)} accumulated "
                     "micro-batches per optimizer step")  # fmt: skip
    elif reference is not None and common.e2e_accumulation(reference) > 1:
        notes.append(f"E2E in {common.e2e_accumulation(reference)} accumulated micro-batches")
    sweep = payload.get("e2e_sweep") or {}
    if sweep.get("extended_accumulations"):
        notes.append(f"{', '.join(map(str, sweep['extended_accumulations']))} added by the default sweep because the "
                     "smallest micro-batch was still the fastest")  # fmt: skip
    if sweep.get("skipped_accumulations"):
        notes.append(f"{', '.join(map(str, sweep['skipped_accumulations']))} not tried: not a divisor of the batch")
    e2e_batches = f" ({'; '.join(notes)})" if notes else ""
    cuda = any("cuda_max_memory_allocated_bytes" in r["memory"] for r in results)
    lines = [
        f"### Speed: {payload['data_description']}, encoder {config['encoder']}",
        "",
        f"Machine: {common.hardware_line(env)}. Encoder: {common.ENCODERS[config['encoder']]}. "
        f"Data: {payload['data_description']} ({format(summary['users'], ',') if 'users' in summary else '-'} users, "
        f"{summary['interactions']:,} interactions, {summary['items']:,} items, R_dataset = interactions / items = "
        f"{summary['r_dataset']:.1f}; one epoch = {summary['train_interactions']:,} training interactions). "
        f"CF batch {batch}{e2e_batches}, encoder batch {config['encoder_batch_size']}, item text <= "
        f"{config['item_max_length']} tokens, {'bf16' if config['bf16'] else 'fp32'}. Load average before/after each "
        "run in the JSON.",
        "",
    ]
    header = ["Mode", "Epoch time", "How measured", "Interactions/s",
              f"Speed-up vs E2E (micro-batch {ref_micro})" if ref_micro else "Speed-up vs E2E"]  # fmt: skip
    if best is not None:
        header.append(f"vs E2E best (micro-batch {common.e2e_micro_batch(best, batch)})")
    header += ["Counted ideal", "Enc. fwd+bwd items/epoch", "Enc. no-grad items/epoch", "R_batch",
               "Peak RSS (train increase)"] + (["GPU max allocated"] if cuda else []) + ["Counters check"]  # fmt: skip
    rows = []
    for r in results:
        counters = r["counters_per_epoch"]
        ideal = r.get("counted_ideal_speedup")
        row = [
            r["label"] + (" **best**" if r is best else ""),
            common.fmt_seconds(r["epoch_seconds"]),
            r["measurement"],
            f"{r['interactions_per_second']:,.0f}",
            f"{r['speedup_vs_e2e']:.1f}x" if "speedup_vs_e2e" in r else "-",
        ]
        if best is not None:
            row.append(f"{r['speedup_vs_e2e_best']:.1f}x" if "speedup_vs_e2e_best" in r else "-")
        row += [
            f"{ideal:.1f}x" if ideal is not None and math.isfinite(ideal) else "-",
            common.fmt_count(counters["encoder_items_backward"]),
            common.fmt_count(counters["encoder_items_forward"]),
            f"{r['r_batch']:.2f}",
            f"{common.fmt_bytes(r['memory']['peak_rss_during_train_bytes'])} "
            f"(+{common.fmt_bytes(r['memory']['train_rss_increase_bytes'])})",
        ]
        if cuda:
            row.append(common.fmt_bytes(r["memory"].get("cuda_max_memory_allocated_bytes", math.nan)))
        row.append({True: "ok", False: "FAIL", None: "-"}[r["accounting"]["ok"]])
        rows.append(row)
    lines.append(common.markdown_table(header, rows))
    lines += [
        "",
        "Counted ideal = E2E's encoder tokens through forward+backward / the mode's (forward+backward tokens + 1/3 x "
        "no-grad tokens), i.e. the speed-up if only encoder work cost time. R_batch = occurrences / unique items per "
        "batch (the Single-step GRAM bound). Peak RSS = highest resident set size sampled during training (in "
        "parentheses: increase over the RSS before training). Counters check: E2E fwd+bwd items = occurrences, "
        "GRAM 1S = "
        "unique items, GRAM 0.5E/1E at most one no-grad and one fwd+bwd encode per item per window."
        + (
            " E2E with accumulation: one step = one optimizer step of the whole CF batch (all its micro-batches), "
            "timed like E2E in its own subprocess; its R_batch is per micro-batch (unique items count per forward)."
            if best is not None
            else ""
        ),
    ]
    sentences = e2e_sentences(payload)
    if sentences:
        lines += ["", *sentences]
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
            suffixes = ["", "_best"] if best is not None else [""]
            speedups = [r.get(f"encoder_only_speedup_vs_e2e{suffix}") for suffix in suffixes]
            rows.append([
                r["label"],
                common.fmt_seconds(r["epoch_seconds"]),
                f"{cf:.1f} s ({100 * cf / r['epoch_seconds']:.0f}%)",
                f"{phases['encoder_nograd']:.1f} s",
                f"{phases['encoder_fit']:.1f} s",
                *[f"{value:.1f}x" if value is not None else "-" for value in speedups],
            ])  # fmt: skip
        header = ["Mode", "Epoch", "CF + overhead", "Encoder no-grad", "Encoder fit", "Encoder-only speed-up vs E2E"]
        if best is not None:
            header[-1] += f" (micro-batch {ref_micro})"
            header.append(f"vs E2E best (micro-batch {common.e2e_micro_batch(best, batch)})")
        lines.append(common.markdown_table(header, rows))
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
    _, best = common.e2e_reference_and_best(results)
    labels = [e2e_label(r, short=True) if best is not None and r["mode"] == "e2e" else r["label"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(12, 1.6 * len(results)), 4.2))
    seconds = [r["epoch_seconds"] for r in results]
    colors = ["#999999" if not r["full_epoch"] else "#1f77b4" for r in results]
    bars = left.bar(labels, seconds, color=colors)
    left.set_yscale("log")
    left.set_ylim(top=max(seconds) * 3)  # room for the two-line labels above the tallest bar
    left.set_ylabel("seconds per epoch (log)")
    left.set_title("Wall time per epoch (grey: extrapolated from steps)")
    for bar, r in zip(bars, results):
        if "speedup_vs_e2e" in r:
            # With the sweep: vs E2E with the CF batch whole, and vs E2E best beneath.
            text = f"{r['speedup_vs_e2e']:.1f}x"
            if "speedup_vs_e2e_best" in r:
                text += f"\n{r['speedup_vs_e2e_best']:.1f}x best"
            left.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
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


def run(args: argparse.Namespace, spec: common.DataSpec | None = None) -> dict[str, Any]:
    """
    Runs every mode (E2E once per accumulation of the sweep) and writes the JSON, markdown and chart. `spec` replaces
    the data specification built from `args` (the harness test's tiny data).
    """
    preset = args.preset or {"duolingo": "en_es", "ednet": "toeic", "poj": "poj", "mind": "small"}[args.dataset]
    if spec is None:
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
    extended: list[int] = []
    for mode in args.modes:
        # E2E once per accumulation, each in its own subprocess (its own memory high-water mark), reference first.
        accumulations = list(args.e2e_accumulation_sweep) if mode == "e2e" else [1]
        for accumulation in accumulations:
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
                "gradient_accumulation_steps": accumulation,
            }
            # `speed-e2e.log` stays the CF batch whole, as before the sweep.
            run_name = mode if accumulation == 1 else f"{mode}-acc{accumulation}"
            what = mode if mode != "e2e" else f"e2e (micro-batch {args.batch_size // accumulation})"
            print(f"[speed] {name}: {what} ...", flush=True)
            result = common.run_in_subprocess("speed", config, log_dir=out_dir / "logs" / f"speed_{name}",
                                              log_name=run_name)  # fmt: skip
            print(f"[speed] {name}: {what}: {common.fmt_seconds(result['epoch_seconds'])} per epoch "
                  f"({result['measurement']})", flush=True)  # fmt: skip
            results.append(result)
            if mode == "e2e" and accumulation == accumulations[-1] and args.e2e_sweep_extend:
                # Appending while iterating runs the new value next.
                following = next_e2e_accumulation([r for r in results if r["mode"] == "e2e"], args.batch_size)
                if following is not None:
                    accumulations.append(following)
                    extended.append(following)
    sweep = derive(results, batch_size=args.batch_size)
    if sweep is not None:
        sweep["skipped_accumulations"] = args.e2e_sweep_skipped
        sweep["extended_accumulations"] = extended
    payload = {
        "benchmark": "speed",
        "data_description": spec.describe(),
        "data_spec": vars(spec),
        "data_summary": summary,
        "config": {k: v for k, v in vars(args).items() if k not in ("workdir", "output_dir")},
        "environment": environment,
        # `None` where the best E2E was not searched (one configuration) or E2E did not run.
        "e2e_best_accumulation": sweep["best_accumulation"] if sweep else None,
        "e2e_sweep": sweep,
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
