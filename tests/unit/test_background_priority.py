"""``HUHANG_BACKGROUND_NICE``: the worker and the router lower their own CPU priority at start (the APIs first)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from huhang.settings import Settings

PROBE = "from huhang.cli import lower_priority; from huhang.settings import Settings; print(lower_priority(Settings()))"


def niceness_after(value: str) -> int:
    """A fresh process's niceness after ``lower_priority`` with HUHANG_BACKGROUND_NICE=value (never this one's:
    a niceness cannot be lowered back)."""
    env = {**os.environ, "HUHANG_BACKGROUND_NICE": value}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True,
                          timeout=60)
    return int(done.stdout.strip())


def test_the_background_processes_step_behind_by_the_setting() -> None:
    here = os.nice(0)
    assert niceness_after("0") == here
    assert niceness_after("7") == min(19, here + 7)


def test_the_setting_is_a_niceness() -> None:
    with pytest.raises(ValidationError):
        Settings(background_nice=20)
    with pytest.raises(ValidationError):
        Settings(background_nice=-1)
