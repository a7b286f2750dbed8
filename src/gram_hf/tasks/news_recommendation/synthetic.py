"""
A synthetic MIND generator: writes a folder in MIND's exact raw format (the files [`load_mind`] reads), with a planted
content signal, so that the loader, the collator, the NRMS head and the recipes run end to end without the real data.
`structure="realistic"` (see [`~gram_hf.tasks.synthetic_structure.SyntheticStructure`]) writes the same formats from
news whose titles express only part of what drives the clicks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from ..synthetic_structure import (
    ItemStructure,
    SyntheticStructure,
    choose_weak,
    mix_factors,
    resolve_structure,
    share_texts,
)

# category -> subcategory (the latent topic) -> topic words. The words are plain English, so a pre-trained encoder
# reads a topic from a title as it would from a real headline.
TOPICS: dict[str, dict[str, tuple[str, ...]]] = {
    "news": {
        "newspolitics": ("senate", "election", "congress", "governor", "ballot", "campaign", "lawmakers"),
        "newsworld": ("embassy", "border", "treaty", "protest", "minister", "refugees", "summit"),
        "newscrime": ("police", "arrest", "trial", "jury", "suspect", "robbery", "sheriff"),
    },
    "sports": {
        "football_nfl": ("quarterback", "touchdown", "nfl", "linebacker", "playoffs", "kickoff", "receiver"),
        "basketball_nba": ("nba", "dunk", "rebounds", "point guard", "lakers", "courtside", "tipoff"),
        "baseball_mlb": ("pitcher", "homer", "inning", "bullpen", "shortstop", "dodgers", "batting"),
    },
    "finance": {
        "markets": ("stocks", "nasdaq", "investors", "earnings", "dividend", "bonds", "rally"),
        "personalfinance": ("savings", "retirement", "budget", "mortgage", "credit", "taxes", "pension"),
        "realestate": ("housing", "listing", "condo", "realtor", "rent", "homebuyers", "property"),
    },
    "lifestyle": {
        "lifestyleroyals": ("royal", "duchess", "prince", "palace", "queen", "coronation", "monarchy"),
        "lifestyleparenting": ("parents", "toddler", "school", "teenagers", "babysitter", "homework", "family"),
        "lifestylebuzz": ("viral", "wedding", "pets", "puppy", "costume", "surprise", "adorable"),
    },
    "health": {
        "medical": ("doctors", "hospital", "vaccine", "cancer", "surgery", "patients", "diagnosis"),
        "fitness": ("workout", "running", "muscles", "yoga", "gym", "stretching", "marathon"),
        "nutrition": ("protein", "vitamins", "diet", "calories", "sugar", "fiber", "supplements"),
    },
    "foodanddrink": {
        "recipes": ("recipe", "baking", "casserole", "dough", "roasted", "skillet", "pie"),
        "restaurants": ("chef", "restaurant", "menu", "diner", "brunch", "reservations", "bistro"),
        "wine": ("wine", "vineyard", "cocktail", "brewery", "bourbon", "sommelier", "beer"),
    },
    "weather": {
        "weathertopstories": ("storm", "hurricane", "tornado", "flooding", "blizzard", "forecast", "snowfall"),
        "climate": ("climate", "emissions", "glaciers", "drought", "wildfire", "heatwave", "carbon"),
    },
    "autos": {
        "autosnews": ("sedan", "pickup", "horsepower", "dealership", "recall", "engine", "mileage"),
        "autoselectric": ("electric", "battery", "charging", "tesla", "hybrid", "range", "autonomous"),
    },
    "travel": {
        "traveltrip": ("vacation", "beach", "resort", "itinerary", "island", "cruise", "passport"),
        "travelnews": ("airline", "airport", "flights", "luggage", "boarding", "layover", "pilots"),
    },
    "entertainment": {
        "celebrity": ("actress", "celebrity", "redcarpet", "paparazzi", "divorce", "starlet", "gossip"),
        "movies": ("movie", "director", "boxoffice", "sequel", "trailer", "oscar", "screenplay"),
        "music": ("album", "concert", "singer", "guitar", "grammy", "tour", "rapper"),
        "tv": ("episode", "sitcom", "showrunner", "finale", "netflix", "series", "reality"),
    },
    "technology": {
        "gadgets": ("smartphone", "laptop", "gadget", "headphones", "tablet", "camera", "smartwatch"),
        "internet": ("software", "hackers", "privacy", "app", "algorithm", "startup", "robots"),
    },
}
FILLER_WORDS = (
    "new", "report", "says", "after", "first", "year", "could", "week", "people", "way", "here", "what", "why", "how",
    "best", "big", "may", "more", "day", "time", "just", "one", "two", "top", "this", "that", "makes", "shows",
    "takes", "gets", "finds", "latest", "major", "local", "update", "video", "story", "look", "inside", "right", "now",
    "still", "again", "plans", "amid", "over", "about", "from", "with", "into", "every", "million", "small", "old",
    "next",
)  # fmt: skip


@dataclass(frozen=True)
class MINDPreset:
    """
    Size and shape statistics of a MIND release, scaled by [`make_synthetic_mind`].

    Args:
        num_users, num_news: users and news of the release.
        train_impressions, dev_impressions, test_impressions: impressions per split (0 = no such split).
        mean_title_words, mean_abstract_words: mean lengths in words (MIND: 11.52 and 43.00).
        mean_candidates: candidates per impression; mean_history: clicked news per history.
    """

    num_users: int
    num_news: int
    train_impressions: int
    dev_impressions: int
    test_impressions: int
    mean_title_words: float = 11.5
    mean_abstract_words: float = 43.0
    mean_candidates: float = 37.0
    mean_history: float = 32.0


MIND_PRESETS: dict[str, MINDPreset] = {
    "small": MINDPreset(num_users=50_000, num_news=65_238, train_impressions=156_965, dev_impressions=73_152,
                        test_impressions=0),
    "large": MINDPreset(num_users=1_000_000, num_news=161_013, train_impressions=2_232_748, dev_impressions=376_471,
                        test_impressions=2_370_727),
}  # fmt: skip
"""MIND-small and MIND-large statistics (FORMATS.md); the `test` split exists in MIND-large only."""

# The click and history model under a latent structure: a user's taste matched with a news' factors,
# `score = <taste, factors> / sqrt(latent_dim)`; histories draw news `~ popularity * exp(HISTORY_WEIGHT * score)`, a
# candidate is clicked with probability `sigmoid(CLICK_BIAS + CLICK_WEIGHT * score + 0.3 * log popularity ratio)`.
# Tastes are `N(0, I)` around a shared mean of norm `sqrt(latent_dim) * TASTE_MEAN`: news close to it are widely
# clicked (a per-news click rate carries it), the rest is personal.
HISTORY_WEIGHT = 2.0
CLICK_WEIGHT = 2.0
CLICK_BIAS = -4.3
TASTE_MEAN = 0.5


@dataclass
class SyntheticMINDSplit:
    """
    Ground truth of one written split, in file order.

    Attributes:
        folder (`Path`): the split folder (`MINDsmall_train`, ...).
        has_labels (`bool`): whether `behaviors.tsv` carries the click labels (False for a MIND-large-like test).
        impression_ids, user_ids: per impression.
        histories, candidates (`list[list[str]]`): NewsIDs per impression, as written.
        labels (`list[list[int]]`): the true clicks, also for a labelless split.
    """

    folder: Path
    has_labels: bool
    impression_ids: list[int] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    histories: list[list[str]] = field(default_factory=list)
    candidates: list[list[str]] = field(default_factory=list)
    labels: list[list[int]] = field(default_factory=list)

    @property
    def num_impressions(self) -> int:
        return len(self.impression_ids)

    @property
    def num_clicks(self) -> int:
        return sum(sum(labels) for labels in self.labels)


@dataclass
class SyntheticMIND:
    """
    What [`make_synthetic_mind`] wrote, with its ground truth.

    Attributes:
        path (`Path`): the data_dir to give [`load_mind`].
        variant (`str`): the folder variant (`MIND<variant>_train`, ...).
        splits (`dict[str, SyntheticMINDSplit]`): by MIND role, `"train"`, `"dev"` and optionally `"test"`.
        news_ids (`list[str]`), news_topics (`np.ndarray`): each news' id and latent topic (index into `topic_names`).
        topic_names (`list[str]`): `"category/subcategory"` per topic.
        user_ids (`list[str]`), user_preferences (`np.ndarray` `[num_users, num_topics]`): the users' topic
            preferences (rows sum to 1), which drive both their histories and their clicks (under a latent
            structure: the softmax over topics of the taste's match with each topic's text-expressed vector).
        with_body (`bool`): whether `news_body.tsv` was written.
        item_structure (`ItemStructure`, *optional*): the planted structure, rows aligned with `news_ids`: factors
            (planted: the topic's one-hot vector; else the latent taste vector), what the text expresses, shared
            and weak texts, popularity.
        user_tastes (`np.ndarray` `[num_users, latent_dim]`, *optional*): the users' tastes (latent structure only).
    """

    path: Path
    variant: str
    splits: dict[str, SyntheticMINDSplit]
    news_ids: list[str]
    news_topics: np.ndarray
    topic_names: list[str]
    user_ids: list[str]
    user_preferences: np.ndarray
    with_body: bool
    item_structure: ItemStructure | None = None
    user_tastes: np.ndarray | None = None


def _format_time(moment: datetime) -> str:
    """MIND's `%m/%d/%Y %I:%M:%S %p` without zero padding of month, day and hour (`11/11/2019 9:05:58 AM`)."""
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d}:{moment.second:02d} {half}"


def make_synthetic_mind(
    output_dir: str | os.PathLike,
    preset: str = "small",
    scale: float = 0.01,
    *,
    seed: int = 0,
    include_test: bool | None = None,
    num_users: int | None = None,
    num_news: int | None = None,
    train_impressions: int | None = None,
    dev_impressions: int | None = None,
    test_impressions: int | None = None,
    mean_candidates: float | None = None,
    mean_history: float | None = None,
    with_body: bool = False,
    topic_concentration: float = 0.15,
    zipf_exponent: float = 1.1,
    structure: str | SyntheticStructure = "planted",
) -> SyntheticMIND:
    """
    Writes a synthetic MIND download into `output_dir` and returns its ground truth; deterministic for a seed.

    Layout and formats are MIND's: `MIND<preset>_train/`, `MIND<preset>_dev/` (and `MIND<preset>_test/`), each with
    `news.tsv` (8 columns: id, category, subcategory, title, abstract, URL, title and abstract entities as JSON),
    `behaviors.tsv` (5 columns; the test split without click labels, like MINDlarge_test), and small
    `entity_embedding.vec` / `relation_embedding.vec` files. With `with_body`, `news_body.tsv` (NewsID<TAB>body) is
    written at the top level. Counts are the preset's (MIND-small or MIND-large) times `scale`; lengths and
    per-impression shapes follow the preset. Titles sometimes hold `"` and entity surface forms quotes and tabs
    (JSON-escaped), as real MIND does, so the loader's quoting is exercised.

    Planted signal: every news has a latent topic (its subcategory) readable from its words: the title mixes topic
    words, a category word and fillers; the abstract likewise. Every user has a sparse topic preference (a Dirichlet
    draw with `topic_concentration`); the history is drawn from news of the preferred topics (times Zipf popularity),
    and a candidate is clicked with probability `sigmoid(-4.5 + 5 * preference(topic) / max preference + 0.3 *
    log popularity)`, at least one click per impression. Candidates are news published in the two days before the
    impression, so dev (and test) candidates are mostly news never seen in training: only their text predicts them.

    That is the `"planted"` `structure`. Under a latent one (`"realistic"`, `latent_dim > 0`) each news has a latent
    taste vector, `sqrt(text_signal)` times its topic's vector (what the title's topic words express) plus a hidden
    part; each user has a taste vector; histories and clicks follow their match (see `HISTORY_WEIGHT`,
    `CLICK_WEIGHT`), so co-clicks reveal what the titles do not. `weak_text_fraction` of the news have short generic
    titles and abstracts (fillers only: no topic or category word), `shared_text_fraction` of them carry the title,
    abstract (and body) of another news of their topic, and `popularity_skew` replaces `zipf_exponent`.

    Args:
        output_dir (`str` or `os.PathLike`): where to write (created; existing split folders are overwritten).
        preset (`str`, *optional*, defaults to `"small"`): `"small"` or `"large"` ([`MIND_PRESETS`]).
        scale (`float`, *optional*, defaults to 0.01): factor on the preset's users, news and impressions.
        seed (`int`, *optional*, defaults to 0): the random seed.
        include_test (`bool`, *optional*): write the labelless test split; default: when the preset has one.
        num_users, num_news, train_impressions, dev_impressions, test_impressions (`int`, *optional*): override the
            scaled counts.
        mean_candidates, mean_history (`float`, *optional*): override the preset's impression and history sizes.
        with_body (`bool`, *optional*, defaults to `False`): also write `news_body.tsv`.
        topic_concentration (`float`, *optional*, defaults to 0.15): Dirichlet concentration of user preferences
            (smaller = users focused on fewer topics = a stronger content signal).
        zipf_exponent (`float`, *optional*, defaults to 1.1): skew of news popularity.
        structure (`str` or `SyntheticStructure`, *optional*, defaults to `"planted"`): the planted structure
            ([`~gram_hf.tasks.synthetic_structure.SYNTHETIC_STRUCTURES`]).
    """
    if preset not in MIND_PRESETS:
        raise ValueError(f"preset must be one of {sorted(MIND_PRESETS)}, got {preset!r}.")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}.")
    stats = MIND_PRESETS[preset]
    structure = resolve_structure(structure)
    rng = np.random.default_rng(seed)

    def scaled(override: int | None, value: int, minimum: int) -> int:
        return int(override) if override is not None else max(minimum, int(round(value * scale)))

    num_users = scaled(num_users, stats.num_users, 10)
    num_news = scaled(num_news, stats.num_news, 60)
    counts = {
        "train": scaled(train_impressions, stats.train_impressions, 10),
        "dev": scaled(dev_impressions, stats.dev_impressions, 10),
    }
    if include_test is None:
        include_test = stats.test_impressions > 0
    if include_test:
        counts["test"] = scaled(test_impressions, stats.test_impressions or stats.dev_impressions, 10)
    mean_candidates = float(mean_candidates or stats.mean_candidates)
    mean_history = float(mean_history if mean_history is not None else stats.mean_history)
    if num_users < 1 or num_news < 10 or any(count < 1 for count in counts.values()) or mean_candidates < 2:
        raise ValueError(
            "Need num_users >= 1, num_news >= 10, at least one impression per split, mean_candidates >= 2."
        )

    topic_names = [f"{category}/{sub}" for category, subs in TOPICS.items() for sub in subs]
    topic_words = [words for subs in TOPICS.values() for words in subs.values()]
    category_of = [name.split("/")[0] for name in topic_names]
    num_topics = len(topic_names)

    # ---- news: topic, popularity, publication day, text
    # Days 0-20 are the history period; impressions: train on days 21-26, dev on day 27, test on day 28 (MIND: six
    # days of training logs, then a day for dev and test).
    day_zero = datetime(2019, 10, 19)
    split_days = {"train": (21, 26), "dev": (27, 27), "test": (28, 28)}
    news_topics = rng.choice(num_topics, size=num_news, p=rng.dirichlet(np.full(num_topics, 5.0)))
    popularity = rng.permutation(1.0 / np.arange(1, num_news + 1) ** structure.popularity_exponent(zipf_exponent))
    # Half the news appear during the history period, half during the impression days (spread over days 19-28, so
    # each impression day has fresh candidates).
    publish_day = np.where(
        rng.uniform(size=num_news) < 0.5, rng.integers(0, 21, size=num_news), rng.integers(19, 29, size=num_news)
    )
    news_numbers = rng.choice(np.arange(10_000, 10_000 + 20 * num_news), size=num_news, replace=False)
    news_ids = [f"N{number}" for number in news_numbers]
    # Shared texts stay within a topic (the title names it); a sharing news is written after its group's first news,
    # whose texts it copies. No draw, and news in order, under the planted structure.
    weak = choose_weak(num_news, structure.weak_text_fraction, rng)
    text_source = share_texts(num_news, structure.shared_text_fraction, rng, strata=news_topics)
    weak = weak[text_source]
    news_rows: list[str] = [""] * num_news
    bodies, entities_seen, texts_of = {}, {}, {}
    for index in np.argsort(text_source != np.arange(num_news), kind="stable").tolist():
        topic = int(news_topics[index])
        source = int(text_source[index])
        if source != index:
            title, abstract, title_entities, abstract_entities = texts_of[source]
        elif weak[index]:
            title = _generic_sentence(rng, 0.6 * stats.mean_title_words, minimum=3)
            abstract = "" if rng.uniform() < 0.5 else _generic_sentence(rng, 0.5 * stats.mean_abstract_words, 5)
            title_entities, abstract_entities = [], []
        else:
            title = _sentence(rng, topic_words[topic], category_of[topic], stats.mean_title_words, 0.35, minimum=4)
            if rng.uniform() < 0.1:  # a quoted phrase, as in real headlines
                words = title.split(" ")
                at = int(rng.integers(len(words)))
                words[at] = f'"{words[at]}"'
                title = " ".join(words)
            abstract = (
                ""
                if rng.uniform() < 0.05
                else _sentence(rng, topic_words[topic], category_of[topic], stats.mean_abstract_words, 0.2, minimum=5)
            )
            title_entities = _entities(rng, title, topic_words[topic], entities_seen)
            abstract_entities = _entities(rng, abstract, topic_words[topic], entities_seen) if abstract else []
        texts_of[index] = (title, abstract, title_entities, abstract_entities)
        category, subcategory = topic_names[topic].split("/")
        url = f"https://assets.msn.com/labs/mind/AA{int(rng.integers(36**5, 36**6)):x}.html"
        # MIND writes `[]` for no entities, but circulated copies also have empty columns: write both.
        abstract_json = json.dumps(abstract_entities) if abstract_entities or rng.uniform() < 0.7 else ""
        news_rows[index] = "\t".join(
            [news_ids[index], category, subcategory, title, abstract, url, json.dumps(title_entities), abstract_json]
        )
        if with_body:
            if source != index:
                body = bodies[news_ids[source]]
            else:
                body = (
                    _generic_sentence(rng, 120.0, minimum=20)
                    if weak[index]
                    else _sentence(rng, topic_words[topic], category_of[topic], 120.0, 0.15, minimum=20)
                )
                # Only the first tab of a body line separates the id; crawled bodies may hold more.
                body = body.replace(" ", "\t", 1) if rng.uniform() < 0.2 else body
            bodies[news_ids[index]] = body

    # ---- users: sparse topic preferences and a fixed click history (MIND's history precedes the impression logs)
    user_ids = [f"U{number}" for number in rng.choice(np.arange(1, 20 * num_users + 1), size=num_users, replace=False)]
    preferences = rng.dirichlet(np.full(num_topics, topic_concentration), size=num_users)
    activity = rng.permutation(1.0 / np.arange(1, num_users + 1) ** 0.8)
    activity /= activity.sum()
    item_structure, tastes, topic_vectors = _plant_factors(
        structure, news_topics, num_topics, weak, text_source, num_users, rng
    )
    item_structure.popularity = popularity / popularity.sum()
    if tastes is not None:
        # The topic preferences a taste implies: how its match with each topic's text-expressed vector weighs news.
        topic_scores = (
            HISTORY_WEIGHT * np.sqrt(structure.text_signal / structure.latent_dim) * tastes @ topic_vectors.T
        )
        preferences = np.exp(topic_scores - topic_scores.max(axis=1, keepdims=True))
        preferences /= preferences.sum(axis=1, keepdims=True)
    history_pool = np.flatnonzero(publish_day < 21)
    histories = []
    for user in range(num_users):
        length = 0 if rng.uniform() < 0.05 else int(min(rng.geometric(1.0 / max(mean_history, 1.0)), 4 * mean_history))
        if tastes is None:
            weights = popularity[history_pool] * (preferences[user, news_topics[history_pool]] + 1e-3)
        else:
            score = item_structure.factors[history_pool] @ tastes[user] / np.sqrt(structure.latent_dim)
            weights = popularity[history_pool] * np.exp(HISTORY_WEIGHT * (score - score.max()))
        length = min(length, len(history_pool))
        clicked = rng.choice(history_pool, size=length, replace=False, p=weights / weights.sum()) if length else []
        histories.append([news_ids[i] for i in sorted(clicked, key=lambda i: publish_day[i])])

    # ---- impressions
    output_dir = Path(output_dir)
    variant = preset
    splits: dict[str, SyntheticMINDSplit] = {}
    for role, count in counts.items():
        first_day, last_day = split_days[role]
        truth = SyntheticMINDSplit(folder=output_dir / f"MIND{variant}_{role}", has_labels=role != "test")
        lines = []
        users = rng.choice(num_users, size=count, p=activity)
        days = rng.integers(first_day, last_day + 1, size=count)
        pools = {day: np.flatnonzero((publish_day <= day) & (publish_day >= day - 2)) for day in set(days.tolist())}
        for number, user, day in zip(range(1, count + 1), users.tolist(), days.tolist()):
            pool = pools[day]
            size = int(np.clip(rng.poisson(mean_candidates - 2) + 2, 2, len(pool)))
            shown = rng.choice(pool, size=size, replace=False, p=popularity[pool] / popularity[pool].sum())
            if tastes is None:
                affinity = preferences[user, news_topics[shown]] / preferences[user].max()
                logits = -4.5 + 5.0 * affinity + 0.3 * np.log(popularity[shown] / popularity.mean())
            else:
                score = item_structure.factors[shown] @ tastes[user] / np.sqrt(structure.latent_dim)
                logits = CLICK_BIAS + CLICK_WEIGHT * score + 0.3 * np.log(popularity[shown] / popularity.mean())
            probabilities = 1.0 / (1.0 + np.exp(-logits))
            clicks = (rng.uniform(size=size) < probabilities).astype(int)
            if not clicks.any():
                clicks[rng.choice(size, p=probabilities / probabilities.sum())] = 1
            moment = day_zero + timedelta(days=day, seconds=int(rng.integers(0, 86_400)))
            candidates = [news_ids[i] for i in shown]
            tokens = [f"{news}-{click}" for news, click in zip(candidates, clicks)] if truth.has_labels else candidates
            columns = [str(number), user_ids[user], _format_time(moment), " ".join(histories[user]), " ".join(tokens)]
            lines.append("\t".join(columns))
            truth.impression_ids.append(number)
            truth.user_ids.append(user_ids[user])
            truth.histories.append(list(histories[user]))
            truth.candidates.append(candidates)
            truth.labels.append(clicks.tolist())
        _write_split(truth, lines, news_rows, news_ids, entities_seen, rng)
        splits[role] = truth
    if with_body:
        with open(output_dir / "news_body.tsv", "w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(f"{news_id}\t{bodies[news_id]}\n" for news_id in news_ids)
    return SyntheticMIND(
        path=output_dir,
        variant=variant,
        splits=splits,
        news_ids=news_ids,
        news_topics=news_topics,
        topic_names=topic_names,
        user_ids=user_ids,
        user_preferences=preferences,
        with_body=with_body,
        item_structure=item_structure,
        user_tastes=tastes,
    )


def _plant_factors(
    structure: SyntheticStructure,
    news_topics: np.ndarray,
    num_topics: int,
    weak: np.ndarray,
    text_source: np.ndarray,
    num_users: int,
    rng: np.random.Generator,
) -> tuple[ItemStructure, np.ndarray | None, np.ndarray | None]:
    """
    `(item structure, user tastes, topic vectors)`. Planted (`latent_dim` 0): the factors are the topic's one-hot
    vector, expressed by the text unless it is weak, and there are no tastes (topic preferences drive the behaviour;
    no draw). Latent: topic vectors `~ N(0, I)`, news factors mixed from their topic's vector and a hidden part,
    tastes `N(0, I)` around a shared mean.
    """
    if not structure.latent_dim:
        factors = np.eye(num_topics)[news_topics]
        text_factors = np.where(weak[:, None], 0.0, factors)
        planted = ItemStructure(structure, factors, text_factors, text_source, weak, np.zeros(len(news_topics)))
        return planted, None, None
    dim = structure.latent_dim
    topic_vectors = rng.normal(size=(num_topics, dim))
    factors, text_factors = mix_factors(topic_vectors[news_topics], structure.text_signal, weak, rng)
    tastes = TASTE_MEAN * rng.normal(size=dim) + rng.normal(size=(num_users, dim))
    planted = ItemStructure(structure, factors, text_factors, text_source, weak, np.zeros(len(news_topics)))
    return planted, tastes, topic_vectors


def _sentence(
    rng: np.random.Generator,
    topic: tuple[str, ...],
    category: str,
    mean_words: float,
    topic_share: float,
    minimum: int,
) -> str:
    """Topic words, the category's name and fillers, shuffled, first letter capitalised."""
    length = max(minimum, int(rng.poisson(mean_words)))
    num_topic = max(2, int(round(topic_share * length)))
    words = list(rng.choice(topic, size=num_topic)) + [category if category != "foodanddrink" else "food"]
    words += list(rng.choice(FILLER_WORDS, size=max(0, length - len(words))))
    rng.shuffle(words)
    sentence = " ".join(words)
    return sentence[:1].upper() + sentence[1:]


def _generic_sentence(rng: np.random.Generator, mean_words: float, minimum: int) -> str:
    """Fillers only: a text that names no topic or category (a weak text)."""
    length = max(minimum, int(rng.poisson(mean_words)))
    sentence = " ".join(rng.choice(FILLER_WORDS, size=length).tolist())
    return sentence[:1].upper() + sentence[1:]


def _entities(rng: np.random.Generator, text: str, topic: tuple[str, ...], seen: dict[str, str]) -> list[dict]:
    """MIND-style entity annotations of up to two topic words found in `text`."""
    entities = []
    for word in dict.fromkeys(w.strip('"') for w in text.lower().split(" ") if w.strip('"') in topic):
        if len(entities) == 2 or rng.uniform() < 0.4:
            continue
        wikidata_id = seen.setdefault(word, f"Q{1000 + len(seen)}")
        surface = word if rng.uniform() < 0.8 else f'{word} "the"\tone'  # quotes and a tab, JSON-escaped
        entities.append(
            {
                "Label": word.title(),
                "Type": "O",
                "WikidataId": wikidata_id,
                "Confidence": 1.0,
                "OccurrenceOffsets": [text.lower().find(word)],
                "SurfaceForms": [surface],
            }
        )
    return entities


def _write_split(
    truth: SyntheticMINDSplit,
    lines: list[str],
    news_rows: list[str],
    news_ids: list[str],
    entities: dict[str, str],
    rng: np.random.Generator,
) -> None:
    folder = truth.folder
    folder.mkdir(parents=True, exist_ok=True)
    # A split's news.tsv lists the news its behaviors mention, as MIND's do (news repeat across folders).
    used = set()
    for history, candidates in zip(truth.histories, truth.candidates):
        used.update(history)
        used.update(candidates)
    with open(folder / "behaviors.tsv", "w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(line + "\n" for line in lines)
    with open(folder / "news.tsv", "w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(row + "\n" for news_id, row in zip(news_ids, news_rows) if news_id in used)
    # Entity and relation embeddings: MIND's format (id, then tab-separated floats, a trailing tab), 100 dimensions.
    with open(folder / "entity_embedding.vec", "w", encoding="utf-8", newline="\n") as handle:
        for wikidata_id in sorted(entities.values()):
            handle.write(wikidata_id + "\t" + "\t".join(f"{x:.6f}" for x in rng.normal(0, 0.1, 100)) + "\t\n")
    with open(folder / "relation_embedding.vec", "w", encoding="utf-8", newline="\n") as handle:
        for relation in ("P31", "P279", "P17"):
            handle.write(relation + "\t" + "\t".join(f"{x:.6f}" for x in rng.normal(0, 0.1, 100)) + "\t\n")


__all__ = ["MIND_PRESETS", "MINDPreset", "SyntheticMIND", "SyntheticMINDSplit", "make_synthetic_mind"]
