"""The notification feed as Server-Sent Events, for live consoles (the WHATWG HTML ``text/event-stream`` format).

Each notice is one event: ``id:`` is its feed sequence (the same cursor as the polling feed's ``after``),
``event: notification``, ``data:`` the notice as JSON on one line. A reconnecting browser sends the last id back
in ``Last-Event-ID`` and misses nothing. A comment line (``: heartbeat``) goes out when nothing happened for a
while, so that proxies keep the connection and the console knows it is live. The stream ends after
``notifications_stream_max_s`` (the client reconnects where it was): no connection is held forever, and a server
restart or a rolling deploy loses nothing. The feed is read from the database (not from memory), so every instance
of the service streams the same events.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool

from services.notifications.feed import FeedFilter, NotificationFeed
from services.notifications.schemas import NotificationPublic

RECONNECT_MS = 3000


@dataclass(frozen=True)
class StreamPolicy:
    heartbeat_s: float
    poll_s: float
    max_s: float
    batch: int = 100


def sse_event(row: dict[str, Any]) -> str:
    """One notice as an SSE event (its JSON has no newline, so one ``data:`` line)."""
    data = NotificationPublic.model_validate(row).model_dump_json()
    return f"id: {row['sequence']}\nevent: notification\ndata: {data}\n\n"


async def notification_events(
    feed: NotificationFeed, agency: str, after: int, where: FeedFilter, policy: StreamPolicy,
    disconnected: Callable[[], Awaitable[bool]], clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[str]:
    """The stream: what is in the feed after ``after``, then what arrives, until ``max_s`` or the client leaves."""
    yield f"retry: {RECONNECT_MS}\n: stream of {json.dumps(agency)} from {after}\n\n"
    started = last_sent = clock()
    while clock() - started < policy.max_s and not await disconnected():
        rows = await run_in_threadpool(feed.for_agency, agency, after=after, limit=policy.batch, where=where)
        for row in rows:
            yield sse_event(row)
            after = row["sequence"]
        if rows:
            last_sent = clock()
            if len(rows) == policy.batch:
                continue  # more waiting: no pause
        elif clock() - last_sent >= policy.heartbeat_s:
            yield ": heartbeat\n\n"
            last_sent = clock()
        await asyncio.sleep(policy.poll_s)
