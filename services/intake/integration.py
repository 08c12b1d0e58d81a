"""The one mapping from intake's domain events to integration events (contracts/).

Codes and ids only: the child's name, ID number, facts and notes never leave intake. Child-level events are
about the child's standing care case (``contracts.cases.care_case_id``): it is their subject and Kafka key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.cases import care_case_id
from contracts.envelope import CloudEvent
from contracts.events import (
    ChildDataErased,
    ChildDataErasedData,
    ChildFileUpdated,
    ChildFileUpdatedData,
    ChildrenMerged,
    ChildrenMergedData,
    ReportFiled,
    ReportFiledData,
)
from huhang.eventstore import envelope
from services.intake.domain import Case, Child, Erasure

SOURCE = "/huhang/intake"


def to_integration_events(domain_event: Any) -> Sequence[CloudEvent]:
    if isinstance(domain_event, Case.ReportFiled):  # type: ignore[attr-defined]
        return [_report_filed(domain_event)]
    if isinstance(domain_event, Child.CategoriesDerived):  # type: ignore[attr-defined]
        return [_child_file_updated(domain_event)]
    if isinstance(domain_event, Child.Absorbed):  # type: ignore[attr-defined]
        return [_children_merged(domain_event)]
    if isinstance(domain_event, Erasure.Recorded):  # type: ignore[attr-defined]
        return [_child_data_erased(domain_event)]
    return []


def _report_filed(e: Any) -> ReportFiled:
    return ReportFiled(
        **envelope(e, SOURCE, e.originator_id, e.reporter_agency),
        dataschema=ReportFiled.schema_uri(),
        data=ReportFiledData(
            report_id=e.report_id,
            case_id=e.originator_id,
            child_id=e.child_id,
            reporter_agency=e.reporter_agency,
            reporter_role=e.reporter_role,
            concern_category=e.concern_category,
            urgency=e.urgency,
            child_categories=tuple(e.child_categories),
            township=e.township,
            village=e.village,
            observed_on=e.observed_on,
        ),
    )


def _child_file_updated(e: Any) -> ChildFileUpdated:
    case_id = care_case_id(e.originator_id)
    return ChildFileUpdated(
        **envelope(e, SOURCE, case_id, e.derived_by),
        dataschema=ChildFileUpdated.schema_uri(),
        data=ChildFileUpdatedData(
            child_id=e.originator_id,
            case_id=case_id,
            township=e.township,
            village=e.village,
            categories=tuple(e.categories),
            added_categories=tuple(e.added),
            removed_categories=tuple(e.removed),
            category_reasons=tuple(e.reasons),
            parents_away=e.parents_away,
            parents_away_since=e.parents_away_since,
            frequent_visit_reasons=tuple(e.frequent_visit_reasons),
            has_entrusted_caregiver=e.has_entrusted_caregiver,
        ),
    )


def _children_merged(e: Any) -> ChildrenMerged:
    case_id = care_case_id(e.originator_id)
    return ChildrenMerged(
        **envelope(e, SOURCE, case_id, e.by),
        dataschema=ChildrenMerged.schema_uri(),
        data=ChildrenMergedData(
            child_id=e.originator_id,
            merged_child_id=e.merged_child_id,
            case_id=case_id,
            township=e.township,
            village=e.village,
            merged_by=e.by,
        ),
    )


def _child_data_erased(e: Any) -> ChildDataErased:
    case_id = care_case_id(e.erased_child_id)
    return ChildDataErased(
        **envelope(e, SOURCE, case_id, e.by),
        dataschema=ChildDataErased.schema_uri(),
        data=ChildDataErasedData(child_id=e.erased_child_id, case_id=case_id, reason=e.reason, erased_by=e.by),
    )
