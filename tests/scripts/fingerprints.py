"""Digests that pin a loader's output in the fingerprint tests (imported from `tests/scripts` by those tests)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import datasets


def digest(value: Any) -> str:
    """A short sha256 of `value` as sorted JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def table_digest(dataset: datasets.Dataset) -> str:
    """Column types (the `datasets` features and the Arrow schema) and every value, column by column, in row order."""
    table = dataset.data.table
    return digest(
        {
            "features": dataset.features.to_dict(),
            "schema": str(table.schema.remove_metadata()),
            "columns": {name: table[name].to_pylist() for name in table.column_names},
        }
    )
