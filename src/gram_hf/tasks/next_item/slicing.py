"""
Training slices of long sequences: every training target of a user, each with up to `max_length` items of context.

SASRec reads at most `max_length` items. Training one row per user on the last `max_length` positions (the original
SASRec) leaves every earlier target of a longer history unused: on MovieLens-shaped data (~140 interactions per user,
`max_length` 50) that is two thirds of the training targets. RecBole's SASRec trains on every prefix instead (one
example per target, each with its full context), at the cost of one sequence forward per target. [`sequence_slices`]
sits in between: slices of `max_length + 1` items, `stride` apart and aligned on the sequence's end, whose loss counts
each target exactly once. With `stride = max_length` (the default) the slices' targets are disjoint and a target at a
slice's start has little context; a smaller stride overlaps the slices and trains each target in the slice where it
has the most context (at least `max_length - stride + 1` items once the history is that long), for `max_length /
stride` times the work. On ML-20M-shaped data (831 users, 3,998 items, 3 seeds) both strides reached RecBole's
SASRec (NDCG@10 0.2388 +- 0.0007 at stride 50, 0.2381 +- 0.0029 at 25, RecBole 0.2387) where the last slice alone
reached 0.2176; `docs/design.md` has the numbers and the command.
"""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa

SLICE_START_COLUMN = "loss_start"


def slice_bounds(lengths: np.ndarray, max_length: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    The slices of sequences of `lengths` items: `(row, start, end)` arrays, one entry per slice, in row order and
    chronological within a row, `end` exclusive. A sequence of at most `max_length + 1` items is one slice; a longer
    one has slices ending at `n, n - stride, n - 2 * stride, ...` down to the first that starts at 0.
    """
    if max_length < 1 or not 1 <= stride <= max_length:
        raise ValueError(f"Need max_length >= 1 and 1 <= stride <= max_length, got {max_length} and {stride}.")
    lengths = np.asarray(lengths, dtype=np.int64)
    window = max_length + 1
    counts = 1 + np.maximum(0, -(-(lengths - window) // stride))  # ceil((n - window) / stride) for long rows
    rows = np.repeat(np.arange(len(lengths)), counts)
    # k-th slice from the end of its row: counts - 1 for the first (chronological), down to 0 for the last.
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    from_end = counts[rows] - 1 - (np.arange(len(rows)) - first[rows])
    ends = lengths[rows] - from_end * stride
    starts = np.maximum(0, ends - window)
    return rows, starts, ends


def sequence_slices(
    dataset: datasets.Dataset,
    max_length: int,
    stride: int | None = None,
    *,
    items_column: str = "items",
) -> datasets.Dataset:
    """
    The training rows of `dataset` (one chronological sequence per user) as overlapping slices of at most
    `max_length + 1` items, with a `loss_start` column: the number of leading targets of the slice that are context
    only (trained in the slice before, where they have more context). Every target of every sequence is trained
    exactly once; [`NextItemCollator`] reads `loss_start`. Other list columns of the same lengths (`timestamps`) are
    sliced alike, the other columns repeated.

    Args:
        dataset (`datasets.Dataset`): rows with `items_column` (lists of catalog indices).
        max_length (`int`): the model's input length; a slice holds `max_length` inputs and targets.
        stride (`int`, *optional*): items between slice ends, from 1 to `max_length` (defaults to `max_length`:
            disjoint targets); a smaller one gives every target at least `max_length - stride + 1` items of context
            where its history is that long, for `max_length / stride` times the work.
    """
    stride = max_length if stride is None else stride
    table = dataset.with_format("arrow")[:]
    items = table.column(items_column).combine_chunks()
    offsets = items.offsets.to_numpy().astype(np.int64)
    lengths = np.diff(offsets)
    rows, starts, ends = slice_bounds(lengths, max_length, stride)
    window = max_length + 1
    loss_start = np.where(starts == 0, 0, window - 1 - stride).astype(np.int32)
    sizes = ends - starts
    new_offsets = np.concatenate([[0], np.cumsum(sizes)])
    # Each slice's items: its offset in the flattened input plus 0, 1, ... within the slice.
    within = np.arange(new_offsets[-1]) - np.repeat(new_offsets[:-1], sizes)
    positions = within + np.repeat(offsets[rows] + starts, sizes)
    gather = pa.array(positions)
    list_offsets = pa.array(new_offsets, pa.int32() if new_offsets[-1] < 2**31 else pa.int64())
    columns = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            if not np.array_equal(column.offsets.to_numpy().astype(np.int64), offsets):
                columns[name] = column.take(pa.array(rows))
                continue
            values = column.flatten().take(gather)
            array_type = pa.ListArray if pa.types.is_list(column.type) else pa.LargeListArray
            columns[name] = array_type.from_arrays(list_offsets.cast(column.offsets.type), values)
        else:
            columns[name] = column.take(pa.array(rows))
    columns[SLICE_START_COLUMN] = pa.array(loss_start)
    return datasets.Dataset(pa.table(columns))


__all__ = ["SLICE_START_COLUMN", "sequence_slices", "slice_bounds"]
