"""The one mapping from intake's domain events to integration events (contracts/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.envelope import CloudEvent
from contracts.events import ReportFiled, ReportFiledData
from huhang.eventstore import integration_event_id
from services.intake.domain import Case

SOURCE = "/huhang/intake"


def to_integration_events(domain_event: Any) -> Sequence[CloudEvent]:
    if isinstance(domain_event, Case.ReportFiled):  # type: ignore[attr-defined]
        event_id = integration_event_id(domain_event)
        return [
            ReportFiled(
                id=event_id,
                source=SOURCE,
                subject=str(domain_event.originator_id),
                time=domain_event.timestamp,
                dataschema=ReportFiled.schema_uri(),
                correlationid=event_id,
                actoragency=domain_event.reporter_agency,
                data=ReportFiledData(
                    report_id=domain_event.report_id,
                    case_id=domain_event.originator_id,
                    child_id=domain_event.child_id,
                    reporter_agency=domain_event.reporter_agency,
                    reporter_role=domain_event.reporter_role,
                    concern_category=domain_event.concern_category,
                    urgency=domain_event.urgency,
                    child_categories=tuple(domain_event.child_categories),
                    township=domain_event.township,
                    village=domain_event.village,
                    observed_on=domain_event.observed_on,
                ),
            )
        ]
    return []
