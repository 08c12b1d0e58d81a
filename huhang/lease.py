"""One holder at a time for the singletons that follow a log (the outbox relay, the chainer, a worker's own log
followers): two ``huhang worker intake`` processes never publish the same outbox at once.

On PostgreSQL a lease is a session-level advisory lock (``pg_try_advisory_lock``) taken on a connection of its
own and held for as long as that connection lives: the key is derived from the schema prefix and the follower's
name. A standby tries again every second; when the holder dies (even by ``kill -9``) PostgreSQL ends its session,
the lock goes with it, and a standby takes over. The holder looks at its connection every second and stops
following if it is gone (the database restarted: someone else may hold the lock now).

A lease avoids double work; it is not what makes the platform correct. Between the holder losing its connection
and noticing, both may handle a batch: consumers are idempotent on the event id, so a repeat changes nothing.

SQLite and memory stores are one process's own: no lease (``lease_for`` answers None).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from huhang.settings import Settings

logger = logging.getLogger(__name__)


class Lease(Protocol):
    name: str

    def try_acquire(self) -> bool: ...

    def held(self) -> bool: ...

    def release(self) -> None: ...


def lease_key(name: str) -> int:
    """A signed 64-bit advisory-lock key from a name (PostgreSQL's bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class AdvisoryLease:
    """A PostgreSQL session-level advisory lock on a dedicated connection (not pooled: closing it must end the
    session, so the lock can never stay behind in a pool). Nothing connects before ``try_acquire``."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.key = lease_key(name)
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._held = False

    def _connection(self) -> Connection:
        if self._engine is None:
            # Keepalives: a holder whose host vanishes without closing its socket loses the lock within ~30 s.
            self._engine = create_engine(
                self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                connect_args={"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10,
                              "keepalives_interval": 5, "keepalives_count": 3},
            )
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def try_acquire(self) -> bool:
        try:
            got = bool(self._connection().execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
        except Exception as exc:
            logger.warning("lease %s: could not ask for it (%s)", self.name, type(exc).__name__)
            self._drop()
            return False
        self._held = got
        return got

    def held(self) -> bool:
        """Still ours: our session is alive (only it could unlock)."""
        if not self._held or self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
        except Exception as exc:
            logger.warning("lease %s lost: its connection failed (%s)", self.name, type(exc).__name__)
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None and self._held:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except Exception as exc:  # the session ends below anyway, and the lock with it
                logger.warning("lease %s: unlock failed (%s)", self.name, type(exc).__name__)
        self._drop()

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:
                logger.debug("lease %s: closing failed (%s)", self.name, type(exc).__name__)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def lease_for(settings: Settings, name: str) -> Lease | None:
    """The lease of a log follower named ``name`` (``intake.relay``...), on PostgreSQL; None elsewhere."""
    if settings.storage != "postgres":
        return None
    url = make_url(settings.database_url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return AdvisoryLease(url, f"huhang-lease:{settings.schema_prefix}{name}")


def acquire(lease: Lease, stop: threading.Event, retry_s: float = 1.0) -> bool:
    """Wait for the lease (trying every ``retry_s``); False when stopped first."""
    standing_by = False
    while not stop.is_set():
        if lease.try_acquire():
            logger.info("lease %s taken", lease.name)
            return True
        if not standing_by:
            logger.info("lease %s held elsewhere: standing by", lease.name)
            standing_by = True
        stop.wait(retry_s)
    return False


def run_leased(
    lease: Lease, target: Callable[[threading.Event], None], stop: threading.Event, check_s: float = 1.0,
) -> None:
    """Run ``target(inner_stop)`` only while holding the lease: taken first, watched every ``check_s``; when lost,
    the target is stopped and the lease waited for again. Until ``stop``."""
    while not stop.is_set():
        if not acquire(lease, stop, check_s):
            return
        inner = threading.Event()

        def watch(inner: threading.Event = inner) -> None:
            while not inner.is_set():
                if stop.wait(check_s):
                    break
                if not lease.held():
                    break
            inner.set()

        watcher = threading.Thread(target=watch, name=f"{lease.name}.lease", daemon=True)
        watcher.start()
        try:
            target(inner)
        finally:
            inner.set()
            watcher.join()
            lease.release()


def leased(lease: Lease | None, target: Callable[[threading.Event], None]) -> Callable[[threading.Event], None]:
    """``target`` as it is without a lease, else run only while holding it (for ``Runtime.start``)."""
    if lease is None:
        return target
    return lambda stop: run_leased(lease, target, stop)
