"""A private PostgreSQL cluster for one test: initdb into a temporary folder, on a free port, trust authentication.

For tests that stop, kill or restart the database under a running platform (tests/integration/
test_postgres_restart.py). The machine's shared PostgreSQL (127.0.0.1:5432) serves every other test and helper at
the same time, so such a test must never touch it: this cluster has its own data folder, port and socket folder,
and is removed afterwards.

PostgreSQL refuses to run as root; when the tests run as root, every server command runs as the ``postgres`` user
(``runuser``) and the temporary folder (made directly under the system's temporary folder, not pytest's, whose
parents are private to root) is handed to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from tests.support.processes import free_port

StopMode = Literal["smart", "fast", "immediate"]
SERVER_USER = "postgres"


def postgres_bin_dir() -> Path:
    """The newest installed server's binaries (/usr/lib/postgresql/<major>/bin), else those on PATH."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
        if p.parent.parent.name.isdigit() else 0,
    )
    if installed:
        return installed[-1].parent
    found = shutil.which("initdb")
    if found is None:
        raise FileNotFoundError("no PostgreSQL server binaries (initdb) in /usr/lib/postgresql/*/bin nor on PATH")
    return Path(found).parent


class PostgresCluster:
    """One cluster: ``init()`` once, then ``start()``, ``stop(mode)``, ``restart(down_s)`` as often as wanted."""

    def __init__(self, root: Path, port: int, bin_dir: Path, run_as: str | None) -> None:
        self.root = root
        self.port = port
        self.bin_dir = bin_dir
        self.run_as = run_as
        self.data_dir = root / "data"
        self.socket_dir = root / "socket"
        self.log_path = root / "server.log"

    @property
    def url(self) -> str:
        """A URL for HUHANG_DATABASE_URL (the ``postgres`` database, trust authentication over TCP)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        self.socket_dir.mkdir()
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
            "--no-sync", "--no-instructions",
        )
        settings = (
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.socket_dir}'\n"
            "max_connections = 60\nshared_buffers = 32MB\n"
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(settings)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start and wait until it accepts connections."""
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", str(int(timeout_s)), "start",
            timeout_s=timeout_s + 10,
        )
        self.wait_ready(timeout_s)

    def stop(self, mode: StopMode = "fast", timeout_s: float = 30.0) -> None:
        """``fast``: roll back open transactions, disconnect clients, checkpoint; ``immediate``: a crash (recovery
        from the WAL at the next start)."""
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(timeout_s)), "stop",
            timeout_s=timeout_s + 10,
        )

    def restart(self, down_s: float = 3.0, mode: StopMode = "fast") -> None:
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def is_running(self) -> bool:
        done = self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False)
        return done.returncode == 0

    def accepts_connections(self) -> bool:
        done = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-t", "2", check=False)
        return done.returncode == 0

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.accepts_connections():
                return
            time.sleep(0.1)
        raise TimeoutError(f"the private PostgreSQL on port {self.port} is not ready: {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _run(
        self, program: str, *args: str, check: bool = True, timeout_s: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(  # our own arguments, no shell
            command, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=self.root,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} exited with {done.returncode}: {done.stderr.strip()} {self.log_tail()}")
        return done


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def private_postgres(start: bool = True) -> Iterator[PostgresCluster]:
    """A fresh cluster (started unless ``start=False``), stopped at once and removed at the end."""
    run_as = SERVER_USER if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="huhang-pg-"))
    port = free_port()
    while port == 5432 or not _port_is_free(port):  # never the machine's own server
        port = free_port()
    cluster = PostgresCluster(root, port, postgres_bin_dir(), run_as)
    try:
        cluster.init()
        if start:
            cluster.start()
        yield cluster
    finally:
        if cluster.data_dir.exists() and cluster.is_running():
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
