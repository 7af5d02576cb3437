"""Point each mapped package of the strict editable install at its folder.

`pip install -e . --config-settings editable_mode=strict` builds, under build/, a
folder of links that maps the `crashkit.*` import names onto the folders named by
pyproject.toml's `[tool.setuptools] package-dir` (mypy and import-linter follow it;
they cannot follow the default mode's import hook). Setuptools links file by file, so
a new module would stay invisible until the next install; replacing each mapped
package by one link to its folder makes every file visible at once.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path


def main(root: Path) -> None:
    trees = sorted((root / "build").glob("__editable__.crashkit-*"))
    if len(trees) != 1:
        sys.exit(f"expected one build/__editable__.crashkit-* folder, found {len(trees)}")
    tree = trees[0] / "crashkit"
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    for name, folder in config["tool"]["setuptools"]["package-dir"].items():
        link = tree / name.removeprefix("crashkit.")
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.exists():
            shutil.rmtree(link)
        link.symlink_to((root / folder).resolve(), target_is_directory=True)


if __name__ == "__main__":
    main(Path(__file__).resolve().parents[1])
