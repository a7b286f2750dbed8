"""[`ItemCatalog`]: the items' ids and their text, tokenized once and stored ragged."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpecialTokenTemplate:
    """
    How a tokenizer wraps text in special tokens: one segment becomes `single_prefix + A + single_suffix`, several
    become `prefix + A + separator + B + separator + ... + suffix` (the pair template generalised to any number of
    segments). For BERT `prefix = [CLS]`, `separator = suffix = [SEP]`; for RoBERTa `separator = </s></s>`.
    """

    single_prefix: tuple[int, ...]
    single_suffix: tuple[int, ...]
    prefix: tuple[int, ...]
    separator: tuple[int, ...]
    suffix: tuple[int, ...]

    def join(self, segments: Sequence[Sequence[int]]) -> list[int]:
        """The token ids of the (non-empty) `segments` wrapped in special tokens."""
        if len(segments) <= 1:
            return [*self.single_prefix, *(segments[0] if segments else ()), *self.single_suffix]
        ids = [*self.prefix, *segments[0]]
        for segment in segments[1:]:
            ids.extend(self.separator)
            ids.extend(segment)
        ids.extend(self.suffix)
        return ids

    def max_length(self, field_lengths: Sequence[int]) -> int:
        """The longest `join` of segments of at most `field_lengths` tokens."""
        single = len(self.single_prefix) + len(self.single_suffix) + max(field_lengths, default=0)
        multi = len(self.prefix) + len(self.suffix) + (len(field_lengths) - 1) * len(self.separator)
        return max(single, multi + sum(field_lengths))


def _find(haystack: list[int], needle: list[int], start: int = 0) -> int:
    for position in range(start, len(haystack) - len(needle) + 1):
        if haystack[position : position + len(needle)] == needle:
            return position
    return -1


def special_token_template(tokenizer: PreTrainedTokenizerBase) -> SpecialTokenTemplate:
    """
    Reads `tokenizer`'s special-token template by tokenizing two probe words alone and as a pair, so that multi-field
    item text is wrapped exactly as the tokenizer wraps a text pair (works for any tokenizer, fast or slow).
    """
    first = tokenizer("first", add_special_tokens=False)["input_ids"]
    second = tokenizer("second", add_special_tokens=False)["input_ids"]
    single = tokenizer("first")["input_ids"]
    start = _find(single, first)
    if not first or not second or start < 0:
        raise ValueError(f"Could not read the special-token template of {type(tokenizer).__name__}.")
    single_prefix, single_suffix = single[:start], single[start + len(first) :]
    try:
        pair = tokenizer("first", "second")["input_ids"]
    except Exception:  # tokenizers without a pair template: segments joined by the single template's suffix
        pair = None
    first_at = _find(pair, first) if pair is not None else -1
    second_at = _find(pair, second, first_at + len(first)) if first_at >= 0 else -1
    if second_at < 0:
        prefix, suffix = tuple(single_prefix), tuple(single_suffix)
        return SpecialTokenTemplate(prefix, suffix, prefix=prefix, separator=suffix, suffix=suffix)
    return SpecialTokenTemplate(
        single_prefix=tuple(single_prefix),
        single_suffix=tuple(single_suffix),
        prefix=tuple(pair[:first_at]),
        separator=tuple(pair[first_at + len(first) : second_at]),
        suffix=tuple(pair[second_at + len(second) :]),
    )


def tokenizer_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    """
    A digest of what a tokenizer turns text into: its class, vocabulary, special tokens, padding id and lower-casing.
    Two tokenizers with the same digest give an item the same tokens; a catalog keeps the digest of the tokenizer that
    built it, so a model is never fed tokens from another vocabulary.
    """
    vocab = sorted(tokenizer.get_vocab().items())
    described = {
        "class": type(tokenizer).__name__.removesuffix("Fast"),
        "special": sorted(str(token) for token in tokenizer.all_special_tokens),
        "pad": tokenizer.pad_token_id,
        "lower": bool(getattr(tokenizer, "do_lower_case", False)),
        "probe": tokenizer("Gram HF probe: Ünïcode 42")["input_ids"],
    }
    digest = hashlib.blake2b(json.dumps(described, sort_keys=True).encode(), digest_size=16)
    digest.update(json.dumps(vocab, ensure_ascii=False).encode())
    return digest.hexdigest()


# Odd 64-bit constants of the token mixing below (splitmix64's), as signed int64.
_MIX = [c - (1 << 64) if c >= 1 << 63 else c for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)]


def _as_texts(texts: Sequence[str | None]) -> list[str]:
    return [str(text) if text is not None else "" for text in texts]


def _joined_texts(columns: Sequence[Sequence[str]]) -> list[str]:
    """Per item, its fields joined by spaces (only used to count items whose every field is empty)."""
    if len(columns) == 1:
        return list(columns[0])
    return [" ".join(parts) for parts in zip(*columns)]


def _field_max_lengths(names: Sequence[str], max_length: int | Sequence[int]) -> tuple[int, ...]:
    if not names:
        raise ValueError("At least one text field is needed.")
    lengths = (max_length,) * len(names) if isinstance(max_length, int) else tuple(max_length)
    if len(lengths) != len(names):
        raise ValueError(f"{len(lengths)} max lengths for {len(names)} text fields {list(names)}.")
    if any(not isinstance(length, int) or length < 1 for length in lengths):
        raise ValueError(f"Per-field max lengths must be positive integers, got {list(lengths)}.")
    return lengths


def _tokenize_fields(
    tokenizer: PreTrainedTokenizerBase,
    columns: Sequence[Sequence[str]],
    field_lengths: Sequence[int],
    template: SpecialTokenTemplate,
) -> list[list[int]]:
    """One token list per item: each field tokenized alone (batched), truncated to its length, then joined."""
    per_field = [
        tokenizer(list(column), add_special_tokens=False, truncation=True, max_length=length)["input_ids"]
        for column, length in zip(columns, field_lengths)
    ]
    return [template.join([segment for segment in segments if segment]) for segments in zip(*per_field)]


class ItemCatalog:
    """
    Item ids mapped to indices `0..num_items-1` and their text tokenized once.

    Tokens are stored ragged (one flat tensor plus offsets), so a batch of any index list is padded only to its own
    longest item, and whole-catalog passes can go in length-sorted batches. Batches carry catalog indices only; the
    trainer fetches the tokens of the unique items it encodes from here.

    Item text is one string per item (this constructor) or several fields with their own token budgets
    ([`ItemCatalog.from_fields`], or [`ItemCatalog.from_dataset`] with a sequence of text columns), e.g. a news
    title and abstract encoded as `[CLS] title [SEP] abstract [SEP]`.

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
        lengths = torch.tensor([len(tokens) for tokens in token_lists], dtype=torch.long)
        flat_input_ids = torch.tensor([t for tokens in token_lists for t in tokens], dtype=torch.long)
        pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._setup_flat(
            item_ids, texts, flat_input_ids, lengths, pad_token_id, tokenizer_digest(tokenizer), max_length
        )

    def _setup_flat(
        self,
        item_ids: Sequence[str],
        texts: Sequence[str],
        flat_input_ids: torch.LongTensor,
        lengths: torch.LongTensor,
        pad_token_id: int,
        tokenizer_fingerprint: str,
        max_length: int,
    ) -> None:
        item_ids = [str(item_id) for item_id in item_ids]
        if len(item_ids) != len(texts):
            raise ValueError(f"item_ids and texts differ in length ({len(item_ids)} vs {len(texts)}).")
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 (room for special tokens), got {max_length}.")
        self.item_ids = item_ids
        self._texts = list(texts)
        self.index = {item_id: i for i, item_id in enumerate(item_ids)}
        if len(self.index) != len(item_ids):
            seen: set[str] = set()
            duplicates = [i for i in item_ids if i in seen or seen.add(i)]
            raise ValueError(f"item_ids are not unique: {len(duplicates)} duplicates, e.g. {duplicates[:5]}.")
        self.max_length = max_length
        self.pad_token_id = pad_token_id
        self.num_empty_texts = sum(1 for text in texts if not text.strip())
        if self.num_empty_texts:
            logger.warning(
                "%d of %d items have empty text; they are encoded from special tokens only.",
                self.num_empty_texts,
                len(texts),
            )
        self.lengths = lengths
        self.offsets = torch.zeros(len(lengths), dtype=torch.long)
        if len(lengths) > 1:
            self.offsets[1:] = torch.cumsum(lengths[:-1], 0)
        self.flat_input_ids = flat_input_ids
        # Set by the multi-field constructors: the text fields and their per-field token budgets.
        self.text_fields: tuple[str, ...] | None = None
        self.field_max_lengths: tuple[int, ...] | None = None
        # What built the tokens: a model is never fed a catalog tokenized with another vocabulary.
        self.tokenizer_digest = tokenizer_fingerprint

    @classmethod
    def from_fields(
        cls,
        item_ids: Sequence[str],
        fields: Mapping[str, Sequence[str | None]],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int | Sequence[int],
        tokenize_batch_size: int = 1024,
    ) -> ItemCatalog:
        """
        A catalog whose item text is several fields (e.g. a news title, abstract and body), each truncated to its own
        length before they are joined, so that a long first field cannot crowd out the others.

        Each field is tokenized without special tokens and truncated to its own number of tokens; the non-empty fields
        are then joined with the tokenizer's pair template generalised to any number of segments, e.g.
        `[CLS] title [SEP] abstract [SEP] body [SEP]` for BERT or `<s> title </s></s> abstract </s>` for RoBERTa
        (see [`special_token_template`]). Empty fields are skipped (no empty segment between separators); an item whose
        fields are all empty is its special tokens only, as in the single-text catalog.

        Args:
            item_ids (`Sequence[str]`):
                Item identifiers, unique; the position of an id is its catalog index.
            fields (`Mapping[str, Sequence[str | None]]`):
                Field name -> the items' text of that field (aligned with `item_ids`), in the order they are joined.
            tokenizer (`PreTrainedTokenizerBase`):
                The content encoder's tokenizer.
            max_length (`int` or `Sequence[int]`):
                Tokens kept per field, special tokens excluded: one value for every field or one per field (the GRAM
                paper's news encoder keeps 24 title, 50 abstract and 400 body tokens). The catalog's `max_length` is
                their sum plus the special tokens.
            tokenize_batch_size (`int`, *optional*, defaults to 1024):
                Texts tokenized per tokenizer call.
        """
        names = list(fields)
        field_lengths = _field_max_lengths(names, max_length)
        columns = [_as_texts(fields[name]) for name in names]
        for name, column in zip(names, columns):
            if len(column) != len(item_ids):
                raise ValueError(f"Field {name!r} has {len(column)} texts for {len(item_ids)} item_ids.")
        template = special_token_template(tokenizer)
        token_lists: list[list[int]] = []
        for start in range(0, len(item_ids), tokenize_batch_size):
            chunk = [column[start : start + tokenize_batch_size] for column in columns]
            token_lists.extend(_tokenize_fields(tokenizer, chunk, field_lengths, template))
        catalog = cls.__new__(cls)
        texts = _joined_texts(columns)
        catalog._setup(item_ids, texts, token_lists, tokenizer, template.max_length(field_lengths))
        catalog.text_fields, catalog.field_max_lengths = tuple(names), field_lengths
        return catalog

    @classmethod
    def from_dataset(
        cls,
        dataset: datasets.Dataset,
        tokenizer: PreTrainedTokenizerBase,
        id_column: str = "item_id",
        text_column: str | Sequence[str] = "text",
        max_length: int | Sequence[int] = 128,
    ) -> ItemCatalog:
        """
        A catalog from a `datasets.Dataset` of items (one row per item). The tokens are computed with `Dataset.map`,
        so an Arrow-backed dataset caches them and a catalog is tokenized once across runs.

        Args:
            dataset (`datasets.Dataset`):
                One row per item; row `i` becomes catalog index `i`.
            tokenizer (`PreTrainedTokenizerBase`):
                The content encoder's tokenizer.
            id_column (`str`, *optional*, defaults to `"item_id"`):
                The column of item identifiers.
            text_column (`str` or `Sequence[str]`, *optional*, defaults to `"text"`):
                One text column, or several (e.g. `("title", "abstract")`) joined as in [`ItemCatalog.from_fields`].
            max_length (`int` or `Sequence[int]`, *optional*, defaults to 128):
                With one text column (a `str`): tokens per item, special tokens included. With a sequence of columns:
                tokens per field, special tokens excluded, one value for all fields or one per field.
        """
        fields = [text_column] if isinstance(text_column, str) else list(text_column)
        if not fields:
            raise ValueError("text_column must name at least one column.")
        for column in (id_column, *fields):
            if column not in dataset.column_names:
                raise ValueError(f"The items dataset has no column {column!r}; columns: {dataset.column_names}.")
        multi_field = not isinstance(text_column, str)
        if not multi_field and not isinstance(max_length, int):
            raise ValueError(
                f"With one text column max_length is one int (tokens per item), got {max_length!r}; pass "
                "text_column as a sequence of columns for per-field lengths."
            )

        if multi_field:
            field_lengths = _field_max_lengths(fields, max_length)
            template = special_token_template(tokenizer)
            total_length = template.max_length(field_lengths)

            def tokenize(batch):
                columns = [_as_texts(batch[name]) for name in fields]
                return {"input_ids": _tokenize_fields(tokenizer, columns, field_lengths, template)}

        else:
            total_length = max_length

            def tokenize(batch):
                texts = _as_texts(batch[text_column])
                return {"input_ids": tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]}

        # `map` caches the tokens next to an Arrow-backed dataset, so a catalog is tokenized once across runs.
        tokenized = dataset.map(tokenize, batched=True, desc="Tokenizing items")
        catalog = cls.__new__(cls)
        texts = _joined_texts([_as_texts(tokenized[name]) for name in fields])
        catalog._setup(tokenized[id_column], texts, tokenized["input_ids"], tokenizer, total_length)
        if multi_field:
            catalog.text_fields, catalog.field_max_lengths = tuple(fields), field_lengths
        return catalog

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def settings(self) -> dict:
        """
        How item text becomes tokens here (`max_length`, `text_fields`, `field_max_lengths`), JSON-serialisable: with
        the same tokenizer, enough to tokenize more items the same way.
        """
        return {
            "max_length": self.max_length,
            "text_fields": list(self.text_fields) if self.text_fields else None,
            "field_max_lengths": list(self.field_max_lengths) if self.field_max_lengths else None,
        }

    def token_digests(self) -> torch.LongTensor:
        """
        One 64-bit digest per item of its token ids (order and length included), computed for the whole catalog in a
        few tensor operations: equal tokens give equal digests, so a cache of item vectors can tell which items'
        text changed.
        """
        lengths = self.lengths
        item_of_token = torch.repeat_interleave(torch.arange(self.num_items), lengths)
        position = torch.arange(self.flat_input_ids.numel()) - self.offsets[item_of_token]
        # splitmix64-style mixing of (token, position); int64 arithmetic wraps, which is what a hash wants.
        mixed = (self.flat_input_ids + 1) * _MIX[0] + (position + 1) * _MIX[1]
        mixed = (mixed ^ (mixed >> 31)) * _MIX[2]
        mixed = mixed ^ (mixed >> 29)
        digests = torch.zeros(self.num_items, dtype=torch.long).index_add_(0, item_of_token, mixed)
        return (digests ^ (lengths * _MIX[0])) * _MIX[1]

    def with_items(
        self,
        item_ids: Sequence[str],
        texts: Sequence[str | None] | Mapping[str, Sequence[str | None]],
        tokenizer: PreTrainedTokenizerBase,
    ) -> tuple[ItemCatalog, torch.LongTensor]:
        """
        A new catalog with `item_ids` added (new ids, appended in order) or updated (known ids, new text), tokenized as
        this catalog's items (same `max_length` or text fields and per-field lengths); the other items keep their
        tokens and indices.

        Args:
            item_ids (`Sequence[str]`): the items to add or update, unique.
            texts (`Sequence[str]` or `Mapping[str, Sequence[str]]`): their text, one string per item, or for a
                multi-field catalog one sequence per field (field name -> texts).
            tokenizer (`PreTrainedTokenizerBase`): the tokenizer of this catalog (checked).

        Returns:
            `(catalog, indices)`: the new catalog and the catalog indices of `item_ids` in it.
        """
        if tokenizer_digest(tokenizer) != self.tokenizer_digest:
            raise ValueError("with_items needs the tokenizer that built this catalog; this one tokenizes differently.")
        item_ids = [str(item_id) for item_id in item_ids]
        if len(set(item_ids)) != len(item_ids):
            raise ValueError("item_ids to add are not unique.")
        if self.text_fields is not None:
            if not isinstance(texts, Mapping) or list(texts) != list(self.text_fields):
                raise ValueError(
                    f"This catalog's items have the text fields {list(self.text_fields)}: pass texts as a "
                    "mapping of those fields to the items' texts."
                )
            added = ItemCatalog.from_fields(item_ids, texts, tokenizer, self.field_max_lengths)
        else:
            if isinstance(texts, Mapping):
                raise ValueError("This catalog's items have one text each: pass texts as a sequence of strings.")
            added = ItemCatalog(item_ids, texts, tokenizer, max_length=self.max_length)
        # The new catalog's items, each taken from this catalog (source < num_items) or from `added`; their tokens
        # are gathered from the two flat token arrays in one ragged gather.
        all_ids, all_texts = list(self.item_ids), list(self._texts)
        source = torch.arange(self.num_items + len(item_ids))
        indices = []
        for position, item_id in enumerate(item_ids):
            index = self.index.get(item_id)
            if index is None:
                index = len(all_ids)
                all_ids.append(item_id)
                all_texts.append(added._texts[position])
            else:
                all_texts[index] = added._texts[position]
            source[index] = self.num_items + position
            indices.append(index)
        source = source[: len(all_ids)]
        combined = torch.cat([self.flat_input_ids, added.flat_input_ids])
        offsets = torch.cat([self.offsets, added.offsets + self.flat_input_ids.numel()])[source]
        lengths = torch.cat([self.lengths, added.lengths])[source]
        starts = torch.repeat_interleave(offsets - (torch.cumsum(lengths, 0) - lengths), lengths)
        flat = combined[starts + torch.arange(int(lengths.sum()))]
        catalog = ItemCatalog.__new__(ItemCatalog)
        catalog._setup_flat(
            all_ids, all_texts, flat, lengths, self.pad_token_id, self.tokenizer_digest, self.max_length
        )
        catalog.text_fields, catalog.field_max_lengths = self.text_fields, self.field_max_lengths
        return catalog, torch.tensor(indices, dtype=torch.long)

    def __repr__(self) -> str:
        fields = ""
        if self.text_fields:
            fields = f", text_fields={self.text_fields}, field_max_lengths={self.field_max_lengths}"
        return f"{type(self).__name__}(num_items={self.num_items}, max_length={self.max_length}{fields})"

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
