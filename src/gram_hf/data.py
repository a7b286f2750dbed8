"""[`InteractionData`]: what every dataset loader returns — interaction splits plus the items they refer to."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

    from .items import ItemCatalog

STATS_FILENAME = "gram_hf_stats.json"
"""The file of a Hub folder that keeps `InteractionData.stats` (vocabulary sizes of features, counts)."""


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays, sets and paths show up in loader stats; JSON knows none of them.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _parse_size(size: int | str) -> int:
    """`"500MB"` -> bytes (decimal units, as `datasets` uses them)."""
    if isinstance(size, int):
        return size
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "B": 1}
    text = size.strip().upper()
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


@dataclass
class InteractionData:
    """
    A loaded dataset in gram-hf's canonical form.

    Args:
        splits (`datasets.DatasetDict`):
            The interaction splits (`train`, `validation`, `test`, ...). Item references in them are catalog indices,
            i.e. row positions in `items`.
        items (`datasets.Dataset`):
            One row per item: `item_id` (str), `text` (str) and task metadata (e.g. MIND `category`, TOEIC `part`,
            `cold_start` for items held out of training). Row `i` is catalog index `i`.
        stats (`dict`):
            What the loader read and what it dropped (counts), for logging, results tables and dataset cards. Every
            loader fills the same three keys, so that "4,599 interactions from a 5,596-row file" is explained:

            - `rows_read` (`int`): raw interaction rows read (a log row, a rating, a review; for MIND an impression);
            - `dropped` (`dict[str, int]`): reason -> raw rows in no split, reasons with a zero count left out.
              Knowledge tracing: the reader's own (POJ `unjudged_submissions`, `empty_fields`), `unknown_items` (item
              id absent from the item table), `items_without_text`, `short_learners` (`min_interactions`); next item:
              `below_min_rating`, `unknown_items`, `duplicates`, `filtered_min_interactions` (the k-core filters);
              MIND, in impressions: `impressions_without_candidates`, `impressions_without_clicks`,
              `impressions_without_negatives` (train);
            - `removed_from_train` (`dict[str, int]`): reason -> interactions kept out of `train` only, e.g.
              `{"cold_start_items": n}` for knowledge tracing's cold-start items (empty where nothing is).

            They add up: `rows_read == kept + sum(dropped.values()) + sum(removed_from_train.values())`, with kept the
            interactions in the splits (knowledge tracing: `stats["interactions"]["total"]`; next item:
            `stats["interactions"]`; MIND: the impressions kept, `stats["splits"][name]["impressions"]` summed).
            Knowledge tracing also gives `dropped_examples` (reason -> the first few `file:line: problem` of the
            reader's drops), `dropped_items` and `dropped_learners` (counts of items and learners, not interactions).
    """

    splits: datasets.DatasetDict
    items: datasets.Dataset
    stats: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, split: str) -> datasets.Dataset:
        return self.splits[split]

    def __contains__(self, split: str) -> bool:
        return split in self.splits

    @property
    def num_items(self) -> int:
        return len(self.items)

    def catalog(
        self, tokenizer: PreTrainedTokenizerBase, max_length: int = 128, text_column: str = "text"
    ) -> ItemCatalog:
        """The [`ItemCatalog`] of `items` (catalog index = row), tokenized with `tokenizer`."""
        from .items import ItemCatalog

        return ItemCatalog.from_dataset(
            self.items, tokenizer, id_column="item_id", text_column=text_column, max_length=max_length
        )

    # ----------------------------------------------------------------------------------------------------------------
    # Hub folders: one parquet file (or a few shards) per split, the items as a second config, a dataset card.
    # ----------------------------------------------------------------------------------------------------------------

    def save_to_hub_folder(
        self,
        folder: str | os.PathLike,
        card_text: str | None = None,
        *,
        pretty_name: str | None = None,
        license: str | None = None,
        tags: Sequence[str] = (),
        interactions_config: str = "interactions",
        items_config: str = "items",
        max_shard_size: int | str = "500MB",
        overwrite: bool = False,
    ) -> Path:
        """
        Writes the dataset as a folder the Hugging Face Hub serves as a dataset repository, and that
        `datasets.load_dataset(folder)` reads back locally.

        Layout: `data/{split}-{i:05d}-of-{n:05d}.parquet` per split (the `interactions_config`, the default
        config), `items/items-00000-of-00001.parquet` (the `items_config`, one split `train`), `gram_hf_stats.json`
        (the `stats`, so that [`~InteractionData.from_hub`] restores feature vocabulary sizes) and `README.md`, a
        dataset card whose YAML header lists both configs. Parquet keeps the `datasets` feature types (list columns,
        bool flags), so `load_dataset(folder)` gives the same columns as this object's splits. Empty splits are left
        out (`load_dataset` cannot read a split without rows).

        Args:
            folder (`str` or `os.PathLike`):
                Where to write. Must be empty or absent unless `overwrite=True`.
            card_text (`str`, *optional*):
                The Markdown body of the dataset card (below the YAML header): where the raw data came from, its
                licence, how it was processed. A default body lists the splits and stats.
            pretty_name, license (`str`, *optional*):
                Card metadata (`license` as a Hub licence id, e.g. `"cc-by-nc-4.0"`).
            tags (`Sequence[str]`, *optional*):
                Extra Hub tags.
            interactions_config, items_config (`str`, *optional*):
                The config names of the splits and of the items.
            max_shard_size (`int` or `str`, *optional*, defaults to `"500MB"`):
                Splits larger than this (in Arrow bytes) are written in several parquet shards, which the Hub streams
                and previews more easily.
            overwrite (`bool`, *optional*, defaults to `False`):
                Replace an existing non-empty folder.

        Returns:
            `Path`: the folder.
        """
        import datasets

        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{folder} is not empty; pass overwrite=True to replace it.")
            shutil.rmtree(folder)
        if interactions_config == items_config:
            raise ValueError(f"interactions_config and items_config must differ, both are {items_config!r}.")
        folder.mkdir(parents=True, exist_ok=True)
        shard_bytes = _parse_size(max_shard_size)

        def write(dataset: datasets.Dataset, directory: str, stem: str) -> tuple[list[str], int]:
            (folder / directory).mkdir(exist_ok=True)
            num_shards = max(1, math.ceil(dataset.data.nbytes / shard_bytes)) if len(dataset) else 1
            num_shards = min(num_shards, max(1, len(dataset)))
            size = 0
            for index in range(num_shards):
                shard = dataset.shard(num_shards, index, contiguous=True) if num_shards > 1 else dataset
                path = folder / directory / f"{stem}-{index:05d}-of-{num_shards:05d}.parquet"
                shard.to_parquet(str(path))
                size += path.stat().st_size
            return [f"{directory}/{stem}-*.parquet"], size

        def info(config_name: str, parts: dict[str, datasets.Dataset], download_size: int) -> dict[str, Any]:
            # The `dataset_info` YAML push_to_hub writes. Besides documenting sizes, it keeps `load_dataset(folder)`
            # from serving a stale cache: with YAML `configs`, datasets keys its cache on the file *patterns* and
            # these infos only, so two folders of one name (or a folder rewritten in place) would otherwise collide.
            splits = datasets.SplitDict()
            for name, part in parts.items():
                splits.add(datasets.SplitInfo(name=name, num_bytes=part.data.nbytes, num_examples=len(part)))
            features = next(iter(parts.values())).features
            result = datasets.DatasetInfo(
                features=features,
                splits=splits,
                download_size=download_size,
                dataset_size=sum(part.data.nbytes for part in parts.values()),
            )._to_yaml_dict()
            return {"config_name": config_name, **result}

        # An empty split has no parquet rows `load_dataset` could read (it refuses a split without data): it is left
        # out of the folder, and the card's statistics still show it with 0 rows.
        written = {name: split for name, split in self.splits.items() if len(split)}
        if not written:
            raise ValueError("Every split is empty; there is nothing to write.")
        split_files, split_bytes = [], 0
        for name, split in written.items():
            paths, size = write(split, "data", name)
            split_files.append({"split": name, "path": paths})
            split_bytes += size
        items_paths, items_bytes = write(self.items, "items", "items")
        items_files = [{"split": "train", "path": items_paths}]
        infos = [
            info(interactions_config, written, split_bytes),
            info(items_config, {"train": self.items}, items_bytes),
        ]
        with open(folder / STATS_FILENAME, "w", encoding="utf-8") as handle:
            json.dump(self.stats, handle, indent=2, sort_keys=True, default=_json_default)

        from huggingface_hub import DatasetCard, DatasetCardData

        card_data = DatasetCardData(
            license=license,
            pretty_name=pretty_name,
            tags=["gram-hf", *tags],
            configs=[
                {"config_name": interactions_config, "default": True, "data_files": split_files},
                {"config_name": items_config, "data_files": items_files},
            ],
            dataset_info=infos,
        )
        if card_text is None:
            card_text = self._default_card_body(pretty_name, interactions_config, items_config)
        card = DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{card_text.strip()}\n")
        card.save(folder / "README.md")
        return folder

    def _default_card_body(self, pretty_name: str | None, interactions_config: str, items_config: str) -> str:
        lines = [f"# {pretty_name or 'gram-hf interaction dataset'}", ""]
        lines.append("Written by gram-hf (`InteractionData.save_to_hub_folder`).")
        lines.append("")
        lines.append("| config | split | rows | columns |")
        lines.append("| --- | --- | --- | --- |")
        for name, split in self.splits.items():
            lines.append(f"| {interactions_config} | {name} | {len(split)} | {', '.join(split.column_names)} |")
        lines.append(f"| {items_config} | train | {len(self.items)} | {', '.join(self.items.column_names)} |")
        lines += ["", "```python", "from datasets import load_dataset", "", "splits = load_dataset(REPO_OR_FOLDER)"]
        lines += [f'items = load_dataset(REPO_OR_FOLDER, "{items_config}", split="train")', "```"]
        if self.stats:
            stats = json.dumps(self.stats, indent=2, sort_keys=True, default=_json_default)
            lines += ["", "## Statistics", "", "```json", stats, "```"]
        return "\n".join(lines)

    def push_to_hub(
        self,
        repo_id: str,
        card_text: str | None = None,
        *,
        private: bool | None = None,
        token: str | bool | None = None,
        revision: str | None = None,
        commit_message: str | None = None,
        folder: str | os.PathLike | None = None,
        **save_kwargs: Any,
    ):
        """
        Uploads the dataset to the Hub as a dataset repository: writes it with
        [`~InteractionData.save_to_hub_folder`] (into `folder`, or a temporary folder) and uploads that folder with
        `huggingface_hub.HfApi().upload_folder`, creating the repository if needed.

        Args:
            repo_id (`str`): the dataset repository (`"user/name"`).
            card_text (`str`, *optional*): the dataset card body, see [`~InteractionData.save_to_hub_folder`].
            private, token, revision, commit_message: passed to `create_repo` / `upload_folder`.
            folder (`str` or `os.PathLike`, *optional*): keep the written folder here instead of a temporary one.
            save_kwargs: further arguments of [`~InteractionData.save_to_hub_folder`] (`pretty_name`, `license`, ...).

        Returns:
            The `huggingface_hub.CommitInfo` of the upload.
        """
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(folder) if folder is not None else Path(tmp) / "dataset"
            self.save_to_hub_folder(target, card_text, **save_kwargs)
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=str(target),
                repo_type="dataset",
                revision=revision,
                commit_message=commit_message or "Upload dataset with gram-hf",
            )

    @classmethod
    def from_hub(
        cls,
        path_or_repo_id: str | os.PathLike,
        *,
        interactions_config: str = "interactions",
        items_config: str = "items",
        revision: str | None = None,
        **load_kwargs: Any,
    ) -> InteractionData:
        """
        Loads what [`~InteractionData.save_to_hub_folder`] / [`~InteractionData.push_to_hub`] wrote: a local folder or
        a Hub dataset repository id. `load_kwargs` go to `datasets.load_dataset` (e.g. `cache_dir`).
        """
        import datasets

        source = os.fspath(path_or_repo_id)
        splits = datasets.load_dataset(source, interactions_config, revision=revision, **load_kwargs)
        items = datasets.load_dataset(source, items_config, split="train", revision=revision, **load_kwargs)
        stats: dict[str, Any] = {}
        if os.path.isdir(source):
            stats_path = os.path.join(source, STATS_FILENAME)
            if os.path.exists(stats_path):
                with open(stats_path, encoding="utf-8") as handle:
                    stats = json.load(handle)
        else:
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError

            try:
                stats_path = hf_hub_download(source, STATS_FILENAME, repo_type="dataset", revision=revision)
            except EntryNotFoundError:
                stats_path = None
            if stats_path is not None:
                with open(stats_path, encoding="utf-8") as handle:
                    stats = json.load(handle)
        return cls(splits=splits, items=items, stats=stats)


__all__ = ["STATS_FILENAME", "InteractionData"]
