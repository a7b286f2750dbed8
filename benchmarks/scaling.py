"""
How the cost of an epoch grows, for E2E, Single-step GRAM (1S) and one-epoch GRAM (1E):

- with the number of learners (hence interactions) at a fixed item catalog: users x {1, 2, 4, 8};
- with the length of the item text at fixed data: mean text tokens x {1, 2, 4}.

E2E's encoder work grows with interactions (one forward+backward per occurrence); GRAM 1E's with items (one no-grad
encode and one forward+backward per item per epoch), so at fixed items its encoder cost stays flat while the CF
module's grows with interactions. Reports measured wall time per epoch (E2E and 1S extrapolated from a few steps,
1E a full epoch) and the counted encoder tokens per epoch, with log-log slopes, and draws a log-log plot.

Data: synthetic Duolingo-format learners from a custom preset (`--users`, `--items`, `--interactions-per-user`,
`--text-tokens`); scales >= 1 keep the item count fixed. Writes `scaling.{json,md,png}` into
`benchmarks/results/<device tag>/`.

    python benchmarks/scaling.py
    python benchmarks/scaling.py --user-factors 1 2 4 8 --text-factors 1 2 4 --encoder minilm
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SCALING_MODES = ("e2e", "gram-1s", "gram-1e")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=list(SCALING_MODES), choices=list(common.MODES),
                        help="Modes to compare.")  # fmt: skip
    parser.add_argument(
        "--encoder",
        default="minilm",
        choices=sorted(common.ENCODERS),
        help="Content encoder: " + "; ".join(f"{k}: {v}" for k, v in common.ENCODERS.items()),
    )
    parser.add_argument("--users", type=int, default=100, help="Learners at factor 1.")
    parser.add_argument("--items", type=int, default=500, help="Items (fixed).")
    parser.add_argument("--interactions-per-user", type=float, default=106, help="Mean interactions per learner.")
    parser.add_argument("--text-tokens", type=float, default=5.3, help="Mean item text length (words) at factor 1.")
    parser.add_argument("--user-factors", nargs="+", type=float, default=[1, 2, 4, 8], help="Learner multipliers.")
    parser.add_argument("--text-factors", nargs="+", type=float, default=[1, 2, 4], help="Text length multipliers.")
    parser.add_argument("--batch-size", type=int, default=32, help="CF batch (learner sequences).")
    parser.add_argument("--encoder-batch-size", type=int, default=32, help="Items per encoder fit mini-batch.")
    parser.add_argument("--warmup-steps", type=int, default=1, help="Extrapolated modes: untimed steps first.")
    parser.add_argument("--measure-steps", type=int, default=2, help="Extrapolated modes: timed steps.")
    common.add_common_arguments(parser)
    return parser.parse_args(argv)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x): 1 = linear growth, 0 = flat."""
    points = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(points) < 2:
        return math.nan
    mean_x = sum(p[0] for p in points) / len(points)
    mean_y = sum(p[1] for p in points) / len(points)
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den if den else math.nan


def run_point(args: argparse.Namespace, axis: str, factor: float, out_dir: Path) -> list[dict[str, Any]]:
    users = args.users * (factor if axis == "users" else 1)
    text = args.text_tokens * (factor if axis == "text" else 1)
    overrides = {"users": int(round(args.users)), "items": args.items,
                 "interactions": int(round(args.users * args.interactions_per_user)), "mean_text_tokens": text,
                 "cold_start_items": 0}  # fmt: skip
    # Learners scale through the generator's `scale` (>= 1 keeps the items); text through the preset.
    spec = common.DataSpec(dataset="duolingo", preset="en_es", scale=users / args.users, seed=args.seed,
                           item_max_length=128, preset_overrides=overrides)  # fmt: skip
    common.prepare_data(spec, args.workdir)
    data = common.load_data(spec, args.workdir)
    summary = common.data_summary(data, spec)
    del data
    points = []
    for mode in args.modes:
        config = {
            "mode": mode,
            "data": vars(spec),
            "workdir": args.workdir,
            "encoder": args.encoder,
            "batch_size": args.batch_size,
            "encoder_batch_size": args.encoder_batch_size,
            "device": args.device,
            "bf16": args.bf16,
            "threads": args.threads,
            "seed": args.seed,
            "full_epoch": mode not in ("e2e", "gram-1s", "gram-10s"),
            "warmup_steps": args.warmup_steps,
            "measure_steps": args.measure_steps,
        }
        name = f"{axis}x{factor:g}"
        print(f"[scaling] {name}: {mode} ...", flush=True)
        result = common.run_in_subprocess("speed", config, log_dir=out_dir / "logs" / f"scaling_{name}")
        print(f"[scaling] {name}: {mode}: {common.fmt_seconds(result['epoch_seconds'])}/epoch", flush=True)
        counters = result["counters_per_epoch"]
        points.append({
            "axis": axis,
            "factor": factor,
            "mode": mode,
            "label": common.MODE_LABELS[mode],
            "data_summary": summary,
            "mean_text_tokens": text,
            "epoch_seconds": result["epoch_seconds"],
            "measurement": result["measurement"],
            "encoder_token_work_per_epoch": counters["encoder_tokens_backward"]
            + common.NO_GRAD_COST * counters["encoder_tokens_forward"],
            "encoder_items_backward_per_epoch": counters["encoder_items_backward"],
            "encoder_items_forward_per_epoch": counters["encoder_items_forward"],
            "phase_seconds_per_epoch": result["phase_seconds_per_epoch"],
            "load_average_before": result["load_average_before"],
            "raw": result,
        })  # fmt: skip
    return points


def render_markdown(payload: dict[str, Any]) -> str:
    env, config, points = payload["environment"], payload["config"], payload["points"]
    lines = [
        "### Scaling: cost per epoch as learners and item text grow",
        "",
        f"Machine: {common.hardware_line(env)}. Encoder: {common.ENCODERS[config['encoder']]}. Data: synthetic "
        f"Duolingo-format, {config['items']:,} items, {config['users']} learners x factor, "
        f"{config['interactions_per_user']:g} interactions per learner, {config['text_tokens']:g} words per item x "
        f"factor. CF batch {config['batch_size']}. E2E and GRAM 1S extrapolated from {config['measure_steps']} steps "
        f"after {config['warmup_steps']} warm-up; GRAM 1E a full epoch.",
        "",
    ]
    for axis, title in (("users", "Learners x factor (items fixed)"), ("text", "Item text length x factor")):
        rows = []
        for p in (p for p in points if p["axis"] == axis):
            summary = p["data_summary"]
            rows.append([
                f"x{p['factor']:g}", p["label"], f"{summary['train_interactions']:,}", f"{p['mean_text_tokens']:.1f}",
                common.fmt_seconds(p["epoch_seconds"]), common.fmt_count(p["encoder_items_backward_per_epoch"]),
                common.fmt_count(p["encoder_items_forward_per_epoch"]),
                common.fmt_count(p["encoder_token_work_per_epoch"]),
            ])  # fmt: skip
        if not rows:
            continue
        lines += [f"{title}:", ""]
        lines.append(common.markdown_table(
            ["Factor", "Mode", "Train interactions", "Words/item", "Epoch time", "Enc. fwd+bwd items",
             "Enc. no-grad items", "Enc. token work"], rows))  # fmt: skip
        lines.append("")
    lines += ["Log-log slopes (1 = grows linearly with the factor, 0 = flat):", ""]
    rows = []
    for mode, label in ((m, common.MODE_LABELS[m]) for m in config["modes"]):
        row = [label]
        for axis in ("users", "text"):
            series = [p for p in points if p["axis"] == axis and p["mode"] == mode]
            xs = [p["factor"] for p in series]
            row += [f"{slope(xs, [p['epoch_seconds'] for p in series]):.2f}",
                    f"{slope(xs, [p['encoder_token_work_per_epoch'] for p in series]):.2f}"]  # fmt: skip
        rows.append(row)
    lines.append(common.markdown_table(
        ["Mode", "Time vs learners", "Encoder work vs learners", "Time vs text length", "Encoder work vs text length"],
        rows))  # fmt: skip
    lines += ["", "Encoder token work = tokens through forward+backward + 1/3 x no-grad tokens, per epoch.", "",
              f"Command: `{env['command']}`", ""]  # fmt: skip
    return "\n".join(lines)


def render_chart(payload: dict[str, Any], path: Path) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    points = payload["points"]
    for axis, title, panel in (("users", "learners x factor (items fixed)", axes[0]),
                               ("text", "item text length x factor", axes[1])):  # fmt: skip
        for mode in payload["config"]["modes"]:
            series = [p for p in points if p["axis"] == axis and p["mode"] == mode]
            if not series:
                continue
            xs = [p["factor"] for p in series]
            line = panel.plot(xs, [p["epoch_seconds"] for p in series], marker="o", label=f"{series[0]['label']} time")
            panel.plot(xs, [p["encoder_token_work_per_epoch"] / 1e3 for p in series], linestyle="--", marker="x",
                       color=line[0].get_color(), label=f"{series[0]['label']} encoder ktokens")  # fmt: skip
        panel.set_xscale("log", base=2)
        panel.set_yscale("log")
        panel.set_xlabel(title)
        panel.set_ylabel("seconds per epoch / encoder kilotokens per epoch")
        panel.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Cost per epoch, encoder {payload['config']['encoder']}, {payload['environment']['cpu']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out_dir = common.results_dir(args)
    environment = common.environment_info(args.device, args.threads)
    points = []
    for factor in args.user_factors:
        points += run_point(args, "users", factor, out_dir)
    for factor in args.text_factors:
        if factor == 1 and 1 in args.user_factors:
            points += [{**p, "axis": "text"} for p in points if p["axis"] == "users" and p["factor"] == 1]
            continue
        points += run_point(args, "text", factor, out_dir)
    payload = {
        "benchmark": "scaling",
        "config": {k: v for k, v in vars(args).items() if k not in ("workdir", "output_dir")},
        "environment": environment,
        "points": points,
    }
    common.write_json(out_dir / "scaling.json", payload)
    (out_dir / "scaling.md").write_text(render_markdown(payload))
    render_chart(payload, out_dir / "scaling.png")
    print(render_markdown(payload))


if __name__ == "__main__":
    main()
