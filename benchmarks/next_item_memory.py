"""
Peak memory and time of one training step of the next-item loss layer vs catalog size: full softmax cross-entropy
(`ce`, materialised logits), sampled softmax (`ce_sampled`, CE-), cut cross-entropy (`cce`, gram-hf's streaming
PyTorch implementation) and its sampled variant (`cce_sampled`, CCE-); on CUDA with the `cut-cross-entropy` package
installed also its kernel (`cce_kernel`).

A step is the forward and backward pass of the loss on SASRec-shaped inputs: hidden states `[batch, seq, dim]` and
catalog vectors `[num_items, dim]`, both requiring gradients (the catalog is the tied output layer), with ~10% padded
positions. The sequence model itself is the same for every loss and independent of the catalog size, so it is left
out. Peak memory is measured above the inputs: on CPU each (loss, catalog size) runs in a fresh process and the peak
is the process's maximum resident set size minus its resident size once the inputs exist; on CUDA it is
`max_memory_allocated` minus the allocation before the step. Both include the gradients (the catalog's gradient,
`num_items x dim`, is the same for every loss). Time is the median of the timed steps after a warm-up step.

    python benchmarks/next_item_memory.py                      # CPU: batch 16 x seq 32, dim 64, 10k/100k/1M items
    python benchmarks/next_item_memory.py --device cuda --batch 256 --seq 100   # a GPU, SASRec's batch

Writes `benchmarks/results/<cpu|gpu>/next_item_memory.{json,md,png}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gram_hf.tasks.next_item import (
    NEGATIVE_SHARING,
    cut_cross_entropy_available,
    linear_cross_entropy,
    sampled_cross_entropy,
    sampled_linear_cross_entropy,
)

METHODS = ("ce", "ce_sampled", "cce", "cce_sampled")
SHARING_WORDS = {
    "position": "per position",
    "sequence": "per sequence, shared by its positions",
    "batch": "shared by every position of the batch",
}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def make_inputs(args: argparse.Namespace, num_items: int, device: torch.device):
    generator = torch.Generator(device="cpu").manual_seed(0)
    hidden = torch.randn(args.batch, args.seq, args.dim, generator=generator).to(device).requires_grad_()
    catalog = torch.randn(num_items, args.dim, generator=generator).mul_(0.1).to(device).requires_grad_()
    targets = torch.randint(0, num_items, (args.batch, args.seq), generator=generator)
    targets[torch.rand(args.batch, args.seq, generator=generator) < 0.1] = -100
    # A set of K items per position, per sequence or per batch (the program's --negative_sharing).
    leading = {"position": (args.batch, args.seq), "sequence": (args.batch,), "batch": ()}[args.negative_sharing]
    shape = (*leading, args.num_negatives)
    negatives = torch.randint(0, num_items, shape, generator=generator)
    return hidden, catalog, targets.to(device), negatives.to(device)


def loss_step(method: str, hidden, catalog, targets, negatives, block_size: int | None) -> float:
    """One forward + backward of `method`; returns the loss value."""
    if method == "ce":
        valid = targets != -100
        loss = F.cross_entropy((hidden[valid] @ catalog.T).float(), targets[valid])
    elif method == "cce":
        loss = linear_cross_entropy(hidden, catalog, targets, block_size=block_size, impl="torch")
    elif method == "cce_kernel":
        loss = linear_cross_entropy(hidden, catalog, targets, impl="cce")
    elif method == "ce_sampled":
        loss = sampled_cross_entropy(hidden, catalog, targets, negatives)
    elif method == "cce_sampled":
        loss = sampled_linear_cross_entropy(hidden, catalog, targets, negatives, block_size=block_size)
    else:
        raise ValueError(f"unknown method {method!r}")
    loss.backward()
    return float(loss.detach())


def uses_bf16(args: argparse.Namespace) -> bool:
    """Whether the step runs under bf16 autocast: with `--bf16`, and always for the kernel, whose backward needs it."""
    return bool(args.bf16) or args.method == "cce_kernel"


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(args: argparse.Namespace) -> dict:
    """Measures one (method, num_items) in this process and returns the result."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    hidden, catalog, targets, negatives = make_inputs(args, args.num_items, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        baseline = rss_bytes()
    times, value = [], None
    for step in range(1 + args.repeats):
        hidden.grad = catalog.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(args)):
            value = loss_step(args.method, hidden, catalog, targets, negatives, args.block_size)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:  # the first step warms up allocator and thread pools
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - baseline
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    return {
        "method": args.method,
        "num_items": args.num_items,
        "status": "ok",
        "peak_mib": peak / 2**20,
        "time_ms": 1000 * statistics.median(times),
        "times_ms": [1000 * t for t in times],
        "loss": value,
    }


def estimated_ce_bytes(args: argparse.Namespace, num_items: int) -> int:
    # logits, their log-softmax and the gradient of the logits: ~3 fp32 copies of [N, V] at the peak
    return 3 * 4 * args.batch * args.seq * num_items


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free
    with open("/proc/meminfo") as handle:
        info = dict(line.split(":", 1) for line in handle)
    return int(info["MemAvailable"].split()[0]) * 1024


def hardware(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    info = {"cpu": cpu, "cpu_cores": os.cpu_count(), "memory_gib": round(memory_gib, 1)}
    info["platform"] = platform.platform()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return info


def versions() -> dict:
    import numpy

    import gram_hf

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "gram_hf": gram_hf.__version__,
        "cut_cross_entropy": cut_cross_entropy_available(),
    }


def run_all(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    methods = list(args.methods)
    if device.type == "cuda" and cut_cross_entropy_available() and "cce_kernel" not in methods:
        methods.append("cce_kernel")
    results = []
    for num_items in args.items:
        for method in methods:
            if method == "ce" and estimated_ce_bytes(args, num_items) > 0.8 * available_bytes(device):
                need = estimated_ce_bytes(args, num_items) / 2**30
                results.append({"method": method, "num_items": num_items, "status": f"skipped: needs ~{need:.1f} GiB"})
                print(f"{method:12s} {num_items:>9,d} items: skipped (needs ~{need:.1f} GiB)", flush=True)
                continue
            command = [
                sys.executable,
                __file__,
                "--worker",
                "--method",
                method,
                "--num-items",
                str(num_items),
                *forwarded(args),
            ]
            completed = subprocess.run(command, capture_output=True, text=True, env=worker_environment())
            if completed.returncode != 0:
                tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:]
                status = f"failed (exit {completed.returncode}): {' '.join(tail)}"
                results.append({"method": method, "num_items": num_items, "status": status})
                print(f"{method:12s} {num_items:>9,d} items: {status}", flush=True)
                continue
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            results.append(result)
            print(
                f"{method:12s} {num_items:>9,d} items: peak {result['peak_mib']:9.1f} MiB, "
                f"{result['time_ms']:9.1f} ms/step",
                flush=True,
            )
    return {
        "command": " ".join(
            [os.path.relpath(sys.argv[0]) if os.path.exists(sys.argv[0]) else sys.argv[0], *sys.argv[1:]]
        ),
        "versions": versions(),
        "hardware": hardware(device),
        "settings": {
            "device": args.device,
            "batch": args.batch,
            "seq": args.seq,
            "positions": args.batch * args.seq,
            "dim": args.dim,
            "num_negatives": args.num_negatives,
            "negative_sharing": args.negative_sharing,
            "repeats": args.repeats,
            "threads": args.threads or torch.get_num_threads(),
            "block_size": args.block_size or "auto",
            "bf16": bool(args.bf16),
            "padding": "~10% of positions ignored",
        },
        "results": results,
        "summary": summary(results),
    }


def worker_environment() -> dict[str, str]:
    # glibc raises its mmap threshold after large blocks are freed, after which freed tensors of up to 32 MiB stay in
    # the heap and the resident size drifts up with every step; a fixed threshold returns every tensor above 128 KiB
    # to the system when freed, so the maximum resident size measures live tensors.
    return {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def forwarded(args: argparse.Namespace) -> list[str]:
    values = [
        "--device",
        args.device,
        "--batch",
        str(args.batch),
        "--seq",
        str(args.seq),
        "--dim",
        str(args.dim),
        "--num-negatives",
        str(args.num_negatives),
        "--repeats",
        str(args.repeats),
    ]
    if args.threads:
        values += ["--threads", str(args.threads)]
    if args.bf16:
        values.append("--bf16")
    if args.negative_sharing != "position":
        values += ["--negative-sharing", args.negative_sharing]
    if args.block_size:
        values += ["--block-size", str(args.block_size)]
    return values


def negative_sharing(settings: dict) -> str:
    """The settings' negative sharing; reports before `--negative-sharing` had a `shared_negatives` flag."""
    return settings.get("negative_sharing") or ("batch" if settings.get("shared_negatives") else "position")


def summary(results: list[dict]) -> dict:
    """Per catalog size, `ce` / `cce` memory and time ratios (where `ce` ran)."""
    by_key = {(r["method"], r["num_items"]): r for r in results if r["status"] == "ok"}
    out = {}
    for num_items in sorted({r["num_items"] for r in results}):
        ce, cce = by_key.get(("ce", num_items)), by_key.get(("cce", num_items))
        entry = {}
        if ce and cce:
            entry["memory_ratio_ce_over_cce"] = ce["peak_mib"] / max(cce["peak_mib"], 1e-9)
            entry["time_ratio_cce_over_ce"] = cce["time_ms"] / ce["time_ms"]
        sampled, streamed = by_key.get(("ce_sampled", num_items)), by_key.get(("cce_sampled", num_items))
        if sampled and streamed:
            entry["memory_ratio_ce_sampled_over_cce_sampled"] = sampled["peak_mib"] / max(streamed["peak_mib"], 1e-9)
            entry["time_ratio_cce_sampled_over_ce_sampled"] = streamed["time_ms"] / sampled["time_ms"]
        out[str(num_items)] = entry
    return out


def markdown(report: dict) -> str:
    settings = report["settings"]
    order = [*METHODS, "cce_kernel"]
    methods = sorted({r["method"] for r in report["results"]}, key=order.index)
    lines = [
        "# Next-item loss: peak memory and time per training step vs catalog size",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Device: {settings['device']} ({report['hardware'].get('gpu', report['hardware']['cpu'])}, "
        f"{report['hardware']['cpu_cores']} cores, {settings['threads']} torch threads); torch "
        f"{report['versions']['torch']}.",
        f"Step = forward + backward of the loss on hidden states [{settings['batch']} x {settings['seq']} x "
        f"{settings['dim']}] ({settings['positions']} positions, ~10% padding) and catalog vectors [V x "
        f"{settings['dim']}], both with gradients, "
        + (
            "under bf16 autocast"
            if settings.get("bf16")
            else "in fp32 (cce_kernel: under bf16 autocast, which its backward needs)"
        )
        + f"; sampled losses use {settings['num_negatives']} negatives "
        + SHARING_WORDS[negative_sharing(settings)]
        + ". Peak memory is above the inputs and includes the gradients; the catalog's gradient alone, the "
        "same for every loss, is a floor of "
        + ", ".join(
            f"{num_items * settings['dim'] * 4 / 2**20:.1f} MiB"
            for num_items in sorted({r["num_items"] for r in report["results"]})
        )
        + ".",
        "",
        "| items | " + " | ".join(f"{m} peak MiB | {m} ms/step" for m in methods) + " |",
        "|---:|" + "---:|---:|" * len(methods),
    ]
    by_key = {(r["method"], r["num_items"]): r for r in report["results"]}
    for num_items in sorted({r["num_items"] for r in report["results"]}):
        cells = []
        for method in methods:
            result = by_key.get((method, num_items))
            if result is None or result["status"] != "ok":
                cells += [result["status"] if result else "-", "-"]
            else:
                cells += [f"{result['peak_mib']:.1f}", f"{result['time_ms']:.1f}"]
        lines.append(f"| {num_items:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| items | ce / cce peak memory | cce / ce time | ce_sampled / cce_sampled peak memory | "
        "cce_sampled / ce_sampled time |",
        "|---:|---:|---:|---:|---:|",
    ]
    keys = (
        "memory_ratio_ce_over_cce",
        "time_ratio_cce_over_ce",
        "memory_ratio_ce_sampled_over_cce_sampled",
        "time_ratio_cce_sampled_over_ce_sampled",
    )
    for num_items, entry in report["summary"].items():
        cells = [f"{entry[key]:.2f}x" if key in entry else "-" for key in keys]
        lines.append(f"| {int(num_items):,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory_axis, time_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    methods = sorted({r["method"] for r in report["results"]})
    for method in methods:
        rows = sorted(
            (r for r in report["results"] if r["method"] == method and r["status"] == "ok"),
            key=lambda r: r["num_items"],
        )
        if not rows:
            continue
        items = [r["num_items"] for r in rows]
        memory_axis.plot(items, [max(r["peak_mib"], 1e-1) for r in rows], marker="o", label=method)
        time_axis.plot(items, [r["time_ms"] for r in rows], marker="o", label=method)
    settings = report["settings"]
    for axis, label in ((memory_axis, "peak memory above inputs (MiB)"), (time_axis, "time per step (ms)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("catalog size (items)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle(
        f"Next-item loss step, {settings['device']}: {settings['positions']} positions, "
        f"dim {settings['dim']}, {settings['num_negatives']} negatives"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=[*METHODS, "cce_kernel"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=16, help="sequences per batch (SASRec: 128-256 on a GPU)")
    parser.add_argument("--seq", type=int, default=32, help="positions per sequence (SASRec: 50-200)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--num-negatives", type=int, default=256, help="negatives per position of the sampled losses")
    parser.add_argument(
        "--negative-sharing",
        default="position",
        choices=list(NEGATIVE_SHARING),
        help="the sampled losses draw --num-negatives items per position, one set per sequence, or one set that "
        "every position of the batch scores",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--block-size", type=int, default=None, help="block size of the streaming losses")
    parser.add_argument(
        "--bf16", action="store_true", help="every loss under bf16 autocast, as --bf16 training (cce_kernel: always)"
    )
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--num-items", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    report = run_all(args)
    output_dir = args.output_dir or RESULTS_DIR / ("gpu" if args.device.startswith("cuda") else "cpu")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "next_item_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    (output_dir / "next_item_memory.md").write_text(markdown(report))
    plot(report, output_dir / "next_item_memory.png")
    print(markdown(report))
    print(f"Wrote {output_dir}/next_item_memory.{{json,md,png}}")


if __name__ == "__main__":
    main()
