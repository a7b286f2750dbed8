"""
Next-item recommendation with SASRec over a content encoder's item vectors, trained with GRAM, with the
memory-efficient large-catalog losses (CE, CE- sampled, CCE cut cross-entropy, CCE- sampled CCE) and full-catalog
evaluation: NDCG@10, HR@10, Coverage@10 and Surprisal@10, and NDCG/HR on users whose held-out item is a cold-start
item (never in training), which only a content model can recommend.

Your data (the memory-efficient-SASRec study's preprocessing: items with < 5 and users with < 3 interactions removed,
each user's last item for test, the one before for validation):

    python recipes/next_item.py --dataset movielens --data_dir ml-20m --output_dir outputs/ml-20m
    gram-hf next_item --dataset amazon --reviews reviews_Beauty_5.json.gz --metadata meta_Beauty.json.gz
    gram-hf next_item --dataset gowalla --checkins loc-gowalla_totalCheckins.txt.gz --item_encoder id
    gram-hf next_item --dataset csv --interactions interactions.parquet --items items.csv
    accelerate launch --multi_gpu --num_processes 4 -m gram_hf.scripts.next_item --data_dir ml-20m --bf16

Gowalla's check-ins name locations by id only: train the ID-based model (`--item_encoder id`), or give a table of
location texts (`--items`, CSV or Parquet `item_id,text`) for a content model. `--dataset csv` reads any dataset as a
table `user_id,item_id,timestamp` (CSV or Parquet; `--user_column`, `--item_column`, `--timestamp_column` rename the
columns, timestamps are integers or ISO-8601 date-times) with an optional item-text table (`--items`,
`--text_columns`); `--missing_text error|drop|empty` says what happens to items without a text there.

The default item vectors are hybrid (`--item_encoder content+id --item_id_dropout 0.3`: the content vector plus a
learned ID row, cold-start items keep content only); `--item_encoder content` trains the content-only SASRec and
`--item_encoder id` the ID-based one (an item-ID table, as `--gram_mode nocontent`) for comparison. A hybrid's cached
content vectors train at `--item_learning_rate 0.01` between encoder fits (content-only vectors and `--gram_interval
1`, exactly E2E, at 1.0);
`--loss_type bce|ce|ce_sampled|cce|cce_sampled` and `--num_negatives` choose the loss (`--negative_sharing
sequence|batch`: one set of negatives per sequence or per batch for the sampled softmax losses). Early stopping watches
validation NDCG@10; the reported (`test_*`) metrics are on the test targets. New releases (cold-start items) never
trained as targets, so over the whole catalog they rarely reach a top-10; `--new_item_share 0.1` ranks the test split
(and, saved with the model, `top_k`) as the mixture in which that share of next items goes to new releases (the share
your traffic gives them); validation, which early stopping watches, ranks by the model's scores.

Embedded default (no data arguments): a synthetic MovieLens download in ML-20M's format (titles and genres that
reveal each movie's genre, users who stay with their genres, a popularity skew, new releases never seen in training;
cached under `$HF_HOME/gram_hf/synthetic/movielens-ml-<scale>-<seed>`), the shipped all-MiniLM-L6-v2 encoder projected
to 64 dimensions, GRAM with one encoder fit per epoch, `cce`. It prints the results table and saves the model and the
encoder export in a few minutes on a 2-core CPU:

    python recipes/next_item.py

The embedded default scales down, for the options not given on the command line: `synthetic_scale=0.05` (300
users, 150 movies), `num_train_epochs=6`, `learning_rate=3e-3`, `per_device_train_batch_size=32`,
`item_max_length=32`, `item_dim=64`, `max_length=30`, `save_total_limit=1`, `logging_steps=10`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..tasks.next_item import LOSS_TYPES, load_amazon, load_gowalla, load_movielens, load_next_item_csv
from ..tasks.next_item.head import NEGATIVE_SHARING, check_negative_sharing
from ..tasks.next_item.loaders import MISSING_TEXT_CHOICES
from ..tasks.next_item.task import TRAIN_SLICES
from .arguments import PAPER_TRAINING_DEFAULTS, RecipeArguments, ScriptArguments, split_list
from .command_line import UsageError, run_command_line
from .pipeline import run_program
from .synthetic_cache import synthetic_movielens

if TYPE_CHECKING:
    from ..data import InteractionData

RECIPE = "next_item"
# SASRec's training setup (Kang and McAuley, 2018, and the memory-efficient-SASRec study): Adam with lr 1e-3, batch
# 128, evaluation every epoch with early stopping on validation NDCG@10; the encoder at the GRAM paper's 1e-4.
DEFAULTS = {
    **PAPER_TRAINING_DEFAULTS,
    "output_dir": f"outputs/{RECIPE}",
    "learning_rate": 1e-3,
    "encoder_learning_rate": 1e-4,
    "per_device_train_batch_size": 128,
    "per_device_eval_batch_size": 256,
    "num_train_epochs": 200,  # a cap: early stopping ends training
    "warmup_steps": 0.0,
    "lr_scheduler_type": "constant",
    "metric_for_best_model": "ndcg@10",
    "item_max_length": 64,
    # A full-catalog loss needs more than one encoder step per window (one per window left content-based SASRec below
    # popularity on realistic data): one step per encoder mini-batch, three passes over the window's items.
    "encoder_update": "per_batch",
    "encoder_epochs": 3,
    # A full-catalog loss moves every cached vector at every step, and a window of an epoch drifts them far from what
    # the encoder can fit: eta 1.0 left the hybrid SASRec near popularity on Beauty-shaped data, 0.01 trained well
    # there and above 1.0 and 0.1 on the quality benchmark, for cce and cce_sampled (benchmarks/README.md). For hybrid
    # vectors only: content-only ones and Single-step GRAM (exactly E2E) keep 1.0 (_reconcile_item_learning_rate).
    "item_learning_rate": 0.01,
    # Hybrid item vectors (content + a learned ID row) with the ID part dropped for 30% of the items of a step: warm
    # items get what their text does not say, and the model still ranks by content alone, as cold-start items need.
    # 0.3 kept warm users within the noise of ID-only on two of three generated datasets where 0.5 fell 2-3 NDCG@10
    # points below, at some cold-start cost (benchmarks/results/cpu-amd-epyc-realistic/next_item_hybrid_settings/).
    "item_encoder": "content+id",
    "item_id_dropout": 0.3,
}
DEMO_DEFAULTS = {
    "synthetic_scale": 0.05,
    "num_train_epochs": 6,
    "learning_rate": 3e-3,
    "per_device_train_batch_size": 32,
    "item_max_length": 32,
    "item_dim": 64,
    "max_length": 30,
    "save_total_limit": 1,
    "logging_steps": 10,
}
DATASETS = ("movielens", "amazon", "gowalla", "csv")
# The file options of each dataset (`--items` serves two).
DATASET_FILES = {
    "movielens": ("data_dir",),
    "amazon": ("reviews", "metadata"),
    "gowalla": ("checkins", "items"),
    "csv": ("interactions", "items"),
}


@dataclass
class DataArguments(ScriptArguments):
    """
    A MovieLens, Amazon or Gowalla download or the generic table (see `load_movielens`, `load_amazon`,
    `load_gowalla`, `load_next_item_csv`) and SASRec's options.
    """

    dataset: str = field(
        default="movielens",
        metadata={
            "help": "movielens (ML-20M layout), amazon (reviews + metadata), gowalla (check-ins) or csv (a table "
            "user_id,item_id,timestamp, CSV or Parquet).",
            "choices": DATASETS,
        },
    )
    data_dir: str | None = field(default=None, metadata={"help": "MovieLens: the folder of ratings.csv, movies.csv."})
    reviews: str | None = field(
        default=None, metadata={"help": "Amazon: the 5-core reviews file (.json or .json.gz)."}
    )
    metadata: str | None = field(
        default=None, metadata={"help": "Amazon: the item metadata file (.json or .json.gz)."}
    )
    checkins: str | None = field(
        default=None, metadata={"help": "Gowalla: the check-in file loc-gowalla_totalCheckins.txt (or .txt.gz)."}
    )
    interactions: str | None = field(
        default=None, metadata={"help": "csv: the interaction table user_id,item_id,timestamp (CSV or Parquet)."}
    )
    items: str | None = field(
        default=None,
        metadata={"help": "gowalla, csv: an item-text table item_id,text (CSV or Parquet); without it, ID-only."},
    )
    user_column: str = field(default="user_id", metadata={"help": "csv: the interaction table's user column."})
    item_column: str = field(default="item_id", metadata={"help": "gowalla, csv: the item column (both tables)."})
    timestamp_column: str = field(
        default="timestamp", metadata={"help": "csv: the timestamp column (integers or ISO-8601 date-times)."}
    )
    text_columns: str = field(
        default="text", metadata={"help": "gowalla, csv: the item-text column(s), comma-separated (joined by '. ')."}
    )
    missing_text: str = field(
        default="error",
        metadata={
            "help": "gowalla, csv: interactions naming items absent from --items: error, drop (their interactions) "
            "or empty (an empty text).",
            "choices": list(MISSING_TEXT_CHOICES),
        },
    )
    min_item_interactions: int = field(default=5, metadata={"help": "Items with fewer interactions are removed."})
    min_user_interactions: int = field(default=3, metadata={"help": "Users with fewer interactions are removed."})
    min_rating: float | None = field(default=None, metadata={"help": "MovieLens: keep only ratings at least this."})
    strict: bool = field(
        default=False,
        metadata={
            "help": "Fail instead of dropping: interactions naming items without metadata (or, with --missing_text "
            "drop, text), Gowalla check-ins with invalid coordinates."
        },
    )
    loss_type: str = field(default="cce", metadata={"help": "SASRec's training loss.", "choices": list(LOSS_TYPES)})
    num_negatives: int | None = field(
        default=None, metadata={"help": "Negatives per position of the sampled losses (default: the head's)."}
    )
    negative_sharing: str = field(
        default="position",
        metadata={
            "help": "ce_sampled, cce_sampled: which positions score one set of --num_negatives items: each position "
            "its own, every position of a sequence the sequence's, or every position of the batch one set (shared "
            "sets are much faster where gathering a set per position dominates, e.g. on a CPU).",
            "choices": list(NEGATIVE_SHARING),
        },
    )
    new_item_share: float = field(
        default=0.0,
        metadata={
            "help": "Test metrics and serving: the share of next items that go to new releases (the cold-start "
            "items, never in train), e.g. from recent logs; the whole-catalog ranking then mixes the model's softmax "
            "over the warm items and over the new releases in that proportion (validation, for early stopping, ranks "
            "by the model's scores). 0: rank by raw scores, where new releases rarely reach a top-10."
        },
    )
    max_length: int = field(default=200, metadata={"help": "SASRec reads the last this many items of a sequence."})
    num_blocks: int = field(default=2, metadata={"help": "SASRec's self-attention blocks."})
    num_heads: int = field(default=1, metadata={"help": "Attention heads per block (must divide the item size)."})
    train_slices: str = field(
        default="all",
        metadata={
            "help": "all: every target of a sequence longer than max_length trains, in slices of max_length items "
            "(--slice_stride apart); last: only the last max_length targets of each user (the original SASRec).",
            "choices": list(TRAIN_SLICES),
        },
    )
    slice_stride: int | None = field(
        default=None,
        metadata={
            "help": "Items between the ends of consecutive training slices, 1..max_length (default max_length: "
            "disjoint slices; a smaller stride gives every target at least max_length - stride + 1 items of context "
            "for max_length / stride times the work)."
        },
    )

    def __post_init__(self):
        if self.dataset == "amazon" and (self.reviews is None) != (self.metadata is None):
            raise ValueError("Amazon needs both --reviews and --metadata (or neither, for the embedded default).")
        if self.dataset == "movielens" and (self.reviews or self.metadata):
            raise ValueError("--reviews/--metadata are Amazon's files: pass --dataset amazon.")
        for name in ("checkins", "interactions", "items"):
            owners = [dataset for dataset, options in DATASET_FILES.items() if name in options]
            if getattr(self, name) is not None and self.dataset not in owners:
                raise ValueError(f"--{name} is a file of --dataset {' or '.join(owners)}, not of {self.dataset}.")
        if self.dataset == "gowalla" and self.checkins is None:
            raise ValueError("--dataset gowalla needs --checkins (loc-gowalla_totalCheckins.txt or .txt.gz).")
        if self.dataset == "csv" and self.interactions is None:
            raise ValueError("--dataset csv needs --interactions (a table user_id,item_id,timestamp).")
        if not split_list(self.text_columns):
            raise ValueError("--text_columns must name at least one column.")
        if self.slice_stride is not None and not 1 <= self.slice_stride <= self.max_length:
            raise ValueError(f"--slice_stride must lie in 1..max_length ({self.max_length}), got {self.slice_stride}.")
        check_negative_sharing(self.loss_type, self.negative_sharing)
        if not 0.0 <= self.new_item_share < 1.0:
            raise ValueError(f"--new_item_share must lie in [0, 1), got {self.new_item_share}.")
        if self.slice_stride is not None and self.train_slices == "last":
            raise ValueError("--slice_stride applies to --train_slices all, not last.")

    @property
    def has_data(self) -> bool:
        return any(getattr(self, name) is not None for name in ("data_dir", "reviews", "checkins", "interactions"))

    def head_config(self) -> dict[str, Any]:
        config = {
            "loss_type": self.loss_type,
            "max_length": self.max_length,
            "num_blocks": self.num_blocks,
            "num_heads": self.num_heads,
        }
        if self.num_negatives is not None:
            config["num_negatives"] = self.num_negatives
        if self.negative_sharing != "position":
            config["negative_sharing"] = self.negative_sharing
        if self.new_item_share:
            config["new_item_share"] = self.new_item_share
        return config


def load(args: RecipeArguments) -> tuple[InteractionData, str, dict]:
    """The dataset (the given files, or the embedded default's cached synthetic MovieLens), its description and the
    head's options."""
    data_args = args.data
    filtering = {
        "min_item_interactions": data_args.min_item_interactions,
        "min_user_interactions": data_args.min_user_interactions,
        "strict": data_args.strict,
        "cache_dir": data_args.dataset_cache_dir,
    }
    options = {
        "head_config": data_args.head_config(),
        "train_options": {"train_slices": data_args.train_slices, "slice_stride": data_args.slice_stride},
    }
    if data_args.dataset in ("gowalla", "csv"):
        if data_args.items is None and args.model.item_encoder != "id":
            raise UsageError(
                f"--dataset {data_args.dataset} without --items has no item text for --item_encoder "
                f"{args.model.item_encoder}: pass --items (a table item_id,text) or --item_encoder id."
            )
        texts = {
            "item_column": data_args.item_column,
            "text_columns": split_list(data_args.text_columns),
            "missing_text": data_args.missing_text,
        }
        if data_args.dataset == "gowalla":
            data = load_gowalla(data_args.checkins, data_args.items, **texts, **filtering)
            source = data_args.checkins
        else:
            data = load_next_item_csv(
                data_args.interactions, data_args.items, user_column=data_args.user_column,
                timestamp_column=data_args.timestamp_column, **texts, **filtering,
            )  # fmt: skip
            source = data_args.interactions
        if data_args.items is not None:
            source = f"{source} + {data_args.items}"
        return data, source, options
    if data_args.dataset == "amazon" and not args.synthetic:
        return load_amazon(data_args.reviews, data_args.metadata, **filtering), data_args.reviews, options
    data_dir, source = data_args.data_dir, data_args.data_dir
    if args.synthetic:
        synthetic = synthetic_movielens(
            data_args.synthetic_scale or 0.05, data_args.synthetic_seed, data_args.synthetic_dir,
            data_args.synthetic_structure,
        )  # fmt: skip
        data_dir, source = synthetic.paths["data_dir"], synthetic.describe()
    return load_movielens(data_dir, min_rating=data_args.min_rating, **filtering), source, options


def main(argv: list[str] | None = None) -> dict:
    """Runs the recipe on `argv` (default: the command line) and returns its results (also in results.json)."""
    return run_program(
        DataArguments, argv, recipe=RECIPE, task="next_item", defaults=DEFAULTS, demo_defaults=DEMO_DEFAULTS,
        uses_synthetic=lambda data: not data.has_data, description="next-item data", load=load,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(run_command_line(main))
