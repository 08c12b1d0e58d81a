"""``HUHANG_BACKGROUND_NICE``: the worker and the router lower their own CPU priority at start (the APIs first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from huhang.settings import Settings

PROBE = """
from pathlib import Path
from huhang.cli import lower_priority
from huhang.settings import Settings
print(lower_priority(Settings()))
try:
    print(Path('/proc/self/autogroup').read_text().split()[-1])
except (OSError, IndexError):  # no autogroups, or a sandbox that hides them
    print('-')
"""


def autogroup_nice() -> str:
    """This process's scheduler group's niceness, or '-' where the kernel (or a sandbox) does not show it."""
    try:
        return Path("/proc/self/autogroup").read_text().split()[-1]
    except (OSError, IndexError):
        return "-"


def after(value: str, own_session: bool = False) -> tuple[int, str]:
    """A fresh process's niceness and its scheduler group's niceness after ``lower_priority`` with
    HUHANG_BACKGROUND_NICE=value (never this process's own: a niceness cannot be lowered back)."""
    env = {**os.environ, "HUHANG_BACKGROUND_NICE": value}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60,
                          start_new_session=own_session)
    assert done.returncode == 0, done.stderr
    nice, group = done.stdout.split()
    return int(nice), group


def test_the_background_processes_step_behind_by_the_setting() -> None:
    here = os.nice(0)
    assert after("0")[0] == here
    assert after("7")[0] == min(19, here + 7)


def test_a_session_leader_steps_its_whole_scheduler_group_behind() -> None:
    """Started in a session of its own (as the benches and supervisors start it), the process's autogroup is lowered
    too; in a session it shares, the group (the caller's too) is left alone."""
    if autogroup_nice() == "-" or after("0", own_session=True)[1] == "-":
        pytest.skip("no readable scheduler autogroups here")
    assert after("7", own_session=True)[1] == "7"
    assert after("7")[1] == autogroup_nice()


def test_the_setting_is_a_niceness() -> None:
    with pytest.raises(ValidationError):
        Settings(background_nice=20)
    with pytest.raises(ValidationError):
        Settings(background_nice=-1)
