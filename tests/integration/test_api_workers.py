"""``huhang api <service> --workers N``: N processes serve one service's API on its port (issue 7: one process's
GIL held the tail latency of the busiest APIs). Real PostgreSQL: a referral opened through one process is read
through whichever answers next; ``kill -9`` of one process leaves the port served and the supervisor starts another.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import RUN_PREFIX
from tests.support.auth import minted_auth, new_signing_key
from tests.support.processes import eventually, free_port, huhang_env, huhang_process, wait_http
from tests.unit.test_referral import an_open_referral

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _workers(pid: int) -> list[psutil.Process]:
    """The serving processes under uvicorn's supervisor (multiprocessing's resource tracker is not one)."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # gone, or a zombie, meanwhile
            continue
    return found


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_processes_serve_one_api_and_one_killed_is_replaced(tmp_path: Path, postgres_url: str) -> None:
    signing_key = new_signing_key()
    port = free_port()
    env = huhang_env(storage="postgres", database_url=postgres_url, transport="inprocess",
                     schema_prefix=f"{RUN_PREFIX}{uuid.uuid4().hex[:6]}_", auth_signing_key=signing_key,
                     data_dir=str(tmp_path / "data"))
    log = tmp_path / "api-referral.log"
    with huhang_process(["api", "referral", "--port", str(port), "--workers", "2"], env, log) as api:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=120, process=api)
        workers = eventually(lambda: (found := _workers(api.pid)) and len(found) == 2 and found, timeout_s=60)
        opened = an_open_referral()
        body, referral_id = {"referrals": [opened.model_dump(mode="json")]}, opened.referral_id
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=minted_auth(signing_key), timeout=30) as client:
            assert client.post("/v1/referrals", json=body).status_code in (200, 201), log.read_text()[-2000:]
            for _ in range(10):  # a new connection each time: either process may answer
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=minted_auth(signing_key)) as fresh:
                    answer = fresh.get(f"/v1/referrals/{referral_id}")
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["status"] == "requested"
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)  # a connection it held breaks; the port is still served
            eventually(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout_s=30)
            replaced = eventually(
                lambda: (found := _workers(api.pid)) and len(found) == 2 and killed not in {p.pid for p in found},
                timeout_s=60,
            )
            assert replaced
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=minted_auth(signing_key)) as fresh:
                assert fresh.get(f"/v1/referrals/{referral_id}").status_code == 200
        assert api.poll() is None, log.read_text()[-3000:]
