"""Apply the indicators tables' migrations (alembic, ``services/indicators/migrations/``) to an engine.

Applied at start by the service and by ``huhang indicators migrate``; idempotent (alembic records the head in
``ind_alembic_version``), and safe when an API and its worker start together (PostgreSQL: an advisory lock;
SQLite: ``racing_ddl``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from huhang.sql import racing_ddl

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x696E6469  # "indi": PostgreSQL advisory lock key of this migration


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the indicators tables up to ``revision``."""

    def run() -> None:
        config = alembic_config(engine)
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one migrator at a time; the others then find the head
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, revision)

    racing_ddl(run)
