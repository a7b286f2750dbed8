"""[`ItemCatalog`]: the items' ids and their text, tokenized once and stored ragged."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


class ItemCatalog:
    """
    Item ids mapped to indices `0..num_items-1` and their text tokenized once.

    Tokens are stored ragged (one flat tensor plus offsets), so a batch of any index list is padded only to its own
    longest item, and whole-catalog passes can go in length-sorted batches. Batches carry catalog indices only; the
    trainer fetches the tokens of the unique items it encodes from here.

    Args:
        item_ids (`Sequence[str]`):
            Item identifiers, unique; the position of an id is its catalog index.
        texts (`Sequence[str]`):
            The items' text, aligned with `item_ids`. Empty text is allowed (it is encoded as the tokenizer's special
            tokens only) and counted in a warning.
        tokenizer (`PreTrainedTokenizerBase`):
            The content encoder's tokenizer.
        max_length (`int`, *optional*, defaults to 128):
            Texts are truncated to this many tokens, special tokens included.
        tokenize_batch_size (`int`, *optional*, defaults to 1024):
            Texts tokenized per tokenizer call.
    """

    def __init__(
        self,
        item_ids: Sequence[str],
        texts: Sequence[str],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int = 128,
        tokenize_batch_size: int = 1024,
    ):
        texts = [str(text) if text is not None else "" for text in texts]
        token_lists: list[list[int]] = []
        for start in range(0, len(texts), tokenize_batch_size):
            encoded = tokenizer(texts[start : start + tokenize_batch_size], truncation=True, max_length=max_length)
            token_lists.extend(encoded["input_ids"])
        self._setup(item_ids, texts, token_lists, tokenizer, max_length)

    def _setup(
        self,
        item_ids: Sequence[str],
        texts: Sequence[str],
        token_lists: list[list[int]],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
    ) -> None:
        item_ids = [str(item_id) for item_id in item_ids]
        if len(item_ids) != len(texts):
            raise ValueError(f"item_ids and texts differ in length ({len(item_ids)} vs {len(texts)}).")
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 (room for special tokens), got {max_length}.")
        self.item_ids = item_ids
        self.index = {item_id: i for i, item_id in enumerate(item_ids)}
        if len(self.index) != len(item_ids):
            seen: set[str] = set()
            duplicates = [i for i in item_ids if i in seen or seen.add(i)]
            raise ValueError(f"item_ids are not unique: {len(duplicates)} duplicates, e.g. {duplicates[:5]}.")
        self.max_length = max_length
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.num_empty_texts = sum(1 for text in texts if not text.strip())
        if self.num_empty_texts:
            logger.warning(
                "%d of %d items have empty text; they are encoded from special tokens only.",
                self.num_empty_texts,
                len(texts),
            )
        self.lengths = torch.tensor([len(tokens) for tokens in token_lists], dtype=torch.long)
        self.offsets = torch.zeros(len(token_lists), dtype=torch.long)
        if len(token_lists) > 1:
            self.offsets[1:] = torch.cumsum(self.lengths[:-1], 0)
        self.flat_input_ids = torch.tensor([t for tokens in token_lists for t in tokens], dtype=torch.long)

    @classmethod
    def from_dataset(
        cls,
        dataset: datasets.Dataset,
        tokenizer: PreTrainedTokenizerBase,
        id_column: str = "item_id",
        text_column: str = "text",
        max_length: int = 128,
    ) -> ItemCatalog:
        """A catalog from a `datasets.Dataset` of items (one row per item)."""
        for column in (id_column, text_column):
            if column not in dataset.column_names:
                raise ValueError(f"The items dataset has no column {column!r}; columns: {dataset.column_names}.")

        def tokenize(batch):
            texts = [text if text is not None else "" for text in batch[text_column]]
            return {"input_ids": tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]}

        # `map` caches the tokens next to an Arrow-backed dataset, so a catalog is tokenized once across runs.
        tokenized = dataset.map(tokenize, batched=True, desc="Tokenizing items")
        catalog = cls.__new__(cls)
        texts = [text if text is not None else "" for text in tokenized[text_column]]
        catalog._setup(tokenized[id_column], texts, tokenized["input_ids"], tokenizer, max_length)
        return catalog

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def indices(self, item_ids: Sequence[str]) -> torch.LongTensor:
        """Catalog indices of `item_ids`; a `KeyError` names the first unknown id."""
        try:
            return torch.tensor([self.index[str(item_id)] for item_id in item_ids], dtype=torch.long)
        except KeyError as err:
            raise KeyError(f"Item id {err.args[0]!r} is not in the catalog.") from None

    def num_tokens(self, indices: torch.Tensor) -> int:
        """Total real (unpadded) tokens of the items at `indices`."""
        return int(self.lengths[indices.cpu()].sum())

    def batch(self, indices: torch.Tensor | Sequence[int]) -> dict[str, torch.Tensor]:
        """
        `input_ids` and `attention_mask` of shape `[len(indices), longest]` for the items at `indices` (repeats
        allowed), padded to the longest of these items only.
        """
        indices = torch.as_tensor(indices, dtype=torch.long).cpu()
        if indices.numel() == 0:
            return {
                "input_ids": torch.zeros(0, 1, dtype=torch.long),
                "attention_mask": torch.zeros(0, 1, dtype=torch.long),
            }
        lengths = self.lengths[indices]
        width = int(lengths.max())
        positions = torch.arange(width)
        attention_mask = positions.unsqueeze(0) < lengths.unsqueeze(1)
        flat_positions = (self.offsets[indices].unsqueeze(1) + positions.unsqueeze(0)).clamp(
            max=max(self.flat_input_ids.numel() - 1, 0)
        )
        input_ids = self.flat_input_ids[flat_positions].masked_fill(~attention_mask, self.pad_token_id)
        return {"input_ids": input_ids, "attention_mask": attention_mask.long()}

    def length_sorted_batches(
        self, indices: torch.Tensor | Sequence[int] | None = None, batch_size: int = 256
    ) -> list[torch.LongTensor]:
        """`indices` (default: the whole catalog) split into batches of items of similar length, longest first."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        indices = torch.arange(self.num_items) if indices is None else torch.as_tensor(indices, dtype=torch.long).cpu()
        ordered = indices[torch.argsort(self.lengths[indices], descending=True, stable=True)]
        return list(ordered.split(batch_size))

    def sorted_batches(
        self, indices: torch.Tensor | Sequence[int] | None = None, batch_size: int = 256
    ) -> Iterator[tuple[torch.LongTensor, dict[str, torch.Tensor]]]:
        """
        Yields `(batch_indices, tokens)` over `indices` (default: the whole catalog) in batches of similar length,
        longest first, which minimises padding when encoding many items.
        """
        for batch_indices in self.length_sorted_batches(indices, batch_size):
            yield batch_indices, self.batch(batch_indices)
