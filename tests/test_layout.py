"""The import names map onto the folders as pyproject.toml says, and nothing is left out.

`crashkit.<name>` is the folder `<name>` (under `impl/` for the reference implementation):
a package folder missing from `[tool.setuptools] packages` would be silently left out
of the wheel, and an old top-level name (`faults`, `harness`, ...) must not come back.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERIC = ("faults", "harness", "orchestrator", "regime_engine")


def _setuptools() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    section = data["tool"]["setuptools"]
    assert isinstance(section, dict)
    return section


def test_every_package_folder_is_listed() -> None:
    section = _setuptools()
    mapping = section["package-dir"]
    packages = section["packages"]
    assert isinstance(mapping, dict) and isinstance(packages, list)
    found: set[str] = set()
    for name, folder in mapping.items():
        base = ROOT / folder
        if name == "crashkit.scenarios":  # data: every folder of the library
            folders = [base, *(p for p in base.rglob("*") if p.is_dir())]
        else:  # code: every folder with an __init__.py
            folders = [init.parent for init in base.rglob("__init__.py")]
        for path in folders:
            if "__pycache__" not in path.parts:
                found.add(".".join((name, *path.relative_to(base).parts)))
    assert set(packages) == found


def test_import_names_are_namespaced() -> None:
    section = _setuptools()
    packages = section["packages"]
    assert isinstance(packages, list)
    assert all(p.startswith("crashkit.") for p in packages)
    for name in ("crashkit.faults", "crashkit.harness", "crashkit.orchestrator"):
        module = importlib.import_module(name)
        assert module.__file__ is not None


def test_no_code_imports_an_old_top_level_name() -> None:
    offenders = []
    for folder in ("impl", "faults", "harness", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                words = line.split()
                if (
                    len(words) >= 2
                    and words[0] in ("import", "from")
                    and words[1].split(".")[0] in GENERIC
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, offenders
