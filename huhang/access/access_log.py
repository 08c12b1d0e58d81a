"""The access log: every read of a child's file or a case, every search and export, and every refusal.

Who (the principal's pseudonymous subject and agency), when, which record (case or child id), through which
route, for what purpose (a code), and the outcome (allowed, denied, break-glass). Never personal data: no names,
no query text beyond codes, no request bodies.

Cheap on the request path: a request only puts an entry on an in-memory queue; a background writer inserts the
queued entries in batches every ``flush_interval_s``. An entry queued when the process dies is lost (the
request's answer did not wait for it): the window is the flush interval.

Each service keeps the log of its own routes in its own read-model store and serves it at
``GET /v1/access-log``. In the distributed form an auditor reads each service's log (intake, referral,
guardianship, notifications at their own base URLs) and merges them by time; in the embedded form the one
process keeps one log.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Column, DateTime, Engine, Index, Integer, MetaData, String, Table, insert, select

from huhang.sql import create_tables, reading

logger = logging.getLogger(__name__)

metadata = MetaData()
access_log_table = Table(
    "access_log",
    metadata,
    Column("entry_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("agency", String(40), nullable=False),
    Column("action", String(20), nullable=False),
    Column("route", String(200), nullable=False),
    Column("case_id", String(36), nullable=True),
    Column("child_id", String(36), nullable=True),
    Column("purpose", String(40), nullable=True),
    Column("outcome", String(20), nullable=False),
    Index("ix_access_log_case", "case_id", "at"),
    Index("ix_access_log_child", "child_id", "at"),
    Index("ix_access_log_subject", "subject", "at"),
    Index("ix_access_log_at", "at"),
)


@dataclass(frozen=True)
class AccessEntry:
    at: datetime
    subject: str
    agency: str
    action: str  # read, write, search, export
    route: str  # the route's path template (ids are in case_id / child_id, never in free text)
    outcome: str  # allowed, denied, break-glass
    case_id: str | None = None
    child_id: str | None = None
    purpose: str | None = None


class AccessLog:
    """A buffered, append-only log in a service's read-model store."""

    def __init__(self, engine: Engine, flush_interval_s: float = 0.5, max_batch: int = 1000) -> None:
        self.engine = engine
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[AccessEntry] = queue.SimpleQueue()
        self._write_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._stop = threading.Event()
        create_tables(metadata, engine)

    def record(self, entry: AccessEntry) -> None:
        """Queue an entry: the only work on the request's path. The writer starts with the first entry."""
        self._queue.put(entry)
        if self._writer is None:
            self._start_writer()

    def _start_writer(self) -> None:
        with self._start_lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="access-log-writer", daemon=True)
                self._writer.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                self.flush()
            except Exception as exc:  # a failed batch is kept for the next try; the writer goes on
                logger.warning("access log flush failed: %s", type(exc).__name__)

    def flush(self) -> int:
        """Write every queued entry now (the writer does it every interval; reads of the log do it first)."""
        written = 0
        with self._write_lock:
            while True:
                batch = self._drain()
                if not batch:
                    return written
                try:
                    with self.engine.begin() as conn:
                        conn.execute(insert(access_log_table), [asdict(e) for e in batch])
                except Exception:
                    for entry in batch:  # put back, so that nothing is lost to a passing database error
                        self._queue.put(entry)
                    raise
                written += len(batch)

    def _drain(self) -> list[AccessEntry]:
        batch: list[AccessEntry] = []
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def close(self) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=5)
        self.flush()

    def entries(
        self,
        *,
        case_id: UUID | None = None,
        child_id: UUID | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Entries oldest first, after the entry id ``after`` (the paging cursor)."""
        self.flush()
        t = access_log_table
        query = select(t).where(t.c.entry_id > after)
        if case_id is not None:
            query = query.where(t.c.case_id == str(case_id))
        if child_id is not None:
            query = query.where(t.c.child_id == str(child_id))
        if subject is not None:
            query = query.where(t.c.subject == subject)
        if since is not None:
            query = query.where(t.c.at >= since.astimezone(UTC))
        query = query.order_by(t.c.entry_id).limit(limit)
        with reading(self.engine) as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            if row["at"].tzinfo is None:
                row["at"] = row["at"].replace(tzinfo=UTC)
        return rows
