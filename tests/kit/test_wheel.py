"""What a non-editable install gets: the wheel holds every package under `crashkit`, the
scenario library, the broken variants, the kit's plugin entry point, and no generic
top-level name. (`make crash`: it builds the wheel.)"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.crash
def test_the_wheel_carries_the_kit_and_the_library(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("crashkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"crashkit"}
    library = [n for n in names if n.startswith("crashkit/scenarios/") and n.endswith(".yaml")]
    assert len(library) == len(list((ROOT / "scenarios").rglob("*.yaml")))
    for module in ("kit/plugin.py", "kit/suite.py", "kit/variants.py", "judge/verdicts.py"):
        assert f"crashkit/harness/{module}" in names
    assert "crashkit/scenarios/regressions/.gitkeep" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pytest11]\ncrashkit = crashkit.harness.kit.plugin" in text
    assert "crashkit = crashkit.harness.cli:main" in text
