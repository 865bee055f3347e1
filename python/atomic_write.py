"""Atomic file writes: fill a temporary sibling, then rename it over the target.

A reader never sees a half-written file, and an interrupted run leaves the old file intact
(plus at most a stray ``<name>.tmp``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` atomically: ``write(tmp)`` fills ``<path>.tmp``, then it replaces ``path``.

    Example: ``write_atomic(out / "meta.json", lambda tmp: tmp.write_text(text))``.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
