"""``HUHANG_BACKGROUND_NICE``: the worker and the router lower their own CPU priority at start (the APIs first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from huhang.settings import Settings

PROBE = (
    "from pathlib import Path; from huhang.cli import lower_priority; from huhang.settings import Settings; "
    "print(lower_priority(Settings())); group = Path('/proc/self/autogroup'); "
    "print(group.read_text().split()[-1] if group.exists() else '-')"
)
AUTOGROUP = Path("/proc/self/autogroup")


def after(value: str, own_session: bool = False) -> tuple[int, str]:
    """A fresh process's niceness and its scheduler group's niceness after ``lower_priority`` with
    HUHANG_BACKGROUND_NICE=value (never this process's own: a niceness cannot be lowered back)."""
    env = {**os.environ, "HUHANG_BACKGROUND_NICE": value}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True,
                          timeout=60, start_new_session=own_session)
    nice, group = done.stdout.split()
    return int(nice), group


def test_the_background_processes_step_behind_by_the_setting() -> None:
    here = os.nice(0)
    assert after("0")[0] == here
    assert after("7")[0] == min(19, here + 7)


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="no scheduler autogroups on this kernel")
def test_a_session_leader_steps_its_whole_scheduler_group_behind() -> None:
    """Started in a session of its own (as the benches and supervisors start it), the process's autogroup is lowered
    too; in a session it shares, the group (the caller's too) is left alone."""
    assert after("7", own_session=True)[1] == "7"
    assert after("7")[1] == AUTOGROUP.read_text().split()[-1]


def test_the_setting_is_a_niceness() -> None:
    with pytest.raises(ValidationError):
        Settings(background_nice=20)
    with pytest.raises(ValidationError):
        Settings(background_nice=-1)
