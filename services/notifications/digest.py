"""The daily digest: one notice per agency and day, counting the day's notices by kind (issue 6, digests).

An agency that does not watch its feed all day reads one line in the morning. **Once per agency and day**: the
notice id is derived from the agency and the day, so running the job twice (a retry, two instances) adds nothing.
Days are China Standard Time days. A digest is about no single case: its ``case_id`` and ``event_id`` are the nil
UUID. Texts in Chinese (zh-CN, the default) and English, with kind codes and counts only.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select

from contracts.agencies import Agency
from contracts.vocabulary import Priority
from huhang.sql import reading
from services.notifications.domain import CHINA_STANDARD_TIME, Notice, NotificationKind
from services.notifications.feed import NotificationFeed, notifications_table

DIGEST_NAMESPACE = uuid.UUID("4d8e1f2a-7b3c-4a9d-8e5f-1c2b3a4d5e6f")
NO_CASE = uuid.UUID(int=0)


def digest_id(agency: Agency, day: date) -> uuid.UUID:
    return uuid.uuid5(DIGEST_NAMESPACE, f"{agency.value}/{day.isoformat()}")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The day in China Standard Time, as UTC instants (what the feed stores on every database)."""
    start = datetime.combine(day, time(), tzinfo=CHINA_STANDARD_TIME).astimezone(UTC)
    return start, start + timedelta(days=1)


def yesterday(now: datetime) -> date:
    return now.astimezone(CHINA_STANDARD_TIME).date() - timedelta(days=1)


def write_digests(feed: NotificationFeed, day: date, now: datetime) -> list[Notice]:
    """A digest for every agency told anything on ``day`` (its own digests not counted); returns those written now
    or before (the same ids)."""
    t = notifications_table
    start, end = day_bounds(day)
    query = (
        select(t.c.agency, t.c.kind, func.count())
        .where(t.c.created_at >= start, t.c.created_at < end, t.c.kind != NotificationKind.daily_digest.value)
        .group_by(t.c.agency, t.c.kind)
    )
    counts: dict[str, Counter[str]] = {}
    with reading(feed.engine) as conn:
        for agency, kind, count in conn.execute(query):
            counts.setdefault(agency, Counter())[kind] = int(count)
    notices = [_digest(Agency(agency), day, kinds, now) for agency, kinds in sorted(counts.items())]
    feed.add(notices)
    return notices


def _digest(agency: Agency, day: date, kinds: Counter[str], now: datetime) -> Notice:
    listed = "，".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    listed_en = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    total = sum(kinds.values())
    return Notice(
        id=digest_id(agency, day), agency=agency, case_id=NO_CASE, event_id=NO_CASE,
        kind=NotificationKind.daily_digest, priority=Priority.routine,
        text_zh=f"{day.isoformat()} 共 {total} 条通知：{listed}",
        text_en=f"{day.isoformat()}: {total} notice(s): {listed_en}.",
        created_at=now,
    )
