"""Development key files: a secret generated once into the data folder, shared by every process that starts.

Production takes its keys from settings and never comes here. The file is made with mode 0600 and linked into
place atomically: when several processes start at once, exactly one key wins and all of them read that one.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The key text in ``path``, written from ``make()`` first if there is none; and whether it was made now."""
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    created = True
    try:
        with os.fdopen(fd, "w") as f:
            f.write(make().strip() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            created = False  # another process won the race: its key stands
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path.read_text().strip(), created
