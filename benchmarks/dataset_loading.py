"""
Times a knowledge-tracing loader on a synthetic raw dataset at the paper's scale (default: Duolingo Spanish, scale
1.0 = 2,643 learners, 4,628 sentences, 279,747 exercises). Prints learners, interactions, items and seconds for the
first load (parsing the raw files) and the second (served from the `datasets` cache).

    python benchmarks/dataset_loading.py
    python benchmarks/dataset_loading.py --dataset poj --scale 0.1
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402

from gram_hf.tasks.knowledge_tracing import (  # noqa: E402
    load_duolingo,
    load_ednet,
    load_kt_csv,
    load_poj,
    write_synthetic_duolingo,
    write_synthetic_ednet,
    write_synthetic_kt_csv,
    write_synthetic_poj,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="duolingo", choices=["duolingo", "ednet", "poj", "kt_csv"])
    parser.add_argument("--preset", default=None, help="en_es, fr_en, poj or toeic (default: the dataset's own).")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="Where to write the raw files and the cache (default: temp).")
    args = parser.parse_args()
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        raw, cache = os.path.join(workdir, "raw"), os.path.join(workdir, "cache")
        start = time.perf_counter()
        if args.dataset == "duolingo":
            truth = write_synthetic_duolingo(raw, args.preset or "en_es", args.scale, args.seed)
            load = lambda: load_duolingo(raw, truth.files["track"], cache_dir=cache)  # noqa: E731
        elif args.dataset == "ednet":
            truth = write_synthetic_ednet(raw, args.preset or "toeic", args.scale, args.seed)
            load = lambda: load_ednet(  # noqa: E731
                truth.files["kt1_dir"],
                truth.files["questions_csv"],
                truth.files["item_text"],
                cache_dir=cache,
                cold_start_items=truth.cold_start_items,
            )
        elif args.dataset == "poj":
            truth = write_synthetic_poj(raw, args.preset or "poj", args.scale, args.seed)
            load = lambda: load_poj(truth.files["log_csv"], truth.files["problem_text"], cache_dir=cache)  # noqa: E731
        else:
            truth = write_synthetic_kt_csv(raw, args.preset or "en_es", args.scale, args.seed)
            load = lambda: load_kt_csv(truth.files["interactions"], truth.files["items"], cache_dir=cache)  # noqa: E731
        generated = time.perf_counter() - start
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            data = load()
            timings.append(time.perf_counter() - start)
        report = {
            "dataset": args.dataset,
            "scale": args.scale,
            "generated": {"users": truth.num_users, "interactions": truth.num_interactions, "seconds": generated},
            "loaded": {
                "users": data.stats["users"]["total"],
                "interactions": data.stats["interactions"]["total"]
                + data.stats["cold_start_interactions"]["removed_from_train"],
                "interactions_in_splits": data.stats["interactions"]["total"],
                "items": data.stats["items"]["total"],
            },
            "seconds_first_load": round(timings[0], 2),
            "seconds_cached_load": round(timings[1], 2),
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
