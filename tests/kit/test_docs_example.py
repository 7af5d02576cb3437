"""docs/backends.md's backend written from scratch: the code on the page runs, and the kit
names exactly the bugs the page says it has."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "backends.md"
#: What the page says the kit reports for it.
NAMED = {"1-durability", "3-publish-implies-committed", "P-backend-protocol", "R4-restore-table"}


def example() -> str:
    section = DOC.read_text(encoding="utf-8").split("## A backend from scratch", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "the section lost its code block"
    return found.group(1)


@pytest.mark.crash
def test_the_page_example_is_caught_under_the_invariants_the_page_names(tmp_path: Path) -> None:
    (tmp_path / "mystore.py").write_text(example())
    report = tmp_path / "kit.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-n",
            "2",
            "--crashkit-backend=mystore:BACKEND",
            "--crashkit-suite=quick",
            f"--crashkit-json={report}",
            f"--crashkit-findings={tmp_path / 'findings'}",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout[-3000:]
    counts = json.loads(report.read_text())["violations_by_invariant"]
    named = {name for name, count in counts.items() if count and name != "scenario expectations"}
    assert named == NAMED, counts
