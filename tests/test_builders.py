"""The loaders' shared builder base: raw-file fingerprint, source hash, prepare-and-unwrap, stats beside Arrow."""

from __future__ import annotations

import os
from dataclasses import dataclass

import datasets
import pytest

from gram_hf.builders import RawFilesBuilder, RawFilesConfig, fingerprint_files, source_hash


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


@dataclass
class LinesConfig(RawFilesConfig):
    path: str = ""


class LinesBuilder(RawFilesBuilder):
    """One row per line of a text file; a line `bad` is malformed."""

    BUILDER_CONFIG_CLASS = LinesConfig
    BUILDER_CONFIGS = [LinesConfig(name="lines")]
    DATASET_NAME = "test_lines"

    def _info(self):
        return datasets.DatasetInfo(features=datasets.Features({"line": datasets.Value("string")}))

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name="train")]

    def _generate_examples(self):
        with open(self.config.path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        for number, line in enumerate(lines, 1):
            if line == "bad":
                raise ValueError(f"{self.config.path}:{number}: bad line")
            yield number, {"line": line}
        self.write_stats("count", {"lines": len(lines)})


def prepare(path, cache_dir, **kwargs) -> LinesBuilder:
    return LinesBuilder.prepare(
        "lines", fingerprint=fingerprint_files([path]), cache_dir=cache_dir, path=str(path), **kwargs
    )


def test_fingerprint_follows_path_size_and_mtime_not_order(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("one")
    second.write_text("two")
    key = fingerprint_files([first, second])
    assert fingerprint_files([second, first]) == key
    first.write_text("one!")
    assert fingerprint_files([first, second]) != key
    changed = fingerprint_files([first, second])
    os.utime(first, ns=(0, 0))
    assert fingerprint_files([first, second]) != changed
    with pytest.raises(FileNotFoundError, match="No such file or directory: .*absent.txt"):
        fingerprint_files([first, tmp_path / "absent.txt"])


def test_source_hash_covers_the_given_sources():
    assert source_hash(LinesBuilder) == source_hash(LinesBuilder)
    assert source_hash(LinesBuilder) != source_hash(RawFilesBuilder)
    assert source_hash(len) == source_hash()  # built-ins have no source file


def test_prepare_caches_keeps_stats_and_reparses_edited_files(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("a\nb\n")
    builder = prepare(path, tmp_path / "cache")
    assert builder.as_dataset(split="train")["line"] == ["a", "b"]
    assert builder.read_stats("count") == {"lines": 2}
    assert os.path.basename(os.path.dirname(os.path.dirname(os.path.dirname(builder.cache_dir)))) == (
        "gram_hf_test_lines"
    )
    again = prepare(path, tmp_path / "cache")
    assert again.cache_dir == builder.cache_dir and again.read_stats("count") == {"lines": 2}
    path.write_text("a\nb\nc\n")
    edited = prepare(path, tmp_path / "cache")
    assert edited.cache_dir != builder.cache_dir
    assert edited.as_dataset(split="train")["line"] == ["a", "b", "c"]
    assert edited.read_stats("count") == {"lines": 3}


def test_prepare_reraises_the_readers_own_error(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("a\nbad\n")
    with pytest.raises(ValueError, match=r"raw.txt:2: bad line") as info:
        prepare(path, tmp_path / "cache")
    assert not isinstance(info.value, datasets.exceptions.DatasetGenerationError)
