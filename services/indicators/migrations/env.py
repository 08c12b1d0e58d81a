"""The alembic environment of the indicators tables (``services/indicators/migrations.py`` runs it).

Run programmatically only: the connection comes in ``config.attributes["connection"]``, so the same code migrates
a SQLite file, a PostgreSQL schema (the connection's search_path) and a test's temporary engine.
"""

from __future__ import annotations

from alembic import context

from services.indicators.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=metadata, version_table="ind_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
