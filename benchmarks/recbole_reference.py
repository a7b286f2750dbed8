"""
A reference row for `next_item_study.py`: RecBole's SASRec (Zhao et al., RecBole 1.2) trained and evaluated on the same
synthetic interactions, after the same filtering and with the same leave-one-out split as gram-hf's next_item program.

RecBole pins old libraries (numpy < 2, pandas < 2.2, scipy < 1.12), so it lives in its own virtualenv, never in
gram-hf's environment, and never runs in the test suite. Three steps, each a subcommand:

    python benchmarks/recbole_reference.py setup        # creates /tmp/recbole-venv (a few minutes, once)
    python benchmarks/recbole_reference.py convert --data-kind movielens --data ml-dir --output recbole-data --name ml
    /tmp/recbole-venv/bin/python benchmarks/recbole_reference.py run --data-path recbole-data --name ml --epochs 50

`setup` runs `python -m venv /tmp/recbole-venv`, installs torch from PyTorch's CPU index (falling back to PyPI's
`torch==2.13.0`, the CPU build on this project's machines, when that index is unreachable), then `recbole` with
`numpy<2`, `pandas<2.2`, `scipy<1.12` and `setuptools<81` (RecBole imports ray, which needs `pkg_resources`).

`convert` (gram-hf's environment) reads the raw files with gram-hf's own loader (`load_movielens`, `load_amazon` or
`load_gowalla`: duplicates dropped, items with < 5 and users with < 3 interactions removed, repeatedly) and writes
RecBole's atomic file `<output>/<name>/<name>.inter` (`user_id:token  item_id:token  timestamp:float`) from the
test split, which holds each user's whole chronological sequence; the timestamp is the interaction's position in that
sequence, so that RecBole's sort by (user, time) reproduces gram-hf's order exactly, ties included. Beside it,
`<name>.gram_hf.json` has gram-hf's counts and digests of the validation and test (user, target) pairs.

`run` (the venv's Python) trains RecBole's SASRec with the study's configuration: CE loss, hidden size 64, 2 blocks, 1
head, `--max-length` (100; 50 at the study's small scales), dropout 0.2, Adam lr 1e-3, batch 256, split `LS`
(`valid_and_test`: leave-one-out) in time order, full ranking, early stopping on validation NDCG@10 (`--patience`). The
feed-forward size is the hidden size with ReLU, as in gram-hf's SASRec and Kang & McAuley's (RecBole's defaults, 256
and GELU, with `--inner-size 256 --hidden-act gelu`). RecBole's full ranking of a sequential model scores items the
user already saw, while gram-hf excludes them (every user's items are distinct here, so a seen item is never the
answer); the model class below masks them as gram-hf does (`--keep-seen` for RecBole's own behaviour). It checks that
RecBole sees the same users, items, interactions, training targets and validation/test pairs as gram-hf (from the
`.gram_hf.json`), up to one rule of RecBole's leave-one-out: a user with only 3 interactions gets no validation target
there, their 2nd item trains instead (gram-hf validates on it; such users are counted), and prints one JSON line: test
NDCG@10 and HR@10, the best validation NDCG@10, epochs, time per epoch, wall time, peak RSS and the counts. RecBole
calls `torch.load` on its own checkpoints, which needs `weights_only=False` on torch >= 2.6: the runner sets
`TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1` and wraps `torch.load`, without touching site-packages. Importing RecBole's
sequential models switches on `torch.autograd.set_detect_anomaly(True)` (its SINE module does, at import), which made
an epoch ~3-10x slower here: the runner switches it off again.

Run with no subcommand from gram-hf's environment (`python benchmarks/recbole_reference.py --data-kind movielens
--data DIR`), it converts and runs in one go and prints the JSON; `next_item_study.py --recbole` calls
[`reference`] per dataset shape.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_VENV = Path("/tmp/recbole-venv")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_FALLBACK = "torch==2.13.0"
RECBOLE_REQUIREMENTS = ("recbole", "numpy<2", "pandas<2.2", "scipy<1.12", "setuptools<81")
DATA_KINDS = ("movielens", "amazon", "gowalla")
FILTER = {"min_item_interactions": 5, "min_user_interactions": 3}


# ------------------------------------------------------------------------------------------------------------ setup


def venv_python(venv: str | os.PathLike = DEFAULT_VENV) -> Path:
    return Path(venv) / "bin" / "python"


def setup_venv(venv: str | os.PathLike = DEFAULT_VENV, python: str = sys.executable) -> Path:
    """Creates the virtualenv `venv` with RecBole and a CPU torch (nothing is done when it imports RecBole already)."""
    interpreter = venv_python(venv)
    if interpreter.exists() and _imports_recbole(interpreter):
        print(f"{venv}: RecBole is installed.", flush=True)
        return interpreter
    if not interpreter.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(interpreter), "-m", "pip", "install", "--disable-pip-version-check"]
    index = subprocess.run([*pip, "--timeout", "20", "--retries", "1", "torch", "--index-url", TORCH_CPU_INDEX])
    if index.returncode != 0:
        print(f"PyTorch's CPU index is unreachable: installing {TORCH_FALLBACK} from PyPI.", flush=True)
        subprocess.run([*pip, TORCH_FALLBACK], check=True)
    subprocess.run([*pip, *RECBOLE_REQUIREMENTS], check=True)
    if not _imports_recbole(interpreter):
        raise RuntimeError(f"{interpreter} cannot import recbole after the installation.")
    return interpreter


def _imports_recbole(interpreter: Path) -> bool:
    check = "import recbole.quick_start, recbole.model.sequential_recommender"
    return subprocess.run([str(interpreter), "-c", check], capture_output=True).returncode == 0


# ---------------------------------------------------------------------------------------------------------- convert


def load_with_gram_hf(data_kind: str, files: dict[str, str], cache_dir: str | None = None):
    """The dataset exactly as gram-hf's next_item program loads it (its loader, the 5/3 filter)."""
    from gram_hf.tasks import next_item

    if data_kind == "movielens":
        return next_item.load_movielens(files["data_dir"], cache_dir=cache_dir, **FILTER)
    if data_kind == "amazon":
        return next_item.load_amazon(files["reviews"], files["metadata"], cache_dir=cache_dir, **FILTER)
    if data_kind == "gowalla":
        return next_item.load_gowalla(files["checkins"], None, cache_dir=cache_dir, **FILTER)
    raise ValueError(f"data_kind must be one of {DATA_KINDS}, got {data_kind!r}.")


def pair_digest(pairs) -> str:
    """An order-free digest of (user, item) pairs."""
    digest = hashlib.sha256()
    for user, item in sorted(pairs):
        digest.update(f"{user}\t{item}\n".encode())
    return digest.hexdigest()[:16]


def split_summary(users: list[str], sequences: list[list[str]]) -> dict[str, Any]:
    """Counts and (user, target) digests of a leave-one-out split, from each user's chronological item keys."""
    lengths = [len(sequence) for sequence in sequences]
    longer = [(user, sequence) for user, sequence in zip(users, sequences) if len(sequence) > 3]
    three = len(users) - len(longer)
    return {
        "users": len(users),
        "items": len({item for sequence in sequences for item in sequence}),
        "interactions": sum(lengths),
        # Targets of training: every item after the first of the sequence without its last two (as RecBole's
        # augmented prefixes before the leave-one-out split, and gram-hf's train split, which drops users of < 4).
        "train_targets": sum(max(length - 3, 0) for length in lengths),
        "validation_users": len(users),
        "test_users": len(users),
        "validation_digest": pair_digest((user, sequence[-2]) for user, sequence in zip(users, sequences)),
        "test_digest": pair_digest((user, sequence[-1]) for user, sequence in zip(users, sequences)),
        # RecBole's leave-one-out keeps one target for training before it takes a validation one: a user with 3
        # interactions (2 targets) gets a test target and a training target (the 2nd item), no validation target.
        "users_with_3_interactions": three,
        "expected_in_recbole": {
            "train_targets": sum(max(length - 3, 0) for length in lengths) + three,
            "validation_users": len(longer),
            "validation_digest": pair_digest((user, sequence[-2]) for user, sequence in longer),
        },
    }


def convert(data, output: str | os.PathLike, name: str) -> dict[str, Any]:
    """
    Writes `data` (a gram-hf next-item `InteractionData`) as RecBole's `<output>/<name>/<name>.inter` and gram-hf's
    counts as `<name>.gram_hf.json` beside it; returns the counts.
    """
    folder = Path(output) / name
    folder.mkdir(parents=True, exist_ok=True)
    keys = [str(key) for key in data.items["item_id"]]
    test = data["test"]
    users = [str(user) for user in test["user_id"]]
    sequences = [[keys[index] for index in items] for items in test["items"]]
    with open(folder / f"{name}.inter", "w", encoding="utf-8") as handle:
        handle.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, sequence in zip(users, sequences):
            handle.writelines(f"{user}\t{item}\t{position}\n" for position, item in enumerate(sequence))
    counts = split_summary(users, sequences)
    counts["train_targets_gram_hf"] = sum(max(len(items) - 1, 0) for items in data["train"]["items"])
    counts["catalog"] = len(keys)
    (folder / f"{name}.gram_hf.json").write_text(json.dumps(counts, indent=2) + "\n")
    return counts


# -------------------------------------------------------------------------------------------------------------- run


def _patch_torch_load() -> None:
    """RecBole reloads its own checkpoints with `torch.load`, whose default became `weights_only=True` (torch 2.6)."""
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import functools

    import torch

    if not getattr(torch.load, "_recbole_reference", False):
        original = torch.load

        @functools.wraps(original)
        def load(*args, **kwargs):
            kwargs.setdefault("weights_only", False)
            return original(*args, **kwargs)

        load._recbole_reference = True
        torch.load = load


def _peak_rss_bytes() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def recbole_config(args: argparse.Namespace, checkpoint_dir: str) -> dict[str, Any]:
    return {
        "data_path": str(Path(args.data_path).resolve()),
        "checkpoint_dir": checkpoint_dir,
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        # The study's filter (a no-op on converted files, which are filtered already: the counts are checked).
        "user_inter_num_interval": "[3,inf)",
        "item_inter_num_interval": "[5,inf)",
        "MAX_ITEM_LIST_LENGTH": args.max_length,
        "n_layers": 2,
        "n_heads": 1,
        "hidden_size": 64,
        "inner_size": args.inner_size,
        "hidden_act": args.hidden_act,
        "hidden_dropout_prob": 0.2,
        "attn_dropout_prob": 0.2,
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "learning_rate": args.learning_rate,
        "train_batch_size": args.batch_size,
        "eval_batch_size": 256,
        "epochs": args.epochs,
        # RecBole stops once more than `stopping_step` evaluations in a row missed the best; transformers'
        # EarlyStoppingCallback (gram-hf) once `patience` did: the same rule with stopping_step = patience - 1.
        "stopping_step": max(args.patience - 1, 0),
        "eval_step": 1,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["NDCG", "Hit"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "seed": args.seed,
        "reproducibility": True,
        "use_gpu": args.device.startswith("cuda"),
        "gpu_id": args.device.split(":", 1)[1] if ":" in args.device else "0",
        "worker": 0,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "state": os.environ.get("RECBOLE_LOG_STATE", "WARNING"),
    }


def seen_masking_sasrec(base: type, keep_seen: bool = False) -> type:
    """
    RecBole's SASRec (`base`) whose full ranking excludes the items before the target, as gram-hf's evaluation does;
    a module attribute named `SASRec`, since RecBole pickles its config, model class included, into checkpoints.
    """
    import numpy as np
    import torch

    class SASRec(base):
        history: dict[int, dict[int, list[int]]] = {}

        def full_sort_predict(self, interaction):
            scores = super().full_sort_predict(interaction)
            if keep_seen:
                return scores
            rows, columns = [], []
            targets = interaction[self.POS_ITEM_ID].tolist()
            for row, (user, target) in enumerate(zip(interaction[self.USER_ID].tolist(), targets)):
                seen = self.history[user][target]
                rows += [row] * len(seen)
                columns += seen
            index = (torch.tensor(rows, dtype=torch.long), torch.tensor(columns, dtype=torch.long))
            scores[index] = -np.inf
            return scores

    SASRec.__module__, SASRec.__qualname__ = __name__, "SASRec"
    globals()["SASRec"] = SASRec
    return SASRec


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Trains and tests RecBole's SASRec (in the RecBole venv); returns the results."""
    _patch_torch_load()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec as RecBoleSASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    # Importing RecBole's sequential models runs `torch.autograd.set_detect_anomaly(True)` (in its SINE module), which
    # records a traceback per operation and made an epoch ~10x slower here: switched off again.
    torch.autograd.set_detect_anomaly(False)
    model_class = seen_masking_sasrec(RecBoleSASRec, keep_seen=args.keep_seen)
    expected = json.loads((Path(args.data_path) / args.name / f"{args.name}.gram_hf.json").read_text())
    workdir = tempfile.mkdtemp(prefix="recbole-run-")
    cwd = os.getcwd()
    os.chdir(workdir)  # RecBole writes log/ and log_tensorboard/ into the working directory
    try:
        argv, sys.argv = sys.argv, sys.argv[:1]  # RecBole's Config reads `--key=value` options from sys.argv
        try:
            config = Config(model=model_class, dataset=args.name, config_dict=recbole_config(args, workdir))
        finally:
            sys.argv = argv
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        counts = recbole_counts(dataset, train_data, valid_data, test_data)
        model_class.history = seen_items(dataset, Path(args.data_path) / args.name / f"{args.name}.inter")
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = model_class(config, train_data.dataset).to(config["device"])
        trainer = Trainer(config, model)
        epoch_seconds: list[float] = []
        train_epoch = trainer._train_epoch

        def timed_train_epoch(*a, **k):
            start = time.perf_counter()
            try:
                return train_epoch(*a, **k)
            finally:
                if torch.cuda.is_available() and args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                epoch_seconds.append(time.perf_counter() - start)

        trainer._train_epoch = timed_train_epoch
        start = time.perf_counter()
        best_valid, _ = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        train_seconds = time.perf_counter() - start
        test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
        wall = time.perf_counter() - start
    finally:
        os.chdir(cwd)
        shutil.rmtree(workdir, ignore_errors=True)  # RecBole's logs and checkpoint
    expected_recbole = {**{key: expected.get(key) for key in COUNT_KEYS}, **expected.get("expected_in_recbole", {})}
    mismatches = [key for key in COUNT_KEYS if counts.get(key) != expected_recbole.get(key)]
    median = sorted(epoch_seconds)[len(epoch_seconds) // 2] if epoch_seconds else None
    return {
        "model": "RecBole SASRec",
        "recbole": _version("recbole"),
        "torch": torch.__version__,
        "config": {key: value for key, value in recbole_config(args, "").items() if key not in ("checkpoint_dir",)},
        "exclude_seen": not args.keep_seen,
        "test_ndcg@10": float(test["ndcg@10"]),
        "test_hr@10": float(test["hit@10"]),
        "best_validation_ndcg@10": float(best_valid),
        "epochs": len(epoch_seconds),
        # RecBole's counter of evaluations since the best one.
        "best_epoch": len(epoch_seconds) - int(getattr(trainer, "cur_step", 0)),
        "epoch_seconds": epoch_seconds,
        "time_per_epoch_seconds": median,
        "train_seconds": train_seconds,
        "wall_seconds": wall,
        "peak_rss_bytes": _peak_rss_bytes(),
        "counts": counts,
        "gram_hf_counts": expected,
        "same_data": not mismatches,
        "expected_counts": expected_recbole,
        "mismatches": {key: [expected_recbole.get(key), counts.get(key)] for key in mismatches},
    }


COUNT_KEYS = (
    "users",
    "items",
    "interactions",
    "train_targets",
    "validation_users",
    "test_users",
    "validation_digest",
    "test_digest",
)


def _version(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:  # pragma: no cover - a broken install
        return None


def recbole_counts(dataset, train_data, valid_data, test_data) -> dict[str, Any]:
    """What RecBole sees: users, items (without its padding id), interactions, instances and (user, target) pairs."""
    uid, iid = dataset.uid_field, dataset.iid_field

    def pairs(split):
        users = dataset.id2token(uid, split.dataset.inter_feat[uid].numpy())
        items = dataset.id2token(iid, split.dataset.inter_feat[iid].numpy())
        return list(zip(map(str, users), map(str, items)))

    validation, test = pairs(valid_data), pairs(test_data)
    return {
        "users": int(dataset.user_num - 1),
        "items": int(dataset.item_num - 1),
        # Its interactions are augmented into one row per target (every item but a user's first).
        "interactions": int(len(dataset.inter_feat)) + int(dataset.user_num - 1),
        "train_targets": int(len(train_data.dataset)),
        "validation_users": len(validation),
        "test_users": len(test),
        "validation_digest": pair_digest(validation),
        "test_digest": pair_digest(test),
    }


def seen_items(dataset, inter_path: Path) -> dict[int, dict[int, list[int]]]:
    """
    user id -> target item id -> every item before it in the user's sequence (RecBole's internal ids), from the atomic
    file (RecBole's item lists hold only the last MAX_ITEM_LIST_LENGTH items).
    """
    sequences: dict[str, list[str]] = {}
    with open(inter_path, encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            user, item, _ = line.rstrip("\n").split("\t")
            sequences.setdefault(user, []).append(item)
    history: dict[int, dict[int, list[int]]] = {}
    for user, items in sequences.items():
        ids = [int(i) for i in dataset.token2id(dataset.iid_field, items)]
        history[int(dataset.token2id(dataset.uid_field, user))] = {item: ids[:k] for k, item in enumerate(ids)}
    return history


# ------------------------------------------------------------------------------------------------------- orchestrate


def reference(
    data,
    workdir: str | os.PathLike,
    name: str,
    *,
    venv: str | os.PathLike = DEFAULT_VENV,
    max_length: int = 100,
    epochs: int = 50,
    patience: int = 2,
    batch_size: int = 256,
    seed: int = 0,
    threads: int | None = None,
    device: str = "cpu",
    timeout: float | None = None,
    log_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Converts `data` (loaded by gram-hf) under `workdir` and runs RecBole's SASRec on it in the venv; its JSON."""
    interpreter = venv_python(venv)
    if not interpreter.exists():
        raise FileNotFoundError(f"No RecBole venv at {venv}: run `python benchmarks/recbole_reference.py setup`.")
    data_path = Path(workdir) / "recbole"
    convert(data, data_path, name)
    command = [str(interpreter), str(Path(__file__).resolve()), "run", "--data-path", str(data_path), "--name", name,
               "--max-length", str(max_length), "--epochs", str(epochs), "--patience", str(patience),
               "--batch-size", str(batch_size), "--seed", str(seed), "--device", device]  # fmt: skip
    if threads:
        command += ["--threads", str(threads)]
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip()[-2000:]
        raise RuntimeError(f"RecBole's SASRec failed (exit {completed.returncode}):\n{tail}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["command"] = " ".join(command)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="all", choices=["setup", "convert", "run", "all"])
    parser.add_argument("--venv", default=str(DEFAULT_VENV), help="The RecBole virtualenv (setup, all).")
    parser.add_argument("--data-kind", choices=DATA_KINDS, default="movielens", help="convert, all: the raw format.")
    parser.add_argument("--data", help="convert, all: the raw data (MovieLens folder, Gowalla check-ins file, or the "
                        "Amazon reviews file with --metadata).")  # fmt: skip
    parser.add_argument("--metadata", help="convert, all: the Amazon metadata file.")
    parser.add_argument("--cache-dir", default=None, help="convert, all: the `datasets` cache of gram-hf's loader.")
    parser.add_argument("--output", "--data-path", dest="data_path", default=None,
                        help="Where the atomic files go (convert) or are (run).")  # fmt: skip
    parser.add_argument("--name", default="synthetic", help="The RecBole dataset name (file stem).")
    parser.add_argument("--max-length", type=int, default=100, help="MAX_ITEM_LIST_LENGTH (100; 50 at small scale).")
    parser.add_argument("--epochs", type=int, default=50, help="Most training epochs (early stopping ends sooner).")
    parser.add_argument("--patience", type=int, default=2, help="Epochs without a better validation NDCG@10.")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--inner-size", type=int, default=64, help="Feed-forward size (RecBole's default: 256).")
    parser.add_argument("--hidden-act", default="relu", help="Feed-forward activation (RecBole's default: gelu).")
    parser.add_argument("--keep-seen", action="store_true", help="Rank seen items too (RecBole's own full ranking).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def _files(args: argparse.Namespace) -> dict[str, str]:
    if args.data is None:
        raise SystemExit("--data is needed (and --metadata for --data-kind amazon).")
    if args.data_kind == "movielens":
        return {"data_dir": args.data}
    if args.data_kind == "amazon":
        if args.metadata is None:
            raise SystemExit("--data-kind amazon needs --metadata.")
        return {"reviews": args.data, "metadata": args.metadata}
    return {"checkins": args.data}


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.command == "setup":
        setup_venv(args.venv)
        return None
    if args.command == "run":
        if args.data_path is None:
            raise SystemExit("run needs --data-path (the converted atomic files).")
        result = run(args)
        print(json.dumps(result))
        return result
    data = load_with_gram_hf(args.data_kind, _files(args), args.cache_dir)
    if args.command == "convert":
        output = args.data_path or tempfile.mkdtemp(prefix="recbole-data-")
        counts = convert(data, output, args.name)
        print(json.dumps({"output": str(Path(output) / args.name), **counts}))
        return counts
    workdir = args.data_path or tempfile.mkdtemp(prefix="recbole-reference-")
    result = reference(data, workdir, args.name, venv=args.venv, max_length=args.max_length, epochs=args.epochs,
                       patience=args.patience, batch_size=args.batch_size, seed=args.seed, threads=args.threads,
                       device=args.device)  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
