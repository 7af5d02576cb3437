"""Running the kit as a user would: pytest in a subprocess, in a folder holding a backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_kit(
    folder: Path, *args: str, out: Path | None = None, timeout: float = 600
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`pytest --crashkit-json` in `folder` (its modules importable), and the summary it wrote
    (the summary and the findings in `out`, default `folder`)."""
    out = out or folder
    report = out / "kit.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--crashkit-json={report}",
            f"--crashkit-findings={out / 'findings'}",
            *args,
        ],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(folder)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return done, data
