"""Running the kit as a user would: pytest in a subprocess, in a folder holding a backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_kit(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`pytest --crashkit-json` in `folder` (its modules importable), and the summary it wrote."""
    report = folder / "kit.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--crashkit-json={report}",
            f"--crashkit-findings={folder / 'findings'}",
            *args,
        ],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(folder)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return done, data
