"""The reading layer's helpers for the loaders' pyarrow paths: they must read exactly as the line-by-line paths do."""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pytest

from gram_hf.raw_files import PYTHON_WHITESPACE, in_order, iter_lines, read_lines, stable_argsort, strip_strings


def test_python_whitespace_is_what_str_strip_removes():
    assert PYTHON_WHITESPACE == "".join(chr(code) for code in range(0x110000) if chr(code).isspace())


def test_strip_strings_is_str_strip():
    values = [" a ", "\x1ca\x1f", "\u3000b\xa0", "c\u2028", "", "  ", "\ta b\r\n", "\u200bd"]  # U+200B is no space
    assert strip_strings(pa.array(values)).to_pylist() == [value.strip() for value in values]


@pytest.mark.parametrize("kind", ["int", "float", "mixed_float", "wide_int", "bool", "codes", "uint", "offset_ids"])
def test_stable_argsort_is_lexsort(kind):
    rng = np.random.default_rng(0)
    for size in (0, 1, 7, 500):
        first = {
            "int": rng.integers(-5, 5, size),
            "float": rng.integers(-5, 5, size) * 0.5,
            "mixed_float": rng.choice([-2.5, -0.0, 0.0, 1.0, 7.25, 3e9, 2.0**60, -1e300], size),
            "wide_int": rng.integers(-(2**40), 2**40, size),
            "bool": rng.integers(0, 2, size).astype(bool),
            "codes": rng.integers(0, 70_000, size).astype(np.int32),  # read as unsigned, no copy
            "uint": rng.integers(0, 2**64 - 1, size, dtype=np.uint64),
            "offset_ids": rng.integers(0, 50, size) + 10**12,  # fewer digits from the minimum
        }[kind]
        second = rng.integers(0, 70_000, size)
        np.testing.assert_array_equal(stable_argsort(first, second), np.lexsort((first, second)))
        np.testing.assert_array_equal(stable_argsort(first), np.argsort(first, kind="stable"))
        in_order = np.lexsort((first, second))  # rows already sorted: the one-pass branch
        np.testing.assert_array_equal(stable_argsort(first[in_order], second[in_order]), np.arange(size))


def test_in_order_is_a_lexsort_that_moves_nothing():
    rng = np.random.default_rng(1)
    for _ in range(50):
        first, second = rng.integers(0, 3, 12), rng.integers(0, 3, 12)
        assert in_order(first, second) == (np.lexsort((first, second)) == np.arange(12)).all()
    assert in_order(np.array([1, 1, 2]), np.array([0, 5, 5])) and in_order(np.array([], dtype=np.int64))


def test_stable_argsort_refuses_other_keys():
    with pytest.raises(TypeError, match="integer or float"):
        stable_argsort(np.array(["b", "a"]))


@pytest.mark.parametrize(
    "content",
    [
        b"a\nb\n",
        b"a\r\nb\r\n\r\n  \n",
        b"\xef\xbb\xbfa\nb",  # a byte-order mark, no final line break
        b"a\rb\nc\r\r\n",  # a stray carriage return is no line break
        b"",
        b"\n\n",
        "ni\u00f1o \u3000\n".encode(),
    ],
)
@pytest.mark.parametrize("compressed", [False, True])
def test_read_lines_is_iter_lines(tmp_path, content, compressed):
    path = tmp_path / ("lines.txt.gz" if compressed else "lines.txt")
    path.write_bytes(gzip.compress(content) if compressed else content)
    expected = [line for _, line in iter_lines(path, skip_blank=False)]
    assert read_lines(path).to_pylist() == expected
    # With their breaks: the file's lines as they are, the same once the breaks are dropped.
    with_breaks = read_lines(path, keep_line_breaks=True).to_pylist()
    assert [line.rstrip("\r\n") for line in with_breaks] == expected
    assert "".join(with_breaks).encode() == content.removeprefix(b"\xef\xbb\xbf")


def test_read_lines_leaves_bad_files_to_iter_lines(tmp_path):
    invalid = tmp_path / "invalid.txt"
    invalid.write_bytes(b"fine\n\xff\xfe\n")
    assert read_lines(invalid) is None
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(gzip.compress(b"line\n" * 1000)[:-30])
    assert read_lines(cut) is None
