"""The distributed platform as real processes, for end-to-end and fault tests: each service's API and worker
(``huhang api|worker <service>`` for every service ``huhang.bootstrap`` lists) and the Prefect router
(``huhang router``), on PostgreSQL and a Kafka-protocol broker, exactly as compose.yaml runs them.

Each part can be killed (SIGKILL to its process group: the process and anything it started, such as the router's
Prefect server) and started again on the same port with the same settings.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from huhang.auth.client import ClientCredentialsAuth
from tests.conftest import RUN_PREFIX
from tests.support.auth import new_signing_key
from tests.support.processes import free_port, huhang_env, stop_process, wait_http


def service_names() -> tuple[str, ...]:
    """Whatever services the composition root lists and ``huhang api`` runs (a new service joins the fixture
    without a change here, once both know it)."""
    from huhang.bootstrap import SERVICE_NAMES

    return tuple(name for name in SERVICE_NAMES if _runnable(name))


def _runnable(service: str) -> bool:
    from huhang.cli import parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parser().parse_args(["api", service])
    except SystemExit:
        return False
    return True


@dataclass
class Part:
    """One process of the platform: ``api-<service>``, ``worker-<service>`` or ``router``."""

    name: str
    args: list[str]
    log: Path
    health_url: str | None = None  # the API's /healthz
    process: subprocess.Popen[bytes] | None = None


@dataclass
class Platform:
    env: dict[str, str]
    tmp: Path
    urls: dict[str, str]  # per service, its API's base URL
    parts: dict[str, Part] = field(default_factory=dict)
    auth: ClientCredentialsAuth | None = None

    def start(self, name: str, *, wait: bool = True, timeout_s: float = 90.0) -> None:
        part = self.parts[name]
        with part.log.open("ab") as out:
            part.process = subprocess.Popen(
                [sys.executable, "-m", "huhang.cli", *part.args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_ready(name, timeout_s)

    def wait_ready(self, name: str, timeout_s: float = 90.0) -> None:
        part = self.parts[name]
        if part.health_url is None:
            return
        try:
            wait_http(part.health_url, timeout_s=timeout_s, process=part.process)
        except (TimeoutError, RuntimeError):
            raise AssertionError(f"{name} did not start\n{self.logs()}") from None

    def kill(self, name: str) -> None:
        """SIGKILL, as in a crash: no shutdown code runs, nothing is flushed."""
        process = self.parts[name].process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def alive(self, name: str) -> bool:
        process = self.parts[name].process
        return process is not None and process.poll() is None

    def stop(self) -> None:
        for part in self.parts.values():
            if part.process is not None:
                stop_process(part.process)

    def logs(self, tail: int = 3000) -> str:
        logs = sorted(self.tmp.glob("*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in logs)


@contextmanager
def distributed_platform(
    tmp: Path, postgres_url: str, kafka_bootstrap: str, **settings: str
) -> Iterator[Platform]:
    """Every service's API and worker and the router, started and healthy; stopped (SIGTERM) afterwards.
    ``settings`` are further ``HUHANG_*`` settings (lower case, without the prefix)."""
    names = service_names()
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = huhang_env(**{
        "storage": "postgres", "database_url": postgres_url, "schema_prefix": f"{RUN_PREFIX}{uuid.uuid4().hex[:6]}_",
        "transport": "kafka", "kafka_bootstrap_servers": kafka_bootstrap, "kafka_max_poll_interval_ms": "60000",
        "kafka_session_timeout_ms": "5000", "referral_url": urls["referral"],
        "kafka_namespace": f"{uuid.uuid4().hex[:8]}.", "auth_signing_key": new_signing_key(), **settings,
    })
    platform = Platform(env, tmp, urls)
    for name in names:
        platform.parts[f"api-{name}"] = Part(f"api-{name}", ["api", name, "--port", str(ports[name])],
                                             tmp / f"api-{name}.log", f"{urls[name]}/healthz")
    for name in names:
        platform.parts[f"worker-{name}"] = Part(f"worker-{name}", ["worker", name], tmp / f"worker-{name}.log")
    platform.parts["router"] = Part("router", ["router"], tmp / "router.log")
    try:
        for name in platform.parts:
            platform.start(name, wait=False)
        for name in platform.parts:
            platform.wait_ready(name)
        platform.auth = client_auth(env, urls["intake"])
        yield platform
    finally:
        platform.stop()


def client_auth(env: dict[str, str], intake_url: str, client_id: str = "e2e-system") -> ClientCredentialsAuth:
    """A client made with ``huhang auth create-client`` (civil affairs, role system); its tokens come from intake's
    token endpoint and every service verifies them with the shared key."""
    made = subprocess.run(
        [sys.executable, "-m", "huhang.cli", "auth", "create-client", "--agency", "civil_affairs", "--role", "system",
         "--client-id", client_id], env=env, capture_output=True, text=True, timeout=60,
    )
    secret = re.search(r"client_secret: (\S+)", made.stdout)
    assert secret is not None, f"create-client exited with {made.returncode}:\n{made.stderr[-3000:]}"
    return ClientCredentialsAuth(f"{intake_url}/v1/oauth/token", client_id, secret.group(1))
