"""The one mapping from referral's domain events to integration events (contracts/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.envelope import CloudEvent
from contracts.events import (
    ReferralRequested,
    ReferralRequestedData,
    ReferralStatusChanged,
    ReferralStatusChangedData,
)
from huhang.eventstore import integration_event_id
from services.referral.domain import Referral

SOURCE = "/huhang/referral"


def to_integration_events(e: Any) -> Sequence[CloudEvent]:
    if isinstance(e, Referral.Requested):  # type: ignore[attr-defined]
        return [
            ReferralRequested(
                id=integration_event_id(e), source=SOURCE, subject=str(e.case_id), time=e.timestamp,
                dataschema=ReferralRequested.schema_uri(), correlationid=e.correlation_id,
                causationid=e.source_event_id, actoragency=e.requester_agency,
                data=ReferralRequestedData(
                    referral_id=e.originator_id, case_id=e.case_id, child_id=e.child_id,
                    owner_agency=e.owner_agency, requester_agency=e.requester_agency,
                    referral_type=e.referral_type, priority=e.priority, due_at=e.due_at,
                    plan_tasks=tuple(e.plan_tasks), rule_id=",".join(e.rule_ids), rules_version=e.rules_version,
                    source_event_id=e.source_event_id, township=e.township, village=e.village,
                ),
            )
        ]
    if isinstance(e, Referral.StatusChanged):  # type: ignore[attr-defined]
        return [
            ReferralStatusChanged(
                id=integration_event_id(e), source=SOURCE, subject=str(e.case_id), time=e.timestamp,
                dataschema=ReferralStatusChanged.schema_uri(), correlationid=e.correlation_id,
                actoragency=e.actor_agency,
                data=ReferralStatusChangedData(
                    referral_id=e.originator_id, case_id=e.case_id, owner_agency=e.owner_agency,
                    status=e.status,
                ),
            )
        ]
    return []

