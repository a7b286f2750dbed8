"""[`InteractionData`]: what every dataset loader returns — interaction splits plus the items they refer to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

    from .items import ItemCatalog


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
            What the loader read and what it dropped (counts), for logging and dataset cards.
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


__all__ = ["InteractionData"]
