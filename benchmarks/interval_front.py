"""
The GRAM interval study: every fixed interval and the adaptive one (`gram_interval="auto"`) as points of (encoder
forward+backward items per epoch, test AUC), from `quality.py` results of one task and data shape.

A fixed interval trades quality for encoder work: Single-step GRAM (exactly E2E) encodes every batch's unique items
with gradients, one epoch windows encode each touched item once per epoch. The fixed intervals that no other fixed
interval beats on both axes form the front; `gram-auto` is worth its knob where it lies above that front (no fixed
interval reaches both its AUC and its work). The targets are those of the adaptive-interval issue: test AUC within 0.1
points (x100) of GRAM 1S (which equals E2E, docs/design.md invariant 1), cold-start AUC within 1 point of 1S, at most
1.5x GRAM 1E's encoder work per epoch.

    python benchmarks/quality.py --task kt ... --modes gram-1s gram-3s gram-10s gram-30s gram-0.25e gram-0.5e \
        gram-1e --output-dir OUT/fixed
    python benchmarks/quality.py --task kt ... --modes gram-auto --gram-auto-drift 0.01 --output-dir OUT/auto_0.01
    python benchmarks/interval_front.py OUT/fixed/quality_kt.json OUT/auto_*/quality_kt.json \
        --name interval_kt_planted --output-dir benchmarks/results/cpu-amd-epyc

Writes `<name>.{json,md,png}`: the points, the front, the verdicts, and the drift the criterion saw at every step of
each `gram-auto` run (right panel of the plot).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

TARGET_AUC_POINTS = 0.1
TARGET_COLD_POINTS = 1.0
TARGET_WORK_RATIO = 1.5


def point(result: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """One run as a point: metrics x100 at the best validation epoch, encoder work per epoch run."""
    epochs = max(result["epochs_run"], 1)
    counters = result["counters"]
    test = result["test_at_best"]
    windows = result.get("windows") or {}
    auto = result["mode"] == "gram-auto"
    drift = source["config"].get("gram_auto_drift") if auto else None
    seed = result.get("seed", 0)
    base_seed = source["config"].get("seed", 0)
    label = common.MODE_LABELS[result["mode"]] + (f" (drift {drift:g})" if auto and drift is not None else "")
    return {
        "mode": result["mode"],
        "label": label + (f" (seed {seed})" if seed != base_seed else ""),
        "key": label,
        "seed": seed,
        "rerun": seed != base_seed,
        "gram_auto_drift": drift,
        "auc": 100 * test["auc"],
        "cold_start_auc": 100 * test["cold_start_auc"] if test.get("cold_start_auc") is not None else None,
        "backward_items_per_epoch": counters["encoder_items_backward"] / epochs,
        "forward_items_per_epoch": counters["encoder_items_forward"] / epochs,
        # Single-step GRAM ends a window at every step (runs before the window log counted them say 0).
        "windows_per_epoch": None if result["mode"] == "gram-1s" else windows.get("windows", 0) / epochs,
        "mean_window_steps": 1.0
        if result["mode"] == "gram-1s"
        else (windows["window_steps"] / windows["windows"] if windows.get("windows") else None),
        "epochs_run": result["epochs_run"],
        "best_epoch": result["best_epoch"],
        "train_seconds_total": result["train_seconds_total"],
        "drift_trace": result.get("drift_trace") or [],
    }


def fixed_front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The fixed intervals no other fixed interval beats on both axes (less or equal work and higher AUC), by work; first
    runs only (reruns with other training seeds measure the noise).
    """
    fixed = [p for p in points if p["mode"] in common.FIXED_INTERVAL_MODES and not p.get("rerun")]

    def dominated(p: dict[str, Any]) -> bool:
        return any(
            q is not p and q["backward_items_per_epoch"] <= p["backward_items_per_epoch"] and q["auc"] > p["auc"]
            for q in fixed
        )

    return sorted((p for p in fixed if not dominated(p)), key=lambda p: p["backward_items_per_epoch"])


def beats_front(candidate: dict[str, Any], points: list[dict[str, Any]]) -> bool:
    """Whether no fixed interval reaches both the candidate's AUC and its encoder work."""
    return not any(
        q["mode"] in common.FIXED_INTERVAL_MODES
        and not q.get("rerun")
        and q["backward_items_per_epoch"] <= candidate["backward_items_per_epoch"]
        and q["auc"] >= candidate["auc"]
        for q in points
    )


def noise(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run configuration with reruns: the spread of test AUC (and cold-start AUC) over its training seeds."""
    out = []
    for key in dict.fromkeys(p["key"] for p in points if p.get("rerun")):
        runs = [p for p in points if p["key"] == key]
        aucs = [p["auc"] for p in runs]
        row = {"label": key, "seeds": [p["seed"] for p in runs], "auc": aucs, "auc_range": max(aucs) - min(aucs)}
        colds = [p["cold_start_auc"] for p in runs if p["cold_start_auc"] is not None]
        if colds:
            row.update(cold_start_auc=colds, cold_start_auc_range=max(colds) - min(colds))
        out.append(row)
    return out


def verdicts(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    firsts = [p for p in points if not p.get("rerun")]
    by_mode = {p["mode"]: p for p in firsts if p["mode"] != "gram-auto"}
    single, epoch = by_mode.get("gram-1s"), by_mode.get("gram-1e")
    out = []
    for p in (p for p in firsts if p["mode"] == "gram-auto"):
        checks = {"above_front": beats_front(p, points)}
        if single:
            checks["auc_gap_to_1s"] = p["auc"] - single["auc"]
            checks["auc_within_target"] = checks["auc_gap_to_1s"] >= -TARGET_AUC_POINTS
            if p["cold_start_auc"] is not None and single["cold_start_auc"] is not None:
                checks["cold_gap_to_1s"] = p["cold_start_auc"] - single["cold_start_auc"]
                checks["cold_within_target"] = checks["cold_gap_to_1s"] >= -TARGET_COLD_POINTS
        if epoch and epoch["backward_items_per_epoch"]:
            checks["work_vs_1e"] = p["backward_items_per_epoch"] / epoch["backward_items_per_epoch"]
            checks["work_within_target"] = checks["work_vs_1e"] <= TARGET_WORK_RATIO
        out.append({"label": p["label"], "gram_auto_drift": p["gram_auto_drift"], **checks})
    return out


def render_markdown(payload: dict[str, Any]) -> str:
    front = {p["label"] for p in payload["front"]}
    rows = []
    for p in payload["points"]:
        cold = p["cold_start_auc"]
        rows.append([
            p["label"] + (" (front)" if p["label"] in front else ""),
            f"{p['auc']:.2f}",
            "-" if cold is None else f"{cold:.2f}",
            f"{p['backward_items_per_epoch']:,.0f}",
            f"{p['forward_items_per_epoch']:,.0f}",
            "every step" if p["windows_per_epoch"] is None else f"{p['windows_per_epoch']:.1f}",
            "-" if p["mean_window_steps"] is None else f"{p['mean_window_steps']:.1f}",
            f"{p['best_epoch']:g} / {p['epochs_run']}",
            common.fmt_seconds(p["train_seconds_total"]),
        ])  # fmt: skip
    lines = [
        f"### GRAM interval study: {payload['title']}",
        "",
        f"{payload['data_description']}. {payload['setup']}",
        "",
        common.markdown_table(
            [
                "Mode",
                "Test AUC",
                "Cold-start AUC",
                "Enc. fwd+bwd items/epoch",
                "Enc. no-grad items/epoch",
                "Windows/epoch",
                "Mean window (steps)",
                "Best epoch / run",
                "Train time",
            ],
            rows,
        ),  # fmt: skip
        "",
        "GRAM 1S equals E2E (docs/design.md invariant 1), so it stands for E2E here. Front = the fixed intervals no "
        "other fixed interval beats on both encoder work and test AUC.",
        "",
    ]
    for v in payload["verdicts"]:
        parts = [f"above the fixed front: {'yes' if v['above_front'] else 'no'}"]
        if "auc_gap_to_1s" in v:
            parts.append(
                f"AUC {v['auc_gap_to_1s']:+.2f} vs 1S (target >= -{TARGET_AUC_POINTS:g}: "
                f"{'met' if v['auc_within_target'] else 'missed'})"
            )
        if "cold_gap_to_1s" in v:
            parts.append(
                f"cold-start {v['cold_gap_to_1s']:+.2f} vs 1S (target >= -{TARGET_COLD_POINTS:g}: "
                f"{'met' if v['cold_within_target'] else 'missed'})"
            )
        if "work_vs_1e" in v:
            parts.append(
                f"work {v['work_vs_1e']:.2f}x GRAM 1E (target <= {TARGET_WORK_RATIO:g}x: "
                f"{'met' if v['work_within_target'] else 'missed'})"
            )
        lines.append(f"- {v['label']}: " + "; ".join(parts) + ".")
    if payload.get("noise"):
        lines += ["", "Run-to-run noise (the same data, other training seeds; test AUC x100):", ""]
        for row in payload["noise"]:
            cold = (
                f"; cold-start {', '.join(f'{v:.2f}' for v in row['cold_start_auc'])} (range "
                f"{row['cold_start_auc_range']:.2f})"
                if "cold_start_auc" in row
                else ""
            )
            lines.append(
                f"- {row['label']}, seeds {', '.join(map(str, row['seeds']))}: AUC "
                f"{', '.join(f'{v:.2f}' for v in row['auc'])} (range {row['auc_range']:.2f}){cold}."
            )
    lines += ["", "Sources: " + ", ".join(f"`{s}`" for s in payload["sources"]), ""]
    return "\n".join(lines)


def render_chart(payload: dict[str, Any], path: Path) -> None:
    plt = common.pyplot()
    traces = [p for p in payload["points"] if p["drift_trace"] and not p.get("rerun")]
    fig, axes = plt.subplots(1, 2 if traces else 1, figsize=(13 if traces else 7, 4.5), squeeze=False)
    axis = axes[0][0]
    fixed = [p for p in payload["points"] if p["mode"] in common.FIXED_INTERVAL_MODES and not p.get("rerun")]
    reruns = [p for p in payload["points"] if p.get("rerun")]
    front = payload["front"]
    axis.plot([p["backward_items_per_epoch"] for p in front], [p["auc"] for p in front], color="grey",
              linestyle="--", label="fixed-interval front")  # fmt: skip
    axis.scatter([p["backward_items_per_epoch"] for p in fixed], [p["auc"] for p in fixed], color="tab:blue",
                 label="fixed intervals")  # fmt: skip
    for p in fixed:
        axis.annotate(p["label"].removeprefix("GRAM "), (p["backward_items_per_epoch"], p["auc"]), fontsize=7,
                      xytext=(3, 3), textcoords="offset points")  # fmt: skip
    if reruns:
        axis.scatter([p["backward_items_per_epoch"] for p in reruns], [p["auc"] for p in reruns], color="grey",
                     marker="x", s=20, label="other training seeds (noise)")  # fmt: skip
    autos = [p for p in payload["points"] if p["mode"] == "gram-auto" and not p.get("rerun")]
    axis.scatter([p["backward_items_per_epoch"] for p in autos], [p["auc"] for p in autos], color="tab:red",
                 marker="*", s=90, label="auto (drift threshold)")  # fmt: skip
    for p in autos:
        axis.annotate(f"{p['gram_auto_drift']:g}", (p["backward_items_per_epoch"], p["auc"]), fontsize=7,
                      color="tab:red", xytext=(3, -9), textcoords="offset points")  # fmt: skip
    axis.set_xscale("log")
    axis.set_xlabel("encoder forward+backward items per epoch (log)")
    axis.set_ylabel("test AUC x100 (best validation epoch)")
    axis.set_title(f"{payload['title']}: quality vs encoder work", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    if traces:
        axis = axes[0][1]
        for p in traces:
            trace = p["drift_trace"]
            steps = [row[0] for row in trace]
            (line,) = axis.plot(steps, [row[1] for row in trace], linewidth=0.9, label=f"{p['label']}: systematic")
            if len(trace[0]) > 3:
                axis.plot(steps, [row[3] for row in trace], linewidth=0.6, linestyle=":", color=line.get_color(),
                          label="total")  # fmt: skip
            ends = [(row[0], row[1]) for row in trace if row[2]]
            axis.scatter([s for s, _ in ends], [d for _, d in ends], color=line.get_color(), s=8)
        axis.set_yscale("symlog", linthresh=1e-4)
        axis.set_xlabel("CF optimizer step")
        axis.set_ylabel("drift of the open window (dots: window ends)")
        axis.set_title("what the criterion sees: drift / ||H|| over touched items", fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build(sources: list[Path], title: str | None = None) -> dict[str, Any]:
    payloads = [json.loads(path.read_text()) for path in sources]
    tasks = {p["task"] for p in payloads}
    if len(tasks) != 1 or len({json.dumps(p["data_spec"], sort_keys=True) for p in payloads}) != 1:
        raise SystemExit("interval_front.py: the results must be of one task and one data shape.")
    points, seen = [], set()
    for payload in payloads:
        for result in payload["results"]:
            candidate = point(result, payload)
            # A noise run repeats the first seed of each mode: keep the first copy of a (run, seed).
            if (candidate["key"], candidate["seed"]) not in seen:
                seen.add((candidate["key"], candidate["seed"]))
                points.append(candidate)
    points.sort(key=lambda p: (p["mode"] == "gram-auto", p["backward_items_per_epoch"]))
    first = payloads[0]
    config = first["config"]
    setup = (
        f"Encoder {config['encoder']}, CF batch {first['batch_size']}, lr {config['learning_rate']:g} (CF) / "
        f"{config['encoder_learning_rate']:g} (encoder), window fits {first['window_encoder_fit']}, early stopping on "
        f"validation AUC (patience {config['patience']}, max {config['max_epochs']} epochs). Machine: "
        f"{common.hardware_line(first['environment'])}."
    )
    payload = {
        "benchmark": "interval_front",
        "task": next(iter(tasks)),
        "title": title or first["task"],
        "data_description": first["data_description"],
        "setup": setup,
        "sources": [str(path) for path in sources],
        "commands": sorted({p["environment"]["command"] for p in payloads}),
        "points": points,
        "front": fixed_front(points),
    }
    payload["verdicts"] = verdicts(points)
    payload["noise"] = noise(points)
    return payload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", type=Path, help="quality_<task>.json files of one task and data shape")
    parser.add_argument("--name", required=True, help="Output file stem, e.g. interval_kt_planted.")
    parser.add_argument("--title", default=None, help="Title of the table and plot (default: task and data).")
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    payload = build(args.sources, args.title)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    common.write_json(args.output_dir / f"{args.name}.json", payload)
    (args.output_dir / f"{args.name}.md").write_text(render_markdown(payload))
    render_chart(payload, args.output_dir / f"{args.name}.png")
    print(render_markdown(payload))
    if not math.isfinite(sum(p["auc"] for p in payload["points"])):
        print("interval_front.py: warning: a run has no finite test AUC", file=sys.stderr)


if __name__ == "__main__":
    main()
