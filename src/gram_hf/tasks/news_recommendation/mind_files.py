"""
Where a MIND download's files are: the split folders (`MIND<variant>_train/_dev/_test`, plain `train/dev/test`, or
one split folder), their `news.tsv` / `behaviors.tsv`, optional `news_body.tsv` files, and which output split each
folder feeds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BODY_FILENAME = "news_body.tsv"
ROLES = ("train", "dev", "test")

# Split folders: `MINDlarge_train`, `MINDsmall_dev`, ... or plain `train/`, `dev/` (also `valid/`, `validation/`),
# `test/`. The roles are MIND's folder roles; how they map to split names is documented in `load_mind`.
_VARIANT_FOLDER = re.compile(r"^MIND(?P<variant>[A-Za-z0-9]+)_(?P<role>train|dev|test)$", re.IGNORECASE)
_PLAIN_FOLDERS = {"train": ("train",), "dev": ("dev", "valid", "validation"), "test": ("test",)}


@dataclass(frozen=True)
class MINDFolders:
    """
    The split folders of a MIND download.

    Attributes:
        root (`Path`): the folder the user pointed at.
        folders (`dict[str, Path]`): MIND role (`"train"`, `"dev"`, `"test"`) -> split folder, for the roles present.
        variant (`str`, *optional*): `"large"`, `"small"`, ... for `MIND<variant>_<role>` folders.
        body_files (`tuple[Path, ...]`): optional `news_body.tsv` files (NewsID<TAB>body).
    """

    root: Path
    folders: dict[str, Path]
    variant: str | None
    body_files: tuple[Path, ...]

    def news_files(self) -> list[Path]:
        return [self.folders[role] / "news.tsv" for role in ROLES if role in self.folders]

    def behaviors_file(self, role: str) -> Path:
        return self.folders[role] / "behaviors.tsv"

    def behaviors_files(self) -> list[Path]:
        return [self.behaviors_file(role) for role in ROLES if role in self.folders]


def find_mind_folders(
    data_dir: str | os.PathLike,
    variant: str | None = None,
    body_file: str | os.PathLike | None = None,
    include_test: bool = True,
) -> MINDFolders:
    """
    Finds the split folders of a MIND download under `data_dir`.

    Accepted layouts, tried in this order:

    1. `data_dir/MIND<variant>_train`, `..._dev`, `..._test` (the official archives unpacked side by side, e.g.
       `MINDsmall_train/` and `MINDsmall_dev/`); when several variants are present, `variant` picks one;
    2. `data_dir/train`, `data_dir/dev` (or `valid`, `validation`), `data_dir/test`;
    3. `data_dir` is one split folder itself (`.../MINDsmall_dev`, `.../valid`), its role read from its name.

    Every folder used must hold `news.tsv` and `behaviors.tsv`; `entity_embedding.vec` and `relation_embedding.vec`
    are not read. Optional article bodies: `body_file`, or every `news_body.tsv` in `data_dir` or a split folder.
    `include_test=False` leaves a test folder out (MINDlarge_test is 2.4M impressions, for the leaderboard only).

    Raises:
        `FileNotFoundError`: `data_dir`, a split's `news.tsv`/`behaviors.tsv` or `body_file` is missing, or no layout
            matches (the message lists what was found).
        `ValueError`: several variants and no `variant`, or an unknown `variant`.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"MIND data_dir {str(root)!r} is not a directory.")
    entries = sorted(path.name for path in root.iterdir())
    subfolders = {name for name in entries if (root / name).is_dir()}

    folders: dict[str, Path] = {}
    found_variant: str | None = None
    by_variant: dict[str, dict[str, Path]] = {}
    for name in subfolders:
        match = _VARIANT_FOLDER.match(name)
        if match:
            by_variant.setdefault(match["variant"].lower(), {})[match["role"].lower()] = root / name
    if by_variant:
        if variant is not None:
            if variant.lower() not in by_variant:
                raise ValueError(
                    f"No MIND{variant}_* folders in {root}; variants found: {sorted(by_variant)} ({entries})."
                )
            found_variant = variant.lower()
        elif len(by_variant) > 1:
            raise ValueError(
                f"{root} holds several MIND variants {sorted(by_variant)}; pass variant= to pick one ({entries})."
            )
        else:
            found_variant = next(iter(by_variant))
        folders = by_variant[found_variant]
    else:
        for role, names in _PLAIN_FOLDERS.items():
            for name in names:
                if name in subfolders:
                    folders[role] = root / name
                    break
        if not folders and (root / "behaviors.tsv").exists():
            name = root.name
            match = _VARIANT_FOLDER.match(name)
            role = match["role"].lower() if match else next((r for r, n in _PLAIN_FOLDERS.items() if name in n), None)
            if role is None:
                raise ValueError(
                    f"{root} is a single MIND split folder, but its name does not say which split it is; name it "
                    "MIND<variant>_train/_dev/_test (or train/dev/test) or point data_dir at its parent."
                )
            folders[role] = root
            found_variant = match["variant"].lower() if match else None
    if not folders:
        raise FileNotFoundError(
            f"No MIND split folders in {root}: expected MIND<variant>_train / _dev / _test folders (e.g. "
            "MINDsmall_train, MINDsmall_dev), or train/ dev/ test/ folders, each holding news.tsv and behaviors.tsv. "
            f"Found: {entries}."
        )
    for folder in folders.values():
        for filename in ("news.tsv", "behaviors.tsv"):
            if not (folder / filename).is_file():
                raise FileNotFoundError(f"MIND file {str(folder / filename)!r} is missing.")
    if body_file is not None:
        body_path = Path(body_file).expanduser()
        if not body_path.is_file():
            raise FileNotFoundError(f"MIND body file {str(body_path)!r} is missing.")
        body_files: tuple[Path, ...] = (body_path,)
    else:
        candidates = [root / BODY_FILENAME] + [folders[role] / BODY_FILENAME for role in ROLES if role in folders]
        body_files = tuple(dict.fromkeys(path for path in candidates if path.is_file()))
    if not include_test:
        folders.pop("test", None)
        if not folders:
            raise FileNotFoundError(f"{root} holds only a test split, and include_test=False.")
    return MINDFolders(root=root, folders=folders, variant=found_variant, body_files=body_files)


def split_names(roles: Sequence[str], validation_fraction: float) -> dict[str, tuple[str, str, bool]]:
    """
    Split name -> (MIND role read, form, carved). Form is `"train"` (one row per click with sampled negatives) or
    `"impressions"` (whole impressions); `carved` marks the validation impressions held out of `*_train`.
    """
    names: dict[str, tuple[str, str, bool]] = {}
    if "train" in roles:
        names["train"] = ("train", "train", False)
        if validation_fraction > 0:
            names["validation"] = ("train", "impressions", True)
    if "dev" in roles:
        names["dev" if validation_fraction > 0 else "validation"] = ("dev", "impressions", False)
    if "test" in roles:
        names["test"] = ("test", "impressions", False)
    return names


__all__ = ["BODY_FILENAME", "ROLES", "MINDFolders", "find_mind_folders", "split_names"]
