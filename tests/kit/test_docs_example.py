"""docs/backends.md's backend written from scratch: the code on the page runs, and the kit
names exactly the bugs the page says it has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.kit.helpers import run_kit

DOC = Path(__file__).resolve().parents[2] / "docs" / "backends.md"
#: What the page says the kit reports for it.
NAMED = {
    "1-durability",
    "3-publish-implies-committed",
    "5-continuity",
    "P-backend-protocol",
    "R4-restore-table",
}


def example() -> str:
    section = DOC.read_text(encoding="utf-8").split("## A backend from scratch", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "the section lost its code block"
    return found.group(1)


@pytest.mark.crash
def test_the_page_example_is_caught_under_the_invariants_the_page_names(tmp_path: Path) -> None:
    (tmp_path / "mystore.py").write_text(example())
    done, data = run_kit(
        tmp_path, "-n", "2", "--crashkit-backend=mystore:BACKEND", "--crashkit-suite=quick"
    )
    assert done.returncode == 1, done.stdout[-3000:]
    counts = data["violations_by_invariant"]
    named = {name for name, count in counts.items() if count and name != "scenario expectations"}
    assert named == NAMED, counts
