"""Parked (poison) events over HTTP, for operators (issue 7; the table and the rules in ``huhang.parking``).

- ``GET /v1/parked-events``: what this service's consumers parked, with the reason (platform administrators,
  auditors and the platform's workers);
- ``POST /v1/parked-events/{parked_id}/retry``: hand one back to its consumer, which handles it alone at its next
  look (administrators and the platform).

Each service's API serves the parked events of its own store; referral's also the router's (the ``workflows``
store: the router opens referrals); the embedded app serves every store. The events are integration events (ids and
codes only), so nothing here is a child's record: not an access to log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from pydantic import BaseModel, Field

from huhang.access.guards import FORBIDDEN_DOC, Forbidden, PrincipalDep
from huhang.auth.dependency import authenticate
from huhang.auth.principal import Principal, Role
from huhang.parking import HANDLED, PARKED, ParkedEvents
from huhang.problems import PROBLEM_RESPONSES, Conflict, NotFound, problem_doc

parking_router = APIRouter(prefix="/v1", tags=["operations"])
Status = Literal["parked", "retrying", "handled"]


def parking_reader(principal: PrincipalDep) -> Principal:
    """Reading parked events: platform administrators, auditors and the platform's own workers."""
    if not principal.has(Role.administrator, Role.auditor, Role.system):
        raise Forbidden("Only platform administrators, auditors and the platform's workers read parked events.")
    return principal


def parking_operator(principal: PrincipalDep) -> Principal:
    """Handing a parked event back to its consumer: platform administrators and the platform's own workers."""
    if not principal.has(Role.administrator, Role.system):
        raise Forbidden("Only platform administrators hand parked events back to their consumers.")
    return principal


ParkingReader = Annotated[Principal, Depends(parking_reader)]
ParkingOperator = Annotated[Principal, Depends(parking_operator)]


class ParkedEventPublic(BaseModel):
    parked_id: UUID
    store: str = Field(description="Where it is parked: a service's store (`intake`...) or the router's (`workflows`).")
    consumer: str = Field(description="The consumer that could not handle it, e.g. `intake.relay`, `router`.")
    event_id: UUID
    event_type: str
    source: str
    subject: str = Field(description="The case id.")
    reason: str = Field(description="The exception's type and a short code, e.g. `HTTPStatusError:http_422`.")
    status: Status = Field(description="`parked`; `retrying` (handed back, not yet handled); `handled`.")
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    retry_requested_at: datetime | None
    handled_at: datetime | None
    event: dict[str, Any] = Field(description="The integration event (CloudEvents JSON: ids and codes only).")


class ParkedEventList(BaseModel):
    items: list[ParkedEventPublic]


def get_parking(request: Request) -> Mapping[str, ParkedEvents]:
    stores: Mapping[str, ParkedEvents] = request.app.state.parked_events
    return stores


ParkingDep = Annotated[Mapping[str, ParkedEvents], Depends(get_parking)]


def _public(store: str, row: Mapping[str, Any]) -> ParkedEventPublic:
    return ParkedEventPublic.model_validate({**row, "store": store, "event": json.loads(row["event"])})


@parking_router.get(
    "/parked-events", response_model=ParkedEventList, responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC},
    summary="Events a consumer could not handle, parked with the reason (administrators, auditors)",
)
def list_parked_events(
    _: ParkingReader,
    stores: ParkingDep,
    consumer: Annotated[str | None, Query(max_length=200, description="Only this consumer's.")] = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ParkedEventList:
    """Oldest first, from every store this API serves."""
    items = [_public(name, row) for name, store in stores.items()
             for row in store.entries(consumer=consumer, status=status, limit=limit)]
    items.sort(key=lambda item: (item.first_failed_at, str(item.parked_id)))
    return ParkedEventList(items=items[:limit])


@parking_router.post(
    "/parked-events/{parked_id}/retry", response_model=ParkedEventPublic, status_code=status.HTTP_202_ACCEPTED,
    responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC, **problem_doc(404, "No parked event with this id here"),
               **problem_doc(409, "Already handled")},
    summary="Hand a parked event back to its consumer (administrators)",
)
def retry_parked_event(parked_id: UUID, _: ParkingOperator, stores: ParkingDep) -> ParkedEventPublic:
    """Accepted: the consumer handles it alone at its next look (within a second or so while it runs); `status`
    then becomes `handled`, or `parked` again with the new reason. Asking again while `retrying` changes nothing."""
    for name, store in stores.items():
        row = store.get(str(parked_id))
        if row is None:
            continue
        if row["status"] == HANDLED:
            raise Conflict(f"Parked event {parked_id} was handled already.")
        if row["status"] == PARKED:
            row = store.request_retry(str(parked_id)) or row
        return _public(name, row)
    raise NotFound(f"No parked event {parked_id} in this service.")


def install_parking(api: FastAPI, stores: Mapping[str, ParkedEvents]) -> None:
    """Serve these stores' parked events (added to those already served), and add the routes once per app."""
    served: dict[str, ParkedEvents] = getattr(api.state, "parked_events", None) or {}
    served.update(stores)
    api.state.parked_events = served
    if not getattr(api.state, "parked_events_route", False):
        api.include_router(parking_router, dependencies=[Depends(authenticate)])
        api.state.parked_events_route = True
