"""
Next-item recommendation over large catalogs: SASRec with full, sampled and cut cross-entropy losses.

- [`SASRecHead`] (registered as `head_type="next_item"`): causal self-attention over the sequence's item vectors,
  scored against the catalog through the tied output layer; losses `bce`, `ce`, `ce_sampled`, `cce`, `cce_sampled`.
- [`linear_cross_entropy`] / [`sampled_linear_cross_entropy`]: Cut Cross-Entropy and its sampled variant (CCE-),
  exact, streaming, pure PyTorch (with the `cut-cross-entropy` CUDA kernels when installed).
- [`NextItemCollator`]: GRAM's batch contract for full-catalog and sampled losses, and the evaluation layout.
- [`sequence_slices`]: long training sequences as overlapping slices, so every target trains once with context.
- [`NextItemMetrics`]: NDCG@10, HR@10, Coverage@10, Surprisal@10 (and cold-start NDCG/HR) via the `next_item`
  `evaluate` module.
- [`load_movielens`], [`load_amazon`], [`load_gowalla`], [`load_next_item_csv`]: MovieLens-20M, Amazon reviews,
  Gowalla check-ins (ID-only, or with an item-text table) and the generic `user_id,item_id,timestamp` table (CSV or
  Parquet, optional item texts), k-core filtered, leave-one-out.
- [`make_synthetic_movielens`], [`make_synthetic_amazon`], [`make_synthetic_gowalla`]: raw-format data with a planted
  topic signal (or, with `structure="realistic"`, latent tastes the text only partly expresses:
  [`SyntheticStructure`]).

**GRAM and the catalog.** With a full-catalog loss (`ce`, `cce`) every training batch references every catalog item
through `catalog_ref`, so in `gram` mode the loss's gradient for every catalog vector feeds its pseudo-target and every
item is *touched* in every window: each window re-encodes the whole catalog without grad (lazily) and fits the encoder
on the whole catalog (forward + backward of `num_items` items), and `e2e` encodes the catalog once more per step. The
trainer's counters show it (`gram/unique_items` grows by `num_items` per step, `gram/encoder_items_backward` by
`num_items` per window). The practical combinations are therefore long windows (`gram_interval="1epoch"`, where the
catalog cost is paid once per epoch, like one more pass over the items) or the sampled losses (`ce_sampled`,
`cce_sampled`, `bce`), whose batches touch only the sequences' items and the sampled negatives. Single-step GRAM
without recomputation encodes the whole catalog with gradients in one batch: use `gram_recompute=True` (encoder
mini-batches of `encoder_batch_size`) for large catalogs.
"""

from ..synthetic_structure import SYNTHETIC_STRUCTURES, ItemStructure, SyntheticStructure
from .collator import NextItemCollator
from .head import FULL_CATALOG_LOSSES, LOSS_TYPES, NEGATIVE_SHARING, SAMPLED_LOSSES, NextItemOutput, SASRecHead
from .loaders import (
    AmazonBuilder,
    GowallaBuilder,
    MovieLensBuilder,
    NextItemCSVBuilder,
    load_amazon,
    load_gowalla,
    load_movielens,
    load_next_item_csv,
)
from .losses import (
    cut_cross_entropy_available,
    linear_cross_entropy,
    sampled_binary_cross_entropy,
    sampled_cross_entropy,
    sampled_linear_cross_entropy,
)
from .metrics import NextItemMetrics, item_popularity, popularity_recommendations, random_ranking_ndcg
from .preprocessing import PreparedInteractions, prepare_sequences
from .ranking import new_item_offsets, rank_catalog
from .slicing import sequence_slices
from .synthetic import SyntheticNextItem, make_synthetic_amazon, make_synthetic_gowalla, make_synthetic_movielens
from .task import NEXT_ITEM_TASK

__all__ = [
    "NEXT_ITEM_TASK",
    "FULL_CATALOG_LOSSES",
    "LOSS_TYPES",
    "NEGATIVE_SHARING",
    "SAMPLED_LOSSES",
    "SYNTHETIC_STRUCTURES",
    "AmazonBuilder",
    "GowallaBuilder",
    "ItemStructure",
    "MovieLensBuilder",
    "NextItemCSVBuilder",
    "NextItemCollator",
    "NextItemMetrics",
    "NextItemOutput",
    "PreparedInteractions",
    "SASRecHead",
    "SyntheticNextItem",
    "SyntheticStructure",
    "cut_cross_entropy_available",
    "item_popularity",
    "linear_cross_entropy",
    "load_amazon",
    "load_gowalla",
    "load_movielens",
    "load_next_item_csv",
    "make_synthetic_amazon",
    "make_synthetic_gowalla",
    "make_synthetic_movielens",
    "new_item_offsets",
    "popularity_recommendations",
    "prepare_sequences",
    "random_ranking_ndcg",
    "rank_catalog",
    "sampled_binary_cross_entropy",
    "sampled_cross_entropy",
    "sampled_linear_cross_entropy",
    "sequence_slices",
]
