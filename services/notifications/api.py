"""Notifications' HTTP API: an agency's feed of what it must know, polled with a cursor or streamed (SSE)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from contracts.agencies import Agency
from contracts.events import CONTRACT_EVENTS
from huhang.access.guards import FORBIDDEN_DOC, AgencyQueue, PlatformJob
from huhang.problems import PROBLEM_RESPONSES, FieldError, Unprocessable
from huhang.responses import model_response
from services.notifications.digest import write_digests, yesterday
from services.notifications.feed import FeedFilter, NotificationFeed
from services.notifications.schemas import NotificationsPublic
from services.notifications.stream import StreamPolicy, notification_events

EVENT_TYPES = frozenset(cls.event_type for cls in CONTRACT_EVENTS)
MAX_SEQUENCE = 2**63 - 1  # the feed's sequences are BIGINTs: a larger cursor is a 422, not a database error


async def get_feed(request: Request) -> NotificationFeed:
    # async: it only reads app.state, and a plain def dependency costs a thread-pool hop per request
    return request.app.state.feed


def get_stream_policy(request: Request) -> StreamPolicy:
    return request.app.state.feed_stream


async def feed_filter(  # async: checks only, no I/O (a plain def costs a thread-pool hop)
    event_types: Annotated[list[str] | None, Query(
        description="Only notices made from these event types (repeat the parameter); all when left out.",
        max_length=100,
    )] = None,
    township: Annotated[str | None, Query(max_length=60, description="Only cases of this township.")] = None,
    village: Annotated[str | None, Query(max_length=60, description="Only cases of this village (needs "
                                                                     "`township`).")] = None,
) -> FeedFilter:
    """The webhook subscriptions' filters, checked the same way."""
    unknown = sorted(set(event_types or ()) - EVENT_TYPES)
    if unknown:
        raise Unprocessable("Unknown event type.", errors=[
            FieldError(field="event_types", reason=f"unknown event type {t!r}") for t in unknown
        ])
    if village is not None and township is None:
        raise Unprocessable("A village filter needs its township.",
                            errors=[FieldError(field="township", reason="required with village")])
    return FeedFilter(frozenset(event_types or ()), township, village)


FeedDep = Annotated[NotificationFeed, Depends(get_feed)]
FilterDep = Annotated[FeedFilter, Depends(feed_filter)]
StreamPolicyDep = Annotated[StreamPolicy, Depends(get_stream_policy)]

router = APIRouter(prefix="/v1", tags=["notifications"])


@router.get(
    "/agencies/{agency}/notifications",
    response_model=NotificationsPublic,
    responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC},
    summary="An agency's notification feed",
)
def agency_notifications(
    agency: Agency,
    feed: FeedDep,
    _: AgencyQueue,
    where: FilterDep,
    after: Annotated[int, Query(ge=0, le=MAX_SEQUENCE,
                                description="The last `sequence` already seen; 0 from the start.")] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """Oldest first: new referrals to act on, and what became of the cases the agency reported.
    Poll with `after` set to `next_cursor`. Filters as the webhook subscriptions: `event_types`, `township`,
    `village`."""
    rows = feed.for_agency(agency.value, after=after, limit=limit, where=where)
    return model_response(NotificationsPublic, {
        "agency": agency, "items": rows, "next_cursor": rows[-1]["sequence"] if rows else after,
    })


@router.get(
    "/agencies/{agency}/notifications/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events: `id:` the sequence, "
              "`event: notification`, `data:` the notice as JSON; `: heartbeat` comments."},
        **PROBLEM_RESPONSES, **FORBIDDEN_DOC,
    },
    summary="An agency's notification feed, live (Server-Sent Events)",
)
async def agency_notification_stream(
    request: Request,
    agency: Agency,
    feed: FeedDep,
    _: AgencyQueue,
    where: FilterDep,
    policy: StreamPolicyDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", description="Sent by a reconnecting "
                                                "EventSource: the stream resumes after it.")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_SEQUENCE,
                                description="Where to start when no `Last-Event-ID` (0: the start).")] = 0,
) -> StreamingResponse:
    """For live consoles (`EventSource`): the feed after the cursor, then each notice as it arrives. The stream ends
    after a few minutes; the browser reconnects by itself with `Last-Event-ID` and misses nothing."""
    if last_event_id is not None:
        text = last_event_id.strip()
        if not (text.isascii() and text.isdigit() and int(text) <= MAX_SEQUENCE):  # "²" is a digit to isdigit
            raise Unprocessable("Last-Event-ID must be a feed sequence.",
                                errors=[FieldError(field="Last-Event-ID", reason="must be a non-negative integer")])
        after = int(last_event_id)
    events = notification_events(feed, agency.value, after, where, policy, request.is_disconnected)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class DigestRun(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"day": "2026-11-28"}]})

    day: date | None = Field(default=None, ge=date(2000, 1, 1), le=date(2999, 12, 31),
                             description="The day (China Standard Time) to digest; yesterday if left out.")


class DigestsWritten(BaseModel):
    day: date
    agencies: list[Agency] = Field(description="The agencies given a digest of the day (once per agency and day).")


@router.post(
    "/notification-digests",
    response_model=DigestsWritten,
    responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC},
    summary="Write the daily digests (the platform's daily job)",
)
def write_daily_digests(body: DigestRun, feed: FeedDep, _: PlatformJob) -> DigestsWritten:
    """One `daily_digest` notice per agency told anything that day, counting its notices by kind. Running it again
    for the same day adds nothing."""
    now = datetime.now(UTC)
    day = body.day or yesterday(now)
    return DigestsWritten(day=day, agencies=[n.agency for n in write_digests(feed, day, now)])
