"""Outbound webhooks, the durable part: subscriptions, their sealed secrets, and the delivery queue.

``webhook_subscriptions`` holds one row per endpoint. Its signing secrets must be usable to sign, so they cannot be
hashed: they are sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the service's data key
(``HUHANG_DATA_KEY``, huhang/personal.py), with the subscription id as associated data. A copy of the database alone
signs nothing. A rotation keeps the previous secret valid for ``webhook_secret_overlap_s``, and both sign meanwhile.

``webhook_deliveries`` is the queue: one row per (subscription, event), unique, so a redelivered integration event
queues nothing twice. ``seq`` orders it. A row is ``pending`` (due at ``next_attempt_at``), ``inflight`` (claimed
until ``lease_until``: a deliverer killed mid-delivery leaves it to be claimed again when the lease runs out),
``delivered`` or ``dead`` (dead-lettered; replayable). The webhook-id is the event id, so a repeat after a crash is
recognised by the receiver: exactly once in effect.

``webhook_case_areas`` remembers each case's township and village, for events that do not carry the area.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from huhang.sql import create_tables, dialect_insert, insert_ignoring_duplicates, reading
from services.notifications.webhooks_model import Area, Filter, area_of, new_secret, wants

metadata = MetaData()
subscriptions_table = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("agency", String(40), nullable=False, index=True),
    Column("township", String(60)),
    Column("village", String(60)),
    Column("event_types", Text, nullable=False),  # a JSON list; empty: every type
    Column("url", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", String(40)),  # "disabled" by the agency, or "gone" (the endpoint answered 410)
    Column("secret", LargeBinary, nullable=False),  # sealed
    Column("previous_secret", LargeBinary),  # sealed; valid until previous_secret_until
    Column("previous_secret_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
deliveries_table = Table(
    "webhook_deliveries",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("subscription_id", String(36), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("case_id", String(64), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_status", Integer),  # the last HTTP status; null for a timeout or a connection failure
    Column("last_error", String(40)),  # a code: "timeout", "connection", "http_503", ... (never a response body)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_subscription_event"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_case", "subscription_id", "case_id", "seq"),
    sqlite_autoincrement=True,
)
case_areas_table = Table(
    "webhook_case_areas",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("township", String(60), nullable=False),
    Column("village", String(60), nullable=False),
)

PENDING, INFLIGHT, DELIVERED, DEAD = "pending", "inflight", "delivered", "dead"
OPEN = (PENDING, INFLIGHT)


def utc(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: every time stored here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class SecretBox:
    """Seals webhook secrets with a key of their own, derived from the service's data key."""

    def __init__(self, data_key: bytes) -> None:
        key = HKDF(hashes.SHA256(), 32, salt=None, info=b"huhang webhook secrets v1").derive(data_key)
        self._aead = AESGCM(key)

    def seal(self, subscription_id: str, secret: str) -> bytes:
        nonce = uuid.uuid4().bytes[:12]
        return nonce + self._aead.encrypt(nonce, secret.encode(), subscription_id.encode())

    def open(self, subscription_id: str, sealed: bytes) -> str:
        return self._aead.decrypt(sealed[:12], sealed[12:], subscription_id.encode()).decode()


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed by a deliverer: what to send, where, signed with which secrets."""

    seq: int
    id: str
    subscription_id: str
    event_id: str
    body: str
    attempts: int  # including this one
    url: str
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class Result:
    """The outcome of one attempt: ``status`` is the row's new status (delivered, pending again, or dead)."""

    seq: int
    subscription_id: str
    status: str
    http_status: int | None
    error: str | None
    recorded_at: datetime
    next_attempt_at: datetime | None = None  # when pending again
    gone: bool = False  # 410: the subscription is disabled

    @property
    def finished_at(self) -> datetime | None:
        return None if self.status == PENDING else self.recorded_at


class WebhookStore:
    def __init__(self, engine: Engine, box: SecretBox, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.box = box
        self.clock = clock or _now  # when a queued delivery is first due (tests move time on)
        self.wake = threading.Event()  # set when deliveries are queued: the deliverer looks at once
        create_tables(metadata, engine)

    # --- subscriptions ------------------------------------------------------------------------------------------

    def create(self, agency: Agency, url: str, event_types: Sequence[str], township: str | None,
               village: str | None, now: datetime) -> tuple[dict[str, Any], str]:
        """The new subscription and its secret (shown once: only the sealed form is kept)."""
        subscription_id = str(uuid.uuid4())
        secret = new_secret()
        row = {
            "id": subscription_id, "agency": agency.value, "township": township, "village": village,
            "event_types": json.dumps(sorted(set(event_types))), "url": url, "enabled": True,
            "disabled_reason": None, "secret": self.box.seal(subscription_id, secret), "previous_secret": None,
            "previous_secret_until": None, "created_at": now, "updated_at": now,
        }
        with self.engine.begin() as conn:
            conn.execute(subscriptions_table.insert().values(row))
        return row, secret

    def of_agency(self, agency: Agency) -> list[dict[str, Any]]:
        t = subscriptions_table
        with reading(self.engine) as conn:
            rows = conn.execute(select(t).where(t.c.agency == agency.value).order_by(t.c.created_at, t.c.id))
            return [dict(r._mapping) for r in rows]

    def get(self, agency: Agency, subscription_id: str) -> dict[str, Any] | None:
        t = subscriptions_table
        with reading(self.engine) as conn:
            row = conn.execute(
                select(t).where(t.c.id == subscription_id, t.c.agency == agency.value)
            ).first()
        return None if row is None else dict(row._mapping)

    def update(self, agency: Agency, subscription_id: str, changes: Mapping[str, Any],
               now: datetime) -> dict[str, Any] | None:
        values = dict(changes)
        if "event_types" in values:
            values["event_types"] = json.dumps(sorted(set(values["event_types"])))
        if "enabled" in values:
            values["disabled_reason"] = None if values["enabled"] else "disabled"
        t = subscriptions_table
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == subscription_id, t.c.agency == agency.value)
                         .values(**values, updated_at=now))
        self.wake.set()
        return self.get(agency, subscription_id)

    def rotate(self, agency: Agency, subscription_id: str, overlap_s: float, now: datetime) -> str | None:
        """A new secret; the current one stays valid (and signs too) for ``overlap_s``. ``None``: no such one."""
        t = subscriptions_table
        secret = new_secret()
        with self.engine.begin() as conn:
            current = conn.execute(select(t.c.secret).where(
                t.c.id == subscription_id, t.c.agency == agency.value).with_for_update()).scalar()
            if current is None:
                return None
            conn.execute(update(t).where(t.c.id == subscription_id).values(
                secret=self.box.seal(subscription_id, secret), previous_secret=current,
                previous_secret_until=now + timedelta(seconds=overlap_s), updated_at=now,
            ))
        return secret

    def delete(self, agency: Agency, subscription_id: str) -> bool:
        t = subscriptions_table
        with self.engine.begin() as conn:
            gone = conn.execute(delete(t).where(t.c.id == subscription_id, t.c.agency == agency.value)).rowcount
            if gone:
                conn.execute(delete(deliveries_table).where(deliveries_table.c.subscription_id == subscription_id))
        return bool(gone)

    def secrets_of(self, row: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
        """The secrets that sign now: the current one, and the previous one during a rotation's overlap."""
        found = [self.box.open(row["id"], row["secret"])]
        until = utc(row["previous_secret_until"])
        if row["previous_secret"] is not None and until is not None and now < until:
            found.append(self.box.open(row["id"], row["previous_secret"]))
        return tuple(found)

    # --- queueing (the subscription fed by the integration events) ----------------------------------------------

    def handle(self, events: Sequence[CloudEvent]) -> None:
        """Queue a delivery for every enabled subscription that wants each event (idempotent on the event id)."""
        t = subscriptions_table
        with self.engine.begin() as conn:
            subscriptions = [dict(r._mapping) for r in conn.execute(select(t).where(t.c.enabled))]
            areas = self._areas(conn, events)
            now = self.clock()
            rows = []
            for event in events:
                area = areas.get(event.subject, Area(None, None))
                for s in subscriptions:
                    if wants(_filter(s), event, area):
                        rows.append(_delivery_row(s["id"], event, now))
            insert_ignoring_duplicates(conn, deliveries_table, rows)
        if rows:
            self.wake.set()

    @staticmethod
    def _areas(conn: Connection, events: Sequence[CloudEvent]) -> dict[str, Area]:
        """The area of each event's case: the event's own, else the one remembered from an earlier event."""
        known: dict[str, Area] = {}
        for event in events:
            area = area_of(event)
            if area.township is not None and area.village is not None:
                known[event.subject] = area  # the latest in the batch (a merge may move a case)
        if known:
            t = case_areas_table
            insert = dialect_insert(conn, t)
            conn.execute(  # one statement, many parameter sets
                insert.on_conflict_do_update(index_elements=[t.c.case_id], set_={
                    "township": insert.excluded.township, "village": insert.excluded.village}),
                [{"case_id": c, "township": a.township, "village": a.village} for c, a in known.items()],
            )
        missing = {e.subject for e in events} - set(known)
        if missing:
            t = case_areas_table
            for case_id, township, village in conn.execute(
                select(t.c.case_id, t.c.township, t.c.village).where(t.c.case_id.in_(missing))
            ):
                known[case_id] = Area(township, village)
        return known

    # --- delivering -----------------------------------------------------------------------------------------------

    def claim(self, now: datetime, lease_s: float, per_endpoint: int, busy: Mapping[str, int],
              limit: int) -> list[Claimed]:
        """Up to ``limit`` due deliveries, at most ``per_endpoint`` in flight per subscription (counting ``busy``),
        taken round-robin across subscriptions; never a delivery while an earlier one of the same case is still
        pending or in flight for that subscription. Claimed rows are leased until ``now + lease_s``."""
        if limit <= 0:
            return []
        d, s = deliveries_table, subscriptions_table
        earlier = d.alias("earlier")
        due = or_(and_(d.c.status == PENDING, d.c.next_attempt_at <= now),
                  and_(d.c.status == INFLIGHT, d.c.lease_until < now))
        blocked = exists().where(
            earlier.c.subscription_id == d.c.subscription_id, earlier.c.case_id == d.c.case_id,
            earlier.c.seq < d.c.seq, earlier.c.status.in_(OPEN),
        )
        rank = func.row_number().over(partition_by=d.c.subscription_id, order_by=d.c.seq).label("rank")
        candidates = (select(d.c.seq, d.c.subscription_id, rank).join(s, s.c.id == d.c.subscription_id)
                      .where(s.c.enabled, due, ~blocked).subquery())
        query = (select(candidates.c.seq, candidates.c.subscription_id)
                 .where(candidates.c.rank <= per_endpoint).order_by(candidates.c.rank, candidates.c.seq))
        with self.engine.begin() as conn:
            taken: dict[str, int] = {}
            picked: list[int] = []
            for seq, subscription_id in conn.execute(query):
                if busy.get(subscription_id, 0) + taken.get(subscription_id, 0) >= per_endpoint:
                    continue
                taken[subscription_id] = taken.get(subscription_id, 0) + 1
                picked.append(seq)
                if len(picked) >= limit:
                    break
            if not picked:
                return []
            claimed = conn.execute(
                update(d).where(d.c.seq.in_(picked), due)
                .values(status=INFLIGHT, lease_until=now + timedelta(seconds=lease_s), attempts=d.c.attempts + 1)
                .returning(d.c.seq, d.c.id, d.c.subscription_id, d.c.event_id, d.c.body, d.c.attempts)
            ).all()
            subs = {r.id: dict(r._mapping) for r in conn.execute(
                select(s).where(s.c.id.in_({c.subscription_id for c in claimed})))}
        return sorted((
            Claimed(c.seq, c.id, c.subscription_id, c.event_id, c.body, c.attempts, subs[c.subscription_id]["url"],
                    self.secrets_of(subs[c.subscription_id], now))
            for c in claimed
        ), key=lambda c: c.seq)

    def record(self, results: Sequence[Result]) -> None:
        """The outcomes of many attempts in one transaction (the deliverer writes them in batches). Only rows still
        in flight change: a row whose lease ran out and was claimed again is the newer claim's to finish."""
        if not results:
            return
        d, t = deliveries_table, subscriptions_table
        finish = update(d).where(d.c.seq == bindparam("r_seq"), d.c.status == INFLIGHT).values(
            status=bindparam("r_status"), lease_until=None, last_status=bindparam("r_http"),
            last_error=bindparam("r_error"), finished_at=bindparam("r_finished"),
            next_attempt_at=func.coalesce(bindparam("r_next", type_=DateTime(timezone=True)), d.c.next_attempt_at),
        )
        with self.engine.begin() as conn:
            conn.execute(finish, [  # one statement, many parameter sets (executemany)
                {"r_seq": r.seq, "r_status": r.status, "r_http": r.http_status, "r_error": r.error,
                 "r_finished": r.finished_at, "r_next": r.next_attempt_at}
                for r in results
            ])
            for subscription_id in {r.subscription_id for r in results if r.gone}:
                conn.execute(update(t).where(t.c.id == subscription_id).values(
                    enabled=False, disabled_reason="gone", updated_at=max(r.finished_at or r.recorded_at
                                                                         for r in results)))
        self.wake.set()  # the cases' next deliveries may go now

    # --- dead letters and replay ----------------------------------------------------------------------------------

    def deliveries(self, subscription_id: str, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        d = deliveries_table
        query = select(d).where(d.c.subscription_id == subscription_id)
        if status is not None:
            query = query.where(d.c.status == status)
        with reading(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(d.c.seq).limit(limit)).all()]

    def replay(self, subscription_id: str, delivery_id: str, now: datetime) -> bool:
        """A dead-lettered delivery queued again, with a fresh attempt budget. ``False``: no such dead letter."""
        d = deliveries_table
        with self.engine.begin() as conn:
            done = conn.execute(update(d).where(
                d.c.id == delivery_id, d.c.subscription_id == subscription_id, d.c.status == DEAD
            ).values(**_requeued(now))).rowcount
        self.wake.set()
        return bool(done)

    def replay_since(self, subscription_id: str, since: datetime, now: datetime) -> int:
        """Every delivered or dead-lettered event since ``since`` (event time) sent again, with its own webhook-id
        (a receiver that kept it recognises it). Returns how many were queued."""
        d = deliveries_table
        with self.engine.begin() as conn:
            done = conn.execute(update(d).where(
                d.c.subscription_id == subscription_id, d.c.event_time >= since, d.c.status.in_((DELIVERED, DEAD))
            ).values(**_requeued(now))).rowcount
        self.wake.set()
        return int(done)


def _now() -> datetime:
    return datetime.now(UTC)


def _requeued(now: datetime) -> dict[str, Any]:
    return {"status": PENDING, "attempts": 0, "next_attempt_at": now, "lease_until": None, "finished_at": None}


def _filter(row: Mapping[str, Any]) -> Filter:
    return Filter(Agency(row["agency"]), frozenset(json.loads(row["event_types"])), row["township"], row["village"])


def delivery_id(subscription_id: str, event_id: str) -> str:
    """Derived, so that the same (subscription, event) is the same delivery wherever it is computed."""
    return str(uuid.uuid5(uuid.UUID(subscription_id), event_id))


def _delivery_row(subscription_id: str, event: CloudEvent, now: datetime) -> dict[str, Any]:
    return {
        "id": delivery_id(subscription_id, str(event.id)), "subscription_id": subscription_id,
        "event_id": str(event.id), "case_id": event.subject, "event_type": event.type,  # type: ignore[attr-defined]
        "event_time": event.time, "body": event.model_dump_json(), "status": PENDING, "attempts": 0,
        "next_attempt_at": now, "lease_until": None, "last_status": None, "last_error": None, "created_at": now,
        "finished_at": None,
    }
