"""Where a result came from: the package version and the code version of the checkout."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path


def package_version() -> str:
    """The installed ``belle-rare`` distribution's version ('unknown' when run from a bare checkout)."""
    try:
        return metadata.version("belle-rare")
    except metadata.PackageNotFoundError:
        return "unknown"


def code_version() -> str:
    """``git describe`` of the checkout the code runs from, else the package version."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or f"belle-rare {package_version()}"
    except (OSError, subprocess.SubprocessError):
        return f"belle-rare {package_version()}"
