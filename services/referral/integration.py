"""The one mapping from referral's domain events to integration events (contracts/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.envelope import CloudEvent
from contracts.events import (
    ReferralEscalated,
    ReferralEscalatedData,
    ReferralOwnerChanged,
    ReferralOwnerChangedData,
    ReferralRequested,
    ReferralRequestedData,
    ReferralReturned,
    ReferralReturnedData,
    ReferralStatusChanged,
    ReferralStatusChangedData,
)
from huhang.eventstore import envelope
from services.referral.domain import Referral

SOURCE = "/huhang/referral"


def to_integration_events(e: Any) -> Sequence[CloudEvent]:
    if isinstance(e, Referral.Requested):  # type: ignore[attr-defined]
        return [_requested(e)]
    if isinstance(e, Referral.StatusChanged):  # type: ignore[attr-defined]
        return [_status_changed(e)]
    if isinstance(e, Referral.Returned):  # type: ignore[attr-defined]
        return [_returned(e)]
    if isinstance(e, Referral.Escalated):  # type: ignore[attr-defined]
        return [_escalated(e)]
    if isinstance(e, Referral.Transferred):  # type: ignore[attr-defined]
        return [_owner_changed(e)]
    return []  # proposals, declines and reassignments stay inside the referral service


def _envelope(e: Any, case_id: Any, correlation_id: Any, actor: str) -> dict[str, Any]:
    return envelope(e, SOURCE, case_id, actor, correlation_id)


def _requested(e: Any) -> ReferralRequested:
    return ReferralRequested(
        **_envelope(e, e.case_id, e.correlation_id, e.requester_agency),
        dataschema=ReferralRequested.schema_uri(),
        causationid=e.source_event_id,
        data=ReferralRequestedData(
            referral_id=e.originator_id,
            case_id=e.case_id,
            child_id=e.child_id,
            owner_agency=e.owner_agency,
            requester_agency=e.requester_agency,
            referral_type=e.referral_type,
            priority=e.priority,
            due_at=e.due_at,
            plan_tasks=tuple(e.plan_tasks),
            rule_id=",".join(e.rule_ids),
            rules_version=e.rules_version,
            source_event_id=e.source_event_id,
            township=e.township,
            village=e.village,
            complete_by=e.complete_by,
            fallback_agencies=tuple(e.fallback_agencies or ()),
        ),
    )


def _status_changed(e: Any) -> ReferralStatusChanged:
    return ReferralStatusChanged(
        **_envelope(e, e.case_id, e.correlation_id, e.actor_agency),
        dataschema=ReferralStatusChanged.schema_uri(),
        data=ReferralStatusChangedData(
            referral_id=e.originator_id,
            case_id=e.case_id,
            owner_agency=e.owner_agency,
            status=e.status,
            reason_code=e.reason_code,
            outcome=e.outcome,
            requester_agency=getattr(e, "requester_agency", None),
        ),
    )


def _returned(e: Any) -> ReferralReturned:
    return ReferralReturned(
        **_envelope(e, e.case_id, e.correlation_id, e.returned_by),
        dataschema=ReferralReturned.schema_uri(),
        data=ReferralReturnedData(
            referral_id=e.originator_id,
            case_id=e.case_id,
            child_id=e.child_id,
            returned_by=e.returned_by,
            status=e.status,
            reason_code=e.reason_code,
            referral_type=e.referral_type,
            priority=e.priority,
            due_in_seconds=e.due_in_seconds,
            complete_within_seconds=e.complete_within_seconds,
            next_agencies=tuple(e.next_agencies),
            plan_tasks=tuple(e.plan_tasks),
            rule_ids=tuple(e.rule_ids),
            rules_version=e.rules_version,
            township=e.township,
            village=e.village,
            requester_agency=getattr(e, "requester_agency", None) or e.returned_by,
        ),
    )


def _escalated(e: Any) -> ReferralEscalated:
    return ReferralEscalated(
        # Escalations stored by an early version name "system" as the actor: they were the sweep's, for the
        # supervising agency.
        **_envelope(
            e, e.case_id, e.correlation_id, e.supervising_agency if e.actor_agency == "system" else e.actor_agency
        ),
        dataschema=ReferralEscalated.schema_uri(),
        data=ReferralEscalatedData(
            referral_id=e.originator_id,
            case_id=e.case_id,
            owner_agency=e.owner_agency,
            level=e.level,
            kind=e.kind,
            supervising_agency=e.supervising_agency,
            overdue_since=e.overdue_since,
        ),
    )


def _owner_changed(e: Any) -> ReferralOwnerChanged:
    return ReferralOwnerChanged(
        **_envelope(e, e.case_id, e.correlation_id, e.to_agency),
        dataschema=ReferralOwnerChanged.schema_uri(),
        data=ReferralOwnerChangedData(
            referral_id=e.originator_id, case_id=e.case_id, from_agency=e.from_agency, to_agency=e.to_agency
        ),
    )
