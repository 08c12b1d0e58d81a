"""End to end, distributed: every service, relay and consumer as its own process, on PostgreSQL, a real
Kafka-protocol broker and Prefect (the router's flow), exactly as compose.yaml runs them."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from huhang.auth.client import ClientCredentialsAuth
from tests.conftest import RUN_PREFIX
from tests.e2e.flows import check_idempotent_retry, check_report_is_routed
from tests.support.auth import new_signing_key
from tests.support.processes import free_port, huhang_env, huhang_process, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

API_SERVICES = ("intake", "referral", "guardianship", "notifications")


@pytest.fixture(scope="module")
def distributed(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, kafka_bootstrap: str
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("distributed")
    ports = {name: free_port() for name in API_SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = huhang_env(
        storage="postgres", database_url=postgres_url, schema_prefix=f"{RUN_PREFIX}{uuid.uuid4().hex[:6]}_",
        transport="kafka", kafka_bootstrap_servers=kafka_bootstrap, kafka_max_poll_interval_ms="60000",
        kafka_session_timeout_ms="5000", referral_url=urls["referral"], kafka_namespace=f"{uuid.uuid4().hex[:8]}.",
        auth_signing_key=new_signing_key(),
    )
    with ExitStack() as stack:
        for name in API_SERVICES:
            stack.enter_context(
                huhang_process(["api", name, "--port", str(ports[name])], env, tmp / f"api-{name}.log")
            )
        for name in API_SERVICES:
            stack.enter_context(huhang_process(["worker", name], env, tmp / f"worker-{name}.log"))
        stack.enter_context(huhang_process(["router"], env, tmp / "router.log"))
        for url in urls.values():
            try:
                wait_http(f"{url}/healthz", timeout_s=90)
            except TimeoutError:
                raise AssertionError(_logs(tmp)) from None
        yield urls | {"auth": _client_auth(env, urls["intake"])}


def _client_auth(env: dict[str, str], intake_url: str) -> ClientCredentialsAuth:
    """A client made with ``huhang auth create-client``; its tokens come from intake's token endpoint and every
    service verifies them with the shared key."""
    made = subprocess.run(
        [sys.executable, "-m", "huhang.cli", "auth", "create-client", "--agency", "civil_affairs", "--role", "system",
         "--client-id", "e2e-system"], env=env, capture_output=True, text=True, check=True, timeout=60,
    )
    secret = re.search(r"client_secret: (\S+)", made.stdout)
    assert secret is not None, made.stderr
    return ClientCredentialsAuth(f"{intake_url}/v1/oauth/token", "e2e-system", secret.group(1))


def _logs(tmp: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp.glob("*.log")))


def test_a_report_travels_intake_kafka_prefect_referral(distributed: dict[str, Any]) -> None:
    check_report_is_routed(distributed["intake"], distributed["referral"], distributed["auth"])


def test_a_retried_report_is_filed_and_routed_once(distributed: dict[str, Any]) -> None:
    check_idempotent_retry(distributed["intake"], distributed["referral"], distributed["auth"])
