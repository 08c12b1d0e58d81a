"""Where each service keeps its event store and its read models, as the settings say.

Each service owns its store: a SQLite file per service in the data folder, or a PostgreSQL schema per service.
Read models and follower positions live beside the events (SQLAlchemy).
"""

from __future__ import annotations

import select
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import NullPool

from huhang.settings import Settings
from huhang.sql import racing_ddl


def schema_name(settings: Settings, service: str) -> str:
    return f"{settings.schema_prefix}{service}"


def eventsourcing_env(settings: Settings, service: str) -> dict[str, str]:
    """The eventsourcing environment for one service's application."""
    if settings.storage == "memory":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if settings.storage == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.data_dir / f"{service}.events.sqlite"),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    url = make_url(settings.database_url)
    ensure_schema(settings, service)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "huhang.pgrecorder:PostgresRecorder",  # its aggregate reads composed once
        "POSTGRES_DBNAME": url.database or "postgres",
        "POSTGRES_HOST": url.host or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_SCHEMA": schema_name(settings, service),
        "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),  # processes x pools must fit max_connections
        "POSTGRES_MAX_OVERFLOW": str(settings.postgres_max_overflow),
        # How long a request waits for a pooled connection before eventsourcing tries again (10 attempts): while
        # PostgreSQL is down, a request gives up after about 10 x this and answers 503 (huhang/problems.py), well
        # within a client's timeout; a short restart is ridden through. The pool reconnects by itself; without
        # pre-ping (a round trip before every use) a connection broken by a restart fails its first use, is
        # discarded, and eventsourcing retries the read or write on another (10 attempts, 0.2 s apart).
        "POSTGRES_CONNECT_TIMEOUT": "2",
        "POSTGRES_PRE_PING": "y" if settings.postgres_pre_ping else "n",
    }


def _sqlalchemy_postgres_url(settings: Settings) -> str:
    return make_url(settings.database_url).set(drivername="postgresql+psycopg").render_as_string(
        hide_password=False
    )


# libpq's own connect timeout (seconds; it has none by default): an unreachable host fails in this time instead
# of hanging a request for minutes.
CONNECT_TIMEOUT_S = 5


def ensure_schema(settings: Settings, service: str) -> None:
    engine = create_engine(
        _sqlalchemy_postgres_url(settings), pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
    )

    def create() -> None:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema_name(settings, service)}"'))

    try:
        racing_ddl(create)
    finally:
        engine.dispose()


def read_model_engine(settings: Settings, service: str) -> Engine:
    """The SQLAlchemy engine for one service's read models and follower positions."""
    if settings.storage == "memory":
        return temporary_engine(service)
    if settings.storage == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return _sqlite_file_engine(settings.data_dir / f"{service}.read.sqlite")
    ensure_schema(settings, service)
    engine = create_engine(
        _sqlalchemy_postgres_url(settings),
        pool_pre_ping=settings.postgres_pre_ping,
        pool_size=settings.postgres_pool_size,
        max_overflow=settings.postgres_max_overflow,
        connect_args={
            "options": f"-c search_path={schema_name(settings, service)}", "connect_timeout": CONNECT_TIMEOUT_S,
        },
    )
    if not settings.postgres_pre_ping:
        event.listen(engine, "checkout", _ended_while_pooled)
    event.listen(engine, "connect", _fast_json)
    return engine


def _fast_json(dbapi_connection: Any, _record: object) -> None:
    """The read models' JSON columns decoded by orjson: the standard library's decoder, called once per value,
    was a third of an inbox page's time (a plan's task list on each of 50 rows)."""
    set_json_loads(orjson.loads, dbapi_connection)


def _ended_while_pooled(dbapi_connection: Any, _record: object, _proxy: object) -> None:
    """A pooled connection that the server ended while it sat idle (a restart, an administrator, a timeout) is
    replaced before use, without the round trip of a pre-ping: the server's farewell and end of stream have made
    its socket readable, where an idle live connection's has nothing to read. (Raising DisconnectionError makes the
    pool discard it and check out another.) A connection cut with no word from the server fails its first use
    instead: that request answers 503 with Retry-After, and SQLAlchemy then replaces the rest of the pool."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:
        return
    try:
        fd = pgconn.socket
    except psycopg.Error as exc:  # closed already: no socket to look at
        raise DisconnectionError("connection closed while pooled") from exc
    poller = select.poll()  # not select(): a busy process's descriptors pass 1024
    poller.register(fd, select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server ended this connection while it was pooled")


def readiness_engine(settings: Settings) -> Engine | None:
    """For the readiness probe (``/readyz``): an engine that holds no connection between probes, so that a probe
    answers whether PostgreSQL accepts a new connection now. None for SQLite files and memory (nothing to reach)."""
    if settings.storage != "postgres":
        return None
    return create_engine(
        _sqlalchemy_postgres_url(settings), poolclass=NullPool, connect_args={"connect_timeout": 2},
    )


def temporary_engine(name: str) -> Engine:
    """Not kept: a SQLite file in a temporary folder that goes with the engine. (One in-memory connection shared by
    every thread is not safe once several threads write at once: transactions interleave on it.)"""
    folder = tempfile.mkdtemp(prefix=f"huhang-{name}-")
    engine = _sqlite_file_engine(Path(folder) / f"{name}.read.sqlite")
    weakref.finalize(engine, shutil.rmtree, folder, True)  # removed with the engine (or at exit)
    return engine


def _sqlite_file_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
