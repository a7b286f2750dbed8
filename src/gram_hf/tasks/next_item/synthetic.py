"""
Synthetic next-item datasets with a planted signal, written in the raw formats of MovieLens-20M, Amazon reviews and
Gowalla check-ins so that they exercise the real loaders.

The signal: every item belongs to a topic (a MovieLens genre, an Amazon category) named by words of its text. A user
has topic preferences that drift slowly; their next item keeps the previous item's topic with probability
`stickiness` and otherwise follows the preferences, and within a topic popular items are likelier (Zipf). The next
item is thus predictable from the previous items' topics, which a model reads from the item text — and a popularity
ranking, which ignores the sequence, cannot. A few "new release" items appear only as users' last interaction: they
are cold-start items of the leave-one-out split (never in `train`), recommendable from their text only.

That is the `"planted"` [`~gram_hf.tasks.synthetic_structure.SyntheticStructure`], the default. Under a latent one
(`structure="realistic"`) every item has a latent taste vector, `sqrt(text_signal)` times its topic's vector (what its
title and genres express) plus a hidden part; a user has a drifting taste vector, and the next item is drawn with
weights `popularity * exp((TASTE_WEIGHT * <taste, item> + SEQUENCE_WEIGHT * <previous item, item>) / sqrt(dim))`,
the second term with probability `stickiness` (otherwise only the taste): items consumed together are close in the
latent space, which item co-occurrence reveals and the text only in part. `popularity_skew` makes popularity one Zipf
law over the catalog (planted: per topic), `weak_text_fraction` of the items get generic titles and no genre or
category, and `shared_text_fraction` of them carry the title (and genres, description) of another item of their
topic. New releases stay the cold-start items, drawn by the same weights without popularity. Above
`EXACT_DRAW_ITEMS` items a draw weighs `DRAW_CANDIDATES` proposed candidates instead of the whole catalog
(sampling-importance-resampling, [`_resampled_sequences`]): the same law in the limit, at a cost that does not grow
with the catalog, so that catalogs of 100k items and more generate in minutes rather than hours.

Gowalla ([`make_synthetic_gowalla`]): the topics are cities, the items locations around them (a user stays in a few
cities), popularity is skewed as above, and some check-ins repeat an earlier location of the user (the loader keeps
the first); its items have no text unless an item-text table naming kind and city is asked for.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from ..synthetic_structure import (
    ItemStructure,
    SyntheticStructure,
    choose_weak,
    mix_factors,
    resolve_structure,
    share_texts,
)

MOVIE_GENRES: dict[str, tuple[str, ...]] = {
    "Action": ("fight", "explosion", "chase", "mission", "soldier", "battle", "weapon", "agent"),
    "Comedy": ("funny", "wedding", "party", "laugh", "roommate", "prank", "vacation", "awkward"),
    "Horror": ("haunted", "ghost", "blood", "zombie", "curse", "scream", "demon", "cellar"),
    "Romance": ("love", "kiss", "heart", "paris", "letters", "sweetheart", "bride", "summer"),
    "Sci-Fi": ("space", "robot", "alien", "planet", "galaxy", "future", "android", "starship"),
    "Documentary": ("history", "nature", "ocean", "science", "journey", "truth", "wildlife", "archive"),
    "Western": ("cowboy", "sheriff", "desert", "outlaw", "saloon", "horse", "frontier", "ranch"),
    "Animation": ("cartoon", "puppy", "dragon", "princess", "toy", "bunny", "magic", "kingdom"),
    "Crime": ("detective", "murder", "heist", "gangster", "police", "prison", "witness", "mafia"),
    "Musical": ("song", "dance", "broadway", "singer", "melody", "stage", "piano", "chorus"),
}
BEAUTY_CATEGORIES: dict[str, tuple[str, ...]] = {
    "Skin Care": ("moisturizer", "cleanser", "serum", "hydrating", "facial", "cream", "acne", "toner"),
    "Hair Care": ("shampoo", "conditioner", "curl", "frizz", "scalp", "keratin", "volume", "hair"),
    "Makeup": ("lipstick", "mascara", "foundation", "eyeliner", "blush", "concealer", "palette", "lip"),
    "Fragrance": ("perfume", "cologne", "scent", "floral", "musk", "vanilla", "citrus", "spray"),
    "Nail": ("polish", "nail", "manicure", "cuticle", "gel", "lacquer", "file", "topcoat"),
    "Bath & Body": ("soap", "lotion", "bath", "shower", "scrub", "butter", "body", "foam"),
    "Tools & Accessories": ("brush", "sponge", "mirror", "tweezers", "comb", "dryer", "curler", "clip"),
    "Men's Grooming": ("razor", "beard", "shave", "aftershave", "trimmer", "mustache", "balm", "grooming"),
}
COMMON_WORDS = (
    "the", "of", "night", "return", "last", "first", "great", "little", "secret", "city", "day", "story", "new",
    "old", "dream", "road", "house", "golden", "lost", "best", "original", "classic", "deluxe", "natural",
)  # fmt: skip
GOWALLA_CITIES: dict[str, tuple[float, float]] = {
    "Austin": (30.2672, -97.7431),
    "Dallas": (32.7767, -96.7970),
    "Houston": (29.7604, -95.3698),
    "San Francisco": (37.7749, -122.4194),
    "New York": (40.7128, -74.0060),
    "Stockholm": (59.3293, 18.0686),
    "Chicago": (41.8781, -87.6298),
    "Seattle": (47.6062, -122.3321),
    "Los Angeles": (34.0522, -118.2437),
    "Oslo": (59.9139, 10.7522),
}
VENUE_KINDS = (
    "Coffee Shop", "Park", "Bar", "Museum", "Gym", "Restaurant", "Bookstore", "Stadium", "Library", "Theater",
    "Taco Stand", "Grocery", "Office", "University", "Airport", "Hotel", "Music Venue", "Bakery", "Pizza Place",
    "Mall",
)  # fmt: skip
# New releases are consumed after this time (2015-01-01), everything else before.
RELEASE_TIME = 1_420_070_400
# Gowalla's check-ins span February 2009 to October 2010; new locations are checked into from October 2010.
GOWALLA_START = 1_233_705_600  # 2009-02-04
GOWALLA_NEW_TIME = 1_285_891_200  # 2010-10-01
# The next-item model under a latent structure (see the module docstring); tastes are N(0, I) around a shared mean of
# norm about `sqrt(dim) * TASTE_MEAN`.
TASTE_WEIGHT = 1.0
SEQUENCE_WEIGHT = 3.0
TASTE_MEAN = 0.5
# An exact draw weighs every item (~12 ns per item and interaction on one core: ~1.3 h for 140k items and 2.8M
# interactions). Above this many items a draw resamples `DRAW_CANDIDATES` proposed candidates by their weights instead
# (`_resampled_sequences`), which costs the same at any catalog size; catalogs up to it (every shape the tests and
# committed results use) draw exactly.
EXACT_DRAW_ITEMS = 50_000
DRAW_CANDIDATES = 2048


@dataclass
class SyntheticNextItem:
    """
    What a synthetic generator wrote.

    Attributes:
        files (`dict[str, str]`): the written files (`ratings`/`movies` or `reviews`/`metadata`).
        item_ids (`list[str]`): every generated item's id (movieId or asin), generation order.
        topics (`np.ndarray`): each generated item's topic index.
        topic_names (`list[str]`): the topics (genres or categories).
        new_items (`list[str]`): ids of the new releases, which occur only as a user's last interaction.
        num_users (`int`): users written.
        num_interactions (`int`): interactions written.
        item_structure (`ItemStructure`, *optional*): the planted structure, rows aligned with `item_ids`: factors
            (planted: the topic's one-hot vector; else the latent taste vector), what the text expresses, shared and
            weak texts, popularity.
    """

    files: dict[str, str]
    item_ids: list[str]
    topics: np.ndarray
    topic_names: list[str]
    new_items: list[str]
    num_users: int
    num_interactions: int
    item_structure: ItemStructure | None = None


def _plant(
    rng: np.random.Generator,
    num_users: int,
    num_items: int,
    num_topics: int,
    min_length: int,
    max_length: int,
    stickiness: float,
    drift: float,
    zipf_exponent: float,
    new_item_fraction: float,
    new_item_rate: float,
    structure: SyntheticStructure,
) -> tuple[np.ndarray, np.ndarray, list[list[int]], ItemStructure]:
    """Item topics, new-release flags, per-user item sequences and the planted structure (module docstring)."""
    if num_users < 1 or num_items < 2 * num_topics or not 3 <= min_length <= max_length:
        raise ValueError("Need num_users >= 1, num_items >= 2 * topics and 3 <= min_length <= max_length.")
    if not 0 <= stickiness <= 1 or not 0 <= drift <= 1 or not 0 <= new_item_rate <= 1:
        raise ValueError("stickiness, drift and new_item_rate must lie in [0, 1].")
    topics = np.arange(num_items) % num_topics
    rng.shuffle(topics)
    is_new = np.zeros(num_items, dtype=bool)
    for topic in range(num_topics):
        members = np.flatnonzero(topics == topic)
        count = int(round(new_item_fraction * len(members)))
        if count:
            is_new[rng.choice(members, size=min(count, len(members) - 1), replace=False)] = True
    popularity = np.zeros(num_items)
    if structure.popularity_skew is None:
        for topic in range(num_topics):
            members = np.flatnonzero((topics == topic) & ~is_new)
            weights = 1.0 / np.arange(1, len(members) + 1) ** zipf_exponent
            popularity[rng.permutation(members)] = weights
    else:
        old = np.flatnonzero(~is_new)
        popularity[rng.permutation(old)] = 1.0 / np.arange(1, len(old) + 1) ** structure.popularity_skew
    # Shared texts stay within a topic and a release status (the text names both); no draw when planted.
    weak = choose_weak(num_items, structure.weak_text_fraction, rng)
    text_source = share_texts(num_items, structure.shared_text_fraction, rng, strata=2 * topics + is_new)
    weak = weak[text_source]
    if structure.latent_dim:
        factors, text_factors = mix_factors(
            rng.normal(size=(num_topics, structure.latent_dim))[topics], structure.text_signal, weak, rng
        )
        planted = ItemStructure(structure, factors, text_factors, text_source, weak, popularity / popularity.sum())
        # Exact draws up to EXACT_DRAW_ITEMS items; above, resampled proposed candidates (same law in the limit).
        if len(factors) > EXACT_DRAW_ITEMS:
            sequences = _resampled_sequences(
                rng, planted, topics, is_new, num_users, min_length, max_length, stickiness, drift, new_item_rate
            )
        else:
            sequences = _latent_sequences(
                rng, planted, is_new, num_users, min_length, max_length, stickiness, drift, new_item_rate
            )
        return topics, is_new, sequences, planted
    factors = np.eye(num_topics)[topics]
    text_factors = np.where(weak[:, None], 0.0, factors)
    planted = ItemStructure(structure, factors, text_factors, text_source, weak, popularity / popularity.sum())
    sequences = []
    for _ in range(num_users):
        preference = rng.dirichlet(np.full(num_topics, 0.3))
        length = int(rng.integers(min_length, max_length + 1))
        seen = np.zeros(num_items, dtype=bool)
        sequence = []
        topic = int(rng.choice(num_topics, p=preference))
        for step in range(length):
            if rng.uniform() < drift:
                preference = 0.7 * preference + 0.3 * rng.dirichlet(np.full(num_topics, 0.3))
            if step and rng.uniform() >= stickiness:
                topic = int(rng.choice(num_topics, p=preference))
            last = step == length - 1
            if last and rng.uniform() < new_item_rate:
                pool = np.flatnonzero((topics == topic) & is_new & ~seen)
                weights = np.ones(len(pool))
            else:
                pool = np.flatnonzero((topics == topic) & ~is_new & ~seen)
                weights = popularity[pool]
            if not len(pool):  # the topic is exhausted for this user: any unseen old item
                pool = np.flatnonzero(~is_new & ~seen)
                weights = popularity[pool]
            item = int(rng.choice(pool, p=weights / weights.sum()))
            seen[item] = True
            sequence.append(item)
        sequences.append(sequence)
    return topics, is_new, sequences, planted


def _latent_sequences(
    rng: np.random.Generator,
    planted: ItemStructure,
    is_new: np.ndarray,
    num_users: int,
    min_length: int,
    max_length: int,
    stickiness: float,
    drift: float,
    new_item_rate: float,
) -> list[list[int]]:
    """Sequences under a latent structure: each next item drawn exactly by the weights of the module docstring."""
    factors = planted.factors
    dim = factors.shape[1]
    log_popularity = np.where(is_new, -np.inf, np.log(np.maximum(planted.popularity, 1e-300)))
    new_only = np.where(is_new, 0.0, -np.inf)  # new releases: no popularity yet, only the match
    taste_mean = TASTE_MEAN * rng.normal(size=dim)
    sequences = []
    for _ in range(num_users):
        taste = taste_mean + rng.normal(size=dim)
        taste_scores = factors @ (TASTE_WEIGHT / np.sqrt(dim) * taste)
        length = int(rng.integers(min_length, max_length + 1))
        blocked = np.zeros(len(factors))  # -inf once consumed: no item twice
        sequence: list[int] = []
        for step in range(length):
            if rng.uniform() < drift:
                taste = 0.7 * taste + 0.3 * (taste_mean + rng.normal(size=dim))
                taste_scores = factors @ (TASTE_WEIGHT / np.sqrt(dim) * taste)
            logits = taste_scores + blocked
            if step and rng.uniform() < stickiness:
                logits += factors @ (SEQUENCE_WEIGHT / np.sqrt(dim) * factors[sequence[-1]])
            last_is_new = step == length - 1 and is_new.any() and rng.uniform() < new_item_rate
            draw = logits + (new_only if last_is_new else log_popularity)
            if not np.isfinite(draw).any():  # every new release consumed: an old item
                draw = logits + log_popularity
            if not np.isfinite(draw).any():
                raise ValueError(
                    f"A sequence of {length} items exhausts the {int((~is_new).sum())} old items: lower max_length."
                )
            weights = np.cumsum(np.exp(draw - draw.max()))
            item = int(np.searchsorted(weights, rng.uniform() * weights[-1], side="right"))
            blocked[item] = -np.inf
            sequence.append(item)
        sequences.append(sequence)
    return sequences


def _resampled_sequences(
    rng: np.random.Generator,
    planted: ItemStructure,
    topics: np.ndarray,
    is_new: np.ndarray,
    num_users: int,
    min_length: int,
    max_length: int,
    stickiness: float,
    drift: float,
    new_item_rate: float,
    candidates: int | None = None,
) -> list[list[int]]:
    """
    [`_latent_sequences`] for large catalogs (sampling-importance-resampling): an old item is drawn among `candidates`
    items proposed, with replacement, half by popularity and half uniformly from the previous item's topic (where the
    sequence term puts its weight, whatever their popularity; all by popularity for a first item), each weighing the
    exact draw's weight over its proposal probability, so that the law tends to the exact one as `candidates` grows.
    Consumed candidates weigh 0 (all consumed: an exact draw over the unconsumed). New releases, few, are drawn
    exactly.
    """
    candidates = DRAW_CANDIDATES if candidates is None else candidates
    factors = planted.factors
    dim = factors.shape[1]
    # Gathering the candidates' rows is most of a draw's time: half the bytes in float32.
    factors32 = factors.astype(np.float32)
    old_items = np.flatnonzero(~is_new)
    new_items = np.flatnonzero(is_new)
    popularity = planted.popularity / planted.popularity[old_items].sum()
    threshold, alias = _alias_table(popularity[old_items])
    by_topic = [old_items[topics[old_items] == topic] for topic in range(int(topics.max()) + 1)]
    taste_mean = TASTE_MEAN * rng.normal(size=dim)
    sequences = []
    for _ in range(num_users):
        taste = taste_mean + rng.normal(size=dim)
        length = int(rng.integers(min_length, max_length + 1))
        consumed = np.zeros(len(factors), dtype=bool)
        sequence: list[int] = []
        for step in range(length):
            if rng.uniform() < drift:
                taste = 0.7 * taste + 0.3 * (taste_mean + rng.normal(size=dim))
            direction = TASTE_WEIGHT / np.sqrt(dim) * taste
            if step and rng.uniform() < stickiness:
                direction = direction + SEQUENCE_WEIGHT / np.sqrt(dim) * factors[sequence[-1]]
            last_is_new = step == length - 1 and len(new_items) and rng.uniform() < new_item_rate
            pool = new_items[~consumed[new_items]] if last_is_new else np.empty(0, dtype=int)
            log_ratio = 0.0  # log(target / proposal) beyond the match: 0 for new releases and exact fallbacks
            if not len(pool):
                neighbours = by_topic[topics[sequence[-1]]] if step else old_items[:0]
                by_popularity = candidates - (candidates // 2 if len(neighbours) else 0)
                slots = rng.integers(0, len(old_items), by_popularity)
                pool = old_items[np.where(rng.uniform(size=by_popularity) < threshold[slots], slots, alias[slots])]
                if len(neighbours):
                    pool = np.concatenate([pool, neighbours[rng.integers(0, len(neighbours), candidates // 2)]])
                pool = pool[~consumed[pool]]
                proposal = popularity[pool]
                if len(neighbours):
                    proposal = 0.5 * proposal + 0.5 * (topics[pool] == topics[sequence[-1]]) / len(neighbours)
                log_ratio = np.log(popularity[pool]) - np.log(proposal)
            if not len(pool):  # every candidate consumed: the unconsumed old items, by the exact weights
                pool = old_items[~consumed[old_items]]
                if not len(pool):
                    raise ValueError(f"A sequence of {length} items exhausts the {len(old_items)} old items.")
                log_ratio = np.log(popularity[pool])
            scores = factors32[pool] @ direction.astype(np.float32) + log_ratio
            weights = np.cumsum(np.exp(scores - scores.max()))
            item = int(pool[np.searchsorted(weights, rng.uniform() * weights[-1], side="right")])
            consumed[item] = True
            sequence.append(item)
        sequences.append(sequence)
    return sequences


def _alias_table(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Walker's alias table of `probabilities` (Vose's construction): drawing slot `i` uniformly and keeping it with
    probability `threshold[i]`, else taking `alias[i]`, draws `i` with probability `probabilities[i]` in O(1).
    """
    count = len(probabilities)
    scaled = probabilities * count / probabilities.sum()
    threshold, alias = np.ones(count), np.arange(count)
    small = [i for i in range(count) if scaled[i] < 1.0]
    large = [i for i in range(count) if scaled[i] >= 1.0]
    while small and large:
        low, high = small.pop(), large.pop()
        threshold[low], alias[low] = scaled[low], high
        scaled[high] -= 1.0 - scaled[low]
        (small if scaled[high] < 1.0 else large).append(high)
    return threshold, alias


def _timestamps(rng: np.random.Generator, length: int) -> list[int]:
    """Increasing timestamps: old items before 2015, the last interaction (possibly a new release) after."""
    start = int(rng.integers(946_684_800, RELEASE_TIME - 86_400 * 400))  # 2000 .. early 2014
    gaps = rng.integers(60, 86_400, size=length - 1)
    times = (start + np.concatenate([[0], np.cumsum(gaps)])).tolist()
    times[-1] = RELEASE_TIME + int(rng.integers(0, 86_400 * 300))
    return times


def _title(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    chosen = list(rng.choice(words, size=2, replace=False)) + [str(rng.choice(COMMON_WORDS))]
    rng.shuffle(chosen)
    title = " ".join(word.capitalize() for word in chosen)
    if rng.uniform() < 0.2:  # a comma, so that movies.csv needs quoting as the real file does
        title = title.replace(" ", ", ", 1)
    return title


def make_synthetic_movielens(
    output_dir: str | os.PathLike,
    *,
    num_users: int = 400,
    num_items: int = 200,
    num_genres: int = 6,
    min_length: int = 6,
    max_length: int = 30,
    stickiness: float = 0.75,
    drift: float = 0.05,
    zipf_exponent: float = 1.0,
    new_item_fraction: float = 0.05,
    new_item_rate: float = 0.3,
    seed: int = 0,
    structure: str | SyntheticStructure = "planted",
) -> SyntheticNextItem:
    """
    Writes `ratings.csv` (userId,movieId,rating,timestamp, sorted by user and time as in ML-20M) and `movies.csv`
    (movieId,title,genres with `|`-separated genres, titles quoted when they hold a comma) into `output_dir`, with the
    planted topic signal of this module (topics are genres; a title holds two of its genre's words and the year,
    recent for new releases). Deterministic given the arguments. `structure` ("planted", "realistic" or a
    [`~gram_hf.tasks.synthetic_structure.SyntheticStructure`]): see the module docstring; a weak text is a title of
    common words with `(no genres listed)`.
    """
    structure = resolve_structure(structure)
    rng = np.random.default_rng(seed)
    genre_names = list(MOVIE_GENRES)[:num_genres]
    if len(genre_names) < num_genres:
        raise ValueError(f"num_genres must be at most {len(MOVIE_GENRES)}.")
    topics, is_new, sequences, planted = _plant(
        rng,
        num_users,
        num_items,
        num_genres,
        min_length,
        max_length,
        stickiness,
        drift,
        zipf_exponent,
        new_item_fraction,
        new_item_rate,
        structure,
    )
    os.makedirs(output_dir, exist_ok=True)
    movie_ids = (np.sort(rng.choice(np.arange(1, 50 * num_items), size=num_items, replace=False))).tolist()
    rows = []
    for item, movie_id in enumerate(movie_ids):
        genre = genre_names[topics[item]]
        year = int(rng.integers(2015, 2016)) if is_new[item] else int(rng.integers(1970, 2013))
        genres = [genre]
        if rng.uniform() < 0.3:
            genres.append(str(rng.choice([g for g in genre_names if g != genre])))
        if planted.weak_text[item]:
            rows.append([movie_id, f"{_title(rng, COMMON_WORDS)} ({year})", "(no genres listed)"])
        else:
            rows.append([movie_id, f"{_title(rng, MOVIE_GENRES[genre])} ({year})", "|".join(genres)])
    for item, source in enumerate(planted.text_source.tolist()):
        rows[item][1:] = rows[source][1:]  # a shared text: the title and genres of its group's first movie
    movies_path = os.path.join(output_dir, "movies.csv")
    with open(movies_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["movieId", "title", "genres"])
        writer.writerows(rows)
    ratings_path = os.path.join(output_dir, "ratings.csv")
    interactions = 0
    with open(ratings_path, "w", encoding="utf-8") as handle:
        handle.write("userId,movieId,rating,timestamp\n")
        for user, sequence in enumerate(sequences, start=1):
            for item, timestamp in zip(sequence, _timestamps(rng, len(sequence))):
                rating = float(rng.choice([2.0, 3.0, 3.5, 4.0, 4.5, 5.0]))
                handle.write(f"{user},{movie_ids[item]},{rating},{timestamp}\n")
                interactions += 1
    return SyntheticNextItem(
        files={"ratings": ratings_path, "movies": movies_path},
        item_ids=[str(movie_id) for movie_id in movie_ids],
        topics=topics,
        topic_names=genre_names,
        new_items=[str(movie_ids[i]) for i in np.flatnonzero(is_new)],
        num_users=num_users,
        num_interactions=interactions,
        item_structure=planted,
    )


def make_synthetic_amazon(
    output_dir: str | os.PathLike,
    *,
    num_users: int = 400,
    num_items: int = 200,
    num_categories: int = 6,
    min_length: int = 6,
    max_length: int = 30,
    stickiness: float = 0.75,
    drift: float = 0.05,
    zipf_exponent: float = 1.0,
    new_item_fraction: float = 0.05,
    new_item_rate: float = 0.3,
    unreviewed_items: int = 20,
    seed: int = 0,
    structure: str | SyntheticStructure = "planted",
) -> SyntheticNextItem:
    """
    Writes `reviews_Beauty_5.json` (one JSON object per line: reviewerID, asin, reviewerName, overall, summary,
    unixReviewTime, reviewTime) and `meta_Beauty.json` (one Python-literal dict per line as in the 2014 release:
    asin, title, description, categories, price, salesRank) into `output_dir`, with this module's planted signal
    (topics are Beauty sub-categories named in the title, description and categories). `unreviewed_items` extra
    metadata records have no reviews, as in the real metadata file. Deterministic given the arguments. `structure`
    ("planted", "realistic" or a [`~gram_hf.tasks.synthetic_structure.SyntheticStructure`]): see the module
    docstring; a weak text is a title and description of common words under the bare category `Beauty`.
    """
    structure = resolve_structure(structure)
    rng = np.random.default_rng(seed)
    category_names = list(BEAUTY_CATEGORIES)[:num_categories]
    if len(category_names) < num_categories:
        raise ValueError(f"num_categories must be at most {len(BEAUTY_CATEGORIES)}.")
    topics, is_new, sequences, planted = _plant(
        rng,
        num_users,
        num_items,
        num_categories,
        min_length,
        max_length,
        stickiness,
        drift,
        zipf_exponent,
        new_item_fraction,
        new_item_rate,
        structure,
    )
    os.makedirs(output_dir, exist_ok=True)
    total = num_items + unreviewed_items
    codes: dict[int, None] = {}
    while len(codes) < total:  # distinct 9-digit codes, without materialising the range
        codes.setdefault(int(rng.integers(10**8, 10**9)))
    asins = [f"B{code:09d}" for code in codes]
    records = {}
    order = rng.permutation(total).tolist()
    for item in order:
        category = category_names[topics[item]] if item < num_items else str(rng.choice(category_names))
        weak = item < num_items and bool(planted.weak_text[item])
        words = COMMON_WORDS if weak else BEAUTY_CATEGORIES[category]
        records[item] = {
            "asin": asins[item],
            "title": _title(rng, words) + (" 2015 Edition" if item < num_items and is_new[item] else ""),
            "description": f"A {rng.choice(words)} for {rng.choice(words)} care, {rng.choice(COMMON_WORDS)} mix.",
            "categories": [["Beauty"]] if weak else [["Beauty", category]],
            "price": float(np.round(rng.uniform(2, 80), 2)),
            "salesRank": {"Beauty": int(rng.integers(1, 500_000))},
        }
    for item, source in enumerate(planted.text_source.tolist()):
        if source != item:  # a shared text: the title, description and categories of its group's first product
            records[item].update({key: records[source][key] for key in ("title", "description", "categories")})
    metadata_path = os.path.join(output_dir, "meta_Beauty.json")
    with open(metadata_path, "w", encoding="utf-8") as handle:
        handle.writelines(repr(records[item]) + "\n" for item in order)
    reviews_path = os.path.join(output_dir, "reviews_Beauty_5.json")
    interactions = 0
    with open(reviews_path, "w", encoding="utf-8") as handle:
        for user, sequence in enumerate(sequences):
            reviewer = f"A{user:06d}SYN"
            for item, timestamp in zip(sequence, _timestamps(rng, len(sequence))):
                day = np.datetime64(timestamp, "s").astype(object)
                review = {
                    "reviewerID": reviewer,
                    "asin": asins[item],
                    "reviewerName": f"user {user}",
                    "overall": float(rng.integers(1, 6)),
                    "summary": "Works as described",
                    "unixReviewTime": timestamp,
                    "reviewTime": day.strftime("%m %d, %Y"),
                }
                handle.write(json.dumps(review) + "\n")
                interactions += 1
    return SyntheticNextItem(
        files={"reviews": reviews_path, "metadata": metadata_path},
        item_ids=asins[:num_items],
        topics=topics,
        topic_names=category_names,
        new_items=[asins[i] for i in np.flatnonzero(is_new)],
        num_users=num_users,
        num_interactions=interactions,
        item_structure=planted,
    )


def make_synthetic_gowalla(
    output_dir: str | os.PathLike,
    *,
    num_users: int = 400,
    num_items: int = 200,
    num_cities: int = 6,
    min_length: int = 6,
    max_length: int = 30,
    stickiness: float = 0.75,
    drift: float = 0.05,
    zipf_exponent: float = 1.0,
    new_item_fraction: float = 0.05,
    new_item_rate: float = 0.3,
    repeat_rate: float = 0.1,
    with_texts: bool = False,
    compress: bool = False,
    seed: int = 0,
    structure: str | SyntheticStructure = "planted",
) -> SyntheticNextItem:
    """
    Writes `loc-gowalla_totalCheckins.txt` (`.txt.gz` with `compress=True`, reproducible bytes) into `output_dir` in
    SNAP's format: tab-separated, no header, `user \\t check-in time (2010-10-19T23:55:27Z) \\t latitude \\t longitude
    \\t location id`, users in ascending order, each user's check-ins newest first, as in the real file. With this
    module's planted signal: topics are cities, a location lies near its city's center, users keep to a few cities;
    popularity follows a Zipf law (`zipf_exponent` per city; a latent `structure`'s `popularity_skew` over all). After
    a check-in, with probability `repeat_rate`, the user checks into one of their earlier locations again (a
    duplicate the loader drops). New locations ("new releases") are checked into only as a user's last check-in,
    after October 2010: the cold-start items.

    Location ids are distinct integers below 6,000,000 (as in Gowalla), in ascending order of generation. With
    `with_texts=True` it also writes `locations.csv` (`item_id,text`: `"Coffee Shop, Austin"`; a weak text names the
    kind only), for content models; Gowalla itself has no item text. Deterministic given the arguments.

    Returns:
        [`SyntheticNextItem`] with `files` `checkins` (and `items` with `with_texts=True`), `topic_names` the cities.
    """
    structure = resolve_structure(structure)
    if not 0 <= repeat_rate < 1:
        raise ValueError(f"repeat_rate must lie in [0, 1), got {repeat_rate}.")
    rng = np.random.default_rng(seed)
    city_names = list(GOWALLA_CITIES)[:num_cities]
    if len(city_names) < num_cities:
        raise ValueError(f"num_cities must be at most {len(GOWALLA_CITIES)}.")
    topics, is_new, sequences, planted = _plant(
        rng,
        num_users,
        num_items,
        num_cities,
        min_length,
        max_length,
        stickiness,
        drift,
        zipf_exponent,
        new_item_fraction,
        new_item_rate,
        structure,
    )
    os.makedirs(output_dir, exist_ok=True)
    location_ids = np.sort(rng.choice(6_000_000, size=num_items, replace=False)).tolist()
    centers = np.array([GOWALLA_CITIES[name] for name in city_names])
    coordinates = centers[topics] + rng.normal(scale=0.05, size=(num_items, 2))
    lines = []
    for user, sequence in enumerate(sequences):
        start = int(rng.integers(GOWALLA_START, GOWALLA_NEW_TIME - 86_400 * 120))
        times = start + np.concatenate([[0], np.cumsum(rng.integers(60, 2 * 86_400, size=len(sequence) - 1))])
        times = times.tolist()
        times[-1] = GOWALLA_NEW_TIME + int(rng.integers(0, 86_400 * 20))
        checkins = list(zip(sequence, times))
        for step in range(1, len(sequence) - 1):
            if rng.uniform() < repeat_rate:  # a return visit, before the next new check-in
                checkins.append((sequence[int(rng.integers(0, step))], times[step] + int(rng.integers(1, 60))))
        for item, moment in sorted(checkins, key=lambda checkin: -checkin[1]):
            when = datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            latitude, longitude = coordinates[item]
            lines.append(f"{user}\t{when}\t{latitude:.10f}\t{longitude:.10f}\t{location_ids[item]}\n")
    name = "loc-gowalla_totalCheckins.txt" + (".gz" if compress else "")
    checkins_path = os.path.join(output_dir, name)
    if compress:
        with open(checkins_path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed:
            with io.TextIOWrapper(packed, encoding="utf-8", newline="") as handle:
                handle.writelines(lines)
    else:
        with open(checkins_path, "w", encoding="utf-8", newline="") as handle:
            handle.writelines(lines)
    files = {"checkins": checkins_path}
    if with_texts:
        texts = []
        for item in range(num_items):
            kind = str(rng.choice(VENUE_KINDS))
            texts.append(kind if planted.weak_text[item] else f"{kind}, {city_names[topics[item]]}")
        texts = [texts[source] for source in planted.text_source.tolist()]  # shared texts: their group's first
        files["items"] = os.path.join(output_dir, "locations.csv")
        with open(files["items"], "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["item_id", "text"])
            writer.writerows(zip(location_ids, texts))
    return SyntheticNextItem(
        files=files,
        item_ids=[str(location) for location in location_ids],
        topics=topics,
        topic_names=city_names,
        new_items=[str(location_ids[i]) for i in np.flatnonzero(is_new)],
        num_users=num_users,
        num_interactions=len(lines),
        item_structure=planted,
    )


__all__ = ["SyntheticNextItem", "make_synthetic_amazon", "make_synthetic_gowalla", "make_synthetic_movielens"]
