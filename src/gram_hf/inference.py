"""
[`GramRecommender`]: a trained [`GramModel`] and its item catalog, ready to score — load, encode the catalog once,
predict.

`GramRecommender.from_pretrained(model_dir, items=...)` returns the recommender of the model's task (registered by the
task, as its head is): knowledge tracing's `predict_response`, news recommendation's `rank`, next-item's `top_k`. The
catalog is encoded once with the model's content encoder and cached beside the model; the cache is keyed by the
encoder's weights and each item's tokens, so a changed model re-encodes everything and a changed or added item only
itself. Items are named by their ids; an item the catalog lacks can be given with its text (`{"item_id": ..., "text":
...}`) and is added on the fly.

The numbers are the ones `GramTrainer.predict` computes on the same inputs: the same head, the same item vectors
(content, ID rows, or both for a hybrid, cold-start items with their content alone), the same batch layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from tqdm.auto import tqdm

from .items import ItemCatalog, tokenizer_digest
from .modeling import GramModel

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

    from .trainer import GramTrainer

logger = logging.getLogger(__name__)

INFERENCE_CONFIG_NAME = "gram_inference.json"
"""Written beside a saved model by `GramTrainer.save_model`: how the catalog was tokenized and evaluation batched."""
CACHE_DIRNAME = "item_vector_cache"
CACHE_VECTORS_NAME = "item_vectors.safetensors"
CACHE_IDS_NAME = "item_ids.json"

ItemRef = str | int | Mapping[str, Any]
"""An item: its id, or `{"item_id": id, "text": text}` (or one key per text field) for an item the catalog lacks."""


def inference_settings(trainer: GramTrainer) -> dict[str, Any]:
    """
    What a [`GramRecommender`] needs to reproduce `trainer.predict`: the catalog's tokenization (`max_length`, text
    fields and their lengths) and the evaluation collator's plain options (e.g. `max_history`, `max_length`).
    """
    settings: dict[str, Any] = {"catalog": trainer.item_catalog.settings if trainer.item_catalog is not None else None}
    collator = trainer.eval_data_collator or trainer.data_collator
    options = {}
    for name, value in vars(collator).items() if hasattr(collator, "__dict__") else ():
        if not name.startswith("_") and (value is None or isinstance(value, (bool, int, float, str))):
            options[name] = value
    settings["collator"] = {"class": type(collator).__name__, "options": options}
    return settings


def encoder_digest(model: GramModel) -> str:
    """A digest of everything that decides the content vectors: the encoder's weights and the pooling settings."""
    digest = hashlib.blake2b(digest_size=16)
    config = model.config
    described = [config.pooling, config.item_dim, config.attention_pooling_dim, config.encoder_lora]
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class GramRecommender:
    r"""
    Scores with a trained [`GramModel`]: the base of each task's recommender (see the module docstring). Build one
    with [`GramRecommender.from_pretrained`] (a saved model folder) or [`GramRecommender.from_trainer`]; the task's
    subclass is chosen from `config.head_type`.

    Args:
        model ([`GramModel`]): the trained model (put in eval mode and moved to `device`).
        items: the catalog, row `i` being the model's item `i` (the order the model was trained with): an
            [`ItemCatalog`], a `datasets.Dataset` or a mapping of columns with `item_id` and the text column(s), or,
            for an item-ID model, the item ids alone.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): the encoder's tokenizer (needed to tokenize text; an
            `ItemCatalog` must have been built with it).
        device (`str` or `torch.device`, *optional*): defaults to CUDA when available, else CPU.
        batch_size (`int`, *optional*, defaults to 256): sequences (learners, impressions, users) per head batch.
        encoder_batch_size (`int`, *optional*, defaults to 256): items per encoder forward.
        cache_dir (`str`, *optional*): folder of the item-vector cache; `None`: no cache.
        catalog_settings (`dict`, *optional*): how to tokenize items given as text (`max_length`, `text_fields`,
            `field_max_lengths`), as in [`ItemCatalog.settings`]; defaults to the saved model's.
        collator_options (`dict`, *optional*): the evaluation collator's options saved with the model.
        id_column (`str`, *optional*, defaults to `"item_id"`), text_column (`str` or `Sequence[str]`, *optional*,
            defaults to `"text"` or the saved text fields): the item table's columns.
        show_progress (`bool`, *optional*, defaults to `True`): progress bars on long encodings and scorings.
    """

    task_name: ClassVar[str | None] = None

    def __new__(cls, model: GramModel, *args: Any, **kwargs: Any):
        # `GramRecommender(model, ...)` builds the recommender of the model's task, as `from_pretrained` does.
        if cls is GramRecommender and isinstance(model, GramModel):
            from .task_registry import get_task

            cls = get_task(model.config.head_type).recommender or cls
        return super().__new__(cls)

    def __init__(
        self,
        model: GramModel,
        items: ItemCatalog | datasets.Dataset | Mapping[str, Sequence[Any]] | Sequence[str],
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        device: str | torch.device | None = None,
        batch_size: int = 256,
        encoder_batch_size: int = 256,
        cache_dir: str | os.PathLike | None = None,
        catalog_settings: Mapping[str, Any] | None = None,
        collator_options: Mapping[str, Any] | None = None,
        id_column: str = "item_id",
        text_column: str | Sequence[str] | None = None,
        show_progress: bool = True,
    ):
        if not isinstance(model, GramModel):
            raise TypeError(f"A GramRecommender scores with a GramModel, got {type(model).__name__}.")
        if batch_size < 1 or encoder_batch_size < 1:
            raise ValueError("batch_size and encoder_batch_size must be positive.")
        if self.task_name is not None and model.config.head_type != self.task_name:
            raise ValueError(
                f"{type(self).__name__} is for {self.task_name!r} models; this one has head_type "
                f"{model.config.head_type!r}: use GramRecommender.from_pretrained, which picks the task's class."
            )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        self.encoder_batch_size = encoder_batch_size
        self.show_progress = show_progress
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.collator_options = dict(collator_options or {})
        self.tokenizer = tokenizer
        self.counters = {"items_encoded": 0, "tokens_encoded": 0}
        self._encoder_digest: str | None = None
        self._id_rows = model.config.num_items if model.item_id_table is not None else 0
        settings = dict(catalog_settings or {})
        self.catalog: ItemCatalog | None = None
        if model.encoder is None:
            self.item_ids = self._ids_of(items, id_column)
            if len(self.item_ids) != model.config.num_items:
                raise ValueError(
                    f"The item-ID model has {model.config.num_items} item rows but {len(self.item_ids)} item ids were "
                    "given: pass the ids in the order of training (row i = the i-th id)."
                )
            self._content = None
            # An item-ID model's items are fixed (it cannot add any): their rows are looked up here.
            self._row_of_id = {item_id: row for row, item_id in enumerate(self.item_ids)}
        else:
            self.catalog = self._build_catalog(items, settings, id_column, text_column)
            self.item_ids = self.catalog.item_ids
            if self._id_rows and self.catalog.num_items < self._id_rows:
                raise ValueError(
                    f"The hybrid model has {self._id_rows} item-ID rows but the catalog only {self.catalog.num_items} "
                    "items: pass the catalog the model was trained with (row i = the i-th item)."
                )
            self._content = self._encode_catalog()
        self._vectors: torch.Tensor | None = None

    # ----------------------------------------------------------------------------------------------- construction

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        items: Any,
        *,
        tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None | bool = True,
        **kwargs: Any,
    ) -> GramRecommender:
        """
        Loads a saved [`GramModel`] (a `trainer.save_model()` / `save_pretrained` folder or a Hub id) and its task's
        recommender.

        Args:
            pretrained_model_name_or_path: the model.
            items: the catalog (see [`GramRecommender`]).
            tokenizer: the encoder's tokenizer, or where to load it from; defaults to the model folder's tokenizer,
                else `config.encoder_name_or_path`.
            cache_dir: the item-vector cache; `True` (default): `<model folder>/item_vector_cache` for a local
                folder, no cache for a Hub id; a path; or `None` / `False` for none.
            kwargs: the rest of [`GramRecommender`]'s arguments (`device`, `batch_size`, ...).
        """
        from transformers import AutoTokenizer

        model = GramModel.from_pretrained(pretrained_model_name_or_path)
        local = Path(pretrained_model_name_or_path)
        saved: dict[str, Any] = {}
        if local.is_dir() and (local / INFERENCE_CONFIG_NAME).is_file():
            saved = json.loads((local / INFERENCE_CONFIG_NAME).read_text(encoding="utf-8"))
        if model.encoder is not None and (tokenizer is None or isinstance(tokenizer, (str, os.PathLike))):
            source = tokenizer
            if source is None:
                has_tokenizer = local.is_dir() and any((local / name).is_file() for name in _TOKENIZER_FILES)
                source = local if has_tokenizer else model.config.encoder_name_or_path
            if source is None:
                raise ValueError(
                    "The model folder has no tokenizer and its config no encoder_name_or_path: pass tokenizer=."
                )
            tokenizer = AutoTokenizer.from_pretrained(source)
        if cache_dir is True:
            cache_dir = local / CACHE_DIRNAME if local.is_dir() else None
        elif cache_dir is False:
            cache_dir = None
        kwargs.setdefault("catalog_settings", saved.get("catalog"))
        kwargs.setdefault("collator_options", (saved.get("collator") or {}).get("options"))
        return cls(model, items, tokenizer, cache_dir=cache_dir, **kwargs)

    @classmethod
    def from_trainer(cls, trainer: GramTrainer, items: Any = None, **kwargs: Any) -> GramRecommender:
        """
        The recommender of a [`GramTrainer`]'s model (not copied) with its catalog, tokenizer and evaluation settings:
        scores what `trainer.predict` would. `items` defaults to the trainer's catalog (required for ID models).
        """

        model = trainer.accelerator.unwrap_model(trainer.model)
        settings = inference_settings(trainer)
        kwargs.setdefault("catalog_settings", settings["catalog"])
        kwargs.setdefault("collator_options", settings["collator"]["options"])
        kwargs.setdefault("device", trainer.args.device)
        items = items if items is not None else trainer.item_catalog
        if items is None:
            raise ValueError("An item-ID model's recommender needs items= (the item ids in training order).")
        return cls(model, items, trainer.processing_class, **kwargs)

    @staticmethod
    def _ids_of(items: Any, id_column: str) -> list[str]:
        if isinstance(items, ItemCatalog):
            return list(items.item_ids)
        if hasattr(items, "column_names") or isinstance(items, Mapping):
            columns = items.column_names if hasattr(items, "column_names") else list(items)
            if id_column not in columns:
                raise ValueError(f"The items have no {id_column!r} column; columns: {list(columns)}.")
            return [str(item_id) for item_id in items[id_column]]
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise TypeError(
                f"items must be an ItemCatalog, a Dataset, a mapping of columns or item ids, got {items!r}."
            )
        return [str(item_id) for item_id in items]

    def _build_catalog(
        self, items: Any, settings: dict[str, Any], id_column: str, text_column: str | Sequence[str] | None
    ) -> ItemCatalog:
        if self.tokenizer is None:
            raise ValueError("A content model's recommender needs the encoder's tokenizer (tokenizer=).")
        model_tokenizer = tokenizer_digest(self.tokenizer)
        if isinstance(items, ItemCatalog):
            if items.tokenizer_digest != model_tokenizer:
                raise ValueError(
                    "The item catalog was tokenized with a different tokenizer than the model's "
                    f"({type(self.tokenizer).__name__} of {getattr(self.tokenizer, 'name_or_path', '?')!r}); build "
                    "the catalog with the model's tokenizer, or pass the items as text."
                )
            return items
        if not (hasattr(items, "column_names") or isinstance(items, Mapping)):
            raise TypeError(
                "A content model needs the items' text: an ItemCatalog, a datasets.Dataset or a mapping of columns "
                f"({id_column!r} and the text), got {type(items).__name__}."
            )
        fields = text_column or settings.get("text_fields") or "text"
        columns = items.column_names if hasattr(items, "column_names") else list(items)
        names = [fields] if isinstance(fields, str) else list(fields)
        missing = [name for name in (id_column, *names) if name not in columns]
        if missing:
            raise ValueError(f"The items have no column(s) {missing}; columns: {list(columns)}.")
        item_ids = [str(item_id) for item_id in items[id_column]]
        if isinstance(fields, str):
            return ItemCatalog(
                item_ids, list(items[fields]), self.tokenizer, max_length=settings.get("max_length", 128)
            )
        lengths = settings.get("field_max_lengths") or settings.get("max_length", 128)
        return ItemCatalog.from_fields(item_ids, {name: list(items[name]) for name in names}, self.tokenizer, lengths)

    # -------------------------------------------------------------------------------------------- item vectors

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def item_vectors(self) -> torch.Tensor:
        """
        `[num_items, item_dim]` float32 on `device`: what the head reads for each catalog row (content, ID row or
        both; items added after training have no ID row and get their content alone).
        """
        if self._vectors is None:
            with torch.no_grad():
                if self._content is None:
                    self._vectors = self.model.item_id_table.weight.detach().float()
                elif not self._id_rows:
                    self._vectors = self._content
                else:
                    trained = torch.arange(self._id_rows, device=self.device)
                    combined = self.model.item_vectors(trained, self._content[: self._id_rows]).float()
                    self._vectors = torch.cat([combined, self._content[self._id_rows :]])
        return self._vectors

    def _encode(self, indices: torch.LongTensor) -> torch.Tensor:
        """Content vectors of the catalog items at `indices` (eval mode, no grad, length-sorted batches), counted."""
        vectors = torch.empty(indices.numel(), self.model.item_dim, dtype=torch.float32, device=self.device)
        if indices.numel() == 0:
            return vectors
        position = torch.empty(self.catalog.num_items, dtype=torch.long)
        position[indices] = torch.arange(indices.numel())
        batches = self.catalog.length_sorted_batches(indices, self.encoder_batch_size)
        show = self.show_progress and len(batches) > 4
        batches = tqdm(batches, desc=f"Encoding {indices.numel():,} items", disable=not show, leave=False)
        with torch.no_grad():
            for batch_index in batches:
                tokens = self.catalog.batch(batch_index)
                self.counters["items_encoded"] += batch_index.numel()
                self.counters["tokens_encoded"] += int(tokens["attention_mask"].sum())
                tokens = {name: value.to(self.device) for name, value in tokens.items()}
                vectors[position[batch_index].to(self.device)] = self.model.encode_items(**tokens).float()
        return vectors

    def _encoder_fingerprint(self) -> str:
        if self._encoder_digest is None:
            self._encoder_digest = encoder_digest(self.model)
        return self._encoder_digest

    def _encode_catalog(self) -> torch.Tensor:
        """The catalog's content vectors: from the cache where the encoder and an item's tokens are unchanged."""
        digests = self.catalog.token_digests()
        vectors = torch.empty(self.catalog.num_items, self.model.item_dim, dtype=torch.float32, device=self.device)
        todo = torch.ones(self.catalog.num_items, dtype=torch.bool)
        cached = self._read_cache()
        if cached is not None:
            cached_ids, cached_digests, cached_vectors = cached
            row_of = {item_id: row for row, item_id in enumerate(cached_ids)}
            rows = torch.tensor([row_of.get(item_id, -1) for item_id in self.catalog.item_ids], dtype=torch.long)
            hit = (rows >= 0) & (cached_digests[rows.clamp(min=0)] == digests)
            if bool(hit.any()):
                vectors[hit.to(self.device)] = cached_vectors[rows[hit]].to(self.device)
            todo &= ~hit
            logger.info("Item vectors: %d of %d from the cache.", int(hit.sum()), self.catalog.num_items)
        missing = todo.nonzero().squeeze(1)
        if missing.numel():
            vectors[missing.to(self.device)] = self._encode(missing)
            self._write_cache(self.catalog.item_ids, digests, vectors)
        return vectors

    def _read_cache(self) -> tuple[list[str], torch.Tensor, torch.Tensor] | None:
        if self.cache_dir is None or not (self.cache_dir / CACHE_VECTORS_NAME).is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(self.cache_dir / CACHE_VECTORS_NAME), framework="pt") as handle:
                if (handle.metadata() or {}).get("encoder_digest") != self._encoder_fingerprint():
                    logger.info("The item-vector cache is of another encoder: the catalog is encoded again.")
                    return None
                digests, vectors = handle.get_tensor("token_digests"), handle.get_tensor("vectors")
            item_ids = json.loads((self.cache_dir / CACHE_IDS_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError) as error:
            logger.warning("Ignoring an unreadable item-vector cache in %s (%s).", self.cache_dir, error)
            return None
        if len(item_ids) != digests.numel() or vectors.shape != (digests.numel(), self.model.item_dim):
            logger.warning("Ignoring an inconsistent item-vector cache in %s.", self.cache_dir)
            return None
        return item_ids, digests, vectors

    def _write_cache(self, item_ids: Sequence[str], digests: torch.Tensor, vectors: torch.Tensor) -> None:
        if self.cache_dir is None:
            return
        from safetensors.torch import save_file

        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            # Written under temporary names and renamed, ids first: a reader never pairs new vectors with old ids
            # (a mismatch in count is rejected, and the vectors file carries the encoder's digest).
            ids_tmp = self.cache_dir / f".{CACHE_IDS_NAME}.tmp"
            vectors_tmp = self.cache_dir / f".{CACHE_VECTORS_NAME}.tmp"
            ids_tmp.write_text(json.dumps(list(item_ids)), encoding="utf-8")
            save_file(
                {"token_digests": digests.contiguous(), "vectors": vectors.detach().float().cpu().contiguous()},
                str(vectors_tmp),
                metadata={"encoder_digest": self._encoder_fingerprint(), "format": "gram-hf item vectors 1"},
            )
            os.replace(ids_tmp, self.cache_dir / CACHE_IDS_NAME)
            os.replace(vectors_tmp, self.cache_dir / CACHE_VECTORS_NAME)
        except OSError as error:  # a read-only model folder: scoring works without the cache
            logger.warning("Could not write the item-vector cache to %s (%s).", self.cache_dir, error)

    def add_items(
        self, item_ids: Sequence[str], texts: Sequence[str] | Mapping[str, Sequence[str]]
    ) -> torch.LongTensor:
        """
        Adds items to the catalog, or updates the text of known ones, encoding only those items (the rest keep their
        vectors; `counters` shows the work). Returns their catalog rows. New items have no ID row: a hybrid model
        scores them by content alone, and an item-ID model cannot add items.
        """
        if self.catalog is None:
            raise ValueError(
                "An item-ID model (item_encoder='id') can only score the items it was trained on; it has no encoder "
                "to represent new items."
            )
        # Items with an ID row keep it; only their content changes.
        old_digests = self.catalog.token_digests()
        catalog, indices = self.catalog.with_items(item_ids, texts, self.tokenizer)
        new_digests = catalog.token_digests()
        known = indices < old_digests.numel()
        unchanged = known.clone()
        unchanged[known] = new_digests[indices[known]] == old_digests[indices[known]]
        changed = indices[~unchanged]
        grown = catalog.num_items - self.catalog.num_items
        self.catalog = catalog
        self.item_ids = catalog.item_ids
        if grown:
            self._content = torch.cat([self._content, self._content.new_zeros(grown, self.model.item_dim)])
        if changed.numel():
            self._content[changed.to(self.device)] = self._encode(changed)
            self._write_cache(catalog.item_ids, new_digests, self._content)
        self._vectors = None
        return indices

    # ------------------------------------------------------------------------------------------------ item lookup

    def _item_rows(self, items: Sequence[ItemRef], what: str) -> list[int]:
        """Catalog rows of `items` (ids, or mappings with the text of items to add); adds the new ones first."""
        new_ids, new_texts = [], []
        for item in items:
            if isinstance(item, Mapping):
                item_id = str(item.get("item_id", ""))
                if not item_id:
                    raise ValueError(f"An item given as a mapping needs 'item_id' (and its text); got {dict(item)!r}.")
                if item_id not in new_ids:
                    new_ids.append(item_id)
                    new_texts.append(item)
        if new_ids:
            self.add_items(new_ids, self._texts_of(new_texts))
        rows = []
        index = self.catalog.index if self.catalog is not None else self._row_of_id
        for item in items:
            item_id = str(item["item_id"]) if isinstance(item, Mapping) else str(item)
            row = index.get(item_id)
            if row is None:
                if self.catalog is None:
                    raise KeyError(
                        f"Unknown item id {item_id!r} in the {what}: an item-ID model can only score the items it was "
                        "trained on."
                    )
                raise KeyError(
                    f"Unknown item id {item_id!r} in the {what}: it is not in the catalog; give it with its text, "
                    f"{{'item_id': {item_id!r}, 'text': ...}}, or add it first with add_items()."
                )
            rows.append(row)
        return rows

    def _texts_of(self, items: list[Mapping[str, Any]]) -> list[str] | dict[str, list[str]]:
        fields = self.catalog.text_fields
        if fields is None:
            missing = [item["item_id"] for item in items if "text" not in item]
            if missing:
                raise ValueError(f"Items {missing[:5]} are given as mappings without 'text'.")
            return [str(item["text"] or "") for item in items]
        return {field: [str(item.get(field) or "") for item in items] for field in fields}

    # ----------------------------------------------------------------------------------------------- the head

    @torch.no_grad()
    def run_head(self, batch: Mapping[str, torch.Tensor]) -> Any:
        """
        The head's output on a collated batch (`item_index` holding catalog rows, as the task's collator makes it):
        the item vectors at those rows, then the head in eval mode, as `GramTrainer.prediction_step` runs it.
        """
        batch = {name: value.to(self.device) for name, value in batch.items()}
        item_index = batch.pop("item_index")
        return self.model.head(self.item_vectors[item_index], **batch)

    def _batches(self, count: int, what: str):
        starts = range(0, count, self.batch_size)
        show = self.show_progress and len(starts) > 4
        return tqdm(starts, desc=f"Scoring {count:,} {what}", disable=not show, leave=False)

    def predict_response(self, *args: Any, **kwargs: Any):
        raise NotImplementedError(
            f"predict_response is knowledge tracing's; this model's task is {self.model.config.head_type!r}."
        )

    def rank(self, *args: Any, **kwargs: Any):
        raise NotImplementedError(
            f"rank is news recommendation's; this model's task is {self.model.config.head_type!r}."
        )

    def top_k(self, *args: Any, **kwargs: Any):
        raise NotImplementedError(f"top_k is next-item's; this model's task is {self.model.config.head_type!r}.")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(head_type={self.model.config.head_type!r}, "
            f"item_encoder={self.model.config.item_encoder!r}, num_items={self.num_items}, device={self.device})"
        )


def is_batch_of_lists(value: Any) -> bool:
    """Whether `value` is several histories (a list of lists) rather than one history (a list of items)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or not value:
        return False
    return all(isinstance(entry, Sequence) and not isinstance(entry, (str, bytes)) for entry in value)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")

__all__ = ["GramRecommender", "INFERENCE_CONFIG_NAME", "encoder_digest", "inference_settings"]
