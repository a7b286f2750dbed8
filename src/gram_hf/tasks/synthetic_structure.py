"""
[`SyntheticStructure`]: what the synthetic generators of every task plant in their data beyond the file formats — how
skewed item popularity is, how much of an item's behaviour its text expresses, how many items share their text and
how many texts say nothing — and [`ItemStructure`], the planted item structure a generator hands back so that tests
and benchmarks can check it.

Two named settings ([`SYNTHETIC_STRUCTURES`]):

- `"planted"` (the default of every generator): the text carries the whole signal. An item's behaviour (a knowledge
  tracing item's difficulty, a news article's or a product's topic) is exactly what its words say, no text is
  shared by design nor generic, and popularity follows each generator's own Zipf law. Content models shine; tests and
  demos that need a strong signal use it. Its files are byte for byte those of the generators before this setting
  existed.
- `"realistic"`: real catalogs, where text is weak. Items carry latent factors (knowledge tracing: a difficulty and
  skill factors; news and next-item: a taste vector) that drive the behaviour through a collaborative structure
  (learners' skills, users' tastes, consecutive items' similarity); the text expresses only a `text_signal` share of
  them; a `shared_text_fraction` of the items share their text with other items whose factors differ (as EdNet's
  questions share "part + tags"); a `weak_text_fraction` have generic texts that express nothing; and popularity is
  Zipf-skewed with `popularity_skew`. ID-based models find what the text misses, while the text still predicts
  cold-start items in part. The quality benchmarks run this setting.

How a generator realises a text share `rho` (the same for every task): the part of an item's latent factors that its
text expresses is drawn first (the difficulty its hard and easy words spell, the topic its words name, embedded as a
topic vector); the factors are `sqrt(rho) * text part + sqrt(1 - rho) * hidden part`, the hidden part independent
and of the same scale, so that a regression of the factors on what the text says explains a share `rho` of their
variance. Items with weak text have factors that are all hidden part, so over the catalog the text explains
`(1 - weak_text_fraction) * rho` ([`ItemStructure.text_explained_share`]).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SyntheticStructure:
    """
    The item structure a synthetic generator plants, validated on construction. Pass a named setting of
    [`SYNTHETIC_STRUCTURES`] (`structure="planted"` or `"realistic"`) or an instance to any generator.

    Args:
        popularity_skew (`float`, *optional*):
            Zipf exponent of item popularity (`~ 1 / rank ** popularity_skew`); `None` keeps each generator's own law
            (the knowledge-tracing preset's, MIND's 1.1, next-item's per-topic 1.0).
        text_signal (`float`, *optional*, defaults to 1.0):
            Share in (0, 1] of the variance of an item's latent factors that its text expresses (for items whose text
            is not weak). Below 1 the rest is hidden from the text and only an item's interactions reveal it; that
            needs `latent_dim >= 1`.
        shared_text_fraction (`float`, *optional*, defaults to 0.0):
            Share in [0, 1) of the items whose text is identical to that of at least one other item whose latent
            factors differ (small groups, 2 to 5 items). Duolingo's items are their sentences, so its writer keeps
            texts distinct and ignores this.
        weak_text_fraction (`float`, *optional*, defaults to 0.0):
            Share in [0, 1) of the items whose text is generic: no word of it expresses the item's factors.
        latent_dim (`int`, *optional*, defaults to 0):
            Dimensions of the latent factors behind the behaviour (knowledge tracing: skill factors beside the
            difficulty; news and next-item: the taste vector users' tastes are matched with). 0 keeps the planted
            behaviour (topic preferences, difficulty only).
    """

    popularity_skew: float | None = field(
        default=None,
        metadata={"help": "Zipf exponent of item popularity; None keeps the generator's own (planted) law."},
    )
    text_signal: float = field(
        default=1.0,
        metadata={"help": "Share (0..1] of an item's latent behaviour its text expresses (1: the text says it all)."},
    )
    shared_text_fraction: float = field(
        default=0.0, metadata={"help": "Share [0..1) of the items that share their text with other items."}
    )
    weak_text_fraction: float = field(
        default=0.0, metadata={"help": "Share [0..1) of the items whose text is generic and expresses nothing."}
    )
    latent_dim: int = field(
        default=0,
        metadata={"help": "Dimensions of the items' latent factors (0: the planted topic/difficulty behaviour only)."},
    )

    def __post_init__(self):
        if self.popularity_skew is not None and not self.popularity_skew >= 0:
            raise ValueError(f"popularity_skew must be >= 0 or None, got {self.popularity_skew}.")
        if not 0.0 < self.text_signal <= 1.0:
            # Content must keep some signal: cold-start items are predictable only from their text.
            raise ValueError(f"text_signal must be in (0, 1], got {self.text_signal}.")
        if not 0.0 <= self.shared_text_fraction < 1.0:
            raise ValueError(f"shared_text_fraction must be in [0, 1), got {self.shared_text_fraction}.")
        if not 0.0 <= self.weak_text_fraction < 1.0:
            raise ValueError(f"weak_text_fraction must be in [0, 1), got {self.weak_text_fraction}.")
        if (
            isinstance(self.latent_dim, bool)
            or not isinstance(self.latent_dim, int | np.integer)
            or self.latent_dim < 0
        ):
            raise ValueError(f"latent_dim must be an integer >= 0, got {self.latent_dim!r}.")
        if self.text_signal < 1.0 and self.latent_dim < 1:
            raise ValueError(
                f"text_signal={self.text_signal} < 1 needs latent_dim >= 1: the behaviour the text does not express "
                "lives in the latent factors."
            )

    @property
    def name(self) -> str:
        """The name of the setting in [`SYNTHETIC_STRUCTURES`] equal to this one, else `"custom"`."""
        return next((name for name, setting in SYNTHETIC_STRUCTURES.items() if setting == self), "custom")

    @property
    def is_planted(self) -> bool:
        """Whether this is the planted setting (every generator then writes what it wrote before this option)."""
        return self == SYNTHETIC_STRUCTURES["planted"]

    def popularity_exponent(self, default: float) -> float:
        """The Zipf exponent to use where the generator's own is `default`."""
        return default if self.popularity_skew is None else float(self.popularity_skew)

    def to_dict(self) -> dict:
        """The settings as plain values (for manifests and reports)."""
        return dataclasses.asdict(self)


SYNTHETIC_STRUCTURES: dict[str, SyntheticStructure] = {
    "planted": SyntheticStructure(),
    "realistic": SyntheticStructure(
        popularity_skew=1.2, text_signal=0.3, shared_text_fraction=0.25, weak_text_fraction=0.15, latent_dim=8
    ),
}
"""The named settings: `"planted"` (the text says it all; the generators' historical output) and `"realistic"` (weak
text, latent collaborative structure, shared and generic texts, skewed popularity); see the module docstring."""


def resolve_structure(structure: str | SyntheticStructure | None) -> SyntheticStructure:
    """The [`SyntheticStructure`] named `structure` in [`SYNTHETIC_STRUCTURES`] (an instance as is; None: planted)."""
    if structure is None:
        return SYNTHETIC_STRUCTURES["planted"]
    if isinstance(structure, SyntheticStructure):
        return structure
    if structure not in SYNTHETIC_STRUCTURES:
        raise ValueError(
            f"Unknown synthetic structure {structure!r}; choose from {sorted(SYNTHETIC_STRUCTURES)} or pass a "
            "SyntheticStructure."
        )
    return SYNTHETIC_STRUCTURES[structure]


@dataclass
class ItemStructure:
    """
    The item structure a generator planted, aligned with its truth's items (row i = the truth's i-th item).

    Attributes:
        structure (`SyntheticStructure`): the settings it was drawn with.
        factors (`np.ndarray` `[num_items, m]`): each item's latent behaviour. Knowledge tracing: column 0 the
            difficulty (as the response model uses it, in units of the text's hard/easy share), then `latent_dim`
            skill factors; news and next-item: the taste vector (planted: the topic's one-hot vector).
        text_factors (`np.ndarray` `[num_items, m]`): the part of `factors` that the item's text expresses (zeros
            for weak texts); `factors - text_factors` is hidden from the text.
        text_source (`np.ndarray` of int `[num_items]`): the item whose text each item carries (itself unless it
            shares its text).
        weak_text (`np.ndarray` of bool `[num_items]`): items whose text is generic.
        popularity (`np.ndarray` `[num_items]`): the item draw probabilities the generator used (before the
            behaviour model reweights them; 0 for items it never draws at random, such as cold-start releases).
    """

    structure: SyntheticStructure
    factors: np.ndarray
    text_factors: np.ndarray
    text_source: np.ndarray
    weak_text: np.ndarray
    popularity: np.ndarray

    @property
    def shared_text(self) -> np.ndarray:
        """Boolean mask of the items whose text source is shared with at least one other item."""
        counts = np.bincount(self.text_source, minlength=len(self.text_source))
        return counts[self.text_source] > 1

    @property
    def shared_text_fraction(self) -> float:
        """The share of items that share their text with another item."""
        return float(self.shared_text.mean()) if len(self.text_source) else 0.0

    @property
    def text_explained_share(self) -> float:
        """Share of the factors' total variance that the text expresses: `sum var(text_factors) / sum var(factors)`."""
        total = float(self.factors.var(axis=0).sum())
        return float(self.text_factors.var(axis=0).sum()) / total if total > 0 else 1.0

    def explained_by(self, features: np.ndarray, rows: np.ndarray | None = None) -> float:
        """
        How much of the factors' variance `features` (`[num_items, p]`, e.g. what a reader finds in each text)
        explain: the adjusted R^2 of a least-squares regression with intercept, pooled over the factor columns,
        over `rows` (a mask or indices; default all items). Near `text_explained_share` for features that read the
        text well.
        """
        factors = self.factors if rows is None else self.factors[rows]
        features = np.asarray(features, dtype=np.float64)
        features = (features if rows is None else features[rows]).reshape(len(factors), -1)
        design = np.concatenate([np.ones((len(factors), 1)), features], axis=1)
        coefficients = np.linalg.lstsq(design, factors, rcond=None)[0]
        residual = float(((factors - design @ coefficients) ** 2).sum())
        total = float(((factors - factors.mean(axis=0)) ** 2).sum())
        n, p = len(factors), np.linalg.matrix_rank(design) - 1
        return 1.0 - (residual / total) * (n - 1) / max(1, n - p - 1)


def top_share(counts: np.ndarray, fraction: float = 0.1) -> float:
    """The share of the total of `counts` (e.g. interactions per item) taken by its top `fraction` of entries."""
    counts = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    return float(counts[: max(1, int(round(fraction * len(counts))))].sum() / counts.sum())


def share_texts(
    num_items: int, fraction: float, rng: np.random.Generator, strata: np.ndarray | None = None
) -> np.ndarray:
    """
    The text source of each item: `round(fraction * num_items)` items are put into groups of 2 to 4 (one group may
    take a fifth, to hit the count) that carry the text of their first member (`text_source[i]` = that member;
    itself for every other item). Groups never mix `strata` (e.g. a topic that the shared text names). No random
    draw when `fraction` is 0.
    """
    text_source = np.arange(num_items)
    target = int(round(fraction * num_items))
    if target < 2:
        return text_source
    strata = np.zeros(num_items, dtype=np.int64) if strata is None else np.asarray(strata)
    pools: dict[int, list[int]] = {}
    for item in rng.permutation(num_items).tolist():
        pools.setdefault(int(strata[item]), []).append(item)
    keys = [key for key in pools if len(pools[key]) >= 2]
    placed, last_stratum = 0, 0
    last_group: list[int] | None = None
    while placed < target and keys:
        sizes = np.array([len(pools[key]) for key in keys], dtype=np.float64)
        key = keys[int(rng.choice(len(keys), p=sizes / sizes.sum()))]
        pool = pools[key]
        if target - placed == 1 and last_group is not None and pools.get(last_stratum):
            # One item short: extend the last group (same stratum) rather than overshoot with a pair.
            member = pools[last_stratum].pop()
            text_source[member] = last_group[0]
            placed += 1
            break
        size = int(min(2 + rng.poisson(0.6), 4, len(pool), max(2, target - placed)))
        group = [pool.pop() for _ in range(size)]
        text_source[group] = group[0]
        placed += size
        last_group, last_stratum = group, key
        keys = [key for key in keys if len(pools[key]) >= 2]
    return text_source


def choose_weak(num_items: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of `round(fraction * num_items)` random items with generic text (no draw when `fraction` is 0)."""
    weak = np.zeros(num_items, dtype=bool)
    count = int(round(fraction * num_items))
    if count:
        weak[rng.choice(num_items, size=count, replace=False)] = True
    return weak


def mix_factors(
    text_part: np.ndarray, text_signal: float, weak: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """
    `(factors, text_factors)` from the part of each item's factors that its text names (`text_part` `[n, m]`):
    `factors = sqrt(text_signal) * text_part + sqrt(1 - text_signal) * hidden` for informative texts and `hidden`
    alone, at full scale, for weak ones; `hidden` is Gaussian with each column's standard deviation of `text_part`
    over the informative items, so the factors keep the text part's scale and the text explains a `text_signal`
    share of their variance. Without weak texts and with `text_signal == 1` the factors are the text part and
    nothing is drawn.
    """
    text_part = np.asarray(text_part, dtype=np.float64)
    weak = np.asarray(weak, dtype=bool)
    if text_signal == 1.0 and not weak.any():
        return text_part.copy(), text_part.copy()  # the text says it all (planted): no draw
    informative = text_part[~weak] if (~weak).any() else text_part
    scale = informative.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    hidden = rng.normal(size=text_part.shape) * scale
    text_factors = np.sqrt(text_signal) * text_part
    text_factors[weak] = 0.0
    mix = np.where(weak[:, None], 1.0, np.sqrt(1.0 - text_signal))
    return text_factors + mix * hidden, text_factors


__all__ = [
    "SYNTHETIC_STRUCTURES",
    "ItemStructure",
    "SyntheticStructure",
    "choose_weak",
    "mix_factors",
    "resolve_structure",
    "share_texts",
    "top_share",
]
