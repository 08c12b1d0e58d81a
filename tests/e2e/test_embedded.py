"""End to end, embedded: ``huhang run`` (SQLite, in-process transport, Prefect local mode) over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from huhang.auth.client import ClientCredentialsAuth
from tests.e2e.flows import check_idempotent_retry, check_report_is_routed
from tests.support.auth import minted_auth, new_signing_key
from tests.support.processes import free_port, huhang_env, huhang_process, wait_http

SIGNING_KEY = new_signing_key()

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def embedded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("embedded")
    port = free_port()
    env = huhang_env(data_dir=str(tmp / "data"), auth_signing_key=SIGNING_KEY)
    env["PORT"] = str(port)
    with huhang_process(["run", "--no-demo"], env, tmp / "huhang.log") as process:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/healthz", timeout_s=90)
        except TimeoutError:
            raise AssertionError((tmp / "huhang.log").read_text()) from None
        yield url
        assert process.poll() is None, (tmp / "huhang.log").read_text()


def test_a_report_reaches_the_responsible_inboxes_and_the_timeline(embedded_url: str) -> None:
    check_report_is_routed(embedded_url, embedded_url, minted_auth(SIGNING_KEY))


def test_a_retried_report_is_filed_once(embedded_url: str) -> None:
    check_idempotent_retry(embedded_url, embedded_url, minted_auth(SIGNING_KEY))


def test_the_api_documentation_is_served(embedded_url: str) -> None:
    assert httpx.get(f"{embedded_url}/docs", timeout=5).status_code == 200
    paths = httpx.get(f"{embedded_url}/openapi.json", timeout=5).json()["paths"]
    assert {"/v1/reports", "/v1/agencies/{agency}/referrals", "/v1/cases/{case_id}/timeline"} <= set(paths)


def test_the_api_needs_a_token(embedded_url: str) -> None:
    answer = httpx.get(f"{embedded_url}/v1/agencies/police/referrals", timeout=5)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"


def test_the_run_command_loads_the_demo_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    import json
    import os
    import signal

    port = free_port()
    env = huhang_env(data_dir=str(tmp_path / "data"))
    env["PORT"] = str(port)
    log = tmp_path / "run.log"
    with huhang_process(["run"], env, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", timeout_s=90)
        from tests.support.processes import eventually

        eventually(lambda: "Demo loaded" in log.read_text(), timeout_s=120)
        # the demo's police client, through the token endpoint, as a new user would
        credentials = json.loads((tmp_path / "data" / "demo-credentials.json").read_text())
        police = ClientCredentialsAuth(f"{url}/v1/oauth/token", "demo-police",
                                       credentials["clients"]["demo-police"]["client_secret"])

        def accepted() -> int | None:  # the inbox is a read model: it follows the referral log within moments
            answer = httpx.get(f"{url}/v1/agencies/police/referrals", timeout=5, auth=police)
            counts = answer.json()["counts_by_status"]
            return counts.get("accepted")

        eventually(lambda: accepted() == 1, timeout_s=10)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(30) == 0
    text = log.read_text()
    assert f"{url}/docs" in text
    assert "curl -s -X POST" in text  # how to get a token, on the console
    assert "Stopped." in text
