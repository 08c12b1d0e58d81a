"""Start parts of the platform as real processes for end-to-end and crash tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def huhang_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUHANG_")}
    env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"})
    env.update({f"HUHANG_{k.upper()}": v for k, v in settings.items()})
    return env


@contextmanager
def huhang_process(args: list[str], env: Mapping[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``huhang <args>`` in its own process; stopped with SIGTERM (then SIGKILL) at the end."""
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "huhang.cli", *args], env=dict(env), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop_process(process)
        log.close()


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def wait_http(url: str, timeout_s: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Until ``url`` answers 200; fail early if the process serving it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


def eventually(check: Callable[[], Any], timeout_s: float = 60.0, interval_s: float = 0.2) -> Any:
    """Poll until ``check`` returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last value: {last!r})")
