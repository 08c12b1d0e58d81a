"""Notifications' HTTP API: an agency's feed of what it must know."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from contracts.agencies import Agency
from huhang.access.guards import FORBIDDEN_DOC, AgencyQueue
from huhang.problems import PROBLEM_RESPONSES
from services.notifications.feed import NotificationFeed
from services.notifications.schemas import NotificationPublic, NotificationsPublic


def get_feed(request: Request) -> NotificationFeed:
    return request.app.state.feed


FeedDep = Annotated[NotificationFeed, Depends(get_feed)]

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
    after: Annotated[int, Query(ge=0, description="The last `sequence` already seen; 0 from the start.")] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> NotificationsPublic:
    """Oldest first: new referrals to act on, and what became of the cases the agency reported.
    Poll with `after` set to `next_cursor`."""
    rows = feed.for_agency(agency.value, after=after, limit=limit)
    return NotificationsPublic(
        agency=agency,
        items=[NotificationPublic.model_validate(r) for r in rows],
        next_cursor=rows[-1]["sequence"] if rows else after,
    )
