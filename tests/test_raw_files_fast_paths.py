"""The reading layer's helpers for the loaders' pyarrow paths: they must read exactly as the line-by-line paths do."""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pytest

from gram_hf.raw_files import PYTHON_WHITESPACE, iter_lines, read_lines, stable_argsort, strip_strings


def test_python_whitespace_is_what_str_strip_removes():
    assert PYTHON_WHITESPACE == "".join(chr(code) for code in range(0x110000) if chr(code).isspace())


def test_strip_strings_is_str_strip():
    values = [" a ", "\x1ca\x1f", "\u3000b\xa0", "c\u2028", "", "  ", "\ta b\r\n", "\u200bd"]  # U+200B is no space
    assert strip_strings(pa.array(values)).to_pylist() == [value.strip() for value in values]


@pytest.mark.parametrize("kind", ["int", "float", "mixed_float", "wide_int", "bool"])
def test_stable_argsort_is_lexsort(kind):
    rng = np.random.default_rng(0)
    for size in (0, 1, 7, 500):
        first = {
            "int": rng.integers(-5, 5, size),
            "float": rng.integers(-5, 5, size) * 0.5,
            "mixed_float": rng.choice([-2.5, -0.0, 0.0, 1.0, 7.25, 3e9, 2.0**60, -1e300], size),
            "wide_int": rng.integers(-(2**40), 2**40, size),
            "bool": rng.integers(0, 2, size).astype(bool),
        }[kind]
        second = rng.integers(0, 70_000, size)
        np.testing.assert_array_equal(stable_argsort(first, second), np.lexsort((first, second)))
        np.testing.assert_array_equal(stable_argsort(first), np.argsort(first, kind="stable"))
        in_order = np.lexsort((first, second))  # rows already sorted: the one-pass branch
        np.testing.assert_array_equal(stable_argsort(first[in_order], second[in_order]), np.arange(size))


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


def test_read_lines_leaves_bad_files_to_iter_lines(tmp_path):
    invalid = tmp_path / "invalid.txt"
    invalid.write_bytes(b"fine\n\xff\xfe\n")
    assert read_lines(invalid) is None
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(gzip.compress(b"line\n" * 1000)[:-30])
    assert read_lines(cut) is None
