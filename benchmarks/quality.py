"""
Quality of every training mode and item representation, trained to early stopping on synthetic data: the GRAM paper's
table (knowledge tracing: AUC and cold-start AUC; news: AUC, MRR, nDCG@5, nDCG@10; with the speed-up over E2E), the
same for next-item recommendation (NDCG@10, HR@10), and the validation metric against training wall time per mode
(the paper's Figure 4) beside the training loss.

Rows compare like users do: each training mode (`--modes`, default E2E, GRAM 1S, GRAM 1E) with each item
representation (`--item-encoders`): `content` (the content encoder's vector), `content+id` (hybrid: plus a learned
item-ID row, switched off for cold-start items) and `id` (an item-ID table; trained once, as NoContent), against a
floor that needs no training (knowledge tracing: each item's correct rate in train; news: each news' clicks in train;
next-item: the most popular training items). Metrics on warm and cold-start items are in separate columns.

Data (`--structure`): `realistic` (the default: Zipf popularity, latent factors the text explains 30% of, shared and
generic texts; `gram_hf.tasks.synthetic_structure`) or `planted` (the text says it all; the committed tables of
`results/cpu-amd-epyc/` were run so). Knowledge tracing uses a small synthetic Duolingo-format dataset with cold-start
items held out of training; news a small synthetic MIND (its `*_dev` split, mostly unseen news, is the test set;
validation is carved from train); next-item a small synthetic MovieLens (leave-one-out; its cold-start items never
occur in train). Each run trains in its own subprocess; the head (and a random encoder) starts from `--seed`, the same
for every mode; evaluation runs after every epoch on validation and test, training stops when the validation metric
(AUC; next-item NDCG@10) has not improved for `--patience` epochs (or at `--max-epochs`), and the test metrics are
those of the best validation epoch. Encoder dropout is off (so Single-step GRAM and E2E follow the same trajectory up
to floating-point order); the head keeps its dropout. Evaluation time is excluded from the training times.
`--noise-seeds` reruns the ID row and the hybrid GRAM 1E row (and the rows of `--noise-modes` of
`--noise-item-encoders`; in a content-only mode table, `--item-encoders content`: every mode) with other training
seeds (same data) to show the run-to-run noise the verdicts allow for. `--extend` adds rows to an earlier table of
the same data without retraining the rows it has.

Writes `quality_{kt,news,next_item}.{json,md,png}` into `benchmarks/results/<device tag>/` (or `--output-dir`).

    python benchmarks/quality.py --threads 1 --task kt --encoder-update per_batch --encoder-epochs 3 \\
        --noise-seeds 1 2 --noise-modes e2e gram-1e --max-epochs 20    # the realistic tables (also --task news)
    python benchmarks/quality.py --threads 1 --task next_item --modes e2e gram-1e nocontent \\
        --item-encoders id content content+id --noise-seeds 1 2 --max-epochs 20
    python benchmarks/quality.py --task next_item --item-encoders content content+id --modes gram-1e

The defaults are the realistic tables' small shapes (each task's table in 20 to 90 minutes on a shared 2-core CPU with
`minilm-l2`). The planted tables of `results/cpu-amd-epyc/` (modes only, before the representation axis) are

    python benchmarks/quality.py --threads 1 --structure planted --item-encoders content --noise-seeds \\
        --modes e2e gram-1s gram-10s gram-0.5e gram-1e nofinetune nocontent --max-epochs 20 --batch-size 32 \\
        --kt-users 200 --kt-items 400 --kt-interactions 16000 --kt-cold-start 40 --kt-validation-fraction 0.1 \\
        --kt-test-fraction 0.2 --news-users 400 --news-items 800 --news-train-impressions 500 \\
        --news-dev-impressions 200 --news-history 15 --news-validation-fraction 0.1 --task kt   # (or --task news)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from gram_hf.tasks.next_item.metrics import random_ranking_ndcg  # noqa: E402

TASKS = ("kt", "news", "next_item")
KT_METRICS = (("auc", "AUC"), ("warm_auc", "Warm AUC"), ("cold_start_auc", "Cold-start AUC"),
              ("accuracy", "Accuracy"))  # fmt: skip
NEWS_METRICS = (("auc", "AUC"), ("warm_auc", "Warm AUC"), ("cold_auc", "Cold-start AUC"), ("mrr", "MRR"),
                ("ndcg@5", "nDCG@5"), ("ndcg@10", "nDCG@10"))  # fmt: skip
NEXT_ITEM_METRICS = (("ndcg@10", "NDCG@10"), ("hr@10", "HR@10"), ("warm_ndcg@10", "Warm NDCG@10"),
                     ("warm_hr@10", "Warm HR@10"), ("cold_ndcg@10", "Cold-start NDCG@10"),
                     ("cold_hr@10", "Cold-start HR@10"), ("cold_only_ndcg@10", "Cold-start NDCG@10 among new"),
                     ("cold_only_hr@10", "Cold-start HR@10 among new"))  # fmt: skip
METRICS = {"kt": KT_METRICS, "news": NEWS_METRICS, "next_item": NEXT_ITEM_METRICS}
HEADLINE = {"kt": "auc", "news": "auc", "next_item": "ndcg@10"}
"""The metric early stopping watches and the verdicts compare (the task's `metric_for_best_model`)."""
WARM = {"kt": "warm_auc", "news": "warm_auc", "next_item": "warm_ndcg@10"}
COLD = {"kt": "cold_start_auc", "news": "cold_auc", "next_item": "cold_only_ndcg@10"}
"""The cold-start metric the verdicts compare: each among the cold-start items only (news: the impression's cold
candidates; next-item: the held-out new release among the new releases, the item cold-start protocol), so that it
measures what the text tells about a new item rather than how it fares against the warm items' popularity."""
TITLES = {"kt": "Knowledge tracing", "news": "News recommendation", "next_item": "Next-item recommendation"}
FLOOR_LABELS = {
    "kt": "Item correct rate (train)",
    "news": "Click popularity (train)",
    "next_item": "Popularity (train)",
}
FAR_ABOVE = 0.05
"""How far (x100: 5 points) the hybrid's cold-start metric must be above ID-only's to count as "far above"."""
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    # GRAM windows longer than one step fit the encoder with one optimizer step per window by default; a full-catalog
    # next-item loss needs more (measured: content GRAM 1E NDCG@10 0.063 -> 0.149 with per_batch and 3 passes).
    # Batches small enough for about 13 (KT, next-item) to 25 (news) CF steps per epoch on the small shapes: with the
    # paper's 32, KT's 100 training learners made 4 steps an epoch and the ID model stopped undertrained.
    # Hybrid rows drop the ID part of `item_id_dropout` of the items per step (KT and news: 0.5; the next_item
    # program's 0.3, closer to ID-only on warm users on three generated datasets, next_item_hybrid_settings/).
    "kt": {"batch_size": 8, "encoder_update": "accumulate", "encoder_epochs": 1, "item_learning_rate": 1.0,
           "item_id_dropout": 0.5},
    "news": {"batch_size": 16, "encoder_update": "accumulate", "encoder_epochs": 1, "item_learning_rate": 1.0,
             "item_id_dropout": 0.5},
    # The next_item program's defaults for windows (a full-catalog loss moves every cached vector at every step; the
    # eta is the hybrid's, content-only rows keep 1.0 as the program does).
    "next_item": {"batch_size": 32, "encoder_update": "per_batch", "encoder_epochs": 3, "item_learning_rate": 0.01,
                  "item_id_dropout": 0.3},
}  # fmt: skip


def _number(text: str) -> float | int:
    """A float that stays an int when whole, so that `--news-history 15` names the same data folder as the default 15
    of the committed planted runs (folder names hash the generator's arguments)."""
    value = float(text)
    return int(value) if value.is_integer() else value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=[*TASKS, "both", "all"], default="all",
                        help="Which task(s) to run: one, 'both' (kt and news) or 'all' (the three).")  # fmt: skip
    parser.add_argument("--modes", nargs="+", default=["e2e", "gram-1s", "gram-1e"], choices=list(common.MODES),
                        help="Modes to train with each content representation (e2e is the reference of the "
                        "speed-ups; nocontent is the ID row).")  # fmt: skip
    parser.add_argument("--item-encoders", nargs="+", default=list(common.ITEM_ENCODERS),
                        choices=list(common.ITEM_ENCODERS),
                        help="Item representations: id (an item-ID table, trained once as NoContent), content, "
                        "content+id (hybrid).")  # fmt: skip
    parser.add_argument("--structure", choices=["realistic", "planted"], default="realistic",
                        help="What the synthetic data plant (gram_hf.tasks.synthetic_structure).")  # fmt: skip
    parser.add_argument("--noise-seeds", nargs="*", type=int, default=[1],
                        help="Training seeds (same data) to rerun the ID row and the hybrid GRAM 1E row with; none "
                        "to skip.")  # fmt: skip
    parser.add_argument("--noise-modes", nargs="+", default=["gram-1e"],
                        help="Modes whose hybrid row --noise-seeds reruns (default gram-1e; add e2e to judge GRAM 1E "
                        "against E2E on means over seeds).")  # fmt: skip
    parser.add_argument("--noise-item-encoders", nargs="+", default=["content+id"], choices=["content", "content+id"],
                        help="Representations whose rows of --noise-modes --noise-seeds reruns (default the hybrid; "
                        "add content to judge the hybrid's cold start against content-only on means over "
                        "seeds).")  # fmt: skip
    parser.add_argument("--extend", type=Path, default=None,
                        help="A quality_<task>.json of an earlier run on the same data: its rows are kept and only "
                        "the planned rows it lacks (mode, representation, seed) are trained; the table is written "
                        "anew with both, the earlier run's environment recorded.")  # fmt: skip
    parser.add_argument(
        "--encoder",
        default="minilm-l2",
        choices=sorted(common.ENCODERS),
        help="Content encoder: " + "; ".join(f"{k}: {v}" for k, v in common.ENCODERS.items()),
    )
    parser.add_argument("--max-epochs", type=int, default=10, help="Upper bound on training epochs.")
    parser.add_argument("--patience", type=int, default=2,
                        help="Stop after this many epochs without a better validation metric.")  # fmt: skip
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="CF batch (sequences or news examples); default KT 8, news 16, next-item 32.",
    )
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="CF module learning rate (AdamW).")
    parser.add_argument("--encoder-learning-rate", type=float, default=1e-4, help="Content encoder learning rate.")
    parser.add_argument("--encoder-batch-size", type=int, default=32, help="Items per encoder fit mini-batch.")
    parser.add_argument("--encoder-update", choices=["accumulate", "per_batch"], default=None,
                        help="Encoder fits of GRAM windows longer than one step: one optimizer step per window "
                        "(accumulate) or per encoder mini-batch; default accumulate, next-item per_batch. Single-step "
                        "GRAM keeps accumulate (exactly E2E).")  # fmt: skip
    parser.add_argument("--encoder-epochs", type=int, default=None,
                        help="Passes over a window's items per encoder fit (windows longer than one step); default "
                        "1, next-item 3.")  # fmt: skip
    parser.add_argument("--gram-auto-drift", type=float, default=None,
                        help="gram-auto: the drift at which a window ends (default: the library's "
                        "gram_auto_drift).")  # fmt: skip
    parser.add_argument(
        "--item-id-dropout",
        type=float,
        default=None,
        help="Hybrid rows: share of ID rows switched off at each training step, so that items are "
        "also ranked on content alone (GramConfig.item_id_dropout; default as the programs: KT and news 0.5, "
        "next-item 0.3).",
    )
    parser.add_argument("--item-learning-rate", type=float, default=None,
                        help="GRAM windows longer than one step: eta of the pseudo-targets (default: as the programs, "
                        "1.0, next-item hybrid rows 0.01; Single-step GRAM keeps 1.0, exactly E2E).")  # fmt: skip
    parser.add_argument("--item-id-learning-rate", type=float, default=None,
                        help="ID and hybrid rows: the item-ID table's learning rate (default: --learning-rate; the "
                        "committed tables: the default).")  # fmt: skip
    parser.add_argument("--kt-users", type=int, default=200, help="Synthetic learners (knowledge tracing).")
    parser.add_argument("--kt-items", type=int, default=150, help="Synthetic items (knowledge tracing).")
    parser.add_argument("--kt-interactions", type=int, default=40000, help="Synthetic interactions (KT).")
    parser.add_argument("--kt-cold-start", type=int, default=30, help="Cold-start items held out of KT training.")
    parser.add_argument("--kt-validation-fraction", type=float, default=0.2,
                        help="Share of KT learners in validation (the loader's default: 0.1).")  # fmt: skip
    parser.add_argument("--kt-test-fraction", type=float, default=0.3,
                        help="Share of KT learners in test (the loader's default: 0.2).")  # fmt: skip
    parser.add_argument("--news-users", type=int, default=300, help="Synthetic MIND users.")
    parser.add_argument("--news-items", type=int, default=500, help="Synthetic MIND news.")
    parser.add_argument("--news-train-impressions", type=int, default=1000, help="Synthetic MIND train impressions.")
    parser.add_argument("--news-dev-impressions", type=int, default=600, help="Synthetic MIND dev (test) impressions.")
    parser.add_argument(
        "--news-validation-fraction",
        type=float,
        default=0.2,
        help="Share of MIND train impressions held out as validation (the loader's default: 0.1).",
    )
    parser.add_argument("--news-history", type=_number, default=10, help="Mean clicked-history length.")
    parser.add_argument("--news-candidates", type=_number, default=10, help="Mean candidates per impression.")
    parser.add_argument("--next-item-users", type=int, default=1000, help="Synthetic MovieLens users.")
    parser.add_argument("--next-item-items", type=int, default=200,
                        help="Synthetic MovieLens movies (before the loader's 5-interaction filter).")  # fmt: skip
    parser.add_argument("--next-item-new-item-fraction", type=float, default=0.1,
                        help="Share of the movies that are new releases, never in training (the generator's "
                        "default is 0.05; at 1,000 users 0.1 leaves 16 of them after the 5-interaction filter, "
                        "with about 300 cold-start users: a measurable cold-start column).")  # fmt: skip
    parser.add_argument(
        "--next-item-dim",
        type=int,
        default=64,
        help="Next-item vectors: the encoder projected to this size (and the ID table's width).",
    )
    parser.add_argument("--next-item-max-length", type=int, default=30, help="SASRec reads this many last items.")
    parser.add_argument("--next-item-loss", default="cce", help="SASRec's training loss (the head's loss_type).")
    parser.add_argument("--next-item-new-item-share", type=float, default=0.0,
                        help="Rank the whole catalog as a mixture in which this share of next items are new "
                        "releases (the head's new_item_share; 0: raw scores).")  # fmt: skip
    common.add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.max_epochs < 1 or args.patience < 1:
        parser.error("--max-epochs and --patience must be at least 1.")
    if not 0.0 <= args.next_item_new_item_share < 1.0:
        parser.error("--next-item-new-item-share must lie in [0, 1).")
    if any(seed == args.seed for seed in args.noise_seeds):
        parser.error(
            f"--noise-seeds must differ from --seed {args.seed}: a rerun with the same seed measures nothing."
        )
    return args


def tasks_of(args: argparse.Namespace) -> tuple[str, ...]:
    return {"all": TASKS, "both": ("kt", "news")}.get(args.task, (args.task,))


def data_spec(task: str, args: argparse.Namespace) -> common.DataSpec:
    structure = args.structure
    if task == "kt":
        overrides = {"users": args.kt_users, "items": args.kt_items, "interactions": args.kt_interactions,
                     "cold_start_items": args.kt_cold_start}  # fmt: skip
        split = _non_default(
            {"validation_fraction": args.kt_validation_fraction, "test_fraction": args.kt_test_fraction},
            validation_fraction=0.1,
            test_fraction=0.2,
        )
        return common.DataSpec(dataset="duolingo", preset="en_es", scale=1.0, seed=args.seed, item_max_length=32,
                               preset_overrides=overrides, structure=structure, split_overrides=split)  # fmt: skip
    if task == "next_item":
        overrides = {"num_users": args.next_item_users, "num_items": args.next_item_items}
        if args.next_item_new_item_fraction is not None:
            overrides["new_item_fraction"] = args.next_item_new_item_fraction
        return common.DataSpec(dataset="movielens", preset="ml", scale=1.0, seed=args.seed, item_max_length=32,
                               movielens_overrides=overrides, structure=structure)  # fmt: skip
    overrides = {"num_users": args.news_users, "num_news": args.news_items,
                 "train_impressions": args.news_train_impressions, "dev_impressions": args.news_dev_impressions,
                 "mean_history": args.news_history, "mean_candidates": args.news_candidates}  # fmt: skip
    split = _non_default({"validation_fraction": args.news_validation_fraction}, validation_fraction=0.1)
    return common.DataSpec(dataset="mind", preset="small", scale=1.0, seed=args.seed, item_max_length=24,
                           mind_overrides=overrides, structure=structure, split_overrides=split)  # fmt: skip


def _non_default(values: dict[str, float], **defaults: float) -> dict[str, float]:
    """The loader options that differ from its defaults (a specification without them keeps its data folder)."""
    return {k: v for k, v in values.items() if v != defaults[k]}


def planned_runs(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """
    `(mode, item_encoder, seed)` of every training run, in table order: the ID row (NoContent; also when `nocontent`
    is among `--modes`), each content representation under each mode, then the reruns of the ID row and the hybrid
    GRAM 1E row with `--noise-seeds` (and the rows of `--noise-modes` and `--noise-item-encoders`; in a content-only
    mode table: every mode).
    """
    runs = []
    with_id = "id" in args.item_encoders or "nocontent" in args.modes
    if set(args.item_encoders) == {"content"}:
        # The mode table of the planted results: NoContent where --modes has it.
        runs += [(mode, "id" if mode == "nocontent" else "content", args.seed) for mode in args.modes]
    else:
        runs += [("nocontent", "id", args.seed)] if with_id else []
        for item_encoder in (e for e in args.item_encoders if e != "id"):
            runs += [(mode, item_encoder, args.seed) for mode in args.modes if mode != "nocontent"]
    for seed in args.noise_seeds:
        if set(args.item_encoders) == {"content"}:
            # The mode table: every mode again, so the noise of each is on the table (the interval study).
            runs += [(mode, "id" if mode == "nocontent" else "content", seed) for mode in args.modes]
            continue
        if with_id:
            runs.append(("nocontent", "id", seed))
        for item_encoder in (e for e in args.noise_item_encoders if e in args.item_encoders):
            runs += [(mode, item_encoder, seed) for mode in args.modes if mode in args.noise_modes]
    return runs


def row_label(result: dict[str, Any], base_seed: int = 0, representations: bool = True) -> str:
    """A run's row label: "Content GRAM 1E", "Hybrid E2E", "ID (NoContent)" (the mode alone without `representations`,
    as the planted tables have it), with "(seed N)" for a rerun."""
    mode, item_encoder = result["mode"], result.get("item_encoder", "content")
    if not representations:
        label = common.MODE_LABELS[mode]
    elif mode == "nocontent":
        label = "ID (NoContent)"
    else:
        label = f"{common.ITEM_ENCODERS[item_encoder]} {common.MODE_LABELS[mode]}"
    seed = result.get("seed", base_seed)
    return label if seed == base_seed else f"{label} (seed {seed})"


# -------------------------------------------------------------------------------------------------------- floors


def history_only_cold_start_auc(data) -> float:
    """
    Test AUC on the cold-start interactions of a predictor that knows nothing about items: the learner's share of
    correct answers earlier in the same sequence (add-one smoothed). The synthetic learners differ in ability, so this
    is above 0.5; it is the level a content-free model (NoContent) can reach on items it never trained on, and the
    reference its cold-start AUC is compared with.
    """
    from gram_hf.metrics.knowledge_tracing.knowledge_tracing import roc_auc

    cold = np.asarray(data.items["cold_start"], dtype=bool)
    scores, labels = [], []
    for row in data.splits["test"]:
        items, responses = np.asarray(row["items"]), np.asarray(row["responses"], dtype=np.float64)
        correct_before = np.concatenate([[0.0], np.cumsum(responses)[:-1]])
        answered_before = np.arange(len(responses), dtype=np.float64)
        flags = cold[items]
        scores.append(((correct_before + 1) / (answered_before + 2))[flags])
        labels.append(responses[flags])
    return roc_auc(np.concatenate(scores), np.concatenate(labels))


def next_item_cold_start_ceilings(spec: common.DataSpec, data, k: int = 10) -> dict[str, float]:
    """
    What ranking each cold-start test user's held-out new release among the new releases (the metric
    `cold_only_ndcg@k`) can reach on this synthetic data, from the generator's truth (regenerated, deterministic):

    - `text_oracle`: new releases scored by how their text's part of the latent factors matches that of the user's
      last item (`ItemStructure.text_factors`), the most a model that reads the texts can know of a new release;
    - `behaviour_oracle`: the same with the whole latent factors, which only interactions reveal (none for a new
      release), the level a model would reach if the text said everything;
    - `random`: a random ranking.

    Ties (identical texts, same genre) are broken at random. Empty for data without latent factors (planted).
    """
    import tempfile

    from gram_hf.tasks.next_item import make_synthetic_movielens

    with tempfile.TemporaryDirectory() as folder:
        truth = make_synthetic_movielens(folder, seed=spec.seed, **spec.movielens_overrides, structure=spec.structure)
    structure = truth.item_structure
    cold = np.flatnonzero(np.asarray(data.items["cold_start"], dtype=bool))
    if not structure.structure.latent_dim or not len(cold):
        return {}
    row_of = {item_id: row for row, item_id in enumerate(truth.item_ids)}
    truth_rows = np.array([row_of[str(item_id)] for item_id in data.items["item_id"]])  # catalog index -> truth row
    rng = np.random.default_rng(0)
    cold_items = set(cold.tolist())
    gains: dict[str, list[float]] = {"text_oracle": [], "behaviour_oracle": []}
    for items in data["test"]["items"]:
        if items[-1] not in cold_items:
            continue
        candidates = np.setdiff1d(cold, items[:-1])
        for name, factors in (("text_oracle", structure.text_factors), ("behaviour_oracle", structure.factors)):
            scores = factors[truth_rows[candidates]] @ factors[truth_rows[items[-2]]]
            order = np.lexsort((rng.random(len(candidates)), -scores))
            rank = int(np.flatnonzero(candidates[order] == items[-1])[0])
            gains[name].append(1.0 / math.log2(rank + 2) if rank < k else 0.0)
    ceilings = {name: float(np.mean(values)) for name, values in gains.items() if values}
    return {**ceilings, "random": random_ranking_ndcg(len(cold), k)} if ceilings else {}


def _padded(rows: Sequence[Sequence[float]], fill: float, dtype) -> np.ndarray:
    width = max((len(row) for row in rows), default=0)
    out = np.full((len(rows), max(width, 1)), fill, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def floor_prediction(task: str, data, split: str) -> tuple[Any, Any]:
    """
    The no-training floor's `(predictions, label_ids)` on `split`, in the layout the task's model predicts, so
    that the quality metrics ([`common.quality_metrics`]) score it exactly as they score the trained rows:

    - `kt`: each item's correct rate in the train split, shrunk toward the overall train rate by one pseudo-answer
      (cold-start items get the overall rate), as a logit;
    - `news`: each news' clicks in the train split (ties, e.g. between unseen news, share their rank);
    - `next_item`: the 10 most popular training items the user has not seen
      (`gram_hf.tasks.next_item.popularity_recommendations`).
    """
    rows = data[split]
    if task == "next_item":
        from gram_hf.tasks.next_item import popularity_recommendations

        top, targets = popularity_recommendations(rows["items"], data.items["train_count"])
        # The model's layout: target rank (not read), top-k, rank among the cold-start items (-1: none; popularity
        # does not rank items that never trained).
        rank, cold_rank = np.zeros((len(top), 1), dtype=np.int64), np.full((len(top), 1), -1, dtype=np.int64)
        return (np.concatenate([rank, top, cold_rank], axis=1), targets), targets
    if task == "kt":
        correct = np.zeros(data.num_items)
        answered = np.zeros(data.num_items)
        for items, responses in zip(data["train"]["items"], data["train"]["responses"]):
            np.add.at(correct, np.asarray(items), np.asarray(responses, dtype=np.float64))
            np.add.at(answered, np.asarray(items), 1.0)
        prior = correct.sum() / max(answered.sum(), 1.0)
        rate = np.clip((correct + prior) / (answered + 1.0), 1e-6, 1 - 1e-6)
        logit = np.log(rate / (1 - rate))
        item_rows, label_rows = rows["items"], rows["responses"]
    else:
        clicks = np.zeros(data.num_items)
        for candidates, labels in zip(data["train"]["candidates"], data["train"]["labels"]):
            np.add.at(clicks, np.asarray(candidates), np.asarray(labels, dtype=np.float64) == 1)
        logit = clicks
        item_rows, label_rows = rows["candidates"], rows["labels"]
    items = _padded(item_rows, -100, np.int64)
    labels = _padded(label_rows, -100.0, np.float64)
    scores = np.where(items >= 0, logit[np.clip(items, 0, None)], 0.0)
    return (scores, items), labels


def floor_metrics(task: str, data, spec: common.DataSpec, split: str) -> dict[str, float]:
    """The metrics on `split` of the task's no-training floor ([`floor_prediction`]), warm and cold-start apart."""
    from transformers import EvalPrediction

    predictions, labels = floor_prediction(task, data, split)
    return common.quality_metrics(data, spec)(EvalPrediction(predictions=predictions, label_ids=labels))


# -------------------------------------------------------------------------------------------------------- verdicts


def _verdict(ok: bool, miss: str, *values: float) -> str:
    if any(not math.isfinite(v) for v in values):
        return "not measured (a metric is NaN: no such items or interactions in the test split)"
    return "met" if ok else f"missed ({miss})"


def _finite_or(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def _test(result: dict[str, Any], key: str) -> float:
    value = result.get("test_at_best", {}).get(key)
    return math.nan if value is None else float(value)


def representation_verdicts(
    task: str, results: list[dict[str, Any]], floors: Sequence[dict[str, Any]] = (), structure: str = "realistic",
    base_seed: int = 0, num_items: int | None = None,
) -> list[str]:  # fmt: skip
    """
    The issue's targets for item representations, checked on the measured numbers (x100 where they are points):
    hybrid >= ID-only on warm items within the run-to-run noise (the largest spread between seeds of a row that ran
    with several); hybrid > content-only on warm items where text is weak (the realistic structure); hybrid
    cold-start at most 1 point below content-only and at least 5 points above ID-only; no content or hybrid model
    below the no-training floor; hybrid GRAM 1E within 1% of hybrid E2E. Where a row ran with several seeds its mean
    is compared. A missed target says by how much. Next-item
    cold-start lines also give a random ranking's level (among the cold-start items the results name, else over
    `num_items` items), which "above ID-only" (0 by construction: ties count against the target) does not exceed by
    itself. Results written before the next-item cold-start metric among new items existed are judged on the
    full-catalog one.
    """
    headline, warm, cold = HEADLINE[task], WARM[task], COLD[task]
    measured = [r.get("test_at_best", {}) for r in results]
    if task == "next_item" and not any(cold in test for test in measured):
        cold = "cold_ndcg@10"  # results from before the cold-start metric among new items
    candidates = next((int(test["cold_items"]) for test in measured if cold.startswith("cold_only") and
                       "cold_items" in test), num_items)  # fmt: skip
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        rows.setdefault((r.get("item_encoder", "content"), r["mode"]), []).append(r)

    def mean(key, item_encoder, mode):
        values = [_test(r, key) for r in rows.get((item_encoder, mode), [])]
        return statistics.fmean(values) if values else math.nan

    def seed0(item_encoder, mode):
        return next((r for r in rows.get((item_encoder, mode), []) if r.get("seed", base_seed) == base_seed), None)

    spreads = {
        name: max(_test(r, warm) for r in runs) - min(_test(r, warm) for r in runs)
        for (item_encoder, mode), runs in rows.items()
        if len(runs) > 1
        for name in [row_label({"mode": mode, "item_encoder": item_encoder})]
    }
    noise = max(spreads.values(), default=0.0)
    noise_words = (
        "noise = largest seed-to-seed spread: " + ", ".join(f"{k} {100 * v:.2f}" for k, v in spreads.items())
        if spreads
        else "noise not measured (no --noise-seeds)"
    )
    hybrid_modes = [mode for (item_encoder, mode) in rows if item_encoder == "content+id"]
    lines = []
    if ("id", "nocontent") in rows:
        id_warm = mean(warm, "id", "nocontent")
        for mode in hybrid_modes:
            diff = mean(warm, "content+id", mode) - id_warm
            lines.append(
                f"Hybrid {common.MODE_LABELS[mode]} - ID-only on warm items ({warm}, means over seeds): "
                f"{100 * diff:+.2f} points (target: >= 0 within the noise, {100 * noise:.2f}; {noise_words}): "
                + _verdict(diff >= -noise, f"by {100 * (-noise - diff):.2f} points beyond the noise", diff, noise)
            )
    for mode in hybrid_modes:
        content = seed0("content", mode)
        if content is None:
            continue
        hybrid = seed0("content+id", mode)
        diff = _test(hybrid, warm) - _test(content, warm)
        if structure == "realistic":
            lines.append(f"Hybrid {common.MODE_LABELS[mode]} - content-only on warm items ({warm}, text weak): "
                         f"{100 * diff:+.2f} points (target: > 0): "
                         + _verdict(diff > 0, f"by {100 * -diff:.2f} points", diff))  # fmt: skip
        # The ID part must not cost cold-start quality; a hybrid above content-only there is no miss. With several
        # seeds of both rows the means are compared (one seed of each carries its noise).
        seeds = (len(rows[("content", mode)]), len(rows[("content+id", mode)]))
        if min(seeds) > 1:
            cold_diff = mean(cold, "content+id", mode) - mean(cold, "content", mode)
            basis = f"means over {seeds[1]} and {seeds[0]} seeds, "
        else:
            cold_diff, basis = _test(hybrid, cold) - _test(content, cold), ""
        miss = f"by {100 * (-cold_diff - 0.01):.2f} points"
        lines.append(f"Hybrid {common.MODE_LABELS[mode]} - content-only on cold-start items ({cold}): "
                     f"{100 * cold_diff:+.2f} points ({basis}target: at most 1 point below): "
                     + _verdict(cold_diff >= -0.01, miss, cold_diff))  # fmt: skip
    chance = random_ranking_ndcg(candidates) if task == "next_item" and candidates else None
    chance_words = f"; a random ranking of {candidates} items: {100 * chance:.2f}" if chance is not None else ""
    if ("id", "nocontent") in rows:
        id_cold = mean(cold, "id", "nocontent")
        for mode in hybrid_modes:
            # Means over seeds on both sides: the ID rows' untrained cold-start vectors rank at random, so a single
            # run on either side carries a spread of several points.
            diff = mean(cold, "content+id", mode) - id_cold
            seeds = (len(rows[("content+id", mode)]), len(rows[("id", "nocontent")]))
            lines.append(f"Hybrid {common.MODE_LABELS[mode]} - ID-only on cold-start items ({cold}): "
                         f"{100 * diff:+.2f} points (means over {seeds[0]} and {seeds[1]} seeds; target: far above, "
                         f">= {100 * FAR_ABOVE:.0f} points{chance_words}): "
                         + _verdict(diff >= FAR_ABOVE, f"by {100 * (FAR_ABOVE - diff):.2f} points", diff))  # fmt: skip
    trained = [r for r in results if r.get("item_encoder", "content") != "id" and r["mode"] != "nocontent"]
    models = sorted({(r.get("item_encoder", "content"), r["mode"]) for r in trained}, key=str)
    for floor, key in ((floor, key) for floor in floors for key in (headline, warm) if trained):
        # On all test items (the headline) and on warm items alone, where popularity is strongest. A model is its
        # mean over seeds, as in the other targets; the lowest single run is named beside it, so one seed's noise
        # is visible without deciding the verdict.
        level = floor["test"].get(key, math.nan)
        means = {model: mean(key, *model) for model in models}
        lowest = min(models, key=lambda model: _finite_or(means[model], math.inf))
        margin = means[lowest] - level
        worst = min(trained, key=lambda r: _finite_or(_test(r, key), math.inf))
        below = [model_label(model, len(rows[model])) for model in models if means[model] < level]
        single = (
            f"; lowest single run {row_label(worst, base_seed)} at {100 * (_test(worst, key) - level):+.2f}"
            if any(len(rows[model]) > 1 for model in models)
            else ""
        )
        lines.append(
            f"Content and hybrid rows vs the floor ({floor['label']}, {key} {100 * level:.2f}): lowest "
            f"{model_label(lowest, len(rows[lowest]))} at {100 * margin:+.2f} points{single} (target: none below): "
            + _verdict(not below, f"{len(below)} below: {', '.join(below)}", margin)
        )
    if task == "next_item":
        lines += loss_trend_verdicts(trained, base_seed)
    e2e, epoch = seed0("content+id", "e2e"), seed0("content+id", "gram-1e")
    if e2e is not None and epoch is not None:
        # With several seeds on both sides the means are compared (the seed-0 runs alone carry their noise).
        both = min(len(rows[("content+id", "e2e")]), len(rows[("content+id", "gram-1e")])) > 1
        e2e_value = mean(headline, "content+id", "e2e") if both else _test(e2e, headline)
        epoch_value = mean(headline, "content+id", "gram-1e") if both else _test(epoch, headline)
        rel = (epoch_value - e2e_value) / e2e_value
        basis = (
            f"means over seeds, E2E {100 * e2e_value:.2f} (spread {100 * _spread(rows, 'e2e', headline):.2f}), "
            f"GRAM 1E {100 * epoch_value:.2f} (spread {100 * _spread(rows, 'gram-1e', headline):.2f}); "
            if both
            else ""
        )
        lines.append(f"Hybrid GRAM 1E {headline} relative to hybrid E2E = {100 * rel:+.2f}% ({basis}target: within "
                     "1%): " + _verdict(abs(rel) <= 0.01, f"by {100 * (abs(rel) - 0.01):.2f}%"
                                        + (" upwards: GRAM 1E better" if rel > 0 else ""), rel))  # fmt: skip
    return lines


def model_label(model: tuple[str, str], seeds: int) -> str:
    """A model (item encoder, mode) as the tables name it, with the number of seeds its mean covers when several."""
    item_encoder, mode = model
    label = row_label({"mode": mode, "item_encoder": item_encoder})
    return f"{label} (mean of {seeds} seeds)" if seeds > 1 else label


def _spread(rows: dict[tuple[str, str], list[dict[str, Any]]], mode: str, key: str) -> float:
    """The largest minus the smallest test `key` over the seeds of the hybrid row of `mode`."""
    values = [_test(r, key) for r in rows[("content+id", mode)]]
    return max(values) - min(values)


LOSS_RISE_TOLERANCE = 0.01


def epoch_mean_losses(loss_curve: Sequence[dict[str, float]]) -> list[float]:
    """The mean of the logged training losses within each epoch (a point at epoch 1.0 closes epoch 1)."""
    by_epoch: dict[int, list[float]] = {}
    for point in loss_curve:
        by_epoch.setdefault(max(math.ceil(point["epoch"]) - 1, 0), []).append(point["loss"])
    return [statistics.fmean(by_epoch[epoch]) for epoch in sorted(by_epoch)]


def loss_trend_verdicts(rows: Sequence[dict[str, Any]], base_seed: int = 0) -> list[str]:
    """
    Next-item content and hybrid training must not diverge (the issue's failure: the loss rose while the gradient norm
    grew): each epoch's mean training loss at most `LOSS_RISE_TOLERANCE` (relative) above the previous epoch's, the
    logged losses being noisy within an epoch.
    """
    rises = []
    measured = 0
    for r in rows:
        means = epoch_mean_losses(r.get("loss_curve") or [])
        if len(means) < 2:
            continue
        measured += 1
        for epoch, (before, after) in enumerate(zip(means, means[1:]), start=2):
            if after > before * (1 + LOSS_RISE_TOLERANCE):
                rises.append(f"{row_label(r, base_seed)} epoch {epoch} {before:.3f} -> {after:.3f}")
    if not measured:
        return []
    return [
        f"Content and hybrid rows: training loss per epoch (mean of the logged losses) decreasing, at most "
        f"{100 * LOSS_RISE_TOLERANCE:g}% above the previous epoch, over {measured} runs (target: decreases "
        "monotonically in expectation): " + _verdict(not rises, "; ".join(rises))
    ]


def verdicts(
    task: str, results: list[dict[str, Any]], reference: dict[str, float] | None = None, base_seed: int = 0
) -> list[str]:
    """
    The mode targets (issue 7) on the content rows of the first seed, checked on the measured numbers: GRAM 1S ==
    E2E, GRAM 1E within 1% of E2E, NoContent at the content-free level on cold-start items, NoFinetune below GRAM.
    `reference["history_only_cold_start_auc"]` (KT) is the content-free level NoContent's cold-start AUC is expected
    at (see [`history_only_cold_start_auc`]).
    """
    metric = HEADLINE.get(task, "auc")
    by_mode = {
        r["mode"]: r["test_at_best"]
        for r in results
        if r.get("item_encoder", "content") in ("content", "id") and r.get("seed", base_seed) == base_seed
    }
    lines = []
    e2e = by_mode.get("e2e", {}).get(metric)
    if e2e is None:
        return lines
    name = "AUC" if metric == "auc" else metric
    if "gram-1s" in by_mode:
        diff = by_mode["gram-1s"][metric] - e2e
        lines.append(f"GRAM 1S {name} - E2E {name} = {diff:+.4f} (target: within 0.002): "
                     f"{'met' if abs(diff) <= 0.002 else 'missed'}.")  # fmt: skip
    if "gram-1e" in by_mode:
        rel = (by_mode["gram-1e"][metric] - e2e) / e2e
        verdict = "met" if abs(rel) <= 0.01 else "missed" if rel < 0 else "missed upwards (GRAM 1E better than E2E)"
        lines.append(f"GRAM 1E {name} relative to E2E = {100 * rel:+.2f}% (target: within 1%): {verdict}.")
    if task == "kt" and "nocontent" in by_mode:
        cold = by_mode["nocontent"].get("cold_start_auc", float("nan"))
        verdict = "met" if abs(cold - 0.5) <= 0.03 else "missed"
        line = f"NoContent cold-start AUC = {cold:.4f} (target: about 0.5): {verdict}."
        history_only = (reference or {}).get("history_only_cold_start_auc")
        if history_only is not None:
            # Learners differ in ability, so ranking cold-start answers by the learner's past accuracy alone beats 0.5;
            # "knows nothing about the item" means NoContent stays at that level, not at 0.5.
            line += (f" Content-free reference (learner's past accuracy only) on the same interactions: "
                     f"{history_only:.4f}; NoContent is {cold - history_only:+.4f} from it "
                     f"({'at' if abs(cold - history_only) <= 0.03 else 'not at'} that level).")  # fmt: skip
        lines.append(line)
    if "nofinetune" in by_mode:
        gram = [by_mode[m][metric] for m in ("gram-1s", "gram-10s", "gram-0.5e", "gram-1e") if m in by_mode]
        if gram:
            nofinetune = by_mode["nofinetune"][metric]
            lines.append(f"NoFinetune {name} = {nofinetune:.4f} vs GRAM modes {min(gram):.4f}-{max(gram):.4f} "
                         f"(target: below GRAM): {'met' if nofinetune < min(gram) else 'missed'}.")  # fmt: skip
    return lines


def all_verdicts(payload: dict[str, Any]) -> list[str]:
    """The representation targets (when the run had more than one representation) and the mode targets."""
    task, results = payload["task"], payload["results"]
    base_seed = payload.get("config", {}).get("seed", 0)
    lines = []
    if _has_representations(payload):
        structure = payload.get("data_spec", {}).get("structure", "planted")
        num_items = payload.get("data_summary", {}).get("items")
        lines += representation_verdicts(task, results, payload.get("floors", ()), structure, base_seed, num_items)
        lines += cold_start_ceiling_lines(results, (payload.get("reference") or {}).get("cold_only_ndcg@10", {}))
    return lines + verdicts(task, results, payload.get("reference"), base_seed)


def cold_start_ceiling_lines(results: list[dict[str, Any]], ceilings: dict[str, float]) -> list[str]:
    """
    Next-item: where the content and hybrid rows' cold-start ranking among new items stands between a random ranking
    and the ceilings the data allow ([`next_item_cold_start_ceilings`]).
    """
    if not ceilings:
        return []
    trained = [r for r in results if r.get("item_encoder", "content") != "id" and "cold_only_ndcg@10" in
               r.get("test_at_best", {})]  # fmt: skip
    best = max(trained, key=lambda r: _test(r, "cold_only_ndcg@10"), default=None)
    text, chance = ceilings["text_oracle"], ceilings["random"]
    words = (f"; the best content or hybrid row, {best['label']}, {100 * _test(best, 'cold_only_ndcg@10'):.2f}"
             if best is not None else "")  # fmt: skip
    return [
        f"Cold-start ranking among new items (cold_only_ndcg@10) on this data: a random ranking {100 * chance:.2f}, "
        f"the text oracle (the text's part of the latent factors, last item vs new release) {100 * text:.2f}, the "
        f"behaviour oracle (all latent factors, which no text reveals) {100 * ceilings['behaviour_oracle']:.2f}"
        + words
        + f". Ranking by perfectly known texts is {100 * (text - chance):+.2f} points from random here."
    ]


# -------------------------------------------------------------------------------------------------------- output


def _has_representations(payload: dict[str, Any]) -> bool:
    """Whether the run compared item representations (results written before the option compared modes only)."""
    return set(payload["config"].get("item_encoders", ["content"])) != {"content"}


def render_markdown(payload: dict[str, Any]) -> str:
    task, results, env = payload["task"], payload["results"], payload["environment"]
    metrics = METRICS[task]
    config = payload["config"]
    base_seed = config.get("seed", 0)
    representations = _has_representations(payload)
    e2e_by_encoder = {
        r.get("item_encoder", "content"): r
        for r in results
        if r["mode"] == "e2e" and r.get("seed", base_seed) == base_seed
    }
    header = [("Model" if representations else "Mode"), *(label for _, label in metrics), "Best epoch / run",
              "Train time to stop", "s/epoch", "Speed-up/epoch vs E2E", "Speed-up to stop vs E2E"]  # fmt: skip
    rows = []
    for floor in payload.get("floors", []):
        rows.append([f"{floor['label']}, no training",
                     *(f"{100 * floor['test'].get(key, math.nan):.2f}" for key, _ in metrics),
                     "-", "-", "-", "-", "-"])  # fmt: skip
    for r in results:
        test = r["test_at_best"]
        row = [row_label(r, base_seed, representations),
               *(f"{100 * test.get(key, math.nan):.2f}" for key, _ in metrics)]  # fmt: skip
        row += [f"{r['best_epoch']:.0f} / {r['epochs_run']}", common.fmt_seconds(r["train_seconds_total"]),
                f"{r['seconds_per_epoch']:.1f}"]  # fmt: skip
        # Speed-ups against E2E with the same representation (the ID row has no encoder to speed up).
        e2e = e2e_by_encoder.get(r.get("item_encoder", "content"))
        if e2e is not None:
            row += [f"{e2e['seconds_per_epoch'] / r['seconds_per_epoch']:.1f}x",
                    f"{e2e['train_seconds_total'] / r['train_seconds_total']:.1f}x"]  # fmt: skip
        else:
            row += ["-", "-"]
        rows.append(row)
    summary = payload["data_summary"]
    spec = payload.get("data_spec", {})
    structure = spec.get("structure", "planted")
    units = {"kt": "interactions", "news": "item references (history + candidates)", "next_item": "interactions"}
    stop = "validation NDCG@10" if task == "next_item" else "validation AUC"
    lines = [
        f"### Quality: {TITLES[task]} ({payload['data_description']})",
        "",
        f"Machine: {common.hardware_line(env)}. Encoder: {common.ENCODERS[config['encoder']]}, dropout off. "
        f"Data: {summary['items']:,} items, {summary['train_interactions']:,} training {units[task]}"
        + (f", {summary['cold_start_items']:,} cold-start items" if "cold_start_items" in summary else "")
        + f"; synthetic structure `{structure}`. CF batch {payload.get('batch_size', config.get('batch_size'))}, "
        f"lr {config['learning_rate']:g} (CF) / {config['encoder_learning_rate']:g} (encoder), early stopping on "
        f"{stop} with patience {config['patience']}, capped at {config['max_epochs']} epochs. Test metrics (x100) at "
        "the best validation epoch; times exclude evaluation.",
    ]
    if "extended" in payload:
        extended = payload["extended"]
        earlier = extended["earlier_environment"]
        lines += ["", f"Extended run (`--extend {extended['from']}`): rows kept from the earlier run (gram-hf "
                  f"{str(earlier.get('git_commit'))[:7]}, {earlier.get('date_utc', '?')}): "
                  f"{', '.join(extended['rows_kept'])}; trained in this run (gram-hf "
                  f"{str(env.get('git_commit'))[:7]}): {', '.join(extended['rows_trained']) or 'none'}."]  # fmt: skip
    if representations:
        window = payload.get("window_encoder_fit", {})
        lines += [
            "",
            "Rows: ID (NoContent) = an item-ID table, no text; Content = the encoder's vector; Hybrid = content "
            "vector + a learned item-ID row (zero at start; off for cold-start items, which keep content only"
            + (f"; ID dropout {config['item_id_dropout']:g}" if config.get("item_id_dropout") else "")
            + (f"; ID table lr {config['item_id_learning_rate']:g}" if config.get("item_id_learning_rate") else "")
            + "). "
            f"GRAM windows longer than one step fit the encoder with encoder_update={window.get('encoder_update')}, "
            f"encoder_epochs={window.get('encoder_epochs')}, "
            + _eta_words(window)
            + " (GRAM 1S keeps the exact-E2E update). "
            "The floor row needs "
            f"no training: {payload.get('floor_description', '')}. {WARM_COLD_NOTES[task]}"
            + (
                f" Next-item vectors: {config.get('next_item_dim')}-d (encoder projected), SASRec loss "
                f"{config.get('next_item_loss')}, last {config.get('next_item_max_length')} items"
                + (
                    f"; the whole-catalog ranking mixes in the new releases at a share of {share:g} of next items "
                    "(`new_item_share`)."
                    if (share := config.get("next_item_new_item_share"))
                    else "."
                )
                if task == "next_item"
                else ""
            ),  # fmt: skip
        ]
    lines += [
        "",
        common.markdown_table(header, rows),
        "",
        *[f"- {line}" for line in payload.get("verdicts") or all_verdicts(payload)],
        "",
        f"Command: `{env['command']}`",
        "",
    ]
    return "\n".join(lines)


WARM_COLD_NOTES = {
    "kt": "Warm AUC: interactions with items that trained; cold-start AUC: with the held-out items (never in train).",
    "news": "Warm / cold-start AUC: per impression, the AUC among its candidates that occur in training data (warm) "
    "or in none of it (cold-start), averaged over impressions with a click and a non-click among them (the news "
    "metric itself gives neither; the benchmark computes them from the same scores).",
    "next_item": "NDCG@10 / HR@10 over all test users; warm: users whose held-out item occurs in train; cold-start: "
    "users whose held-out item never does (only content can rank it).",
}


def _style(result: dict[str, Any], base_seed: int) -> dict[str, Any]:
    """One colour per mode, one line style per representation (content solid, hybrid dashed, ID dotted), reruns
    marked with crosses, so that the curves of a mode can be told apart by representation."""
    modes = list(common.MODES)
    styles = {"content": "-", "content+id": "--", "id": ":"}
    return {
        "color": f"C{modes.index(result['mode']) % 10}",
        "linestyle": styles.get(result.get("item_encoder", "content"), "-"),
        "marker": "o" if result.get("seed", base_seed) == base_seed else "x",
    }


def render_chart(payload: dict[str, Any], path: Path) -> None:
    """Validation metric against training time per run and, where the runs logged it, training loss per epoch."""
    plt = common.pyplot()
    task = payload["task"]
    metric = HEADLINE[task]
    base_seed = payload["config"].get("seed", 0)
    representations = _has_representations(payload)
    with_loss = any(r.get("loss_curve") for r in payload["results"])
    fig, axes = plt.subplots(1, 2 if with_loss else 1, figsize=(13 if with_loss else 7, 4.5), squeeze=False)
    axis = axes[0][0]
    for r in payload["results"]:
        xs = [p["train_seconds"] for p in r["curve"]]
        ys = [p["validation"].get(metric, math.nan) for p in r["curve"]]
        axis.plot(xs, ys, markersize=3, label=row_label(r, base_seed, representations), **_style(r, base_seed))
    for floor in payload.get("floors", []):
        level = floor.get("validation", floor["test"]).get(metric)
        if level is not None:
            axis.axhline(level, color="grey", linestyle=":", label=floor["label"])
    axis.set_xscale("log")
    axis.set_xlabel("training wall time, seconds (log; evaluation excluded)")
    axis.set_ylabel(f"validation {metric}")
    where = f"{payload['config']['encoder']}, {payload['environment']['cpu']}"
    axis.set_title(f"{TITLES[task]}: validation {metric} vs time ({where})", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    if with_loss:
        axis = axes[0][1]
        for r in payload["results"]:
            points = r.get("loss_curve") or []
            axis.plot([p["epoch"] for p in points], [p["loss"] for p in points], markersize=3,
                      label=row_label(r, base_seed, representations), **_style(r, base_seed))  # fmt: skip
        axis.set_xlabel("epoch")
        axis.set_ylabel("training loss (mean over the logging interval)")
        axis.set_title(f"{TITLES[task]}: training loss", fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -------------------------------------------------------------------------------------------------------- running


def run_config(task: str, args: argparse.Namespace, spec: common.DataSpec, mode: str, item_encoder: str,
               seed: int) -> dict[str, Any]:  # fmt: skip
    """The worker configuration of one run (see `common.run_quality_worker`)."""
    defaults = TASK_DEFAULTS[task]
    interval = common.MODES[mode][1]
    window = common.MODES[mode][0] == "gram" and interval != "1"
    config = {
        "mode": mode,
        "item_encoder": "id" if mode == "nocontent" else item_encoder,
        "data": vars(spec),
        "workdir": args.workdir,
        "encoder": args.encoder,
        "encoder_dropout": False,
        "batch_size": args.batch_size or defaults["batch_size"],
        "learning_rate": args.learning_rate,
        "encoder_learning_rate": args.encoder_learning_rate,
        "encoder_batch_size": args.encoder_batch_size,
        "max_epochs": args.max_epochs,
        "patience": args.patience,
        "device": args.device,
        "bf16": args.bf16,
        "threads": args.threads,
        "seed": seed,
        "test_split": "dev" if task == "news" else "test",
    }
    if window:
        # Single-step GRAM keeps the library default, the update that makes it exactly E2E.
        config["encoder_update"] = args.encoder_update or defaults["encoder_update"]
        config["encoder_epochs"] = args.encoder_epochs or defaults["encoder_epochs"]
        config["item_learning_rate"] = _item_learning_rate(args, defaults, config["item_encoder"])
    if interval == "auto" and args.gram_auto_drift is not None:
        config["gram_auto_drift"] = args.gram_auto_drift
    if config["item_encoder"] == "content+id" and (dropout := item_id_dropout(args, task)):
        config["item_id_dropout"] = dropout
    if config["item_encoder"] in ("id", "content+id") and args.item_id_learning_rate is not None:
        config["item_id_learning_rate"] = args.item_id_learning_rate
    if task == "next_item":
        config["item_dim"] = args.next_item_dim
        config["head_config"] = {"loss_type": args.next_item_loss, "max_length": args.next_item_max_length}
        if args.next_item_new_item_share:
            config["head_config"]["new_item_share"] = args.next_item_new_item_share
    return config


def item_id_dropout(args: argparse.Namespace, task: str) -> float:
    """The hybrid rows' ID dropout: `--item-id-dropout`, else the task's program default."""
    return TASK_DEFAULTS[task]["item_id_dropout"] if args.item_id_dropout is None else args.item_id_dropout


def _item_learning_rate(args: argparse.Namespace, defaults: dict[str, Any], item_encoder: str) -> float:
    """The window rows' eta: as the programs choose it (a task's default below 1.0 is for hybrid vectors only)."""
    if args.item_learning_rate is not None:
        return args.item_learning_rate
    return defaults["item_learning_rate"] if item_encoder == "content+id" else 1.0


def _eta_words(window: dict[str, Any]) -> str:
    hybrid = window.get("item_learning_rate", 1.0)
    content = window.get("content_item_learning_rate", hybrid)
    if content == hybrid:
        return f"item_learning_rate={hybrid:g}"
    return f"item_learning_rate={hybrid:g} (hybrid rows; content rows {content:g})"


FLOOR_DESCRIPTIONS = {
    "kt": "each item's correct rate in train (one pseudo-answer at the overall rate; cold-start items get the "
    "overall rate, hence AUC 0.5 there)",
    "news": "each candidate scored by its clicks in train (unseen news tie at 0)",
    "next_item": "the 10 most popular training items the user has not seen",
}


def run_task(task: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = data_spec(task, args)
    common.prepare_data(spec, args.workdir)
    data = common.load_data(spec, args.workdir)
    summary = common.data_summary(data, spec)
    reference = {"history_only_cold_start_auc": history_only_cold_start_auc(data)} if task == "kt" else {}
    if task == "next_item" and spec.structure != "planted":
        reference["cold_only_ndcg@10"] = next_item_cold_start_ceilings(spec, data)
    representations = set(args.item_encoders) != {"content"}
    floors = []
    if representations:
        test_split = "dev" if task == "news" else "test"
        floors.append({"name": "popularity", "label": FLOOR_LABELS[task],
                       "validation": floor_metrics(task, data, spec, "validation"),
                       "test": floor_metrics(task, data, spec, test_split)})  # fmt: skip
    del data
    out_dir = common.results_dir(args)
    environment = common.environment_info(args.device, args.threads)
    earlier_run = _read_results(args.extend, task) if args.extend else None
    earlier = earlier_rows(earlier_run, args.extend, task, spec, args) if args.extend else {}
    results = []
    for mode, item_encoder, seed in planned_runs(args):
        if (mode, item_encoder, seed) in earlier:
            results.append(earlier[(mode, item_encoder, seed)])
            continue
        config = run_config(task, args, spec, mode, item_encoder, seed)
        name = row_label({"mode": mode, "item_encoder": config["item_encoder"], "seed": seed}, args.seed)
        log_name = f"{mode}-{config['item_encoder']}" + (f"-seed{seed}" if seed != args.seed else "")
        print(f"[quality] {task}: {name} ...", flush=True)
        result = common.run_in_subprocess("quality", config, log_dir=out_dir / "logs" / f"quality_{task}",
                                          log_name=log_name)  # fmt: skip
        result["label"] = row_label(result, args.seed, representations)
        print(f"[quality] {task}: {name}: test {result['test_at_best']} after {result['epochs_run']} epochs, "
              f"{common.fmt_seconds(result['train_seconds_total'])}", flush=True)  # fmt: skip
        results.append(result)
    defaults = TASK_DEFAULTS[task]
    payload = {
        "benchmark": "quality",
        "task": task,
        "data_description": spec.describe(),
        "data_spec": vars(spec),
        "data_summary": summary,
        "config": recorded_options(args, task),
        "batch_size": args.batch_size or defaults["batch_size"],
        "window_encoder_fit": {
            "encoder_update": args.encoder_update or defaults["encoder_update"],
            "encoder_epochs": args.encoder_epochs or defaults["encoder_epochs"],
            "item_learning_rate": _item_learning_rate(args, defaults, "content+id"),
            "content_item_learning_rate": _item_learning_rate(args, defaults, "content"),
        },  # fmt: skip
        "environment": environment,
        **({"extended": extension_record(earlier_run, args.extend, results)} if args.extend else {}),
        "results": results,
        "reference": reference,
        "floors": floors,
        "floor_description": FLOOR_DESCRIPTIONS[task],
    }
    payload["verdicts"] = all_verdicts(payload)
    common.write_json(out_dir / f"quality_{task}.json", payload)
    (out_dir / f"quality_{task}.md").write_text(render_markdown(payload))
    render_chart(payload, out_dir / f"quality_{task}.png")
    print(render_markdown(payload))
    return payload


def _read_results(path: Path, task: str) -> dict[str, Any]:
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"--extend {path}: cannot read it as a quality results file ({error}).") from None
    if payload.get("benchmark") != "quality" or payload.get("task") != task:
        raise SystemExit(f"--extend {path}: not a quality results file of task {task!r}.")
    return payload


def recorded_options(args: argparse.Namespace, task: str) -> dict[str, Any]:
    """The run's options as its results record them (`config`), with the ID dropout the task resolves to."""
    options = {key: value for key, value in vars(args).items() if key not in ("workdir", "output_dir")}
    return {**options, "item_id_dropout": item_id_dropout(args, task)}


EXTEND_FREE_OPTIONS = frozenset({"task", "modes", "item_encoders", "noise_seeds", "noise_modes",
                                  "noise_item_encoders", "extend", "threads"})  # fmt: skip
"""Options an `--extend` run may change: which rows are planned, and torch's thread count (timing only)."""


def earlier_rows(
    payload: dict[str, Any], path: Path, task: str, spec: common.DataSpec, options: argparse.Namespace
) -> dict[tuple[str, str, int], dict[str, Any]]:
    """
    The rows of an earlier run's results (`payload`, read from `path` for `--extend`) by `(mode, item_encoder,
    seed)`, each marked `earlier_run`; refuses, in one line, results of other data or of other training options than
    this run's `options`, whose rows would not compare.
    """
    if payload.get("data_spec") != json.loads(json.dumps(vars(spec))):
        raise SystemExit(f"--extend {path}: its data differ from this run's ({payload.get('data_description')!r}); "
                         "pass the same data options.")  # fmt: skip
    # Rows are matched by mode, representation and seed only: every option that shapes training must agree.
    earlier, now = payload.get("config", {}), json.loads(json.dumps(recorded_options(options, task), default=str))
    # An option newer than the earlier run's results trained (or ranked) its rows at that option's default.
    defaults = json.loads(json.dumps(vars(parse_args([])), default=str))
    earlier = {**{key: defaults[key] for key in set(now) - set(earlier) if key in defaults}, **earlier}
    differ = sorted(key for key in set(earlier) & set(now) - EXTEND_FREE_OPTIONS if earlier[key] != now[key])
    if differ:
        raise SystemExit(f"--extend {path}: its rows trained with other options ("
                         + ", ".join(f"{key}={earlier[key]!r}, here {now[key]!r}" for key in differ)
                         + "); pass the same ones.")  # fmt: skip
    base_seed = payload["config"]["seed"]
    return {
        (row["mode"], row.get("item_encoder", "content"), row.get("seed", base_seed)): {**row, "earlier_run": True}
        for row in payload["results"]
    }


def extension_record(payload: dict[str, Any], path: Path, results: list[dict[str, Any]]) -> dict[str, Any]:
    """What `--extend` took from the earlier run (`payload`, read from `path`): its file, environment and options, and
    which rows are whose."""
    return {
        "from": str(path),
        "earlier_environment": payload.get("environment", {}),
        "earlier_config": payload.get("config", {}),
        "rows_kept": [r["label"] for r in results if r.get("earlier_run")],
        "rows_trained": [r["label"] for r in results if not r.get("earlier_run")],
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for task in tasks_of(args):
        run_task(task, args)


if __name__ == "__main__":
    main()
