"""The benchmarks' PostgreSQL: the machine's test database, a unique schema prefix per run, dropped at the end."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, text

DATABASE_URL = os.environ.get("HUHANG_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def run_prefix(name: str) -> str:
    """A schema prefix of this run's own (``bench_<name>_<random>_``)."""
    return f"bench_{name}_{uuid.uuid4().hex[:8]}_"


def drop_schemas(prefix: str) -> list[str]:
    """Drop every schema whose name starts with ``prefix``; their names."""
    engine = create_engine(DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            names = list(conn.execute(
                text("SELECT schema_name FROM information_schema.schemata WHERE left(schema_name, :n) = :p"),
                {"n": len(prefix), "p": prefix},
            ).scalars())
        for name in names:  # one transaction each: all at once can exhaust the shared lock table
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        return names
    finally:
        engine.dispose()


def analyze_schemas(prefix: str) -> list[str]:
    """``ANALYZE`` every table of the schemas whose names start with ``prefix``; the schemas analysed.

    Without statistics PostgreSQL's planner guesses every table's size from its pages and may join a freshly seeded
    read model by a sequential scan instead of its index. In production autovacuum keeps the statistics; on these
    machines it is off (the CI configuration), so a benchmark that seeds a county analyses it as autovacuum would.
    """
    engine = create_engine(DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT schemaname, tablename FROM pg_tables WHERE left(schemaname, :n) = :p"),
                {"n": len(prefix), "p": prefix},
            ).all()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for schema, table in tables:
                conn.execute(text(f'ANALYZE "{schema}"."{table}"'))
        return sorted({schema for schema, _ in tables})
    finally:
        engine.dispose()


def sessions_started() -> int:
    """PostgreSQL sessions started on the server so far (``pg_stat_database.sessions``, PostgreSQL 14+): the
    difference over a step is how many backends the platform opened in it (each a process start of its own)."""
    engine = create_engine(DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT coalesce(sum(sessions), 0) FROM pg_stat_database")).scalar_one())
    finally:
        engine.dispose()
