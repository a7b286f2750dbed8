"""
The simulated world behind every synthetic raw knowledge-tracing format: the presets, the ground truth a writer
returns, and the planted signal that content-aware models can find.

Items have a latent difficulty that their words reveal (a share of "hard" vs "easy" words among filler), learners
have a latent ability that grows as they practise, and a response is correct with probability
`sigmoid(base + ability + growth * progress - 2.5 * difficulty)`. Content therefore helps, and cold-start items are
predictable from their text alone. Item popularity is Zipf-distributed.

That is the `"planted"` [`~gram_hf.tasks.synthetic_structure.SyntheticStructure`], every writer's default. Under
another one (`structure="realistic"`) the world changes as that module describes: the text spells only a
`text_signal` share of the difficulty (the rest is hidden, Gaussian, of the same scale); with `latent_dim > 0` items
also have skill factors, the text naming the item's skill (one of [`SKILL_WORDS`]) which carries a `text_signal` share
of them, and each learner has skills, adding `SKILL_WEIGHT * <learner skills, item skills> / sqrt(latent_dim)` to the
logit; `weak_text_fraction` of the items have filler-only text; `shared_text_fraction` of them carry the text of
another item (EdNet: of the same part); popularity follows `popularity_skew`. The truth's
[`~gram_hf.tasks.synthetic_structure.ItemStructure`] holds what was planted (column 0 the difficulty, then the skill
factors).

Presets reproduce the GRAM paper's statistics; `scale` shrinks them:

- users and interactions scale linearly (`round(scale * n)`), so interactions per learner stay the paper's;
- items scale with `sqrt(scale)` (at least 10, at most the preset's), so small datasets still revisit items
  (`R_dataset = interactions / items` shrinks as `sqrt(scale)` instead of collapsing); cold-start counts follow items;
- text length never scales.

The writers of [`~gram_hf.tasks.knowledge_tracing.raw_synthetic`] lay this world out in each dataset's files; each
draws everything from one generator seeded with `seed`, so the same arguments always write the same files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..synthetic_structure import ItemStructure, SyntheticStructure, choose_weak, resolve_structure
from .synthetic import EASY_WORDS, FILLER_WORDS, HARD_WORDS, SKILL_WEIGHT, SKILL_WORDS, plant_item_factors

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "po", "gu")
PSEUDO_WORDS = tuple(a + b for a in _SYLLABLES for b in _SYLLABLES if a != b)
TEXT_FILLERS = FILLER_WORDS + PSEUDO_WORDS
DIFFICULTY_WEIGHT = 2.5
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@dataclass(frozen=True)
class KTPreset:
    """
    The statistics a synthetic dataset reproduces at `scale=1.0`.

    Attributes:
        name (`str`): preset name.
        users, items, interactions (`int`): the GRAM paper's counts.
        mean_text_tokens (`float`): mean item length in whitespace tokens.
        cold_start_items (`int`): the cold-start item count to use with this dataset.
        zipf_exponent (`float`): item popularity `~ 1 / rank ** zipf_exponent`.
        base_logit (`float`): shifts the overall share of correct responses.
    """

    name: str
    users: int
    items: int
    interactions: int
    mean_text_tokens: float
    cold_start_items: int = 200
    zipf_exponent: float = 1.0
    base_logit: float = 0.5

    def scaled(self, scale: float) -> tuple[int, int, int, int]:
        """`(users, items, interactions, cold_start_items)` at `scale` (see the module docstring)."""
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}.")
        users = max(2, round(self.users * scale))
        interactions = max(users, round(self.interactions * scale))
        items = min(self.items, max(10, round(self.items * math.sqrt(min(scale, 1.0)))), interactions)
        cold = min(round(self.cold_start_items * items / self.items), items // 2)
        return users, items, interactions, cold


PRESETS = {
    "en_es": KTPreset("en_es", users=2643, items=4628, interactions=279_747, mean_text_tokens=5.3),
    "fr_en": KTPreset("fr_en", users=1202, items=4078, interactions=174_749, mean_text_tokens=5.3),
    "poj": KTPreset("poj", users=22_110, items=2597, interactions=898_384, mean_text_tokens=271, base_logit=-0.3),
    "toeic": KTPreset(
        "toeic", users=1_240_955, items=9336, interactions=94_300_000, mean_text_tokens=147, cold_start_items=684
    ),
}
"""The GRAM paper's datasets: Duolingo Spanish (en_es) and French (fr_en), POJ, EdNet-KT1 (TOEIC)."""


@dataclass
class SyntheticKTTruth:
    """
    What a synthetic raw dataset contains, in the units its loader produces.

    Attributes:
        dataset (`str`): `"duolingo"`, `"ednet"`, `"poj"` or `"kt_csv"`.
        preset (`KTPreset`), scale (`float`), seed (`int`): how it was made.
        item_ids, item_texts (`list[str]`): every generated item (some may never be answered) with its text as the
            loader's item table will hold it.
        item_difficulty (`np.ndarray`): latent difficulty; planted: in [-1, 1] and readable from the text, else a
            `text_signal` share of it is (see `item_structure`).
        user_ids (`list[str]`), user_ability (`np.ndarray`): learners and their initial ability.
        sequences (`dict`): `user_id -> {"item_ids": [...], "responses": [...], "timestamps": [...]}`, each learner's
            interactions in time order (responses 1 = correct, timestamps in integer seconds as loaders give them).
        files (`dict[str, str]`): the written paths (and the arguments to pass to the loader).
        cold_start_items (`int`): the preset's cold-start count, scaled.
        item_structure (`ItemStructure`, *optional*): the planted item structure, rows aligned with `item_ids`
            (factors: difficulty, then skill factors; shared and weak texts; popularity).
    """

    dataset: str
    preset: KTPreset
    scale: float
    seed: int
    item_ids: list[str]
    item_texts: list[str]
    item_difficulty: np.ndarray
    user_ids: list[str]
    user_ability: np.ndarray
    sequences: dict[str, dict[str, list]]
    files: dict[str, str] = field(default_factory=dict)
    cold_start_items: int = 0
    item_structure: ItemStructure | None = None

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_interactions(self) -> int:
        return sum(len(sequence["item_ids"]) for sequence in self.sequences.values())

    @property
    def interactions_per_user(self) -> dict[str, int]:
        return {user: len(sequence["item_ids"]) for user, sequence in self.sequences.items()}

    @property
    def used_item_ids(self) -> set[str]:
        return {item for sequence in self.sequences.values() for item in sequence["item_ids"]}

    @property
    def correct_rate(self) -> float:
        total = sum(sum(sequence["responses"]) for sequence in self.sequences.values())
        return total / max(1, self.num_interactions)

    def difficulty_of(self) -> dict[str, float]:
        return dict(zip(self.item_ids, self.item_difficulty.tolist()))


def resolve_preset(preset: str | KTPreset) -> KTPreset:
    """The [`KTPreset`] named `preset` in [`PRESETS`] (a `KTPreset` is returned as is)."""
    if isinstance(preset, KTPreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose from {sorted(PRESETS)} or pass a KTPreset.")
    return PRESETS[preset]


def make_item_texts(
    num_items: int,
    mean_tokens: float,
    rng: np.random.Generator,
    unique: bool = False,
    skills: np.ndarray | None = None,
    weak: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    """
    Texts whose share of hard vs easy words is the item's difficulty `(#hard - #easy) / #signal`. `skills` (indices
    into [`SKILL_WORDS`]) puts the item's skill word in place of a filler; a `weak` item's text is filler only
    (difficulty 0 as read). Without either the draws are those of the planted world.
    """
    texts: list[str] = []
    difficulty = np.empty(num_items)
    seen: set[str] = set()
    short = mean_tokens < 20
    for item in range(num_items):
        generic = weak is not None and bool(weak[item])
        named = [] if skills is None or generic else [SKILL_WORDS[int(skills[item])]]
        for _ in range(100):
            if short:
                length = max(2, 2 + int(rng.poisson(max(mean_tokens - 2, 0.1))))
                signal = min(length - 1, 1 + int(rng.binomial(2, 0.5)))
            else:
                length = max(10, int(round(rng.normal(mean_tokens, 0.2 * mean_tokens))))
                signal = max(2, int(round(0.08 * length)))
            if generic:
                signal = 0
            hard_share = rng.uniform()
            is_hard = rng.uniform(size=signal) < hard_share
            words = [str(rng.choice(HARD_WORDS)) if hard else str(rng.choice(EASY_WORDS)) for hard in is_hard]
            words += named + [str(word) for word in rng.choice(TEXT_FILLERS, size=length - signal - len(named))]
            rng.shuffle(words)
            text = " ".join(words)
            if not unique or text not in seen:
                break
        else:
            raise RuntimeError("Could not draw unique item texts; the vocabulary is too small for this many items.")
        seen.add(text)
        texts.append(text)
        difficulty[item] = (2 * int(is_hard.sum()) - signal) / signal if signal else 0.0
    return texts, difficulty


@dataclass
class PlantedItems:
    """
    A knowledge-tracing catalog under a [`SyntheticStructure`]: [`draw_item_texts`] fills the texts, [`plant_items`]
    shares texts and mixes the factors.

    Attributes:
        structure (`SyntheticStructure`): the settings.
        texts (`list[str]`): the item texts (after [`plant_items`], shared ones repeated).
        read (`np.ndarray`): the difficulty each text spells (`(#hard - #easy) / #signal`, 0 for a weak text).
        skill_ids (`np.ndarray` or `None`): each item's skill (index into [`SKILL_WORDS`]) when `latent_dim > 0`.
        weak (`np.ndarray`): items whose text is filler only.
        difficulty (`np.ndarray` or `None`): the latent difficulty the response model uses ([`plant_items`]).
        skills (`np.ndarray` or `None`): `[num_items, latent_dim]` skill factors ([`plant_items`]; None without).
        item_structure (`ItemStructure` or `None`): what was planted ([`plant_items`]; the caller sets `popularity`).
    """

    structure: SyntheticStructure
    texts: list[str]
    read: np.ndarray
    skill_ids: np.ndarray | None
    weak: np.ndarray
    difficulty: np.ndarray | None = None
    skills: np.ndarray | None = None
    item_structure: ItemStructure | None = None


def draw_item_texts(
    num_items: int,
    mean_tokens: float,
    rng: np.random.Generator,
    structure: str | SyntheticStructure | None = None,
    unique: bool = False,
) -> PlantedItems:
    """
    The texts of a catalog under `structure`: weak-text and skill choices, then [`make_item_texts`]. Planted: exactly
    `make_item_texts(num_items, mean_tokens, rng, unique)` and no other draw.
    """
    structure = resolve_structure(structure)
    weak = choose_weak(num_items, structure.weak_text_fraction, rng)
    skill_ids = rng.integers(0, len(SKILL_WORDS), size=num_items) if structure.latent_dim else None
    texts, read = make_item_texts(
        num_items, mean_tokens, rng, unique, skill_ids, weak if structure.weak_text_fraction else None
    )
    return PlantedItems(structure, texts, read, skill_ids, weak)


def plant_items(
    items: PlantedItems, rng: np.random.Generator, strata: np.ndarray | None = None, unique: bool = False
) -> PlantedItems:
    """
    Shares texts (groups within `strata`; none when `unique`, where the text is the item's id) and mixes the latent
    factors from what the texts say and a hidden part
    ([`~gram_hf.tasks.knowledge_tracing.synthetic.plant_item_factors`]). Planted: no draw, the difficulty is what the
    text spells.
    """
    planted = plant_item_factors(items.read, items.skill_ids, items.weak, items.structure, rng, strata, unique)
    source = planted.text_source
    items.texts = [items.texts[index] for index in source.tolist()]
    items.read, items.weak = items.read[source], planted.weak_text
    items.skill_ids = None if items.skill_ids is None else items.skill_ids[source]
    items.difficulty = planted.factors[:, 0].copy()
    items.skills = planted.factors[:, 1:] if items.skill_ids is not None else None
    items.item_structure = planted
    return items


def random_ids(count: int, length: int, rng: np.random.Generator, prefix: str = "") -> list[str]:
    """`count` distinct ids of `prefix` plus `length` random base64 characters, in draw order."""
    ids: list[str] = []
    seen: set[str] = set()
    alphabet = np.array(list(_ID_ALPHABET))
    while len(ids) < count:
        candidate = prefix + "".join(rng.choice(alphabet, size=length))
        if candidate not in seen:
            seen.add(candidate)
            ids.append(candidate)
    return ids


@dataclass
class SimulatedWorld:
    """The drawn world: item difficulty, learners' initial ability and each learner's interactions."""

    difficulty: np.ndarray
    ability: np.ndarray
    sequences: list[tuple[np.ndarray, np.ndarray]]  # per learner: item indices, responses (time order)
    skills: np.ndarray | None = None  # per learner: skill factors (a latent structure only)


def simulate_learners(
    num_users: int,
    num_interactions: int,
    difficulty: np.ndarray,
    popularity: np.ndarray,
    base_logit: float,
    rng: np.random.Generator,
    cover_items: bool = True,
    followers: dict[int, list[int]] | None = None,
    repeat_probability: float = 0.0,
    item_skills: np.ndarray | None = None,
) -> SimulatedWorld:
    """
    Learners, their interaction counts (heavy-tailed, summing exactly to `num_interactions`, at least 1 each), item
    draws (Zipf popularity; with `cover_items` every item occurs at least once) and Bernoulli responses.
    `followers[i]`: items answered right after `i` (EdNet bundles); `repeat_probability`: immediate re-answers;
    `item_skills` (`[num_items, k]`): learners get skills `~ N(0, I_k)` whose match with the item's adds
    `SKILL_WEIGHT * <learner, item> / sqrt(k)` to the logit.
    """
    num_items = len(difficulty)
    ability = rng.normal(size=num_users)
    growth = rng.uniform(0.0, 1.0, size=num_users)
    weights = rng.lognormal(0.0, 1.0, size=num_users)
    learner_skills = None
    if item_skills is not None:
        learner_skills = rng.normal(size=(num_users, item_skills.shape[1]))
        skill_scale = SKILL_WEIGHT / math.sqrt(item_skills.shape[1])
    counts = 1 + rng.multinomial(num_interactions - num_users, weights / weights.sum())
    draws = rng.choice(num_items, size=num_interactions, p=popularity)
    if cover_items and num_items <= num_interactions:
        positions = rng.choice(num_interactions, size=num_items, replace=False)
        draws[positions] = rng.permutation(num_items)
    sequences = []
    start = 0
    for user in range(num_users):
        length = int(counts[user])
        items = draws[start : start + length]
        start += length
        if followers or repeat_probability:
            expanded: list[int] = []
            for item in items.tolist():
                if len(expanded) >= length:
                    break
                expanded.append(item)
                for follower in (followers or {}).get(item, ()):
                    if len(expanded) < length:
                        expanded.append(follower)
                if repeat_probability and len(expanded) < length and rng.uniform() < repeat_probability:
                    expanded.append(expanded[-1])
            items = np.asarray(expanded[:length], dtype=np.int64)
        progress = np.arange(length) / max(1, length - 1)
        logits = base_logit + ability[user] + growth[user] * progress - DIFFICULTY_WEIGHT * difficulty[items]
        if learner_skills is not None:
            logits = logits + skill_scale * (item_skills[items] @ learner_skills[user])
        responses = (rng.uniform(size=length) < 1.0 / (1.0 + np.exp(-logits))).astype(np.int64)
        sequences.append((items, responses))
    return SimulatedWorld(difficulty, ability, sequences, learner_skills)


def zipf_popularity(
    num_items: int, exponent: float, rng: np.random.Generator, active: int | None = None
) -> np.ndarray:
    """Item draw probabilities `~ 1 / rank ** exponent`, ranks shuffled over the items."""
    popularity = 1.0 / np.arange(1, num_items + 1) ** exponent
    popularity = rng.permutation(popularity)
    if active is not None:
        popularity[active:] = 0.0  # items past `active` are catalogued but never answered
    return popularity / popularity.sum()


def increasing_ticks(length: int, rng: np.random.Generator, mean: float) -> np.ndarray:
    """Strictly increasing integer ticks from 0: gaps of at least 1, so time order is unambiguous."""
    gaps = 1 + np.floor(rng.exponential(mean, size=length)).astype(np.int64)
    gaps[0] = 0
    return np.cumsum(gaps)


__all__ = [
    "DIFFICULTY_WEIGHT",
    "PRESETS",
    "PSEUDO_WORDS",
    "SKILL_WEIGHT",
    "TEXT_FILLERS",
    "KTPreset",
    "PlantedItems",
    "SimulatedWorld",
    "SyntheticKTTruth",
    "draw_item_texts",
    "increasing_ticks",
    "make_item_texts",
    "plant_items",
    "random_ids",
    "resolve_preset",
    "simulate_learners",
    "zipf_popularity",
]
