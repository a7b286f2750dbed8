"""
Inference with a trained model: catalog encoding, scoring throughput per task, and `top_k` retrieval at catalog scale.

Three sections (`--sections`):

- `encoding`: the catalog encoded by the default MiniLM (items/s, eval mode, length-sorted batches), then 1% new items
  added with `GramRecommender.add_items` (the counters show the encoder work: it should be 1% of the full encode),
  and a second recommender over the same model folder served from the item-vector cache (0 items encoded).
- `scoring`: throughput of `predict_response` (knowledge tracing, learners/s), `score` (news, impressions/s) and
  `top_k` (next-item, users/s over a 100k-item catalog) with MiniLM-sized models; untrained heads (speed does not
  depend on the weights).
- `retrieval`: `top_k` for a batch of 256 users over 100k and 1M items at dim 64 and 384: one `torch.topk(users @
  items.T)` (where the score matrix fits `--max-full-gib`), gram-hf's exact blockwise search (`exact_top_k`), and the
  approximate indexes (FAISS IVF-Flat and HNSW, usearch HNSW), each tuned on separate queries to the cheapest setting
  with recall@10 >= 0.95 against exact search, then measured on the benchmark's queries. Items are synthetic
  clustered vectors (1,000 Gaussian clusters, noise as large as the spread of the centres, norms varying by 20%) —
  harder for an index than well-separated clusters, and no real catalog was encoded at 1M items here.

    python benchmarks/inference.py                                  # everything, this CPU
    python benchmarks/inference.py --device cuda --sections retrieval encoding

Writes `benchmarks/results/<device>/inference.{json,md,png}`.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    PeakRSSSampler,
    add_common_arguments,
    environment_info,
    fmt_bytes,
    hardware_line,
    markdown_table,
    pyplot,
    results_dir,
    write_json,
)

BACKENDS = ("faiss-ivf", "faiss-hnsw", "usearch-hnsw")
TARGET_RECALL = 0.95


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device: torch.device, repeats: int = 3) -> tuple[float, Any]:
    """Median seconds of `repeats` calls after a warm-up call, and the last result."""
    result = function()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


class PeakMemory:
    """Peak memory above the start of the block: CUDA's allocator on a GPU, the process's RSS on a CPU (sampled)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._sampler = PeakRSSSampler(interval=0.01).__enter__()
            self._base = self._sampler._process.memory_info().rss
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._sampler.__exit__(*exc)
            self.peak = max(self._sampler.peak - self._base, 0)


# --------------------------------------------------------------------------------------------------- retrieval


def clustered_vectors(num_items: int, dim: int, num_queries: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Items and two query sets (tuning, measuring) from 1,000 Gaussian clusters; float32 on CPU."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(1000, dim, generator=generator)
    items = torch.empty(num_items, dim)
    for start in range(0, num_items, 1 << 18):
        stop = min(start + (1 << 18), num_items)
        chunk = centres[torch.randint(0, 1000, (stop - start,), generator=generator)]
        chunk += torch.randn(stop - start, dim, generator=generator)
        chunk *= (1 + 0.2 * torch.rand(stop - start, 1, generator=generator)) / chunk.norm(dim=1, keepdim=True)
        items[start:stop] = chunk
    queries = [
        centres[torch.randint(0, 1000, (num_queries,), generator=generator)]
        + torch.randn(num_queries, dim, generator=generator)
        for _ in range(2)
    ]
    return items, queries[0], queries[1]


def recall_at(found: torch.Tensor, exact: torch.Tensor) -> float:
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, exact))
    return hits / exact.numel()


def build_backend(name: str, items: torch.Tensor):
    """The index and the knob that trades recall for speed: (index, search(queries, k, knob), knob values)."""
    import numpy as np

    data = np.ascontiguousarray(items.numpy(), dtype=np.float32)
    num_items, dim = data.shape
    if name.startswith("faiss"):
        import faiss

        if name == "faiss-ivf":
            nlist = int(math.sqrt(num_items))  # faiss: 4-16 sqrt(V) lists; sqrt(V) keeps training cheap on a CPU
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(0).choice(num_items, min(num_items, 64 * nlist), replace=False)
            index.train(data[sample])
            index.add(data)

            def search(queries, k, knob):
                index.nprobe = knob
                return index.search(queries, k)[1]

            return index, search, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        index.add(data)

        def search(queries, k, knob):
            index.hnsw.efSearch = knob
            return index.search(queries, k)[1]

        return index, search, [16, 32, 64, 128, 256, 512, 1024]
    from usearch.index import Index

    index = Index(ndim=dim, metric="ip", dtype="f32", connectivity=32, expansion_add=64)
    index.add(np.arange(num_items), data)

    def search(queries, k, knob):
        index.expansion_search = knob
        return index.search(queries, k).keys

    return index, search, [16, 32, 64, 128, 256, 512, 1024]


def backend_available(name: str) -> bool:
    try:
        __import__("faiss" if name.startswith("faiss") else "usearch")
    except ImportError:
        return False
    return True


def retrieval_row(args: argparse.Namespace, device: torch.device, num_items: int, dim: int) -> dict[str, Any]:
    from gram_hf import exact_top_k

    items, tuning, queries = clustered_vectors(num_items, dim, args.users, args.seed)
    device_items, device_queries = items.to(device), queries.to(device)
    row: dict[str, Any] = {"items": num_items, "dim": dim, "users": args.users, "k": args.k}
    row["full_score_bytes"] = full_bytes = args.users * num_items * 4
    exact = None
    row["full_topk"] = None
    if full_bytes <= args.max_full_gib * 2**30:
        with PeakMemory(device) as memory:
            seconds, full = timed(lambda: torch.topk(device_queries @ device_items.T, args.k, dim=1), device)
        row["full_topk"] = {"seconds": seconds, "peak_bytes": memory.peak}
        exact = full.indices.cpu()
        del full
    with PeakMemory(device) as memory:
        seconds, (_, blockwise) = timed(lambda: exact_top_k(device_queries, device_items, args.k), device)
    row["exact_blockwise"] = {"seconds": seconds, "peak_bytes": memory.peak}
    blockwise = blockwise.cpu()
    if exact is not None:
        row["exact_blockwise"]["same_as_full"] = recall_at(blockwise, exact)
        row["blockwise_vs_full"] = row["exact_blockwise"]["seconds"] / row["full_topk"]["seconds"]
    _, tuning_exact = exact_top_k(tuning.to(device), device_items, args.k)
    tuning_exact = tuning_exact.cpu()
    row["indexes"] = {}
    for backend in args.backends:
        too_big = num_items * dim > args.max_index_cells and backend != "faiss-ivf"
        if backend_available(backend) and not too_big:
            row["indexes"][backend] = index_row(args, backend, items, tuning, tuning_exact, queries, blockwise)
            row["indexes"][backend]["speedup_vs_exact"] = (
                row["exact_blockwise"]["seconds"] / row["indexes"][backend]["seconds"]
            )
            print(f"  {num_items:,} x {dim} {backend}: {row['indexes'][backend]}", flush=True)
    return row


def index_row(args, backend, items, tuning, tuning_exact, queries, exact) -> dict[str, Any]:
    """Build, tune (cheapest setting with recall >= target on the tuning queries), measure on the queries."""
    start = time.perf_counter()
    index, search, knobs = build_backend(backend, items)
    build = time.perf_counter() - start
    chosen = knobs[-1]
    for knob in knobs:
        found = torch.as_tensor(search(tuning.numpy(), args.k, knob)).long()
        if recall_at(found, tuning_exact) >= TARGET_RECALL:
            chosen = knob
            break
    seconds, found = timed(lambda: search(queries.numpy(), args.k, chosen), torch.device("cpu"), args.repeats)
    del index
    gc.collect()
    return {
        "build_seconds": build,
        "knob": chosen,
        "seconds": seconds,
        "recall@10": recall_at(torch.as_tensor(found).long(), exact),
    }


def retrieval_rows(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    rows = []
    for num_items in args.items:
        for dim in args.dims:
            rows.append(retrieval_row(args, device, num_items, dim))
            print(f"retrieval {num_items:,} x {dim}: {rows[-1]}", flush=True)
            gc.collect()
    return rows


# ------------------------------------------------------------------------------------------ encoding, scoring


def synthetic_texts(count: int, seed: int, prefix: str = "item") -> list[str]:
    generator = torch.Generator().manual_seed(seed)
    words = [f"w{i}" for i in range(5000)]
    lengths = torch.randint(8, 40, (count,), generator=generator).tolist()
    picks = torch.randint(0, len(words), (sum(lengths),), generator=generator).tolist()
    texts, position = [], 0
    for number, length in enumerate(lengths):
        texts.append(f"{prefix} {number} " + " ".join(words[i] for i in picks[position : position + length]))
        position += length
    return texts


def saved_model(head_type: str, folder: Path, head_config: dict | None = None, **kwargs: Any) -> Path:
    """A MiniLM model with an untrained head, saved with its tokenizer (what a program leaves)."""
    from transformers import AutoTokenizer

    from gram_hf import GramModel, default_encoder_path

    torch.manual_seed(0)
    model = GramModel.from_encoder_pretrained(head_type=head_type, head_config=head_config, **kwargs)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(default_encoder_path()).save_pretrained(folder)
    return folder


def encoding_rows(args: argparse.Namespace, device: torch.device, workdir: Path) -> dict[str, Any]:
    from gram_hf import GramRecommender

    folder = saved_model("next_item", workdir / "encoding_model", head_config={"max_length": 50})
    ids = [f"i{n}" for n in range(args.catalog)]
    items = {"item_id": ids, "text": synthetic_texts(args.catalog, args.seed)}
    start = time.perf_counter()
    recommender = GramRecommender.from_pretrained(folder, items=items, device=device, show_progress=False,
                                                  catalog_settings={"max_length": 64})  # fmt: skip
    synchronize(device)
    full_seconds = time.perf_counter() - start
    full = dict(recommender.counters)
    added = max(1, args.catalog // 100)
    start = time.perf_counter()
    recommender.add_items([f"new{n}" for n in range(added)], synthetic_texts(added, args.seed + 1, "new"))
    synchronize(device)
    add_seconds = time.perf_counter() - start
    after = dict(recommender.counters)
    start = time.perf_counter()
    cached = GramRecommender.from_pretrained(folder, items={"item_id": recommender.item_ids,
                                                           "text": recommender.catalog._texts},
                                             device=device, show_progress=False,
                                             catalog_settings={"max_length": 64})  # fmt: skip
    cached_seconds = time.perf_counter() - start
    return {
        "catalog": args.catalog,
        "full_seconds": full_seconds,
        "items_per_second": args.catalog / full_seconds,
        "full_counters": full,
        "added": added,
        "add_seconds": add_seconds,
        "add_items_encoded": after["items_encoded"] - full["items_encoded"],
        "add_tokens_encoded": after["tokens_encoded"] - full["tokens_encoded"],
        "add_fraction_of_full_items": (after["items_encoded"] - full["items_encoded"]) / full["items_encoded"],
        "add_fraction_of_full_tokens": (after["tokens_encoded"] - full["tokens_encoded"]) / full["tokens_encoded"],
        "cached_load_seconds": cached_seconds,
        "cached_items_encoded": cached.counters["items_encoded"],
    }


def scoring_rows(args: argparse.Namespace, device: torch.device, workdir: Path) -> list[dict[str, Any]]:
    from gram_hf import GramModel, GramRecommender

    generator = torch.Generator().manual_seed(args.seed)
    catalog = min(args.catalog, 2000)
    ids = [f"i{n}" for n in range(catalog)]
    items = {"item_id": ids, "text": synthetic_texts(catalog, args.seed)}
    rows = []

    def pick(count: int) -> list[str]:
        return [ids[i] for i in torch.randint(0, catalog, (count,), generator=generator).tolist()]

    kt = GramRecommender.from_pretrained(saved_model("knowledge_tracing", workdir / "kt_model"), items=items,
                                         device=device, show_progress=False, batch_size=256)  # fmt: skip
    histories = [[(item, int(r)) for item, r in zip(pick(50), torch.randint(0, 2, (50,)).tolist())]
                 for _ in range(args.users)]  # fmt: skip
    next_items = [pick(1) for _ in range(args.users)]
    seconds, _ = timed(lambda: kt.predict_response(histories, next_items), device, repeats=args.repeats)
    rows.append({"task": "knowledge_tracing", "what": "learners (history 50, 1 next question)",
                 "count": args.users, "seconds": seconds, "per_second": args.users / seconds})  # fmt: skip

    news = GramRecommender.from_pretrained(saved_model("news_recommendation", workdir / "news_model",
                                                       pooling="attention"),
                                           items=items, device=device, show_progress=False)  # fmt: skip
    clicks = [pick(50) for _ in range(args.users)]
    shown = [pick(20) for _ in range(args.users)]
    seconds, _ = timed(lambda: news.score(clicks, shown), device, repeats=args.repeats)
    rows.append({"task": "news_recommendation", "what": "impressions (history 50, 20 candidates)",
                 "count": args.users, "seconds": seconds, "per_second": args.users / seconds})  # fmt: skip

    # Next-item over a 100k-item catalog: an item-ID model (no text to encode for 100k items on a CPU); the
    # user encoder and the search are what a content model runs too once its catalog is encoded.
    num_items = args.next_item_catalog
    torch.manual_seed(0)
    model = GramModel.for_item_ids(num_items, 64, head_type="next_item", head_config={"max_length": 50})
    catalog_ids = [f"m{n}" for n in range(num_items)]
    next_item = GramRecommender(model, catalog_ids, device=device, show_progress=False)
    users = [[catalog_ids[i] for i in torch.randint(0, num_items, (50,), generator=generator).tolist()]
             for _ in range(args.users)]  # fmt: skip
    seconds, _ = timed(lambda: next_item.top_k(users, k=10), device, repeats=args.repeats)
    rows.append({"task": "next_item", "what": f"users (history 50, top 10 of {num_items:,} items, exact)",
                 "count": args.users, "seconds": seconds, "per_second": args.users / seconds})  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------------ report


def write_report(payload: dict[str, Any], folder: Path) -> None:
    lines = ["### Inference: catalog encoding, scoring throughput, top-k retrieval", ""]
    env = payload["environment"]
    load = env.get("load_average") or [float("nan")]
    lines.append(
        f"Machine: {hardware_line(env)}; 1-minute load average {load[0]:.1f} at the start (a shared machine: times "
        f"are noisy, ratios within a row less so). Command: `{env['command']}` (gram-hf {env.get('git_commit')})."
    )
    lines.append("")
    encoding = payload.get("encoding")
    if encoding:
        lines += [
            "**Catalog encoding** (default MiniLM, texts of 10-42 words, `max_length` 64): "
            f"{encoding['catalog']:,} items in {encoding['full_seconds']:.1f} s = "
            f"{encoding['items_per_second']:,.0f} items/s. Adding {encoding['added']:,} new items (1%): "
            f"{encoding['add_items_encoded']:,} items and {encoding['add_fraction_of_full_tokens']:.2%} of the full "
            f"encode's tokens encoded ({encoding['add_fraction_of_full_items']:.2%} of its items), "
            f"{encoding['add_seconds']:.2f} s. A second recommender on the same model folder: "
            f"{encoding['cached_items_encoded']} items encoded (item-vector cache), "
            f"{encoding['cached_load_seconds']:.1f} s.",
            "",
        ]
    scoring = payload.get("scoring")
    if scoring:
        table = [
            [
                row["task"],
                row["what"],
                f"{row['count']:,}",
                f"{row['seconds'] * 1000:,.0f} ms",
                f"{row['per_second']:,.0f}/s",
            ]
            for row in scoring
        ]
        lines += ["**Scoring throughput** (batches of 256, MiniLM-sized models):", ""]
        lines += [markdown_table(["Task", "Unit", "Count", "Time", "Throughput"], table), ""]
    retrieval = payload.get("retrieval")
    if retrieval:
        lines += [
            f"**top_k retrieval** for {retrieval[0]['users']} users, k = {retrieval[0]['k']}. Full = one "
            "`torch.topk(users @ items.T)`; blockwise = `exact_top_k` (scores of at most 16M entries at once); "
            "memory = peak above the inputs. Indexes: tuned on separate queries to the cheapest setting with "
            f"recall@10 >= {TARGET_RECALL}, recall measured on the benchmark's queries against exact search.",
            "",
        ]
        table = []
        for row in retrieval:
            full = row["full_topk"]
            full_cell = (
                f"{full['seconds'] * 1000:,.0f} ms, {fmt_bytes(full['peak_bytes'])}"
                if full
                else f"does not fit ({fmt_bytes(row['full_score_bytes'])} of scores)"
            )
            blockwise = row["exact_blockwise"]
            ratio = f"{row['blockwise_vs_full']:.2f}x" if "blockwise_vs_full" in row else "n/a"
            best = None
            for name, index in row["indexes"].items():
                if index["recall@10"] >= TARGET_RECALL and (best is None or index["seconds"] < best[1]["seconds"]):
                    best = (name, index)
            index_cells = "; ".join(
                f"{name}: {index['seconds'] * 1000:,.1f} ms, recall {index['recall@10']:.3f}, "
                f"{index['speedup_vs_exact']:.0f}x, build {index['build_seconds']:.0f} s"
                for name, index in row["indexes"].items()
            )
            table.append(
                [
                    f"{row['items']:,}",
                    row["dim"],
                    full_cell,
                    f"{blockwise['seconds'] * 1000:,.0f} ms, {fmt_bytes(blockwise['peak_bytes'])}",
                    ratio,
                    index_cells or "n/a",
                    best[0] if best else "none",
                ]
            )
        lines += [
            markdown_table(
                [
                    "Items",
                    "Dim",
                    "Full topk",
                    "Blockwise exact",
                    "Blockwise / full (<= 2x)",
                    "Indexes",
                    f"Fastest at recall >= {TARGET_RECALL}",
                ],
                table,
            ),
            "",
        ]
    (folder / "inference.md").write_text("\n".join(lines) + "\n")


def plot(payload: dict[str, Any], folder: Path) -> None:
    retrieval = payload.get("retrieval")
    if not retrieval:
        return
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in retrieval:
        label = f"{row['items'] // 1000:,}k x {row['dim']}"
        points = [("blockwise", row["exact_blockwise"]["seconds"], 1.0)]
        points += [(name, index["seconds"], index["recall@10"]) for name, index in row["indexes"].items()]
        axis.scatter([p[1] * 1000 for p in points], [p[2] for p in points], label=label)
        for name, seconds, recall in points:
            axis.annotate(name, (seconds * 1000, recall), fontsize=7)
    axis.set_xscale("log")
    axis.set_xlabel("ms for 256 users (log)")
    axis.set_ylabel("recall@10 against exact")
    axis.axhline(TARGET_RECALL, linestyle=":", color="grey")
    axis.legend(fontsize=8)
    axis.set_title("top_k: exact blockwise search and approximate indexes")
    figure.tight_layout()
    figure.savefig(folder / "inference.png", dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--sections", nargs="+", default=["encoding", "scoring", "retrieval"],
                        choices=["encoding", "scoring", "retrieval"])  # fmt: skip
    parser.add_argument("--items", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--dims", nargs="+", type=int, default=[64, 384])
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--catalog", type=int, default=5000, help="Items encoded by MiniLM in `encoding`.")
    parser.add_argument("--next-item-catalog", type=int, default=100_000)
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS), choices=BACKENDS,
                        help="Approximate indexes to measure (installed ones; none: exact search only).")  # fmt: skip
    parser.add_argument("--max-full-gib", type=float, default=4.0, help="Largest full score matrix tried.")
    parser.add_argument("--max-index-cells", type=float, default=2e8,
                        help="Above items x dim, only faiss-ivf is built (graph builds take long).")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--update", action="store_true", help="Keep the sections of an earlier result not rerun.")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    folder = results_dir(args)
    folder.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {}
    if args.update and (folder / "inference.json").is_file():
        import json

        payload = json.loads((folder / "inference.json").read_text())
    payload["environment"] = environment_info(args.device, args.threads)
    with tempfile.TemporaryDirectory(dir=args.workdir if Path(args.workdir).is_dir() else None) as workdir:
        workdir = Path(workdir)
        if "encoding" in args.sections:
            payload["encoding"] = encoding_rows(args, device, workdir)
            print("encoding:", payload["encoding"], flush=True)
        if "scoring" in args.sections:
            payload["scoring"] = scoring_rows(args, device, workdir)
            print("scoring:", payload["scoring"], flush=True)
    if "retrieval" in args.sections:
        payload["retrieval"] = retrieval_rows(args, device)
    write_json(folder / "inference.json", payload)
    write_report(payload, folder)
    plot(payload, folder)
    print(f"Wrote {folder / 'inference.md'}")


if __name__ == "__main__":
    main()
