"""A database that cannot be reached answers 503 application/problem+json with Retry-After, never a 500; a fault
that a retry would not cure (a missing table, a violated constraint) stays a 500. Readiness (/readyz) says 503
while the database is down; liveness (/healthz) does not look.

Every error here is a real one, raised by the real driver, pool or library: a PostgreSQL port nobody listens on,
a SQLite file another connection holds locked, the machine's PostgreSQL terminating our own session.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from eventsourcing.postgres import PostgresDatastore
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from huhang.problems import PROBLEM_JSON, UNAVAILABLE_TYPE
from huhang.settings import Settings
from huhang.storage import read_model_engine
from huhang.web import create_api
from tests.conftest import postgres_settings
from tests.support.auth import client_for, new_signing_key
from tests.support.processes import free_port

RETRY_AFTER_S = 7


def dead_url() -> str:
    """A PostgreSQL URL on a loopback port nobody listens on: connecting is refused at once."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"


def app_raising(failures: dict[str, Callable[[], object]], **settings: object) -> FastAPI:
    """An app of the shared shell whose route ``GET /fail/<name>`` runs ``failures[name]``."""
    router = APIRouter()
    for name, failure in failures.items():
        router.add_api_route(f"/fail/{name}", _endpoint(failure), methods=["GET"])
    values: dict[str, object] = {"storage": "memory", "auth_signing_key": new_signing_key(),
                                 "unavailable_retry_after_s": RETRY_AFTER_S, **settings}
    config = Settings(**values)  # type: ignore[arg-type]
    return create_api("test", config, [router])


def _endpoint(failure: Callable[[], object]) -> Callable[[], dict[str, str]]:
    def run() -> dict[str, str]:
        failure()
        return {"status": "done"}

    return run


def psycopg_refused() -> None:
    psycopg.connect(dead_url(), connect_timeout=2).close()


def sqlalchemy_refused() -> None:
    engine = create_engine(dead_url().replace("postgresql://", "postgresql+psycopg://"), pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def eventsourcing_pool_timeout() -> None:
    """eventsourcing's PostgreSQL datastore with nothing to connect to: its pool gives up after connect_timeout."""
    url = make_url(dead_url())
    datastore = PostgresDatastore("postgres", "127.0.0.1", str(url.port), "postgres", "", connect_timeout=0.3)
    try:
        with datastore.get_connection():
            pass
    finally:
        datastore.close()


def wrapped_refusal() -> None:
    try:
        psycopg_refused()
    except psycopg.OperationalError as exc:
        raise RuntimeError("could not load the child's key") from exc


@pytest.fixture
def locked_sqlite(tmp_path: Path) -> Iterator[Callable[[], None]]:
    """A SQLite file held by another connection's exclusive transaction: writing to it is refused as locked."""
    path = tmp_path / "locked.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    holder.execute("BEGIN EXCLUSIVE")

    def write_through_sqlalchemy() -> None:
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (1)"))
        finally:
            engine.dispose()

    yield write_through_sqlalchemy
    holder.execute("ROLLBACK")
    holder.close()


def assert_unavailable(answer: object, path: str) -> dict[str, object]:
    from httpx import Response

    assert isinstance(answer, Response)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.headers["retry-after"] == str(RETRY_AFTER_S)
    problem: dict[str, object] = answer.json()
    assert problem["type"] == UNAVAILABLE_TYPE
    assert problem["status"] == 503
    assert problem["instance"] == path
    assert f"Retry after {RETRY_AFTER_S} seconds" in str(problem["detail"])
    return problem


def test_an_unreachable_database_answers_503_with_retry_after_whoever_raised_it(
    locked_sqlite: Callable[[], None], caplog: pytest.LogCaptureFixture
) -> None:
    app = app_raising({
        "psycopg": psycopg_refused, "sqlalchemy": sqlalchemy_refused, "eventsourcing": eventsourcing_pool_timeout,
        "sqlite-locked": locked_sqlite, "wrapped": wrapped_refusal,
    })
    with caplog.at_level(logging.WARNING, logger="huhang.problems"), \
            client_for(app, raise_server_exceptions=False) as client:
        for name in ("psycopg", "sqlalchemy", "eventsourcing", "sqlite-locked", "wrapped"):
            assert_unavailable(client.get(f"/fail/{name}"), f"/fail/{name}")
    lines = [r.getMessage() for r in caplog.records if r.name == "huhang.problems"]
    assert len(lines) == 5
    assert "psycopg.OperationalError <- psycopg.OperationalError" in lines[0]
    assert "sqlalchemy.exc.OperationalError <- psycopg.OperationalError" in lines[1]
    assert "eventsourcing.persistence.OperationalError <- psycopg_pool.PoolTimeout" in lines[2]
    assert "sqlite3.OperationalError" in lines[3]
    assert "builtins.RuntimeError <- psycopg.OperationalError" in lines[4]
    # exception types, never messages: a driver's message names hosts and may quote a statement's parameters
    for message in ("refused", "database is locked", "child's key", "127.0.0.1"):
        assert not any(message in line for line in lines), message


def test_faults_a_retry_would_not_cure_stay_500(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'faults.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))

    def missing_table() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))

    def duplicate_key() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))

    app = app_raising({"missing-table": missing_table, "duplicate-key": duplicate_key})
    with client_for(app, raise_server_exceptions=False) as client:
        for name in ("missing-table", "duplicate-key"):
            answer = client.get(f"/fail/{name}")
            assert answer.status_code == 500, (name, answer.text)
            assert answer.headers["content-type"] == PROBLEM_JSON
            assert "retry-after" not in answer.headers
    engine.dispose()


def test_readiness_looks_at_the_database_and_liveness_does_not() -> None:
    down = app_raising({}, storage="postgres", database_url=dead_url())
    with TestClient(down) as anonymous:
        assert_unavailable(anonymous.get("/readyz"), "/readyz")
        assert anonymous.get("/healthz").status_code == 200
    with TestClient(app_raising({})) as anonymous:  # memory: nothing to reach
        assert anonymous.get("/readyz").json() == {"status": "ok", "database": "memory"}


@pytest.mark.integration
def test_readiness_is_200_while_postgresql_answers(postgres_url: str) -> None:
    with TestClient(app_raising({}, storage="postgres", database_url=postgres_url)) as anonymous:
        answer = anonymous.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ok", "database": "postgres"}


@pytest.mark.integration
def test_a_session_terminated_by_postgresql_answers_503_and_the_pool_recovers_by_itself(postgres_url: str) -> None:
    """What a restart does to the connections a read-model engine holds: the server ends them (AdminShutdown). The
    request using one answers 503; the next request gets a fresh connection, without a restart. A connection ended
    while idle in the pool is replaced before use (its socket has the server's farewell to read: no pre-ping)."""
    settings = postgres_settings(postgres_url)
    engine = read_model_engine(settings, f"probe{uuid.uuid4().hex[:6]}")
    pids: list[int] = []

    def terminated_mid_request() -> None:
        with engine.connect() as conn:
            pids.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    def still_works() -> None:
        with engine.connect() as conn:
            pids.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def pooled_connection_killed_between_requests() -> None:
        with engine.connect() as conn:  # the pooled connection, ended from elsewhere while idle in the pool
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        still_works()
        assert pids[-1] != pid

    app = app_raising({
        "terminated": terminated_mid_request, "works": still_works,
        "killed-idle": pooled_connection_killed_between_requests,
    })
    try:
        with client_for(app, raise_server_exceptions=False) as client:
            assert_unavailable(client.get("/fail/terminated"), "/fail/terminated")
            assert client.get("/fail/works").status_code == 200
            assert pids[1] != pids[0]
            answer = client.get("/fail/killed-idle")
            assert answer.status_code == 200, answer.text
    finally:
        engine.dispose()


@pytest.mark.integration
def test_pooled_connections_are_kept_in_a_process_with_many_descriptors_open(postgres_url: str) -> None:
    """The check of a pooled connection (has the server ended it?) works past descriptor 1024, where select() does
    not: a healthy connection is reused, not replaced at every checkout."""
    engine = read_model_engine(postgres_settings(postgres_url), f"probe{uuid.uuid4().hex[:6]}")
    held = []
    try:
        with open(os.devnull) as null:
            held = [os.dup(null.fileno()) for _ in range(1100)]
        pids = []
        for _ in range(3):
            with engine.connect() as conn:
                pids.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        assert len(set(pids)) == 1
    finally:
        for fd in held:
            os.close(fd)
        engine.dispose()
