"""Shared fixtures: settings per storage, PostgreSQL isolation per run, the Kafka-protocol broker, Prefect."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from huhang.settings import Settings

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

TEST_DATABASE_URL = os.environ.get("HUHANG_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
RUN_PREFIX = f"t{uuid.uuid4().hex[:8]}_"


def _drop_run_schemas() -> None:
    """One transaction per schema: dropping hundreds of schemas' tables at once takes a lock on every object and
    exhausts PostgreSQL's shared lock table (max_locks_per_transaction)."""
    engine = create_engine(TEST_DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            names = list(conn.execute(
                text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p"),
                {"p": f"{RUN_PREFIX}%"},
            ).scalars())
        for name in names:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The machine's PostgreSQL; every schema this run creates starts with RUN_PREFIX and is dropped after."""
    yield TEST_DATABASE_URL
    _drop_run_schemas()


def postgres_settings(postgres_url: str, **overrides: object) -> Settings:
    prefix = f"{RUN_PREFIX}{uuid.uuid4().hex[:6]}_"
    return Settings(storage="postgres", database_url=postgres_url, schema_prefix=prefix, **overrides)  # type: ignore[arg-type]


def sqlite_or_postgres_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """For a fixture parametrized with "sqlite" and "postgres": the settings of a store that outlives its process."""
    if request.param == "sqlite":
        return Settings(storage="sqlite", data_dir=tmp_path / "data")
    return postgres_settings(request.getfixturevalue("postgres_url"), data_dir=tmp_path / "data")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_storage_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The same application tests on every store: in memory, SQLite files, PostgreSQL."""
    if request.param == "memory":
        return Settings(storage="memory")
    if request.param == "sqlite":
        return Settings(storage="sqlite", data_dir=tmp_path / "data")
    request.applymarker(pytest.mark.integration)
    return postgres_settings(request.getfixturevalue("postgres_url"))


@pytest.fixture
def memory_settings() -> Settings:
    return Settings(storage="memory")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    from tests.support.broker import running_broker

    with running_broker() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
