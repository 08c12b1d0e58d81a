"""The indicators read models' writer: the inbox log, the live projection, and the rebuild from the log.

``handle`` is the Subscription handler: a batch of integration events is kept in the inbox (idempotent on the
event id: a redelivered event is neither kept twice nor projected twice) and projected, in one transaction.
``rebuild`` empties read models and replays the inbox in its order (the order live handling saw) through the same
rules applied in bulk (``replay.py``), so a rebuilt model equals the live one. (Writing on a second thread
while reading was measured slower on a busy 2-core machine: the GIL and the CPUs are shared.) It loads the rows
without the tables' secondary indexes (dropped first, made again at the end, also when the replay fails): keeping
several indexes up to date row by row cost more than building each once over the loaded table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, select, text

from contracts.envelope import CloudEvent
from services.indicators import tables as t
from services.indicators.projection import WANTED_TYPES, project, utc
from services.indicators.replay import CONTACT_TYPES, BulkReplay, load_contacts

logger = logging.getLogger(__name__)
REPLAY_BATCH = 5000


class IndicatorStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def handle(self, events: Sequence[CloudEvent]) -> None:
        """Keep and project a batch of integration events (ids only ever logged)."""
        self.ingest([e.model_dump(mode="json") for e in events])

    def ingest(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Keep and project events given as JSON; answers how many were new."""
        if not events:
            return 0
        ids = [str(e["id"]) for e in events]
        with self.engine.begin() as conn:
            seen = set(conn.execute(select(t.inbox.c.event_id).where(t.inbox.c.event_id.in_(ids))).scalars())
            fresh: list[Mapping[str, Any]] = []
            for e in events:
                if str(e["id"]) not in seen:
                    seen.add(str(e["id"]))
                    fresh.append(e)
            if fresh:
                conn.execute(t.inbox.insert(), [
                    {"event_id": str(e["id"]), "type": e["type"], "time": utc(e["time"]),
                     "payload": json.dumps(e, ensure_ascii=False, separators=(",", ":"))}
                    for e in fresh
                ])
                for e in fresh:
                    project(conn, e)
        return len(fresh)

    def inbox_size(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.inbox)).scalar_one())

    def replay_size(self) -> int:
        """How many events of the inbox a rebuild replays (those of the types the read models follow)."""
        with self.engine.connect() as conn:
            return int(conn.execute(
                select(func.count()).select_from(t.inbox).where(t.inbox.c.type.in_(WANTED_TYPES))
            ).scalar_one())

    def read_log(
        self, batch: int = REPLAY_BATCH, types: Iterable[str] = WANTED_TYPES
    ) -> Iterable[list[dict[str, Any]]]:
        """The inbox in its order, decoded, a batch at a time (the raw read a rebuild is measured against); only
        events of ``types`` (default: every type the read models follow)."""
        after = 0
        wanted = sorted(types)
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(t.inbox.c.seq, t.inbox.c.payload).where(t.inbox.c.seq > after)
                    .where(t.inbox.c.type.in_(wanted)).order_by(t.inbox.c.seq).limit(batch)
                ).all()
            if not rows:
                return
            after = rows[-1].seq
            yield [json.loads(r.payload) for r in rows]

    def rebuild(
        self, models: Iterable[str] | None = None, progress: Callable[[int], None] | None = None
    ) -> int:
        """Empty the named read models (all when ``None``) and replay the inbox into them; answers the events read.

        Raises ``KeyError`` for an unknown model name.
        """
        names = frozenset(models) if models is not None else frozenset(t.MODELS)
        for name in names:
            if name not in t.MODELS:
                raise KeyError(name)
        tables = [table for name in sorted(names) for table in t.MODELS[name]]
        with self.engine.begin() as conn:
            _empty(conn, tables)
            for table in tables:
                for index in table.indexes:
                    index.drop(conn, checkfirst=True)
        done = 0
        try:
            replay = BulkReplay(names)
            # contacts (most of a county's events) are replayed in the database, in one statement; the present
            # rows then take their latest days from the contacts table rather than from each contact event
            with self.engine.begin() as conn:
                contacts = load_contacts(conn) if "contacts" in names else 0
            if contacts:
                done += contacts
                if progress is not None:
                    progress(contacts)
            for batch in self.read_log(types=WANTED_TYPES - CONTACT_TYPES):
                with self.engine.begin() as conn:
                    for e in batch:
                        replay.feed(conn, e)
                done += len(batch)
                if progress is not None:
                    progress(len(batch))
            with self.engine.begin() as conn:
                if "present" in names:
                    replay.merge_latest_contacts(conn)
                replay.finish(conn)
        finally:
            with self.engine.begin() as conn:
                for table in tables:
                    for index in table.indexes:
                        index.create(conn, checkfirst=True)
            _refresh_statistics(self.engine, tables)
        logger.info("indicators rebuilt: models=%s events=%d", ",".join(sorted(names)), done)
        return done




def _refresh_statistics(engine: Engine, tables: Iterable[Table]) -> None:
    """Fresh planner statistics for the reloaded tables; on PostgreSQL also the visibility map (``VACUUM``), so
    that the queries' covering indexes are read alone (index-only scans) rather than with every heap page."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.execute(text(f"VACUUM (ANALYZE) {table.name}"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def _empty(conn: Connection, tables: Iterable[Table]) -> None:
    """Empty read-model tables: ``TRUNCATE`` on PostgreSQL (no dead rows left to vacuum), ``DELETE`` on SQLite."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("TRUNCATE " + ", ".join(table.name for table in tables)))
    else:
        for table in tables:
            conn.execute(delete(table))
