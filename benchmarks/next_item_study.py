"""
gram-hf's version of the tables of the memory-efficient-training study of recommendation transformers (SASRec with
CE, CE- (sampled softmax), CCE (cut cross-entropy) and CCE- (sampled CCE); items with < 5 and users with < 3
interactions removed; leave-one-out; full-catalog NDCG@10, Coverage@10 and Surprisal@10; the study reports the logits
at ~90% of the memory, CCE ~10x less memory and ~2x less time than CE, and CCE- ~2x faster again), on synthetic data of
the study's dataset shapes, trained and evaluated by the `next_item` program users run.

Per dataset shape (`--datasets`) and loss (`--losses`, ID-based SASRec `--item-encoder id` by default, as in the
study; `--item-encoders id content+id` adds content or hybrid rows): peak memory, time per epoch, epochs, and the test
NDCG@10, HR@10, Coverage@10 and Surprisal@10 of the best validation epoch (early stopping on validation NDCG@10 with
`--patience`, at most `--max-epochs`), optionally with RecBole's SASRec on the same data and split as a reference row
(`--recbole`, see `recbole_reference.py`).

**Shapes.** The package's generators with `structure="realistic"` (latent tastes the text explains in part, Zipf
popularity), written in each dataset's raw format and read by its loader, at the catalog size of the real dataset after
the study's filter, with the users scaled (`--scale`, a fraction of the real dataset's users):

| shape | format, loader | catalog (after filtering) | real users | interactions per user | default scale | epochs |
|---|---|---:|---:|---|---:|---:|
| `ml-20m` | MovieLens-20M, `load_movielens` | 18,345 | 138,493 | 20..268 | 0.025 (3,462 users) | 20 |
| `beauty` | Amazon Beauty 5-core, `load_amazon` | 12,101 | 22,363 | 5..13 | 1.5 (33,544 users) | 5 |
| `gowalla` | SNAP Gowalla check-ins, `load_gowalla` | 40,981 | 29,858 | 10..110 | 0.6 (17,915 users) | 1 |

Sources: MovieLens-20M has 138,493 users with 20 to 268 ratings (`dataset_loading.py`'s `MOVIELENS_SHAPE`) and
26,744 movies, 18,345 of them with >= 5 ratings (the count SASRec/BERT4Rec studies report for ML-20M after this
filter); Amazon Beauty 5-core has 22,363 users, 12,101 items and ~9 reviews per user (`dataset_loading.py`'s
`AMAZON_SHAPE`); Gowalla's 40,981 locations and 29,858 users are the filtered file most sequential-recommendation
papers use (NGCF's and LightGCN's; ~34 check-ins per user), SNAP's raw file has ~60 check-ins per user (6,442,890 of
107,092 users), and the study's own 5/3 filter over it keeps more locations (`--items gowalla=N`).

A catalog survives the 5-interaction filter only with enough interactions per item, and the synthetic items' appeal is
uneven (latent tastes and the previous item steer every draw), so the default scales give ~25 interactions per catalog
item: fewer ML-20M users than the real 138k (its users are long), more Beauty users than the real 22k (Beauty has ~16
reviews per item; at its own user count ~9k of the 12k items would survive). `--popularity-skew auto` (the default)
starts from the largest Zipf exponent, at most the realistic preset's 1.2, at which ~98% of the catalog would keep >= 5
interactions under popularity alone (a Poisson estimate); small pilot datasets with the same interactions per item then
measure the share the filter keeps, so that more items than the target (at most twice) are generated and the catalog
after filtering lands near the target, and where no catalog size gets there the skew is halved, then 0 (popularity then
comes from the latent tastes alone), before the size that kept the most is taken. The table states the skew, the items
generated and the catalog after filtering. New releases (cold-start items) are off by default, as the study is
ID-based; `--new-item-fraction F` makes F of each topic's generated items new releases, which only appear as some
users' last (test) item (the generator's `new_item_rate`, 0.3 of the users, ends on one): the cold-start items of the
leave-one-out split (in the data's folder name and manifest, so data of another setting is never reused).

**Cost.** The default epochs are caps that keep the default study to about two hours on this project's 2-core CPU with
`--threads 1`: a training step at these catalogs took, with one torch thread under a load of ~2 from other work, CE
0.27 / 1.9 / 3.7 s (Beauty / ML-20M / Gowalla), CCE 0.22 / 1.2 / 2.2 s, CE- 0.21 / 1.1 / 1.1 s, CCE- 0.15 / 0.8 / 0.9
s, i.e. ~2.2 min per epoch of the four losses on ML-20M (27 steps), ~3.7 min on Beauty (262 steps), ~19 min on Gowalla
(140 steps), plus generating the data once (~3, ~1 and ~12 min, pilots included; up to 50k generated items each draw
weighs the whole catalog, ~11-14 ns per generated item and interaction on one core here and on the H200 machine's CPU;
above, the generator resamples 2,048 proposed candidates per draw, ~0.3 ms per interaction measured at 150k items under
a load of ~3, so a catalog of 100k items after the filter, ~140k generated with ~2.8M interactions, would take ~15 min
instead of ~1.5 h). Two threads on a shared 2-core machine were 2-10x slower than one. The table says which runs
stopped by themselves and which hit the cap. RecBole's SASRec trains on every prefix (~8 min per ML-20M epoch, ~2 min
per Beauty epoch here): cap it with `--recbole-max-epochs`. Run the study in parts with `--update` (one `--datasets`
each), or on a GPU (`--device cuda`) with `--max-epochs 50`.

**Measurements.** Each (shape, loss, seed) runs `gram_hf.scripts.next_item.main([...])` in its own subprocess on the
raw files (`--dataset movielens|amazon|gowalla`, `--item_encoder id --item_dim 64`, 2 blocks, 1 head, dropout 0.2,
`--max_length` (50 by default: the study's small-scale length), Adam lr 1e-3, batch `--batch-size` (128, the program's
SASRec default); sampled losses with `--num-negatives` (256)), with a `TrainerCallback` added to its trainer that times
every epoch's training (evaluation excluded) and measures memory from the start of training: on CPU the peak resident
set size (`VmHWM`, reset at the start of training) above the resident size then, with glibc returning freed blocks
above 128 KiB to the system (`MALLOC_MMAP_THRESHOLD_`) so that the peak measures live tensors; on CUDA
`torch.cuda.max_memory_allocated`. Time per epoch is the median over the epochs run (the mean with GRAM windows of
several epochs). CE at a catalog whose logits would not fit `--memory-cap-gib` (batch x sequence length x items x 4
bytes x 3: the logits, their softmax and their gradient) is not run and reported as not fitting, with the size it would
need.

**Content-based rows** (`--item-encoders id content+id`; the program's hybrid defaults, GRAM with one encoder fit
per epoch, item texts cut to 32 tokens; `--program-args='...'` appends options to every run, e.g. `--encoder_epochs
1`): besides the columns above, each shape's table has a popularity row (every test user gets the 10 most popular
training items they have not seen, scored by the program's metrics), and, where there are cold-start test users,
warm NDCG@10 (users whose held-out item trained) and cold-start NDCG@10 / HR@10 (the program's `test_cold_*`; warm
follows from them, the metrics being means over users), and, for content rows, the encoder's work per epoch (the
trainer's counters: items encoded without grad and with forward+backward, tokens in the JSON). A study stopped from
outside keeps its finished runs in `next_item_study.partial.json`; `--data-only` generates and loads the data only
(e.g. in the background while the GPU does something else); `--merge A.json B.json` puts studies run side by side on
the same data (the ID model and a content model in two processes, each with its own `--program-args`) into one table.

**Verdicts** for the issue's targets: CCE vs CE at >= 100k items (>= 10x less peak memory, at most 1.1x CE's time per
epoch); CCE- vs CCE (>= 1.5x faster per epoch at equal memory); CCE's NDCG@10 equal to CE's within run-to-run noise
(`--seeds 0 1 2` measures it); CCE-'s within 5% of CCE's; ID-based SASRec at or above RecBole's on the same data;
content-based next-item (at >= 100k items in the issue): a content or hybrid row's NDCG@10 above popularity's, its
warm NDCG@10 within 10% of the ID row's with the same loss, its cold-start HR@10 well above 0 (here: >= 10x a random
ranking's, 10 / catalog size), with its encoder work per epoch beside the ID model's time.

Writes `next_item_study.{json,md,png}` into `benchmarks/results/<device tag>/` (or `--output-dir`).

    python benchmarks/next_item_study.py --threads 1                # every shape, default scales and epoch caps
    python benchmarks/next_item_study.py --threads 1 --datasets ml-20m --recbole --recbole-max-epochs 3   # in parts
    python benchmarks/next_item_study.py --threads 1 --datasets beauty gowalla --recbole \
        --recbole-max-epochs beauty=5 gowalla=0 --update
    python benchmarks/next_item_study.py --datasets ml-20m --scale 0.005 --items 3000 --max-epochs 2   # a quick look
    python benchmarks/next_item_study.py --device cuda --max-epochs 50 --seeds 0 1 2 --recbole
    python benchmarks/next_item_study.py --device cuda --bf16 --datasets beauty --new-item-fraction 0.02 \
        --losses cce --item-encoders id content+id --max-epochs 4 --program-args='--encoder_epochs 1'
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import inspect
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import recbole_reference  # noqa: E402

from gram_hf.tasks.next_item import NEGATIVE_SHARING  # noqa: E402

LOSSES = ("ce", "ce_sampled", "cce", "cce_sampled")
LOSS_LABELS = {"ce": "CE", "ce_sampled": "CE-", "cce": "CCE", "cce_sampled": "CCE-", "bce": "BCE"}
SHARING_LABELS = {"sequence": "shared per sequence", "batch": "shared per batch"}
ITEM_ENCODERS = ("id", "content", "content+id")
LARGE_CATALOG = 100_000
"""The issue's CCE-vs-CE memory and time target holds at catalogs of at least this many items."""
COLD_KEYS = ("cold_users", "cold_ndcg@10", "cold_hr@10")
ENCODER_COUNTERS = ("encoder_items_forward", "encoder_items_backward", "encoder_tokens_forward",
                    "encoder_tokens_backward")  # fmt: skip
WARM_NDCG_TOLERANCE = 0.10
"""Content-based at scale: the content or hybrid model's warm-item NDCG@10 within this share of the ID model's."""
COLD_HR_OVER_CHANCE = 10
"""... and its cold-start HR@10 well above 0: at least this many times a random ranking's (10 / catalog size)."""
REALISTIC_SKEW = 1.2
MIN_ITEM_INTERACTIONS = 5


@dataclass(frozen=True)
class Shape:
    """A dataset shape: the real dataset's format, catalog after the study's filter, users and sequence lengths."""

    name: str
    label: str
    kind: str
    items: int
    users: int
    min_length: int
    max_length: int
    topics: int
    default_scale: float
    default_epochs: int
    source: str


SHAPES: dict[str, Shape] = {
    "ml-20m": Shape(
        "ml-20m", "ML-20M-shaped", "movielens", 18_345, 138_493, 20, 268, 10, 0.025, 20,
        "MovieLens-20M: 138,493 users with 20..268 ratings; 18,345 of its 26,744 movies have >= 5 ratings",
    ),
    "beauty": Shape(
        "beauty", "Beauty-shaped", "amazon", 12_101, 22_363, 5, 13, 8, 1.5, 5,
        "Amazon Beauty 5-core: 22,363 users, 12,101 items, ~9 reviews per user",
    ),
    "gowalla": Shape(
        "gowalla", "Gowalla-shaped", "gowalla", 40_981, 29_858, 10, 110, 10, 0.6, 1,
        "Gowalla: 40,981 locations and 29,858 users as NGCF/LightGCN filter it; SNAP's raw file has ~60 check-ins "
        "per user",
    ),
}  # fmt: skip
PILOT_INTERACTIONS = 50_000
"""Interactions (at least) of the pilot datasets that measure which share of a catalog survives the filter."""
PILOT_ITEMS_PER_LENGTH = 20
"""A pilot's catalog is at least this many times its longest sequence: sequences never repeat an item, and in a small
catalog long ones flatten popularity (measured: a pilot whose users each took 5% of its items overstated the share
kept at 1.5% by half; at 20x, each user takes at most 5% of a pilot's items and 2.5% on average)."""


# ------------------------------------------------------------------------------------------------------ arguments


def per_dataset(values: Sequence[str] | None, names: Sequence[str], cast, defaults: dict[str, Any]) -> dict[str, Any]:
    """`["0.1"]` (every dataset) or `["ml-20m=0.1", "beauty=1"]` (some) over `defaults` -> {dataset: value}."""
    out = {name: defaults[name] for name in names}
    for value in values or ():
        if "=" in value:
            name, _, number = value.partition("=")
            if name not in SHAPES:
                raise SystemExit(f"Unknown dataset {name!r} in {value!r}: choose from {', '.join(SHAPES)}.")
            if name in out:
                out[name] = cast(number)
        else:
            out = {name: cast(value) for name in names}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_arguments(parser)
    parser.add_argument("--datasets", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument(
        "--scale",
        nargs="+",
        default=None,
        help="Users as a fraction of the real dataset's: one value for every shape or NAME=VALUE "
        "(defaults: " + ", ".join(f"{s.name}={s.default_scale:g}" for s in SHAPES.values()) + ").",
    )
    parser.add_argument(
        "--items",
        nargs="+",
        default=None,
        help="Catalog after filtering: one N for every shape or NAME=N (defaults: the real ones').",
    )
    parser.add_argument(
        "--popularity-skew",
        default="auto",
        help="Zipf exponent of item popularity: 'auto' (the realistic 1.2, lowered until the catalog "
        "survives the 5-interaction filter at this scale) or a number.",
    )
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=[*LOSSES, "bce"])
    parser.add_argument("--item-encoder", "--item_encoder", dest="item_encoder", default="id", choices=ITEM_ENCODERS)
    parser.add_argument(
        "--item-encoders",
        "--item_encoders",
        dest="item_encoders",
        nargs="+",
        default=None,
        choices=ITEM_ENCODERS,
        help="Several item representations (rows); overrides --item-encoder.",
    )
    parser.add_argument(
        "--new-item-fraction",
        "--new_item_fraction",
        dest="new_item_fraction",
        type=float,
        default=0.0,
        help="Share of each topic's generated items that are new releases, seen only as some users' last item: the "
        "cold-start items of the test split (default 0: none, as in the ID-based study).",
    )
    parser.add_argument(
        "--program-args",
        "--program_args",
        dest="program_args",
        default="",
        help="Extra options for every next_item run, as one string appended last (so they win), e.g. "
        "--program-args='--encoder_epochs 1 --item_max_length 32'.",
    )
    parser.add_argument(
        "--negative-sharing",
        "--negative_sharing",
        dest="negative_sharing",
        default="position",
        choices=list(NEGATIVE_SHARING),
        help="CE- and CCE- draw --num-negatives items per position, one set per sequence that its positions score, "
        "or one set per batch that every position scores (the program's --negative_sharing).",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="Training seeds (run-to-run noise).")
    parser.add_argument(
        "--max-epochs",
        "--max_epochs",
        dest="max_epochs",
        nargs="+",
        default=None,
        help="Most epochs (early stopping ends sooner): one value or NAME=N (defaults: "
        + ", ".join(f"{s.name}={s.default_epochs}" for s in SHAPES.values())
        + ").",
    )
    parser.add_argument("--patience", type=int, default=2, help="Evaluations without a better validation NDCG@10.")
    parser.add_argument("--batch-size", type=int, default=128, help="Sequences per training batch.")
    parser.add_argument("--max-length", type=int, default=50, help="SASRec's (and RecBole's) sequence length.")
    parser.add_argument("--item-dim", type=int, default=64, help="Item vectors and SASRec's hidden size.")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--num-negatives", type=int, default=256, help="Negatives per position of CE- and CCE-.")
    parser.add_argument(
        "--memory-cap-gib",
        "--memory_cap_gib",
        dest="memory_cap_gib",
        type=float,
        default=8.0,
        help="CE whose logits would need more than this is reported as not fitting, not run.",
    )
    parser.add_argument(
        "--recbole",
        action="store_true",
        help="Add RecBole's SASRec (a reference row) where its venv exists (recbole_reference.py setup).",
    )
    parser.add_argument("--recbole-venv", default=str(recbole_reference.DEFAULT_VENV))
    parser.add_argument(
        "--recbole-max-epochs",
        nargs="+",
        default=None,
        help="RecBole's most epochs, one value or NAME=N (default: --max-epochs; 0: no RecBole row there).",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="Keep the shapes of an existing next_item_study.json that this run does not measure (a study in parts).",
    )
    parser.add_argument(
        "--data-only",
        action="store_true",
        help="Generate (or find) and load each shape's data, print its counts and popularity floor, and stop: no "
        "runs, no results written (e.g. in the background while something else uses the GPU; the study then "
        "reuses the data from the same --workdir).",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="Put studies run side by side on the same data into one table (e.g. the ID model and a content model "
        "in two processes, each with its own --program-args): each shape's runs are gathered from these "
        "next_item_study.json files, in this order, and the verdicts recomputed; nothing runs. Writes into "
        "--output-dir.",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    shapes = args.datasets
    args.scales = per_dataset(args.scale, shapes, float, {n: SHAPES[n].default_scale for n in shapes})
    args.catalogs = per_dataset(args.items, shapes, int, {n: SHAPES[n].items for n in shapes})
    args.epochs = per_dataset(args.max_epochs, shapes, int, {n: SHAPES[n].default_epochs for n in shapes})
    args.recbole_epochs = per_dataset(args.recbole_max_epochs, shapes, int, dict(args.epochs))
    args.encoders = args.item_encoders or [args.item_encoder]
    if args.popularity_skew != "auto":
        args.popularity_skew = float(args.popularity_skew)
    if any(value <= 0 for value in args.scales.values()) or any(value < 10 for value in args.catalogs.values()):
        parser.error("--scale must be positive and --items at least 10.")
    if not 0 <= args.new_item_fraction < 1:
        parser.error("--new-item-fraction must lie in [0, 1).")
    try:
        args.extra_program_args = shlex.split(args.program_args)
    except ValueError as error:
        parser.error(f"--program-args: {error}")
    return args


# ----------------------------------------------------------------------------------------------------------- data


def kept_fraction(interactions: float, items: int, skew: float, minimum: int = MIN_ITEM_INTERACTIONS) -> float:
    """Expected share of `items` with >= `minimum` of `interactions` drawn by Zipf(`skew`) popularity (Poisson)."""
    ranks = np.arange(1, items + 1, dtype=np.float64)
    popularity = ranks**-skew
    rate = interactions * popularity / popularity.sum()
    below = np.exp(-rate) * sum(rate**k / math.factorial(k) for k in range(minimum))
    return float(np.mean(1.0 - below))


def calibrate_skew(interactions: float, items: int, keep: float = 0.98) -> tuple[float, float]:
    """The largest Zipf exponent <= the realistic 1.2 at which `keep` of the catalog keeps >= 5 interactions."""
    if kept_fraction(interactions, items, REALISTIC_SKEW) >= keep:
        return REALISTIC_SKEW, kept_fraction(interactions, items, REALISTIC_SKEW)
    if kept_fraction(interactions, items, 0.0) < keep:
        return 0.0, kept_fraction(interactions, items, 0.0)
    low, high = 0.0, REALISTIC_SKEW
    for _ in range(25):
        middle = (low + high) / 2
        low, high = (middle, high) if kept_fraction(interactions, items, middle) >= keep else (low, middle)
    return round(low, 3), kept_fraction(interactions, items, round(low, 3))


@dataclass
class Plan:
    """What to generate for a shape at a scale."""

    shape: Shape
    users: int
    target_items: int
    raw_items: int
    min_length: int
    max_length: int
    skew: float
    expected_kept: float
    seed: int
    new_item_fraction: float = 0.0

    @property
    def key(self) -> str:
        # New releases only in the keys of data that has them: the folders of earlier studies stay valid.
        new = f"-new{self.new_item_fraction:g}" if self.new_item_fraction else ""
        return (f"{self.shape.name}-u{self.users}-i{self.raw_items}-len{self.min_length}-{self.max_length}"
                f"-skew{self.skew:g}{new}-seed{self.seed}")  # fmt: skip


def plan(shape: Shape, scale: float, items: int, skew: float | str, seed: int, new_item_fraction: float = 0.0) -> Plan:
    """
    Users, lengths and popularity skew of a shape at `scale`; `raw_items` is the target until [`fit_catalog`]. The
    skew is calibrated on all interactions; the pilots measure the share kept, new releases (and their filtering)
    included.
    """
    users = max(3, round(shape.users * scale))
    max_length = max(3, min(shape.max_length, items // 2))
    min_length = max(3, min(shape.min_length, max_length))
    if skew == "auto":
        skew, kept = calibrate_skew(expected_interactions(users, min_length, max_length), items)
    else:
        kept = kept_fraction(expected_interactions(users, min_length, max_length), items, float(skew))
    return Plan(shape, users, items, items, min_length, max_length, float(skew), kept, seed, new_item_fraction)


def expected_interactions(users: int, min_length: int, max_length: int) -> float:
    return users * (min_length + max_length) / 2


def pilot_kept_share(full: Plan, raw_items: int, workdir: Path) -> float:
    """
    The share of a `raw_items` catalog that keeps >= 5 interactions, measured on a smaller dataset with the same
    interactions per item (see [`PILOT_ITEMS_PER_LENGTH`]).
    """
    interactions = expected_interactions(full.users, full.min_length, full.max_length)
    k = min(1.0, max(PILOT_INTERACTIONS / interactions, PILOT_ITEMS_PER_LENGTH * full.max_length / raw_items))
    pilot = dataclasses.replace(full, users=max(20, round(full.users * k)), raw_items=max(40, round(raw_items * k)))
    # A pilot as large as the dataset is the dataset: written and read where the study reads it.
    folder, cache = (
        (workdir, workdir / "datasets-cache") if k >= 1 else (workdir / "pilots", workdir / "pilots" / "cache")
    )
    manifest = generate(pilot, folder)
    try:
        data = recbole_reference.load_with_gram_hf(full.shape.kind, manifest["files"], str(cache))
    except ValueError:  # nothing kept
        return 0.0
    return data.num_items / pilot.raw_items


def fit_catalog(full: Plan, workdir: Path, auto_skew: bool = True, tries: int = 3) -> tuple[Plan, list[dict]]:
    """
    `full` with the number of items to generate (at most twice the target) so that ~its target survives the filter,
    measured on pilots: items drawn by latent tastes are uneven, so more than the target are needed, and more when
    users are few. With `auto_skew`, when no catalog size gets there, the popularity skew is halved, then 0, and the
    pilots run again; otherwise (or at skew 0) the catalog size that kept the most.
    """
    trail: list[dict] = []
    skews = [full.skew, round(full.skew / 2, 3), 0.0] if auto_skew and full.skew > 0 else [full.skew]
    for skew in dict.fromkeys(skews):
        candidate = dataclasses.replace(full, skew=skew)
        raw, tried = full.target_items, []
        for _ in range(tries):
            share = pilot_kept_share(candidate, raw, workdir)
            tried.append({"skew": skew, "generated": raw, "kept_share": round(share, 4), "kept": round(share * raw)})
            kept = share * raw
            if abs(kept - full.target_items) <= 0.01 * full.target_items:
                break
            if len(tried) > 1 and raw > tried[-2]["generated"] and kept <= tried[-2]["kept"]:
                break  # more items kept fewer: past the most that these interactions keep
            raw = min(round(raw * full.target_items / max(kept, 1.0)), 2 * full.target_items)
            if any(t["generated"] == raw for t in tried):
                break
        trail += tried
        if max(t["kept"] for t in tried) >= 0.97 * full.target_items:
            break
    chosen = min(trail, key=lambda t: (abs(t["kept"] - full.target_items), -t["skew"]))
    fitted = dataclasses.replace(
        full, skew=chosen["skew"], raw_items=int(chosen["generated"]), expected_kept=chosen["kept_share"]
    )
    return fitted, trail


def _generator_version() -> str:
    from gram_hf.tasks import synthetic_structure
    from gram_hf.tasks.next_item import synthetic

    digest = hashlib.sha256()
    for module in (synthetic, synthetic_structure):
        digest.update(Path(inspect.getsourcefile(module)).read_bytes())
    return digest.hexdigest()[:12]


def generate(plan: Plan, workdir: Path) -> dict[str, Any]:
    """Writes (once; reused while the generator's code is unchanged) the raw files of `plan`; their manifest."""
    folder = workdir / plan.key
    manifest_path = folder / "manifest.json"
    version = _generator_version()
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if (manifest.get("generator_version") == version
                and manifest.get("new_item_fraction", 0.0) == plan.new_item_fraction):  # fmt: skip
            return manifest
        shutil.rmtree(folder)
    from gram_hf.tasks import next_item
    from gram_hf.tasks.synthetic_structure import SYNTHETIC_STRUCTURES

    structure = dataclasses.replace(SYNTHETIC_STRUCTURES["realistic"], popularity_skew=plan.skew)
    raw = folder / "raw"
    options = {"num_users": plan.users, "num_items": plan.raw_items, "min_length": plan.min_length,
               "max_length": plan.max_length, "new_item_fraction": plan.new_item_fraction, "seed": plan.seed,
               "structure": structure}  # fmt: skip
    start = time.perf_counter()
    kind = plan.shape.kind
    if kind == "movielens":
        truth = next_item.make_synthetic_movielens(raw, num_genres=plan.shape.topics, **options)
        files = {"data_dir": str(raw)}
    elif kind == "amazon":
        truth = next_item.make_synthetic_amazon(raw, num_categories=plan.shape.topics, **options)
        files = dict(truth.files)
    else:
        truth = next_item.make_synthetic_gowalla(raw, num_cities=plan.shape.topics, with_texts=True, **options)
        files = dict(truth.files)
    manifest = {
        "generator_version": version,
        "new_item_fraction": plan.new_item_fraction,
        "files": files,
        "generated": {
            "users": truth.num_users,
            "items": len(truth.item_ids),
            "interactions": truth.num_interactions,
            "new_items": len(truth.new_items),
        },  # fmt: skip
        "structure": structure.to_dict(),
        "seconds": time.perf_counter() - start,
    }
    common.write_json(manifest_path, manifest)
    return manifest


def program_data_args(kind: str, files: dict[str, str], item_encoder: str) -> list[str]:
    """The next_item program's data options for the raw files."""
    if kind == "movielens":
        return ["--dataset", "movielens", "--data_dir", files["data_dir"]]
    if kind == "amazon":
        return ["--dataset", "amazon", "--reviews", files["reviews"], "--metadata", files["metadata"]]
    args = ["--dataset", "gowalla", "--checkins", files["checkins"]]
    if item_encoder != "id":
        args += ["--items", files["items"]]
    return args


def data_stats(data, max_length: int) -> dict[str, Any]:
    train_lengths = [len(items) for items in data["train"]["items"]]
    lengths = [len(items) for items in data["test"]["items"]]
    return {
        "users": len(lengths),
        "items": int(data.num_items),
        "interactions": int(sum(lengths)),
        "mean_length": float(np.mean(lengths)),
        "train_sequences": len(train_lengths),
        "train_targets": int(sum(n - 1 for n in train_lengths)),
        # The longest training input the collator pads a batch to.
        "sequence_length": int(min(max_length, max(train_lengths) - 1)) if train_lengths else 0,
        "dropped": dict(data.stats.get("dropped", {})),
        "cold_start_items": int(data.stats.get("cold_start_items", 0)),
    }


def ce_logits_bytes(batch: int, sequence_length: int, items: int) -> int:
    """CE's logits, their (log-)softmax and their gradient, fp32: ~3 copies of batch x sequence x items."""
    return 3 * 4 * batch * sequence_length * items


def with_warm_metrics(metrics: dict[str, Any], users: int) -> dict[str, Any]:
    """
    `metrics` plus `warm_ndcg@10` and `warm_hr@10`, over the test users whose held-out item trained: NDCG and HR are
    means over users, so the warm ones' mean follows from all `users`' and the cold-start ones' (`cold_users`).
    """
    cold = int(metrics.get("cold_users") or 0)
    out = dict(metrics)
    for name in ("ndcg@10", "hr@10"):
        if cold == 0:
            out[f"warm_{name}"] = metrics.get(name)
        elif users > cold and metrics.get(name) is not None and metrics.get(f"cold_{name}") is not None:
            out[f"warm_{name}"] = (users * metrics[name] - cold * metrics[f"cold_{name}"]) / (users - cold)
    return out


def popularity_metrics(data) -> dict[str, Any]:
    """
    The popularity floor on the test split: every user gets the 10 most popular training items they have not seen
    (`popularity_recommendations`), scored by the program's metrics, warm and cold-start users apart.
    """
    from gram_hf.tasks.next_item import NextItemMetrics, popularity_recommendations

    counts = data.items["train_count"]
    top, targets = popularity_recommendations(data["test"]["items"], counts)
    metrics = NextItemMetrics(counts).compute(top, targets)
    return with_warm_metrics({key: float(value) for key, value in metrics.items()}, len(targets))


# ------------------------------------------------------------------------------------------------------------ runs


def program_argv(args: argparse.Namespace, files: dict[str, str], kind: str, cache_dir: Path, loss: str,
                 item_encoder: str, seed: int, epochs: int, output_dir: str) -> list[str]:  # fmt: skip
    argv = [
        *program_data_args(kind, files, item_encoder),
        "--dataset_cache_dir", str(cache_dir),
        "--item_encoder", item_encoder,
        "--item_dim", str(args.item_dim),
        "--loss_type", loss,
        "--max_length", str(args.max_length),
        "--num_blocks", "2",
        "--num_heads", "1",
        "--head_dropout", "0.2",
        "--learning_rate", str(args.learning_rate),
        "--per_device_train_batch_size", str(args.batch_size),
        "--num_train_epochs", str(epochs),
        "--early_stopping_patience", str(args.patience),
        "--seed", str(seed),
        "--output_dir", output_dir,
        "--save_total_limit", "1",
        "--report_to", "none",
        "--disable_tqdm", "true",
        "--logging_steps", "1000000",
    ]  # fmt: skip
    if loss in ("ce_sampled", "cce_sampled"):
        argv += ["--num_negatives", str(args.num_negatives)]
        sharing = getattr(args, "negative_sharing", "position")
        argv += ["--negative_sharing", sharing] if sharing != "position" else []
    if item_encoder != "id":
        argv += ["--item_max_length", "32"]
    if args.device == "cpu":
        argv += ["--use_cpu", "true"]
    if args.bf16:
        argv.append("--bf16")
    return argv + list(getattr(args, "extra_program_args", ()))


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def time_per_epoch(epoch_seconds: Sequence[float], argv: Sequence[str]) -> float | None:
    """
    The median epoch's training time; with GRAM windows of several epochs (`--gram_interval Nepoch`, N > 1) the mean,
    since only every Nth epoch carries the encoder's fit and the median would leave it out.
    """
    if not epoch_seconds:
        return None
    words = [word for arg in argv for word in (arg.split("=", 1) if arg.startswith("--gram_interval=") else [arg])]
    interval = ""
    for option, value in zip(words, words[1:]):
        if option == "--gram_interval":
            interval = value  # the last one wins, as in the program's parser
    if interval.endswith("epoch") and float(interval.removesuffix("epoch")) > 1:
        return statistics.mean(epoch_seconds)
    return statistics.median(epoch_seconds)


def run_worker(config: dict[str, Any]) -> dict[str, Any]:
    """
    One run of the next_item program (in this process): its results, the time of each epoch's training and the peak
    memory from the start of training.
    """
    import torch
    from transformers import TrainerCallback

    from gram_hf.scripts import next_item, pipeline

    threads = torch.get_num_threads()
    if config.get("threads"):
        torch.set_num_threads(config["threads"])
    cuda = str(config["device"]).startswith("cuda")
    probe: dict[str, Any] = {"epoch_seconds": []}

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            sync()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
                probe["baseline_bytes"] = torch.cuda.memory_allocated()
            else:
                probe["baseline_bytes"] = _status_bytes("VmRSS")
                probe["peak_reset"] = _reset_peak_rss()

        def on_epoch_begin(self, args, state, control, **kwargs):
            sync()
            probe["epoch_start"] = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            sync()
            probe["epoch_seconds"].append(time.perf_counter() - probe["epoch_start"])

        def on_train_end(self, args, state, control, **kwargs):
            sync()
            probe["peak_bytes"] = torch.cuda.max_memory_allocated() if cuda else _status_bytes("VmHWM")

    original = pipeline.make_trainer

    def make_trainer(*args, **kwargs):
        trainer = original(*args, **kwargs)
        trainer.add_callback(Probe())
        return trainer

    pipeline.make_trainer = make_trainer
    try:
        with common.PeakRSSSampler() as sampler:
            results = next_item.main(config["argv"])
    finally:
        pipeline.make_trainer = original
        torch.set_num_threads(threads)  # as it was (the tests run workers in their own process)
    if cuda:
        peak = probe["peak_bytes"]
    elif probe.get("peak_reset") and probe.get("peak_bytes") is not None:
        peak = probe["peak_bytes"] - probe["baseline_bytes"]
    else:  # no clear_refs (not Linux): the sampled peak of the whole run
        peak = sampler.peak - (probe.get("baseline_bytes") or 0)
    epochs = results["epochs"]
    steps = results["steps"]
    best_checkpoint = results["best_validation"].get("checkpoint") or ""
    best_step = int(best_checkpoint.rsplit("-", 1)[1]) if best_checkpoint.rsplit("-", 1)[-1].isdigit() else None
    steps_per_epoch = steps / epochs if epochs else None
    test = {key.removeprefix("test_"): value for key, value in results["test_metrics"].items()}
    metrics = {key: test.get(key) for key in ("ndcg@10", "hr@10", "coverage@10", "surprisal@10")}
    # Users whose held-out item never trained (new releases), where the program reports them.
    metrics.update({key: test[key] for key in COLD_KEYS if key in test})
    return {
        "status": "ok",
        "metrics": metrics,
        "best_validation_ndcg@10": results["best_validation"]["value"],
        "epochs": int(round(epochs)),
        "best_epoch": round(best_step / steps_per_epoch) if best_step and steps_per_epoch else None,
        "steps": steps,
        "epoch_seconds": probe["epoch_seconds"],
        "time_per_epoch_seconds": time_per_epoch(probe["epoch_seconds"], config["argv"]),
        "train_seconds": results["train_seconds"],
        "peak_bytes": int(peak),
        "peak_measure": "cuda max_memory_allocated" if cuda else "VmHWM above RSS at train start",
        "rss_at_train_start_bytes": None if cuda else probe.get("baseline_bytes"),
        "peak_rss_bytes": None if cuda else probe.get("peak_bytes"),
        "gram_counters": results.get("gram_counters"),
    }


def worker_environment() -> dict[str, str]:
    src = str(common.REPO_ROOT / "src")
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    # glibc keeps freed blocks of up to 32 MiB in its heap once its mmap threshold has risen; a fixed threshold
    # returns every freed tensor above 128 KiB to the system, so the resident peak measures live tensors.
    return {**os.environ, "PYTHONPATH": path, "MALLOC_MMAP_THRESHOLD_": "131072",
            "MALLOC_TRIM_THRESHOLD_": "131072"}  # fmt: skip


def run_in_subprocess(config: dict[str, Any], log_path: Path) -> dict[str, Any]:
    """`run_worker(config)` in a fresh Python process (its own memory peak); a failure becomes a status."""
    with tempfile.TemporaryDirectory() as tmp:
        config_path, result_path = Path(tmp) / "config.json", Path(tmp) / "result.json"
        config_path.write_text(json.dumps(config))
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--config", str(config_path),
                   "--result", str(result_path)]  # fmt: skip
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            process = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=worker_environment())
        if process.returncode != 0 or not result_path.exists():
            lines = [line for line in log_path.read_text().splitlines() if line.strip()]
            why = "killed (out of memory?)" if process.returncode in (-9, 137) else f"exit {process.returncode}"
            return {"status": f"failed ({why}): {lines[-1][:300] if lines else ''}", "log": str(log_path)}
        return json.loads(result_path.read_text())


def encoder_work_per_epoch(run: dict[str, Any]) -> dict[str, float] | None:
    """The trainer's encoder counters (items and tokens through the encoder, no-grad and with backward) per epoch."""
    counters = run.get("gram_counters") or {}
    if not run.get("epochs") or not any(counters.get(f"gram/{name}") for name in ENCODER_COUNTERS):
        return None
    return {name: counters.get(f"gram/{name}", 0) / run["epochs"] for name in ENCODER_COUNTERS}


def run_shape(
    name: str, args: argparse.Namespace, workdir: Path, log_dir: Path, progress: Path | None = None
) -> dict[str, Any]:
    """
    Generates (or reuses) the data of a shape, then runs every (item encoder, loss, seed); after each run its results
    so far go to `progress` (a study stopped from outside keeps them).
    """
    shape = SHAPES[name]
    shape_plan = plan(shape, args.scales[name], args.catalogs[name], args.popularity_skew, args.seed,
                      args.new_item_fraction)  # fmt: skip
    shape_plan, pilots = fit_catalog(shape_plan, workdir, auto_skew=args.popularity_skew == "auto")
    print(f"[{shape.label}] generating {shape_plan.users:,} users, {shape_plan.raw_items:,} items "
          f"(popularity skew {shape_plan.skew:g})", flush=True)  # fmt: skip
    manifest = generate(shape_plan, workdir)
    cache_dir = workdir / "datasets-cache"
    try:
        data = recbole_reference.load_with_gram_hf(shape.kind, manifest["files"], str(cache_dir))
    except ValueError as error:  # e.g. nothing survives the filter at this scale
        raise SystemExit(f"[{shape.label}] {error} Raise --scale {name}=... or lower --items {name}=...") from error
    stats = data_stats(data, args.max_length)
    need = ce_logits_bytes(args.batch_size, stats["sequence_length"], stats["items"])
    cap = args.memory_cap_gib * 2**30
    print(f"[{shape.label}] {stats['users']:,} users, {stats['items']:,} items ({stats['cold_start_items']:,} "
          f"cold-start), {stats['interactions']:,} interactions after filtering; CE logits ~{_size(need)}",
          flush=True)  # fmt: skip
    popularity = popularity_metrics(data)
    print(f"[{shape.label}] popularity: NDCG@10 {popularity['ndcg@10']:.4f}, HR@10 {popularity['hr@10']:.4f}"
          + (f", {popularity['cold_users']:,.0f} cold-start test users" if popularity.get("cold_users") else ""),
          flush=True)  # fmt: skip
    runs: list[dict[str, Any]] = []
    for item_encoder in [] if args.data_only else args.encoders:
        for loss in args.losses:
            for seed in args.seeds:
                entry = {"loss": loss, "item_encoder": item_encoder, "seed": seed}
                if loss == "ce" and need > cap:
                    entry.update(status="does not fit", needs_bytes=need, cap_bytes=cap)
                    print(f"[{shape.label}] {loss} seed {seed}: does not fit in {args.memory_cap_gib:g} GiB "
                          f"(needs ~{_size(need)})", flush=True)  # fmt: skip
                    runs.append(entry)
                    continue
                with tempfile.TemporaryDirectory(prefix="next-item-study-") as output_dir:
                    argv = program_argv(args, manifest["files"], shape.kind, cache_dir, loss, item_encoder, seed,
                                        args.epochs[name], output_dir)  # fmt: skip
                    config = {"argv": argv, "device": args.device, "threads": args.threads}
                    log = log_dir / f"{name}-{item_encoder.replace('+', '_')}-{loss}-seed{seed}.log"
                    result = run_in_subprocess(config, log)
                entry.update(result)
                entry["argv"] = argv
                runs.append(entry)
                if entry["status"] == "ok":
                    entry["metrics"] = with_warm_metrics(entry["metrics"], stats["users"])
                    entry["encoder_per_epoch"] = encoder_work_per_epoch(entry)
                    peak = entry["peak_bytes"] / 2**20
                    cold = entry["metrics"].get("cold_hr@10")
                    print(f"[{shape.label}] {item_encoder} {loss} seed {seed}: peak {peak:,.0f} MiB, "
                          f"{entry['time_per_epoch_seconds']:.1f} s/epoch, {entry['epochs']} epochs, NDCG@10 "
                          f"{entry['metrics']['ndcg@10']:.4f}" + ("" if cold is None else f", cold HR@10 {cold:.4f}"),
                          flush=True)  # fmt: skip
                else:
                    print(f"[{shape.label}] {item_encoder} {loss} seed {seed}: {entry['status']}", flush=True)
                if progress is not None:
                    common.write_json(progress, {"name": name, "data": stats, "popularity": popularity,
                                                 "runs": runs})  # fmt: skip
    recbole = None
    if args.recbole and not args.data_only:
        recbole = run_recbole(name, data, args, workdir, log_dir, stats)
    return {
        "name": name,
        "label": shape.label,
        "format": shape.kind,
        "source": shape.source,
        "scale": args.scales[name],
        "real_users": shape.users,
        "target_items": shape_plan.target_items,
        "raw_items": shape_plan.raw_items,
        "lengths": [shape_plan.min_length, shape_plan.max_length],
        "popularity_skew": shape_plan.skew,
        "expected_kept": shape_plan.expected_kept,
        "pilots": pilots,
        "max_epochs": args.epochs[name],
        "new_item_fraction": args.new_item_fraction,
        "generated": manifest["generated"],
        "generation_seconds": manifest.get("seconds"),
        "data": stats,
        "ce_logits_bytes": need,
        "popularity": popularity,
        "runs": runs,
        "recbole": recbole,
    }


def run_recbole(name: str, data, args: argparse.Namespace, workdir: Path, log_dir: Path, stats: dict) -> dict:
    if args.recbole_epochs[name] <= 0:
        return {"status": "not run (--recbole-max-epochs 0)"}
    venv = Path(args.recbole_venv)
    if not recbole_reference.venv_python(venv).exists():
        print(f"[{SHAPES[name].label}] RecBole: no venv at {venv} (python benchmarks/recbole_reference.py setup)")
        return {"status": f"skipped: no RecBole venv at {venv} (`python benchmarks/recbole_reference.py setup`)"}
    print(f"[{SHAPES[name].label}] RecBole SASRec (reference)", flush=True)
    folder = workdir / "recbole" / f"{name}-{args.seed}-{stats['users']}-{stats['items']}"
    try:
        result = recbole_reference.reference(
            data, folder, name.replace("-", "_"), venv=venv, max_length=args.max_length,
            epochs=args.recbole_epochs[name], patience=args.patience, seed=args.seeds[0], threads=args.threads,
            device=args.device, log_path=log_dir / f"{name}-recbole.log",
        )  # fmt: skip
    except (RuntimeError, OSError, subprocess.SubprocessError, json.JSONDecodeError) as error:
        message = str(error).strip().splitlines()
        return {"status": f"failed: {message[-1][:300] if message else type(error).__name__}"}
    result["status"] = "ok"
    print(f"[{SHAPES[name].label}] RecBole: NDCG@10 {result['test_ndcg@10']:.4f}, {result['epochs']} epochs, same "
          f"data: {result['same_data']}", flush=True)  # fmt: skip
    return result


# --------------------------------------------------------------------------------------------------------- summary


def _ok(runs: list[dict], loss: str, item_encoder: str = "id") -> list[dict]:
    return [r for r in runs if r["loss"] == loss and r["item_encoder"] == item_encoder and r["status"] == "ok"]


def summarize(runs: list[dict], loss: str, item_encoder: str = "id") -> dict[str, Any] | None:
    """Means over seeds (and the range of NDCG@10) of one loss's successful runs; None when none ran."""
    done = _ok(runs, loss, item_encoder)
    if not done:
        return None
    ndcg = [r["metrics"]["ndcg@10"] for r in done]
    out = {
        "seeds": len(done),
        "peak_bytes": float(np.mean([r["peak_bytes"] for r in done])),
        "time_per_epoch_seconds": float(np.mean([r["time_per_epoch_seconds"] for r in done])),
        "epochs": float(np.mean([r["epochs"] for r in done])),
        "ndcg_range": max(ndcg) - min(ndcg),
        "ndcg_sd": float(np.std(ndcg, ddof=1)) if len(ndcg) > 1 else None,
    }
    for key in ("ndcg@10", "hr@10", "coverage@10", "surprisal@10"):
        out[key] = float(np.mean([r["metrics"][key] for r in done]))
    for key in ("warm_ndcg@10", "warm_hr@10", "cold_ndcg@10", "cold_hr@10", "cold_users"):
        values = [r["metrics"][key] for r in done if r["metrics"].get(key) is not None]
        if values:
            out[key] = float(np.mean(values))
    work = [r["encoder_per_epoch"] for r in done if r.get("encoder_per_epoch")]
    if work:
        out["encoder_per_epoch"] = {name: float(np.mean([w[name] for w in work])) for name in ENCODER_COUNTERS}
    return out


def ratios(shape: dict[str, Any], item_encoder: str = "id") -> dict[str, float]:
    runs = shape["runs"]
    s = {loss: summarize(runs, loss, item_encoder) for loss in LOSSES}
    out: dict[str, float] = {}
    if s["ce"] and s["cce"]:
        out["memory_ce_over_cce"] = s["ce"]["peak_bytes"] / max(s["cce"]["peak_bytes"], 1.0)
        out["time_cce_over_ce"] = s["cce"]["time_per_epoch_seconds"] / s["ce"]["time_per_epoch_seconds"]
        out["logits_share_of_ce_peak"] = max(0.0, 1 - s["cce"]["peak_bytes"] / max(s["ce"]["peak_bytes"], 1.0))
    elif s["cce"] and any(r["status"] == "does not fit" for r in runs if r["loss"] == "ce"):
        out["memory_ce_need_over_cce"] = shape["ce_logits_bytes"] / max(s["cce"]["peak_bytes"], 1.0)
    if s["cce"] and s["cce_sampled"]:
        out["time_cce_over_cce_sampled"] = (
            s["cce"]["time_per_epoch_seconds"] / s["cce_sampled"]["time_per_epoch_seconds"]
        )
        out["memory_cce_sampled_over_cce"] = s["cce_sampled"]["peak_bytes"] / max(s["cce"]["peak_bytes"], 1.0)
    if s["ce_sampled"] and s["cce_sampled"]:
        out["time_cce_sampled_over_ce_sampled"] = (
            s["cce_sampled"]["time_per_epoch_seconds"] / s["ce_sampled"]["time_per_epoch_seconds"]
        )
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def verdicts(payload: dict[str, Any]) -> list[str]:
    """The issue's targets, checked per dataset shape (ID-based rows)."""
    shapes = payload["datasets"]
    sharing = negative_sharing(payload.get("config", {}))
    minus = "CCE-" + (f" (negatives {SHARING_LABELS[sharing]})" if sharing != "position" else "")
    lines = []
    large = [shape for shape in shapes if shape["data"]["items"] >= LARGE_CATALOG]
    for shape in large:
        s_ce, s_cce, r = summarize(shape["runs"], "ce"), summarize(shape["runs"], "cce"), ratios(shape)
        label = f"{shape['label']} ({shape['data']['items']:,} items)"
        if s_cce is None:
            lines.append(f"CCE vs CE at {label}: not measured (CCE did not run).")
        elif s_ce is not None:
            memory, seconds = r["memory_ce_over_cce"], r["time_cce_over_ce"]
            lines.append(f"CCE vs CE at {label}: {memory:.1f}x less peak memory (target >= 10x), {seconds:.2f}x CE's "
                         f"time per epoch (target <= 1.1x): {_met(memory >= 10 and seconds <= 1.1)}.")  # fmt: skip
        elif "memory_ce_need_over_cce" in r:
            memory = r["memory_ce_need_over_cce"]
            lines.append(f"CCE vs CE at {label}: CE does not fit in {shape['settings']['memory_cap_gib']:g} GiB; "
                         f"its logits alone would need {memory:.1f}x CCE's peak (target >= 10x): "
                         f"{_met(memory >= 10)}; time not compared (CE did not run).")  # fmt: skip
        else:
            lines.append(f"CCE vs CE at {label}: not measured (CE failed).")
    if not large and shapes:
        biggest = max(shapes, key=lambda shape: shape["data"]["items"])
        r = ratios(biggest)
        measured = (f"at {biggest['data']['items']:,} items CE needs {r['memory_ce_over_cce']:.1f}x CCE's peak "
                    f"memory and CCE {r['time_cce_over_ce']:.2f}x CE's time per epoch" if "memory_ce_over_cce" in r
                    else f"CE did not fit; its logits would need {r['memory_ce_need_over_cce']:.1f}x CCE's peak"
                    if "memory_ce_need_over_cce" in r else "CE and CCE were not both measured")  # fmt: skip
        lines.append(f"CCE vs CE at >= {LARGE_CATALOG // 1000}k items: not checked here, the largest catalog has "
                     f"{biggest['data']['items']:,} items ({measured}); `--items gowalla={LARGE_CATALOG}` (with its "
                     "--scale) trains at that size, and `next_item_memory.py` compares the losses alone at 100k and "
                     "1M items.")  # fmt: skip
    for shape in shapes:
        runs, label, r = shape["runs"], shape["label"], ratios(shape)
        s = {loss: summarize(runs, loss) for loss in LOSSES}
        if "time_cce_over_cce_sampled" in r:
            speed, memory = r["time_cce_over_cce_sampled"], r["memory_cce_sampled_over_cce"]
            ok = speed >= 1.5 and memory <= 1.1
            lines.append(f"{label}: CCE's time per epoch is {speed:.2f}x {minus}'s (target: CCE- >= 1.5x faster) at "
                         f"{memory:.2f}x the peak memory (target: equal, <= 1.1x): {_met(ok)}.")  # fmt: skip
        if s["ce"] and s["cce"]:
            diff = s["cce"]["ndcg@10"] - s["ce"]["ndcg@10"]
            if min(s["ce"]["seeds"], s["cce"]["seeds"]) > 1:
                noise = max(s["ce"]["ndcg_range"], s["cce"]["ndcg_range"])
                lines.append(f"{label}: CCE's NDCG@10 {s['cce']['ndcg@10']:.4f} vs CE's {s['ce']['ndcg@10']:.4f} "
                             f"(difference {diff:+.4f}; run-to-run noise, the largest range over seeds, {noise:.4f}): "
                             f"{_met(abs(diff) <= noise)}.")  # fmt: skip
            else:
                lines.append(f"{label}: CCE's NDCG@10 {s['cce']['ndcg@10']:.4f} vs CE's {s['ce']['ndcg@10']:.4f} "
                             f"(difference {diff:+.4f}): not judged, one seed (`--seeds 0 1 2` measures the "
                             "noise).")  # fmt: skip
        if s["cce"] and s["cce_sampled"]:
            rel = s["cce_sampled"]["ndcg@10"] / s["cce"]["ndcg@10"] - 1 if s["cce"]["ndcg@10"] else float("nan")
            lines.append(f"{label}: {minus}'s NDCG@10 {s['cce_sampled']['ndcg@10']:.4f} is {100 * rel:+.1f}% "
                         f"from CCE's {s['cce']['ndcg@10']:.4f} (target: within 5%, or above): "
                         f"{_met(rel >= -0.05)}.")  # fmt: skip
        lines += content_verdicts(shape)
        reference = shape.get("recbole") or {}
        if reference.get("status") == "ok":
            ours_loss = "ce" if s["ce"] else "cce"
            ours = s[ours_loss]
            if ours is None:
                continue
            noise = ours["ndcg_range"] if ours["seeds"] > 1 else 0.0
            diff = ours["ndcg@10"] - reference["test_ndcg@10"]
            same = "same users, items and split" if reference.get("same_data") else "DIFFERENT data (see the counts)"
            lines.append(f"{label}: gram-hf's ID-based SASRec ({LOSS_LABELS[ours_loss]}) NDCG@10 "
                         f"{ours['ndcg@10']:.4f} vs RecBole's SASRec {reference['test_ndcg@10']:.4f} ({same}; "
                         f"difference {diff:+.4f}" + (f", noise {noise:.4f}" if noise else "")
                         + f"): {_met(diff >= -noise)}.")  # fmt: skip
    return lines


def new_item_share(shape: dict[str, Any]) -> float:
    """The `--new_item_share` the shape's runs ranked with (passed through `--program-args`; 0 without)."""
    words = shlex.split(shape.get("settings", {}).get("program_args") or "")
    for position, word in enumerate(words):
        if word.startswith("--new_item_share="):
            return float(word.split("=", 1)[1])
        if word == "--new_item_share" and position + 1 < len(words):
            return float(words[position + 1])
    return 0.0


def content_verdicts(shape: dict[str, Any]) -> list[str]:
    """
    Content-based next-item at scale, per content or hybrid row against the ID-based row of the same loss: NDCG@10
    above the popularity floor's, warm NDCG@10 within 10% of the ID model's, cold-start HR@10 well above 0 (at least
    10x a random ranking's, and above the ID model's where a new-release share mixes new releases into its lists),
    and the encoder's work per epoch beside the ID model's time.
    """
    lines = []
    items = shape["data"]["items"]
    scale = "" if items >= LARGE_CATALOG else f"; the issue's target is at >= {LARGE_CATALOG // 1000}k items"
    popularity = shape.get("popularity") or {}
    encoders = sorted({r["item_encoder"] for r in shape["runs"]} - {"id"}, key=ITEM_ENCODERS.index)
    for encoder in encoders:
        for loss in dict.fromkeys(r["loss"] for r in shape["runs"]):
            ours, ids = summarize(shape["runs"], loss, encoder), summarize(shape["runs"], loss, "id")
            if ours is None:
                continue
            label = f"{shape['label']} ({items:,} items{scale}), {encoder} {LOSS_LABELS[loss]}"
            parts, checks = [], []
            if popularity:
                above = ours["ndcg@10"] > popularity["ndcg@10"]
                parts.append(f"NDCG@10 {ours['ndcg@10']:.4f} vs popularity's {popularity['ndcg@10']:.4f} (target: "
                             f"above): {_met(above)}")  # fmt: skip
                checks.append(above)
            if ids is not None and ours.get("warm_ndcg@10") is not None and ids.get("warm_ndcg@10"):
                ratio = ours["warm_ndcg@10"] / ids["warm_ndcg@10"]
                close = ratio >= 1 - WARM_NDCG_TOLERANCE
                parts.append(f"warm NDCG@10 {ours['warm_ndcg@10']:.4f} vs the ID model's {ids['warm_ndcg@10']:.4f} "
                             f"({100 * (ratio - 1):+.1f}%; target: within {100 * WARM_NDCG_TOLERANCE:.0f}%): "
                             f"{_met(close)}")  # fmt: skip
                checks.append(close)
            if ours.get("cold_hr@10") is not None:
                chance = 10 / items
                well = ours["cold_hr@10"] >= COLD_HR_OVER_CHANCE * chance
                id_hr = ids.get("cold_hr@10") if ids else None
                versus = f", the ID model's {id_hr:.4f}" if id_hr is not None else ""
                target = f">= {COLD_HR_OVER_CHANCE}x a random ranking's {chance:.5f}"
                share = new_item_share(shape)
                if share and id_hr is not None:
                    # The new-release share puts new releases into the ID model's lists too, in the random order of
                    # its untrained rows: content must beat that, not only chance.
                    well = well and ours["cold_hr@10"] > id_hr
                    target += (f" and above the ID model's, whose lists mix in new releases by untrained rows at the "
                               f"same share {share:g}")  # fmt: skip
                parts.append(f"cold-start HR@10 {ours['cold_hr@10']:.4f} over {ours.get('cold_users', 0):,.0f} "
                             f"users{versus} (target: well above 0, here {target}): {_met(well)}")  # fmt: skip
                checks.append(well)
            else:
                parts.append("cold-start: not measured (no cold-start test users; `--new-item-fraction`)")
            work = ours.get("encoder_per_epoch")
            if work:
                time = f"{common.fmt_seconds(ours['time_per_epoch_seconds'])} per epoch"
                if ids is not None:
                    time += (f" ({ours['time_per_epoch_seconds'] / ids['time_per_epoch_seconds']:.1f}x the ID "
                             f"model's {common.fmt_seconds(ids['time_per_epoch_seconds'])})")  # fmt: skip
                parts.append(f"encoder work per epoch {work['encoder_items_forward']:,.0f} items no-grad + "
                             f"{work['encoder_items_backward']:,.0f} forward+backward "
                             f"({work['encoder_tokens_forward'] + work['encoder_tokens_backward']:,.0f} tokens), "
                             f"{time}")  # fmt: skip
            verdict = _met(all(checks)) if checks else "not judged"
            lines.append(f"Content-based next-item at {label}: " + "; ".join(parts) + f". Overall: {verdict}.")
    return lines


# ---------------------------------------------------------------------------------------------------------- output


def _size(value: float) -> str:
    return f"{value / 2**30:,.1f} GiB" if value >= 2**30 else f"{value / 2**20:,.0f} MiB"


def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def negative_sharing(config: dict[str, Any]) -> str:
    """A run's negative sharing; configurations before `--negative-sharing` had a `shared_negatives` flag."""
    return config.get("negative_sharing") or ("batch" if config.get("shared_negatives") else "position")


def _row_label(
    loss: str, item_encoder: str, several_encoders: bool, num_negatives: int, sharing: str = "position"
) -> str:
    shared = f" {SHARING_LABELS[sharing]}" if sharing != "position" else ""
    negatives = f", {num_negatives} negatives{shared})"
    label = f"{LOSS_LABELS[loss]} (`{loss}`" + (negatives if "sampled" in loss else ")")
    return f"{label}, {item_encoder}" if several_encoders else label


def _epochs(runs: list[dict], max_epochs: int) -> str:
    epochs = [r["epochs"] for r in runs]
    best = [r.get("best_epoch") for r in runs]
    capped = any(e >= max_epochs for e in epochs)
    text = "/".join(str(e) for e in epochs)
    if any(b is not None for b in best):
        text += " (best " + "/".join(str(b) for b in best) + ")"
    return text + (f", capped at {max_epochs}" if capped else "")


def _metric(runs: list[dict], key: str) -> str:
    values = [r["metrics"][key] for r in runs]
    text = f"{np.mean(values):.4f}"
    return text + (f" ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else "")


def _mean(metrics: list[dict], key: str) -> str:
    """Mean over seeds of a metric some runs may lack (e.g. cold-start ones where no test user is cold)."""
    values = [m[key] for m in metrics if m.get(key) is not None]
    return f"{np.mean(values):.4f}" if values else "-"


def _work(work: list[dict]) -> str:
    forward = np.mean([w["encoder_items_forward"] for w in work])
    backward = np.mean([w["encoder_items_backward"] for w in work])
    return f"{forward:,.0f} + {backward:,.0f}"


def shape_markdown(shape: dict[str, Any], config: dict[str, Any], top_command: str = "") -> list[str]:
    config = shape.get("settings") or config
    data, encoders = shape["data"], config["encoders"]
    lines = [
        f"## {shape['label']}: {data['items']:,} items",
        "",
        f"{shape['source']}. Synthetic ({shape['format']} format, realistic structure with popularity skew "
        f"{shape['popularity_skew']:g}" + (" — the realistic preset's" if shape["popularity_skew"] == REALISTIC_SKEW
                                           else f", lowered from the preset's {REALISTIC_SKEW:g} so that the catalog "
                                           "survives the 5-interaction filter at this scale") + f"): "
        f"{shape['generated']['users']:,} users (scale {shape['scale']:g} of {shape['real_users']:,}) with "
        f"{shape['lengths'][0]}..{shape['lengths'][1]} interactions, {shape['generated']['items']:,} items generated; "
        f"after filtering {data['users']:,} users, **{data['items']:,} items** (target {shape['target_items']:,}), "
        f"{data['interactions']:,} interactions ({data['mean_length']:.1f} per user), {data['train_targets']:,} "
        f"training targets. Sequence length {min(config['max_length'], data['sequence_length'])}, batch "
        f"{config['batch_size']}: CE's logits need ~{_size(shape['ce_logits_bytes'])}.",
        "",
    ]  # fmt: skip
    if shape.get("command") and shape["command"] != top_command:
        lines += [f"Measured by `{shape['command']}` ({shape.get('date_utc')}).", ""]
    if shape.get("new_item_fraction"):
        generated = shape["generated"].get("new_items")
        lines += [
            f"New releases (cold-start items): {shape['new_item_fraction']:g} of each topic's items"
            + (f" ({generated:,} generated)" if generated is not None else "") + ", each only some users' last "
            f"(test) item; {data['cold_start_items']:,} of them survive the filter, the held-out item of "
            f"{int((shape.get('popularity') or {}).get('cold_users', 0)):,} test users. Warm: the test users whose "
            "held-out item trained.",
            "",
        ]  # fmt: skip
    cold = bool(data.get("cold_start_items")) or bool((shape.get("popularity") or {}).get("cold_users"))
    content = any(r.get("encoder_per_epoch") for r in shape["runs"])
    header = ["loss", "peak memory", "time / epoch", "epochs", "NDCG@10", "HR@10", "Coverage@10", "Surprisal@10"]
    if cold:
        header += ["warm NDCG@10", "cold-start NDCG@10", "cold-start HR@10"]
    if content:
        header.append("encoder items / epoch (no-grad + fwd&bwd)")
    extra = len(header) - 8

    def row(cells: list[str], metrics: list[dict] | None = None, work: list[dict] | None = None) -> list[str]:
        if cold:
            keys = ("warm_ndcg@10", "cold_ndcg@10", "cold_hr@10")
            cells += [_mean(metrics, key) if metrics else "-" for key in keys]
        if content:
            cells.append(_work(work) if work else "-")
        return cells

    rows = []
    for item_encoder in encoders:
        for loss in config["losses"]:
            runs = [r for r in shape["runs"] if r["loss"] == loss and r["item_encoder"] == item_encoder]
            label = _row_label(
                loss, item_encoder, len(encoders) > 1, config["num_negatives"], negative_sharing(config)
            )
            ok = [r for r in runs if r["status"] == "ok"]
            unfit = [r for r in runs if r["status"] == "does not fit"]
            if ok:
                rows.append(row([
                    label, _mib(np.mean([r["peak_bytes"] for r in ok])),
                    common.fmt_seconds(float(np.mean([r["time_per_epoch_seconds"] for r in ok]))),
                    _epochs(ok, shape["max_epochs"]), _metric(ok, "ndcg@10"), _metric(ok, "hr@10"),
                    _metric(ok, "coverage@10"), _metric(ok, "surprisal@10"),
                ], [r["metrics"] for r in ok], [r["encoder_per_epoch"] for r in ok
                                                 if r.get("encoder_per_epoch")]))  # fmt: skip
            elif unfit:
                need = _size(unfit[0]["needs_bytes"])
                rows.append([label, f"does not fit in {config['memory_cap_gib']:g} GiB (logits need ~{need})",
                             "-", "-", "-", "-", "-", "-"] + ["-"] * extra)  # fmt: skip
            elif runs:
                rows.append([label, runs[0]["status"], "-", "-", "-", "-", "-", "-"] + ["-"] * extra)
    popularity = shape.get("popularity")
    if popularity:
        rows.append(row(["Popularity (train counts, no training)", "-", "-", "-", f"{popularity['ndcg@10']:.4f}",
                         f"{popularity['hr@10']:.4f}", f"{popularity['coverage@10']:.4f}",
                         f"{popularity['surprisal@10']:.4f}"], [popularity]))  # fmt: skip
    reference = shape.get("recbole")
    if reference is not None:
        if reference.get("status") == "ok":
            epochs = f"{reference['epochs']} (best {reference.get('best_epoch')})"
            if reference["epochs"] >= config["recbole_epochs"]:
                epochs += f", capped at {reference['epochs']}"
            rows.append(["RecBole SASRec (reference, CE)", f"{_mib(reference['peak_rss_bytes'])} (process RSS)",
                         common.fmt_seconds(reference["time_per_epoch_seconds"] or float("nan")), epochs,
                         f"{reference['test_ndcg@10']:.4f}", f"{reference['test_hr@10']:.4f}", "-", "-"]
                        + ["-"] * extra)  # fmt: skip
        else:
            rows.append(["RecBole SASRec (reference, CE)", reference["status"], "-", "-", "-", "-", "-", "-"]
                        + ["-"] * extra)  # fmt: skip
    lines += [common.markdown_table(header, rows), ""]
    r = ratios(shape)
    parts = []
    if "memory_ce_over_cce" in r:
        parts.append(f"CE / CCE peak memory {r['memory_ce_over_cce']:.2f}x (the logits, which CCE never builds, are "
                     f"{100 * r['logits_share_of_ce_peak']:.0f}% of CE's peak)")  # fmt: skip
        parts.append(f"CCE / CE time per epoch {r['time_cce_over_ce']:.2f}x")
    if "memory_ce_need_over_cce" in r:
        parts.append(f"CE's logits would need {r['memory_ce_need_over_cce']:.1f}x CCE's peak memory")
    if "time_cce_over_cce_sampled" in r:
        parts.append(f"CCE / CCE- time per epoch {r['time_cce_over_cce_sampled']:.2f}x (CCE- memory "
                     f"{r['memory_cce_sampled_over_cce']:.2f}x CCE's)")  # fmt: skip
    if "time_cce_sampled_over_ce_sampled" in r:
        parts.append(f"CCE- / CE- time per epoch {r['time_cce_sampled_over_ce_sampled']:.2f}x")
    if parts:
        lines += ["Ratios (ID-based rows, means over seeds): " + "; ".join(parts) + ".", ""]
    if reference is not None and reference.get("status") == "ok":
        counts, ours = reference["counts"], reference["gram_hf_counts"]
        three = ours.get("users_with_3_interactions", 0)
        same = "identical" if reference["same_data"] else "NOT identical: " + json.dumps(reference["mismatches"])
        if three:
            same += (f" (up to RecBole's leave-one-out rule: its {three:,} users with 3 interactions have no "
                     "validation target, their 2nd item trains instead)")  # fmt: skip
        config_used = reference["config"]
        recbole_steps = math.ceil(counts["train_targets"] / config_used["train_batch_size"])
        per_epoch = [r["steps"] / r["epochs"] for r in shape["runs"] if r["status"] == "ok" and r.get("epochs")]
        ours_steps = f"{round(per_epoch[0]):,}" if per_epoch else "?"
        lines += [
            f"RecBole saw {counts['users']:,} users, {counts['items']:,} items, {counts['interactions']:,} "
            f"interactions, {counts['train_targets']:,} training targets (its augmented prefixes), "
            f"{counts['validation_users']:,} validation and {counts['test_users']:,} test users; gram-hf "
            f"{ours['users']:,}, {ours['items']:,}, {ours['interactions']:,}, {ours['train_targets']:,}, "
            f"{ours['validation_users']:,}, {ours['test_users']:,}; the (user, target) pairs of validation and "
            f"test: {same}. RecBole {reference['recbole']} in its own venv, configured as `recbole_reference.py` "
            f"states (inner size {config_used['inner_size']}, {config_used['hidden_act']}, max length "
            f"{config_used['MAX_ITEM_LIST_LENGTH']}, batch {config_used['train_batch_size']} prefixes, seen items "
            f"{'excluded' if reference.get('exclude_seen') else 'ranked'}, seed {config_used['seed']}); its memory "
            "is the whole process's peak RSS, not comparable with the training peaks above. An epoch is one optimizer "
            f"step per {config_used['train_batch_size']} prefixes there ({recbole_steps:,} steps) and per "
            f"{config['batch_size']} sequences in gram-hf ({ours_steps} steps), so at equal capped epochs RecBole has "
            "taken more steps.",
            "",
        ]  # fmt: skip
    return lines


def _loads(values: Sequence[float]) -> str:
    return ", ".join(f"{value:.1f}" for value in values)


def render_markdown(payload: dict[str, Any]) -> str:
    env, config = payload["environment"], payload["config"]
    measure = ("`torch.cuda.max_memory_allocated` during training" if config["device"].startswith("cuda")
               else "the peak resident set size during training (evaluations included) above the resident size at "
               "the start of training")  # fmt: skip
    lines = [
        "# Next-item study: SASRec with CE, CE-, CCE and CCE-",
        "",
        "gram-hf's version of the memory-efficient-training study's tables (`benchmarks/next_item_study.py`; every "
        "run is the `next_item` program in its own process). The study reports the logits at ~90% of CE's memory, "
        "CCE at ~10x less memory and ~2x less time than CE, CCE- ~2x faster again.",
        "",
        f"Command: `{env['command']}`",
        "",
        f"Machine: {common.hardware_line(env)}; load average before {_loads(env['load_average'])}, after "
        f"{_loads(payload.get('load_average_after', []))}; git {env.get('git_commit')}.",
        "",
        f"Settings: SASRec (`--item_encoder {'/'.join(config['encoders'])}`), item size {config['item_dim']}, 2 "
        f"blocks, 1 head, dropout 0.2, max length {config['max_length']}, Adam lr {config['learning_rate']:g}, batch "
        f"{config['batch_size']} sequences, {config['num_negatives']} negatives for CE-/CCE-; early stopping on "
        f"validation NDCG@10 with patience {config['patience']}; seeds {', '.join(map(str, config['seeds']))}. Peak "
        f"memory: {measure}. Time per epoch: the median epoch's training (evaluation excluded; the mean with GRAM "
        "windows of several epochs, whose encoder fit lands in every Nth epoch). Metrics: test split "
        "(each user's last item; seen items excluded from the full-catalog ranking) at the best validation epoch; "
        "with several seeds, mean ± standard deviation. Epochs: run (best), per seed."
        + (f" Extra program options: `{config['program_args']}`." if config.get("program_args") else ""),
        "",
    ]  # fmt: skip
    for shape in payload["datasets"]:
        lines += shape_markdown(shape, config, env["command"])
    lines += ["## Verdicts", "", *[f"- {line}" for line in payload["verdicts"]], ""]
    lines += [f"Wall time of this run: {common.fmt_seconds(payload['wall_seconds'])}.", ""]
    return "\n".join(lines)


def render_chart(payload: dict[str, Any], path: Path) -> None:
    plt = common.pyplot()
    shapes, losses = payload["datasets"], payload["config"]["losses"]
    encoders = payload["config"].get("encoders", ["id"])
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    reference = [(i, s["recbole"]["test_ndcg@10"]) for i, s in enumerate(shapes)
                 if (s.get("recbole") or {}).get("status") == "ok"]  # fmt: skip
    # One bar per loss and item encoder (an ID model beside a content one trained with the same loss).
    series = [(loss, item_encoder) for loss in losses for item_encoder in encoders]
    groups = len(series) + bool(reference)
    width = 0.8 / groups
    positions = np.arange(len(shapes))
    for index, (loss, item_encoder) in enumerate(series):
        label = f"{LOSS_LABELS[loss]}, {item_encoder}" if len(encoders) > 1 else LOSS_LABELS[loss]
        memory, seconds, ndcg, hatched = [], [], [], []
        for shape in shapes:
            s = summarize(shape["runs"], loss, item_encoder)
            unfit = any(r["status"] == "does not fit" for r in shape["runs"]
                        if r["loss"] == loss and r.get("item_encoder", "id") == item_encoder)  # fmt: skip
            memory.append(s["peak_bytes"] / 2**20 if s else shape["ce_logits_bytes"] / 2**20 if unfit else np.nan)
            seconds.append(s["time_per_epoch_seconds"] if s else np.nan)
            ndcg.append(s["ndcg@10"] if s else np.nan)
            hatched.append(unfit and s is None)
        x = positions + (index - (groups - 1) / 2) * width
        bars = axes[0].bar(x, memory, width, label=label)
        for bar, unfit in zip(bars, hatched):
            if unfit:
                bar.set_hatch("//")
                bar.set_alpha(0.4)
                axes[0].annotate("does not fit", (bar.get_x(), bar.get_height()), fontsize=7, rotation=90)
        axes[1].bar(x, seconds, width, label=label)
        axes[2].bar(x, ndcg, width, label=label)
    if reference:
        x = [positions[i] + (groups - 1) / 2 * width for i, _ in reference]
        axes[2].bar(x, [value for _, value in reference], width, color="grey", label="RecBole SASRec")
    titles = ("peak memory in training (MiB, log)", "time per epoch (s)", "test NDCG@10")
    for axis, title in zip(axes, titles):
        axis.set_xticks(positions)
        axis.set_xticklabels([f"{s['label']}\n{s['data']['items']:,} items" for s in shapes], fontsize=8)
        axis.set_title(title)
        axis.grid(True, axis="y", alpha=0.3)
    axes[0].set_yscale("log")
    axes[2].legend(fontsize=8)
    figure.suptitle(f"SASRec losses, {payload['config']['device']} ({payload['environment']['cpu']})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ------------------------------------------------------------------------------------------------------------ main


def merge_studies(paths: Sequence[Path], command: str) -> dict[str, Any]:
    """
    One study from several run side by side on the same data: each shape's runs gathered from the studies in order,
    with the first study's settings, every study's command and program options, and the verdicts recomputed. A shape
    whose data differ between the studies, a run measured twice or a different `--new_item_share` (which the content
    verdict compares the ID model at) is refused.
    """

    def run_key(run: dict[str, Any]) -> tuple[str, str, int]:
        return run["loss"], run["item_encoder"], run["seed"]

    payloads = [json.loads(Path(path).read_text()) for path in paths]
    shapes: dict[str, dict[str, Any]] = {}
    sources: dict[str, Path] = {}
    for path, payload in zip(paths, payloads):
        for shape in payload["datasets"]:
            name, command_of_shape = shape["name"], shape.get("command") or payload["environment"]["command"]
            if name not in shapes:
                shapes[name], sources[name] = copy.deepcopy(shape), path
                shapes[name]["command"] = command_of_shape
                continue
            merged = shapes[name]
            if shape["data"] != merged["data"]:
                raise ValueError(f"{path}: the {shape['label']} data differ from {sources[name]}'s; only runs on the "
                                 "same data share a table.")  # fmt: skip
            share, merged_share = new_item_share(shape), new_item_share(merged)
            if share != merged_share:
                raise ValueError(f"{path}: {shape['label']} ranked with new_item_share {share:g}, {sources[name]} "
                                 f"with {merged_share:g}.")  # fmt: skip
            measured = {run_key(run) for run in merged["runs"]}
            twice = [run_key(run) for run in shape["runs"] if run_key(run) in measured]
            if twice:
                raise ValueError(f"{path}: {shape['label']} {twice[0]} (loss, item encoder, seed) is also in "
                                 f"{sources[name]}.")  # fmt: skip
            merged["runs"] += shape["runs"]
            merged["command"] += " + " + command_of_shape
            encoders = merged["settings"]["encoders"]
            encoders += [e for e in shape.get("settings", {}).get("encoders", []) if e not in encoders]
    first = payloads[0]
    config = {**first["config"], "datasets": list(shapes)}
    config["encoders"] = list(dict.fromkeys(e for payload in payloads for e in payload["config"]["encoders"]))
    options = [payload["config"].get("program_args") for payload in payloads]
    if len(set(options)) > 1:
        config["program_args"] = "; ".join(
            f"{'/'.join(payload['config']['encoders'])}: {option or '(none)'}"
            for payload, option in zip(payloads, options)
        )
    datasets = sorted(shapes.values(), key=lambda shape: list(SHAPES).index(shape["name"]))
    for shape in datasets:
        shape["ratios"] = ratios(shape)
    environment = {**first["environment"], "command": command}
    payload = {"environment": environment, "config": config, "datasets": datasets}
    payload["verdicts"] = verdicts(payload)
    # Side by side: the longest of them.
    payload["wall_seconds"] = max(p["wall_seconds"] for p in payloads)
    payload["load_average_after"] = first.get("load_average_after", [])
    payload["merged_from"] = [str(path) for path in paths]
    return payload


def write_results(payload: dict[str, Any], output_dir: Path) -> None:
    common.write_json(output_dir / "next_item_study.json", payload)
    markdown = render_markdown(payload)
    (output_dir / "next_item_study.md").write_text(markdown)
    render_chart(payload, output_dir / "next_item_study.png")
    print(markdown)
    print(f"Wrote {output_dir}/next_item_study.{{json,md,png}}")


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.worker:
        common.write_json(args.result, run_worker(json.loads(Path(args.config).read_text())))
        return None
    if args.merge:
        payload = merge_studies(args.merge, common.environment_info(args.device, args.threads)["command"])
        write_results(payload, common.results_dir(args))
        return payload
    start = time.perf_counter()
    environment = common.environment_info(args.device, args.threads)
    # Absolute: the RecBole runner works in its own folder, where a relative data path would name nothing.
    workdir = Path(args.workdir).resolve() / "next_item_study"
    output_dir = common.results_dir(args)
    log_dir = workdir / "logs"
    config = {
        "device": args.device, "datasets": args.datasets, "scales": args.scales, "items": args.catalogs,
        "popularity_skew": args.popularity_skew, "losses": args.losses, "encoders": args.encoders,
        "seeds": args.seeds, "max_epochs": args.epochs, "recbole_epochs": args.recbole_epochs,
        "patience": args.patience, "batch_size": args.batch_size, "max_length": args.max_length,
        "item_dim": args.item_dim, "learning_rate": args.learning_rate, "num_negatives": args.num_negatives,
        "negative_sharing": args.negative_sharing,
        "memory_cap_gib": args.memory_cap_gib, "threads": args.threads, "bf16": args.bf16, "data_seed": args.seed,
        "recbole": args.recbole, "new_item_fraction": args.new_item_fraction, "program_args": args.program_args,
    }  # fmt: skip
    datasets = []
    progress = output_dir / "next_item_study.partial.json"
    if args.data_only:
        shapes = [run_shape(name, args, workdir, log_dir) for name in args.datasets]
        print(f"Data ready in {workdir} ({time.perf_counter() - start:.0f} s).")
        return {"environment": environment, "config": config, "datasets": shapes}
    for name in args.datasets:
        shape = run_shape(name, args, workdir, log_dir, progress)
        shape["settings"] = {**config, "max_epochs": args.epochs[name], "recbole_epochs": args.recbole_epochs[name]}
        shape["command"], shape["date_utc"] = environment["command"], environment["date_utc"]
        shape["ratios"] = ratios(shape)
        datasets.append(shape)
    existing = output_dir / "next_item_study.json"
    if args.update and existing.exists():
        earlier = json.loads(existing.read_text()).get("datasets", [])
        datasets += [shape for shape in earlier if shape["name"] not in args.datasets]
        datasets.sort(key=lambda shape: list(SHAPES).index(shape["name"]))
    payload = {"environment": environment, "config": config, "datasets": datasets}
    payload["verdicts"] = verdicts(payload)
    payload["wall_seconds"] = time.perf_counter() - start
    payload["load_average_after"] = os.getloadavg()
    write_results(payload, output_dir)
    progress.unlink(missing_ok=True)
    return payload


if __name__ == "__main__":
    main()
