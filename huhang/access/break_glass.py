"""Break-the-glass: an officer without access opens a case in an emergency, for a bounded time, and the lead agency
reviews it afterwards.

The grant is an aggregate in the store of the service that owns the case (intake), so that opening and reviewing
are events in its hash-chained log like any other fact; its integration events (``BreakGlassAccessOpened``,
``BreakGlassAccessReviewed``) reach every service's case-access read model, which is how every service honours the
grant, and the routing rules open a review referral at the lead agency. The stated reason is free text: it stays
in the owning store and never travels in an event, nor in a log line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Recording

from contracts.envelope import CloudEvent
from contracts.events import (
    BreakGlassAccessOpened,
    BreakGlassAccessOpenedData,
    BreakGlassAccessReviewed,
    BreakGlassAccessReviewedData,
)
from contracts.vocabulary import AccessPurpose
from huhang.auth.principal import Principal
from huhang.eventstore import integration_event_id
from huhang.problems import Conflict, NotFound

SOURCE = "/huhang/intake"


class BreakGlassGrant(Aggregate):
    """One emergency access to one case by one person. Times are stored as ISO text (plain JSON)."""

    @staticmethod
    def create_id(grant_id: UUID, **_: Any) -> UUID:
        return grant_id

    @event("Opened")
    def __init__(
        self, grant_id: UUID, case_id: UUID, child_id: UUID, agency: str, subject: str, purpose: str, reason: str,
        township: str, village: str, opened_at: str, expires_at: str,
    ) -> None:
        self.case_id = case_id
        self.child_id = child_id
        self.agency = agency
        self.subject = subject
        self.purpose = purpose
        self.reason = reason
        self.township = township
        self.village = village
        self.opened_at = opened_at
        self.expires_at = expires_at
        self.justified: bool | None = None
        self.review_note: str | None = None
        self.reviewed_by: str | None = None
        self.reviewer_agency: str | None = None

    @event("Reviewed")
    def review(
        self, justified: bool, note: str | None, reviewed_by: str, reviewer_agency: str,
        case_id: UUID, child_id: UUID, township: str, village: str,
    ) -> None:
        """The case, child and place are repeated in the event: its integration event is made from it alone."""
        self.justified = justified
        self.review_note = note
        self.reviewed_by = reviewed_by
        self.reviewer_agency = reviewer_agency

    @property
    def reviewed(self) -> bool:
        return self.justified is not None


def to_integration_events(domain_event: Any) -> Sequence[CloudEvent]:
    """The grant's integration events (ids and codes; never the reason or the note)."""
    if isinstance(domain_event, BreakGlassGrant.Opened):  # type: ignore[attr-defined]
        return [_opened(domain_event)]
    if isinstance(domain_event, BreakGlassGrant.Reviewed):  # type: ignore[attr-defined]
        return [_reviewed(domain_event)]
    return []


def _opened(e: Any) -> BreakGlassAccessOpened:
    event_id = integration_event_id(e)
    return BreakGlassAccessOpened(
        id=event_id, source=SOURCE, subject=str(e.case_id), time=e.timestamp,
        dataschema=BreakGlassAccessOpened.schema_uri(), correlationid=event_id, actoragency=e.agency,
        data=BreakGlassAccessOpenedData(
            grant_id=e.originator_id, case_id=e.case_id, child_id=e.child_id, agency=e.agency, subject=e.subject,
            purpose=e.purpose, opened_at=datetime.fromisoformat(e.opened_at),
            expires_at=datetime.fromisoformat(e.expires_at), township=e.township, village=e.village,
        ),
    )


def _reviewed(e: Any) -> BreakGlassAccessReviewed:
    event_id = integration_event_id(e)
    return BreakGlassAccessReviewed(
        id=event_id, source=SOURCE, subject=str(e.case_id), time=e.timestamp,
        dataschema=BreakGlassAccessReviewed.schema_uri(), correlationid=event_id, actoragency=e.reviewer_agency,
        data=BreakGlassAccessReviewedData(
            grant_id=e.originator_id, case_id=e.case_id, child_id=e.child_id, justified=e.justified,
            reviewer_agency=e.reviewer_agency, township=e.township, village=e.village,
        ),
    )


class GrantStore(Protocol):
    """What break-the-glass needs of the owning service's application (eventsourcing's ``Application``)."""

    @property
    def repository(self) -> Any: ...

    def save(self, *objs: Any, **kwargs: Any) -> Any: ...

    def get_case(self, case_id: UUID) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Opened:
    grant: BreakGlassGrant
    events: Sequence[CloudEvent]


class BreakGlass:
    """Opens and reviews grants in the owning service's store."""

    def __init__(self, store: GrantStore, duration: timedelta) -> None:
        self.store = store
        self.duration = duration

    def open(self, principal: Principal, case_id: UUID, reason: str, purpose: AccessPurpose,
             now: datetime | None = None) -> Opened:
        case = self.store.get_case(case_id)  # NotFound (404) for an unknown case
        opened_at = (now or datetime.now(UTC)).astimezone(UTC)
        grant = BreakGlassGrant(
            grant_id=uuid4(), case_id=case_id, child_id=case["child_id"], agency=principal.agency.value,
            subject=principal.subject, purpose=purpose.value, reason=reason, township=case["township"],
            village=case["village"], opened_at=opened_at.isoformat(),
            expires_at=(opened_at + self.duration).isoformat(),
        )
        return Opened(grant, self._save(grant))

    def get(self, case_id: UUID, grant_id: UUID) -> BreakGlassGrant:
        try:
            grant = self.store.repository.get(grant_id)
        except AggregateNotFoundError:
            grant = None
        if not isinstance(grant, BreakGlassGrant) or grant.case_id != case_id:
            raise NotFound(f"No break-the-glass grant {grant_id} on case {case_id}.")
        return grant

    def review(self, principal: Principal, case_id: UUID, grant_id: UUID, justified: bool,
               note: str | None) -> Opened:
        grant = self.get(case_id, grant_id)
        if grant.reviewed:
            raise Conflict(f"Break-the-glass grant {grant_id} was already reviewed.")
        grant.review(
            justified=justified, note=note, reviewed_by=principal.subject, reviewer_agency=principal.agency.value,
            case_id=grant.case_id, child_id=grant.child_id, township=grant.township, village=grant.village,
        )
        return Opened(grant, self._save(grant))

    def _save(self, grant: BreakGlassGrant) -> list[CloudEvent]:
        """Save, and return the integration events saved (applied at once to the local read model)."""
        recordings: Sequence[Recording] = self.store.save(grant) or ()
        return [ce for r in recordings for ce in to_integration_events(r.domain_event)]
