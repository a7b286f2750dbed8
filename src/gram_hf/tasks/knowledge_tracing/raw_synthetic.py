"""
Synthetic knowledge-tracing data written in the raw formats (Duolingo SLAM, EdNet-KT1, POJ, generic CSV), so that the
very loaders users run on the real files run in tests, demos and benchmarks.

Every writer simulates the same world, defined with the presets in
[`~gram_hf.tasks.knowledge_tracing.raw_synthetic_world`]: items whose words reveal their difficulty, learners whose
ability grows as they practise, Zipf item popularity, and the GRAM paper's statistics shrunk by `scale`. This module
only lays that world out in each dataset's files, with the quirks the real files have.

Every writer takes `structure` (a [`~gram_hf.tasks.synthetic_structure.SyntheticStructure`] or the name of one):
`"planted"` (the default) writes the files above, where the text reveals the whole difficulty; `"realistic"` writes
the same formats from a world whose text is weak (a share of the difficulty and skill factors, shared and generic
texts, skewed popularity; see `raw_synthetic_world`).

Each writer returns a [`SyntheticKTTruth`] with what a loader must read back (per-learner sequences of item ids,
responses and timestamps in loader units), for round-trip tests, and the planted `item_structure`.
"""

from __future__ import annotations

import csv
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..synthetic_structure import ItemStructure, SyntheticStructure, resolve_structure
from .raw_synthetic_world import (  # re-exported: callers import the world's public names from here
    DIFFICULTY_WEIGHT,  # noqa: F401
    PRESETS,
    PSEUDO_WORDS,  # noqa: F401
    TEXT_FILLERS,  # noqa: F401
    KTPreset,
    SyntheticKTTruth,
    draw_item_texts,
    increasing_ticks,
    plant_items,
    random_ids,
    resolve_preset,
    simulate_learners,
    zipf_popularity,
)
from .synthetic import FILLER_WORDS

# ---------------------------------------------------------------------------------------------------------------------
# Duolingo SLAM
# ---------------------------------------------------------------------------------------------------------------------

_POS = ("NOUN", "VERB", "ADJ", "PRON", "DET", "ADP", "ADV", "PROPN", "CONJ")
_DEPS = ("nsubj", "ROOT", "det", "dobj", "amod", "case", "advmod", "nmod")
_MORPH = ("Number=Sing", "Number=Plur|Person=3", "Gender=Masc|Number=Sing", "fPOS=NOUN++NN", "Mood=Ind|Tense=Pres")
_SLAM_FORMATS = ("reverse_translate", "reverse_tap", "listen")


def write_synthetic_duolingo(
    output_dir: str | os.PathLike,
    preset: str | KTPreset = "en_es",
    scale: float = 0.01,
    seed: int = 0,
    track: str | None = None,
    date: str = "20190204",
    structure: str | SyntheticStructure = "planted",
) -> SyntheticKTTruth:
    """
    Writes `{track}.slam.{date}.{train,dev,test}` and `{dev,test}.key` in SLAM's format: blocks per exercise, a
    `# prompt:` line for reverse_translate/reverse_tap (date 20190204), a header with fields separated by runs of
    spaces, padded token lines (7 columns in `.train`, 6 plus a key label in `.dev`/`.test`; 1 = mistake). Each
    learner's exercises are split by time 80/10/10 into train/dev/test, as in the shared task.

    The truth's items are the sentences (the loader's item ids); timestamps are `floor(days * 86400)` of the
    written `days`. Since a sentence is an item, no two items share text here, whatever `structure` asks.
    """
    preset = resolve_preset(preset)
    structure = resolve_structure(structure)
    track = track or (preset.name if preset.name in ("en_es", "fr_en", "es_en") else "en_es")
    rng = np.random.default_rng(seed)
    num_users, num_items, num_interactions, cold = preset.scaled(scale)
    catalog = draw_item_texts(num_items, preset.mean_text_tokens, rng, structure, unique=True)
    catalog = plant_items(catalog, rng, unique=True)
    texts, difficulty = catalog.texts, catalog.difficulty
    popularity = zipf_popularity(num_items, structure.popularity_exponent(preset.zipf_exponent), rng)
    world = simulate_learners(
        num_users, num_interactions, difficulty, popularity, preset.base_logit, rng, item_skills=catalog.skills
    )
    catalog.item_structure.popularity = popularity
    users = random_ids(num_users, 8, rng)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = output_dir / f"{track}.slam.{date}"
    lines: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    keys: dict[str, list[str]] = {"dev": [], "test": []}
    sequences: dict[str, dict[str, list]] = {}
    token_lists = [text.split(" ") for text in texts]
    for user, (items, responses) in zip(users, world.sequences):
        length = len(items)
        ticks = increasing_ticks(length, rng, mean=30.0)  # 1 tick = 0.001 day, the resolution SLAM writes
        num_train = int(math.ceil(0.8 * length))
        num_dev = int(round(0.1 * length))
        sessions = random_ids(length // 10 + 1, 8, rng)
        # Per-learner draws in bulk: one generator call per attribute instead of one per exercise or token.
        formats = rng.choice(3, size=length, p=(0.45, 0.25, 0.3))
        times = rng.integers(2, 60, size=length)
        null_time = rng.uniform(size=length) < 0.03
        clients = rng.choice(("web", "ios", "android"), size=length)
        session_types = rng.choice(("lesson", "practice", "test"), size=length)
        countries = np.where(rng.uniform(size=length) < 0.7, "CO", "US|MX")
        num_tokens = sum(len(token_lists[item]) for item in items.tolist())
        pos, morph, deps = (rng.integers(0, len(pool), size=num_tokens) for pool in (_POS, _MORPH, _DEPS))
        prompts = rng.choice(FILLER_WORDS, size=(length, 3))
        sequence = {"item_ids": [], "responses": [], "timestamps": []}
        token_position = 0
        for position in range(length):
            split = "train" if position < num_train else "dev" if position < num_train + num_dev else "test"
            item, correct = int(items[position]), int(responses[position])
            days = f"{ticks[position] / 1000:.3f}"
            exercise_format = _SLAM_FORMATS[formats[position]]
            time = "null" if null_time[position] else str(times[position])
            block = lines[split]
            if date >= "20190204" and exercise_format != "listen":
                block.append(f"# prompt:Nota: {' '.join(prompts[position])}.")
            block.append(
                f"# user:{user}  countries:{countries[position]}  days:{days}  client:{clients[position]}  "
                f"session:{session_types[position]}  format:{exercise_format}  time:{time}"
            )
            tokens = token_lists[item]
            mistakes = np.zeros(len(tokens), dtype=int)
            if not correct:
                mistakes[rng.choice(len(tokens), size=1 + int(rng.binomial(len(tokens) - 1, 0.2)), replace=False)] = 1
            exercise_id = f"{sessions[position // 10]}{position % 10:02d}"
            for index, (token, mistake) in enumerate(zip(tokens, mistakes.tolist())):
                instance = f"{exercise_id}{index + 1:02d}"
                columns = (
                    f"{instance:<14}{token:<16}{_POS[pos[token_position]]:<8}{_MORPH[morph[token_position]]:<28}"
                    f"{_DEPS[deps[token_position]]:<10}{index}"
                )
                token_position += 1
                if split == "train":
                    block.append(f"{columns:<90}{mistake}")
                else:
                    block.append(columns)
                    keys[split].append(f"{instance} {mistake}")
            block.append("")
            sequence["item_ids"].append(texts[item])
            sequence["responses"].append(correct)
            sequence["timestamps"].append(int(math.floor(float(days) * 86400.0)))
        sequences[user] = sequence
    files = {"data_dir": str(output_dir), "track": track}
    for split, split_lines in lines.items():
        path = f"{stem}.{split}"
        Path(path).write_text("\n".join(split_lines) + "\n", encoding="utf-8")
        files[split] = path
    for split, key_lines in keys.items():
        Path(f"{stem}.{split}.key").write_text("\n".join(key_lines) + "\n", encoding="utf-8")
        files[f"{split}_key"] = f"{stem}.{split}.key"
    return SyntheticKTTruth(
        "duolingo", preset, scale, seed, texts, texts, difficulty, users, world.ability, sequences, files, cold,
        catalog.item_structure,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# EdNet KT1
# ---------------------------------------------------------------------------------------------------------------------

_BUNDLED_PARTS = (3, 4, 6, 7)


def write_synthetic_ednet(
    output_dir: str | os.PathLike,
    preset: str | KTPreset = "toeic",
    scale: float = 0.0001,
    seed: int = 0,
    text_tokens: float | None = None,
    unused_questions: float = 0.1,
    structure: str | SyntheticStructure = "planted",
) -> SyntheticKTTruth:
    """
    Writes `KT1/u{N}.csv` per learner, `contents/questions.csv` and `question_text.csv` (`question_id,text`, texts
    with commas and quotes, CSV-quoted). Parts 3, 4, 6 and 7 come in bundles of 3 questions answered together (one
    `solving_id`, one timestamp); 2% of answers are immediate re-answers in the same `solving_id`; 5% of wrong
    answers are empty (`user_answer` blank). `unused_questions` (a fraction of the items) are listed in
    `questions.csv` without text and never answered, as EdNet lists questions GRAM's split does not use.

    `text_tokens` overrides the preset's text length (tests use short texts to stay fast). The text of a question is
    `Part {part}, question {number}: "{words}", choose (a), (b), (c) or (d).`; when `structure` shares texts it
    leaves out the number (so questions of one part can share their text, as EdNet's "part + tags" do).
    """
    preset = resolve_preset(preset)
    structure = resolve_structure(structure)
    rng = np.random.default_rng(seed)
    num_users, num_items, num_interactions, cold = preset.scaled(scale)
    catalog = draw_item_texts(num_items, text_tokens or preset.mean_text_tokens, rng, structure)
    num_unused = int(round(unused_questions * num_items))
    question_ids = [f"q{index + 1}" for index in range(num_items + num_unused)]
    parts = rng.integers(1, 8, size=num_items + num_unused)
    bundle_of = np.empty(num_items + num_unused, dtype=np.int64)
    followers: dict[int, list[int]] = {}
    bundle, index = 0, 0
    while index < num_items + num_unused:
        size = 3 if parts[index] in _BUNDLED_PARTS else 1
        members = list(range(index, min(index + size, num_items + num_unused)))
        parts[members] = parts[index]
        bundle_of[members] = bundle
        if index + size <= num_items:
            for member in members:
                followers[member] = [other for other in members if other > member]
            # Only a bundle's first question is drawn; the others follow it.
        bundle += 1
        index += size
    catalog = plant_items(catalog, rng, strata=parts[:num_items])  # shared texts stay within a part
    texts, difficulty = catalog.texts, catalog.difficulty
    exponent = structure.popularity_exponent(preset.zipf_exponent)
    popularity = zipf_popularity(num_items + num_unused, exponent, rng, active=num_items)
    heads = np.ones(num_items + num_unused, dtype=bool)
    for members in followers.values():
        heads[members] = False
    popularity = popularity * heads
    popularity /= popularity.sum()
    skills = catalog.skills
    if skills is not None:
        skills = np.concatenate([skills, np.zeros((num_unused, skills.shape[1]))])
    world = simulate_learners(
        num_users, num_interactions, np.concatenate([difficulty, np.zeros(num_unused)]), popularity,
        preset.base_logit, rng, cover_items=False, followers=followers, repeat_probability=0.02, item_skills=skills,
    )  # fmt: skip
    correct_answers = rng.choice(list("abcd"), size=num_items + num_unused)
    output_dir = Path(output_dir)
    (output_dir / "KT1").mkdir(parents=True, exist_ok=True)
    (output_dir / "contents").mkdir(parents=True, exist_ok=True)
    with open(output_dir / "contents" / "questions.csv", "w", newline="", encoding="utf-8") as handle:
        handle.write("question_id,bundle_id,explanation_id,correct_answer,part,tags,deployed_at\n")
        for index, question in enumerate(question_ids):
            num_tags = int(rng.integers(0, 4))
            tags = ";".join(str(tag) for tag in rng.choice(190, size=num_tags, replace=False)) if num_tags else "-1"
            deployed = "-1" if rng.uniform() < 0.1 else str(1_558_000_000_000 + int(rng.integers(0, 10**9)))
            handle.write(
                f"{question},b{bundle_of[index] + 1},e{bundle_of[index] + 1},{correct_answers[index]},"
                f"{parts[index]},{tags},{deployed}\n"
            )
    if not structure.shared_text_fraction:
        full_texts = [f'Part {parts[i]}, question {i + 1}: "{text}", choose (a), (b), (c) or (d).' for i, text in
                      enumerate(texts)]  # fmt: skip
    else:
        full_texts = [f'Part {parts[i]}: "{text}", choose (a), (b), (c) or (d).' for i, text in enumerate(texts)]
    with open(output_dir / "question_text.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question_id", "text"])
        writer.writerows(zip(question_ids[:num_items], full_texts))
    user_numbers = np.sort(rng.choice(10 * num_users, size=num_users, replace=False))
    user_ids = [f"u{number}" for number in user_numbers]
    sequences: dict[str, dict[str, list]] = {}
    header = "timestamp,solving_id,question_id,user_answer,elapsed_time\n"
    for user, (items, responses) in zip(user_ids, world.sequences):
        rows = []
        sequence = {"item_ids": [], "responses": [], "timestamps": []}
        time_ms = 1_565_000_000_000 + int(rng.integers(0, 10**10))
        solving_id, previous = 0, None
        for item, correct in zip(items.tolist(), responses.tolist()):
            same_bundle = previous is not None and bundle_of[item] == bundle_of[previous]
            # A new bundle (or a question answered anew) starts a new solving session with a later timestamp;
            # bundle members and re-answers share the session, and bundle members share its timestamp.
            if not same_bundle:
                solving_id += 1
                time_ms += 1000 * (1 + int(rng.exponential(600)))
                elapsed = int(rng.lognormal(10, 0.8))
            elif item == previous:  # a re-answer: same session, a little later
                time_ms += 1000 * int(rng.integers(1, 30))
            if correct:
                answer = correct_answers[item]
            elif rng.uniform() < 0.05:
                answer = ""
            else:
                answer = str(rng.choice([letter for letter in "abcd" if letter != correct_answers[item]]))
            rows.append(f"{time_ms},{solving_id},{question_ids[item]},{answer},{elapsed}\n")
            sequence["item_ids"].append(question_ids[item])
            sequence["responses"].append(int(correct))
            sequence["timestamps"].append(int(math.floor(time_ms / 1000.0)))
            previous = item
        with open(output_dir / "KT1" / f"{user}.csv", "w", encoding="utf-8") as handle:
            handle.write(header + "".join(rows))
        sequences[user] = sequence
    files = {
        "kt1_dir": str(output_dir / "KT1"),
        "questions_csv": str(output_dir / "contents" / "questions.csv"),
        "item_text": str(output_dir / "question_text.csv"),
    }
    all_texts = full_texts + [""] * num_unused
    return SyntheticKTTruth(
        "ednet", preset, scale, seed, question_ids, all_texts, np.concatenate([difficulty, np.zeros(num_unused)]),
        user_ids, world.ability, sequences, files, cold, _with_unused(catalog.item_structure, popularity, num_unused),
    )  # fmt: skip


def _with_unused(planted: ItemStructure, popularity: np.ndarray, num_unused: int) -> ItemStructure:
    """The planted structure extended by EdNet's unused questions: no factors, no text, never drawn."""
    num_items, width = planted.factors.shape
    zeros = np.zeros((num_unused, width))
    return ItemStructure(
        planted.structure,
        np.concatenate([planted.factors, zeros]),
        np.concatenate([planted.text_factors, zeros]),
        np.concatenate([planted.text_source, np.arange(num_items, num_items + num_unused)]),
        np.concatenate([planted.weak_text, np.ones(num_unused, dtype=bool)]),
        popularity,
    )


# ---------------------------------------------------------------------------------------------------------------------
# POJ
# ---------------------------------------------------------------------------------------------------------------------

_POJ_WRONG = (
    "Wrong Answer", "Compile Error", "Time Limit Exceeded", "Memory Limit Exceeded", "Output Limit Exceeded",
    "Runtime Error", "Presentation Error", "System Error", "Validator Error",
)  # fmt: skip
_POJ_WRONG_P = np.array([0.45, 0.15, 0.15, 0.05, 0.02, 0.1, 0.06, 0.01, 0.01])


def write_synthetic_poj(
    output_dir: str | os.PathLike,
    preset: str | KTPreset = "poj",
    scale: float = 0.001,
    seed: int = 0,
    text_tokens: float | None = None,
    structure: str | SyntheticStructure = "planted",
) -> SyntheticKTTruth:
    """
    Writes `poj_log.csv` (pyKT's columns `User,Problem,Result,Memory,Time,Language,Code Length,Submit Time`, rows
    newest first as scraped) and `problem_text.csv` (`problem_id,text`, statements with commas, quotes and line
    breaks, CSV-quoted). Only `Accepted` is correct; wrong submissions carry the other results.
    """
    preset = resolve_preset(preset)
    structure = resolve_structure(structure)
    rng = np.random.default_rng(seed)
    num_users, num_items, num_interactions, cold = preset.scaled(scale)
    catalog = plant_items(draw_item_texts(num_items, text_tokens or preset.mean_text_tokens, rng, structure), rng)
    texts, difficulty = catalog.texts, catalog.difficulty
    popularity = zipf_popularity(num_items, structure.popularity_exponent(preset.zipf_exponent), rng)
    world = simulate_learners(
        num_users, num_interactions, difficulty, popularity, preset.base_logit, rng, item_skills=catalog.skills
    )
    catalog.item_structure.popularity = popularity
    problem_ids = [str(1000 + index) for index in range(num_items)]
    statements = [f'{text}\nInput: two integers "n, m".\nOutput: the answer, one per line.' for text in texts]
    user_ids = [f"user_{name.lower()}" for name in random_ids(num_users, 7, rng)]
    base = int(datetime(2008, 1, 1, tzinfo=timezone.utc).timestamp())
    rows = []
    sequences: dict[str, dict[str, list]] = {}
    for user, (items, responses) in zip(user_ids, world.sequences):
        seconds = base + int(rng.integers(0, 10**8)) + increasing_ticks(len(items), rng, mean=3600.0)
        sequences[user] = {
            "item_ids": [problem_ids[item] for item in items.tolist()],
            "responses": responses.tolist(),
            "timestamps": seconds.tolist(),
        }
        wrong = rng.choice(len(_POJ_WRONG), size=len(items), p=_POJ_WRONG_P)
        for item, correct, moment, mistake in zip(items.tolist(), responses.tolist(), seconds.tolist(), wrong):
            result = "Accepted" if correct else _POJ_WRONG[mistake]
            submitted = datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            language = "G++" if rng.uniform() < 0.7 else "Java"
            rows.append((moment, [user, problem_ids[item], result, "400K", "16MS", language, "512B", submitted]))
    rows.sort(key=lambda row: -row[0])  # newest first, as the judge's status pages list them
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "poj_log.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["User", "Problem", "Result", "Memory", "Time", "Language", "Code Length", "Submit Time"])
        writer.writerows(row for _, row in rows)
    with open(output_dir / "problem_text.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["problem_id", "text"])
        writer.writerows(zip(problem_ids, statements))
    files = {"log_csv": str(output_dir / "poj_log.csv"), "problem_text": str(output_dir / "problem_text.csv")}
    return SyntheticKTTruth(
        "poj", preset, scale, seed, problem_ids, statements, difficulty, user_ids, world.ability, sequences, files,
        cold, catalog.item_structure,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Generic CSV / Parquet
# ---------------------------------------------------------------------------------------------------------------------


def write_synthetic_kt_csv(
    output_dir: str | os.PathLike,
    preset: str | KTPreset = "en_es",
    scale: float = 0.01,
    seed: int = 0,
    file_format: str = "csv",
    text_tokens: float | None = None,
    structure: str | SyntheticStructure = "planted",
) -> SyntheticKTTruth:
    """
    Writes the generic tables: `interactions.{csv,parquet}` (`user_id,item_id,timestamp,correct`, rows shuffled
    across learners) and `items.{csv,parquet}` (`item_id,text`, texts with commas and quotes: `"{words}", item
    {index}`, or `"{words}", item` when `structure` shares texts, so that shared texts are identical).
    """
    if file_format not in ("csv", "parquet"):
        raise ValueError(f"file_format must be 'csv' or 'parquet', got {file_format!r}.")
    preset = resolve_preset(preset)
    structure = resolve_structure(structure)
    rng = np.random.default_rng(seed)
    num_users, num_items, num_interactions, cold = preset.scaled(scale)
    catalog = plant_items(draw_item_texts(num_items, text_tokens or preset.mean_text_tokens, rng, structure), rng)
    difficulty = catalog.difficulty
    if not structure.shared_text_fraction:
        texts = [f'"{text}", item {index}' for index, text in enumerate(catalog.texts)]
    else:
        texts = [f'"{text}", item' for text in catalog.texts]
    popularity = zipf_popularity(num_items, structure.popularity_exponent(preset.zipf_exponent), rng)
    world = simulate_learners(
        num_users, num_interactions, difficulty, popularity, preset.base_logit, rng, item_skills=catalog.skills
    )
    catalog.item_structure.popularity = popularity
    item_ids = [f"item-{index}" for index in range(num_items)]
    user_ids = [f"learner-{index}" for index in range(num_users)]
    table: dict[str, list] = {"user_id": [], "item_id": [], "timestamp": [], "correct": []}
    sequences: dict[str, dict[str, list]] = {}
    for user, (items, responses) in zip(user_ids, world.sequences):
        seconds = 1_600_000_000 + int(rng.integers(0, 10**7)) + increasing_ticks(len(items), rng, mean=120.0)
        names = [item_ids[item] for item in items.tolist()]
        sequences[user] = {"item_ids": names, "responses": responses.tolist(), "timestamps": seconds.tolist()}
        table["user_id"] += [user] * len(items)
        table["item_id"] += names
        table["timestamp"] += seconds.tolist()
        table["correct"] += responses.tolist()
    order = rng.permutation(len(table["user_id"]))
    table = {name: [values[i] for i in order] for name, values in table.items()}
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    interactions_path = output_dir / f"interactions.{file_format}"
    items_path = output_dir / f"items.{file_format}"
    if file_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(table), interactions_path)
        pq.write_table(pa.table({"item_id": item_ids, "text": texts}), items_path)
    else:
        with open(interactions_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(list(table))
            writer.writerows(zip(*table.values()))
        with open(items_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["item_id", "text"])
            writer.writerows(zip(item_ids, texts))
    files = {"interactions": str(interactions_path), "items": str(items_path)}
    return SyntheticKTTruth(
        "kt_csv", preset, scale, seed, item_ids, texts, difficulty, user_ids, world.ability, sequences, files, cold,
        catalog.item_structure,
    )  # fmt: skip


__all__ = [
    "PRESETS",
    "KTPreset",
    "SyntheticKTTruth",
    "write_synthetic_duolingo",
    "write_synthetic_ednet",
    "write_synthetic_kt_csv",
    "write_synthetic_poj",
]
