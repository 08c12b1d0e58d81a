"""The contracts: committed JSON Schemas match the code; events are frozen, closed and survive a JSON round trip."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.envelope import CloudEvent
from contracts.events import (
    CONTRACT_EVENTS,
    BreakGlassAccessOpened,
    BreakGlassAccessReviewed,
    ChildDataErased,
    ChildDirectorAssigned,
    ChildDirectorLeft,
    ChildDirectorTrained,
    ChildFileUpdated,
    ChildrenMerged,
    CourtProtectionOrderIssued,
    EmergencyTreatmentReported,
    EntrustedCareAgreementSigned,
    EntrustedCareFlagged,
    GuardianshipRiskAssessed,
    IndicatorColourChanged,
    InterventionRecorded,
    JobAssistanceGiven,
    JobAssistanceRequested,
    NeedRecorded,
    ParentContactMissed,
    ParentContactRecorded,
    ReferralEscalated,
    ReferralOwnerChanged,
    ReferralRequested,
    ReferralReturned,
    ReferralStatusChanged,
    ReportFiled,
    SchoolDropoutReported,
    SchoolReturnReported,
    SpotCheckFollowUpRequired,
    VisitOverdue,
    VisitRecorded,
    parse_event,
)
from contracts.jsonschema import SCHEMAS_DIR, contract_schemas, write_schemas

REGENERATE = "run `python -m contracts.jsonschema` and commit contracts/schemas/"
CASE_ID, CHILD_ID = uuid.uuid4(), uuid.uuid4()
PLACE = {"township": "虹桥镇", "village": "溪西村"}

SAMPLE_DATA: dict[type[CloudEvent], dict[str, Any]] = {
    ReportFiled: {
        "report_id": uuid.uuid4(), "case_id": CASE_ID, "child_id": CHILD_ID, "reporter_agency": "education",
        "reporter_role": "teacher", "concern_category": "guardian_neglect", "urgency": "urgent",
        "child_categories": ("left_behind",), "observed_on": date(2026, 11, 27), **PLACE,
    },
    GuardianshipRiskAssessed: {
        "assessment_id": uuid.uuid4(), "case_id": CASE_ID, "child_id": CHILD_ID, "risk_level": "high",
        "colour": "red", "previous_risk_level": "medium", "factors": ("guardian_absent",), **PLACE,
    },
    CourtProtectionOrderIssued: {
        "order_id": uuid.uuid4(), "case_id": CASE_ID, "child_id": CHILD_ID, "order_kind": "personal_safety_protection",
        "court_case_number": "(2026)浙0382民保令12号", "issued_on": date(2026, 11, 27),
        "expires_on": date(2027, 5, 27), **PLACE,
    },
    SchoolDropoutReported: {
        "case_id": CASE_ID, "child_id": CHILD_ID, "school_code": "3303820001",
        "last_attended_on": date(2026, 11, 20), "child_categories": ("left_behind", "single_parent"), **PLACE,
    },
    JobAssistanceRequested: {
        "case_id": CASE_ID, "child_id": CHILD_ID, "parent_relation": "father", "wants_local_work": True,
        "wants_training": True, **PLACE,
    },
    SchoolReturnReported: {
        "case_id": CASE_ID, "child_id": CHILD_ID, "school_code": "3303820001", "returned_on": date(2026, 11, 27),
        "child_categories": ("left_behind",), **PLACE,
    },
    JobAssistanceGiven: {
        "case_id": CASE_ID, "child_id": CHILD_ID, "parent_relation": "mother", "assistance_kind": "skills_training",
        "given_on": date(2026, 11, 27), **PLACE,
    },
    EmergencyTreatmentReported: {
        "case_id": CASE_ID, "child_id": CHILD_ID, "hospital_code": "330382H001", "treated_on": date(2026, 11, 27),
        "cause": "suspected_abuse", "admitted": True, "child_categories": ("left_behind",), **PLACE,
    },
    ChildFileUpdated: {
        "child_id": CHILD_ID, "case_id": CASE_ID, "categories": ("left_behind",), "added_categories": ("left_behind",),
        "removed_categories": (), "category_reasons": ("left_behind:parents_away_3_months_outside_county",),
        "parents_away": True, "parents_away_since": date(2026, 3, 1), "frequent_visit_reasons": (),
        "has_entrusted_caregiver": True, **PLACE,
    },
    ChildrenMerged: {
        "child_id": CHILD_ID, "merged_child_id": uuid.uuid4(), "case_id": CASE_ID, "merged_by": "civil_affairs",
        **PLACE,
    },
    ChildDataErased: {
        "child_id": CHILD_ID, "case_id": CASE_ID, "reason": "retention_expired", "erased_by": "civil_affairs",
    },
    VisitRecorded: {
        "visit_id": uuid.uuid4(), "child_id": CHILD_ID, "case_id": CASE_ID, "kind": "home_visit",
        "visited_on": date(2026, 11, 27), "findings": ("all_well",), "next_contact_due_on": date(2026, 12, 27),
        "next_home_visit_due_on": date(2027, 2, 27), **PLACE,
    },
    VisitOverdue: {
        "child_id": CHILD_ID, "case_id": CASE_ID, "kind": "contact", "due_on": date(2026, 11, 20),
        "days_overdue": 9, **PLACE,
    },
    ParentContactMissed: {
        "child_id": CHILD_ID, "case_id": CASE_ID, "last_contact_on": date(2026, 11, 18),
        "days_without_contact": 11, "consecutive_misses": 1, "escalated": False, **PLACE,
    },
    EntrustedCareFlagged: {"child_id": CHILD_ID, "case_id": CASE_ID, "problem": "expired", **PLACE},
    InterventionRecorded: {
        "intervention_id": uuid.uuid4(), "case_id": CASE_ID, "child_id": CHILD_ID, "kind": "police_reprimand",
        "agency": "police", "documents": ({"kind": "reprimand_letter", "reference": "乐公(虹)训字〔2026〕12号"},),
        **PLACE,
    },
    ReferralRequested: {
        "referral_id": uuid.uuid4(), "case_id": CASE_ID, "child_id": CHILD_ID, "owner_agency": "police",
        "requester_agency": "education", "referral_type": "guardianship_investigation", "priority": "urgent",
        "due_at": datetime(2026, 11, 29, 9, 0, tzinfo=UTC), "plan_tasks": (4, 6),
        "rule_id": "guardian-neglect-or-abuse", "rules_version": "2026-11-29.1", "source_event_id": uuid.uuid4(),
        **PLACE,
    },
    ReferralStatusChanged: {
        "referral_id": uuid.uuid4(), "case_id": CASE_ID, "owner_agency": "police", "status": "in-progress",
    },
    ReferralReturned: {
        "referral_id": uuid.uuid4(), "case_id": CASE_ID, "child_id": CHILD_ID, "returned_by": "police",
        "requester_agency": "education",
        "status": "rejected", "reason_code": "out_of_area", "referral_type": "guardianship_investigation",
        "priority": "urgent", "due_in_seconds": 86400, "complete_within_seconds": 2592000,
        "next_agencies": ("civil_affairs",), "plan_tasks": (4, 6), "rule_ids": ("guardian-neglect-or-abuse",),
        "rules_version": "2026-11-29.1", **PLACE,
    },
    ReferralEscalated: {
        "referral_id": uuid.uuid4(), "case_id": CASE_ID, "owner_agency": "police", "level": 1,
        "kind": "overdue_acceptance", "supervising_agency": "civil_affairs",
        "overdue_since": datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
    },
    ReferralOwnerChanged: {
        "referral_id": uuid.uuid4(), "case_id": CASE_ID, "from_agency": "police", "to_agency": "education",
    },
    BreakGlassAccessOpened: {
        "grant_id": uuid.uuid4(), "case_id": CASE_ID, "child_id": CHILD_ID, "agency": "police",
        "subject": "acct-7f3a", "purpose": "emergency_protection",
        "opened_at": datetime(2026, 11, 28, 9, 0, tzinfo=UTC), "expires_at": datetime(2026, 11, 28, 13, 0, tzinfo=UTC),
        **PLACE,
    },
    BreakGlassAccessReviewed: {
        "grant_id": uuid.uuid4(), "case_id": CASE_ID, "child_id": CHILD_ID, "justified": True,
        "reviewer_agency": "civil_affairs", **PLACE,
    },
    NeedRecorded: {
        "need_id": uuid.uuid4(), "case_id": CASE_ID, "child_id": CHILD_ID, "category": "tuition_supplies",
        "found_by": "village", **PLACE,
    },
    SpotCheckFollowUpRequired: {
        "spot_check_id": uuid.uuid4(), "case_id": CASE_ID, "child_id": CHILD_ID, "year": 2026,
        "items_failed": ("entrusted_care_agreement", "visit_regime_kept"), **PLACE,
    },
    ParentContactRecorded: {
        "contact_id": uuid.uuid4(), "child_id": CHILD_ID, "case_id": CASE_ID, "contacted_on": date(2026, 11, 24),
        "channel": "video", "parent": "mother",
    },
    EntrustedCareAgreementSigned: {
        "agreement_id": uuid.uuid4(), "child_id": CHILD_ID, "case_id": CASE_ID, "signed_on": date(2026, 3, 1),
        "starts_on": date(2026, 3, 1), "expires_on": date(2027, 2, 28),
    },
    ChildDirectorAssigned: {"director_id": uuid.uuid4(), "appointed_on": date(2024, 4, 15), **PLACE},
    ChildDirectorLeft: {"director_id": uuid.uuid4(), "left_on": date(2026, 11, 27)},
    ChildDirectorTrained: {
        "training_id": uuid.uuid4(), "director_id": uuid.uuid4(), "trained_on": date(2026, 6, 18), "hours": 8.0,
    },
    IndicatorColourChanged: {
        "change_id": uuid.uuid4(), "indicator": "visit_compliance", "unit_kind": "township", "unit": "虹桥镇",
        "township": "虹桥镇", "previous_colour": "yellow", "colour": "red", "value": 0.81,
        "as_of": datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
    },
}


def sample(cls: type[CloudEvent]) -> CloudEvent:
    event_id = uuid.uuid4()
    return cls.model_validate(
        {
            "id": event_id, "source": "/huhang/test", "subject": str(CASE_ID),
            "time": datetime(2026, 11, 28, 9, 30, tzinfo=UTC), "dataschema": cls.schema_uri(),
            "correlationid": event_id, "causationid": uuid.uuid4(), "actoragency": "education",
            "data": SAMPLE_DATA[cls],
        }
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("schemas")
    write_schemas(directory)
    return directory


def file_names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.is_file()}


# --- committed schema files ---------------------------------------------------------------------------------------


def test_no_generated_schema_file_is_missing_from_the_committed_ones(generated):
    missing = file_names(generated) - file_names(SCHEMAS_DIR)

    assert not missing, f"contracts/schemas/ lacks {sorted(missing)}: {REGENERATE}"


def test_no_committed_schema_file_is_left_over_from_an_older_contract(generated):
    extra = file_names(SCHEMAS_DIR) - file_names(generated)

    assert not extra, f"contracts/schemas/ holds files no contract generates {sorted(extra)}: {REGENERATE}"


@pytest.mark.parametrize("name", sorted(contract_schemas()))
def test_committed_schema_file_is_what_the_code_generates(generated, name):
    committed = SCHEMAS_DIR / name
    assert committed.is_file(), f"contracts/schemas/{name} is missing: {REGENERATE}"

    assert committed.read_text(encoding="utf-8") == (generated / name).read_text(encoding="utf-8"), (
        f"contracts/schemas/{name} differs from the contract in code: {REGENERATE}"
    )


def test_schemas_cover_every_event_the_open_referrals_command_and_the_routing_rules():
    expected = {f"{cls.schema_name}.json" for cls in CONTRACT_EVENTS} | {"open-referrals.v1.json", "routing-rules.json"}
    expected |= {"province-sync-children.v1.json"}  # the province sync export's lines (contracts/province_sync.py)

    assert set(contract_schemas()) == expected


@pytest.mark.parametrize("cls", CONTRACT_EVENTS, ids=lambda cls: cls.schema_name)
def test_an_event_schema_is_identified_by_the_events_schema_uri(cls):
    assert contract_schemas()[f"{cls.schema_name}.json"]["$id"] == cls.schema_uri()


def test_written_schema_files_are_sorted_indented_utf8_json(generated):
    text = (generated / "report-filed.v1.json").read_text(encoding="utf-8")

    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def test_write_schemas_returns_the_files_it_wrote(tmp_path):
    written = write_schemas(tmp_path)

    assert {p.name for p in written} == set(contract_schemas())
    assert all(p.parent == tmp_path and p.is_file() for p in written)


# --- contract event classes ---------------------------------------------------------------------------------------


def test_every_contract_event_has_a_sample_here():
    assert set(SAMPLE_DATA) == set(CONTRACT_EVENTS)


@pytest.mark.parametrize("cls", CONTRACT_EVENTS, ids=lambda cls: cls.schema_name)
def test_an_event_is_frozen(cls):
    event = sample(cls)

    with pytest.raises(ValidationError, match="frozen"):
        event.subject = str(uuid.uuid4())  # type: ignore[misc]


@pytest.mark.parametrize("cls", CONTRACT_EVENTS, ids=lambda cls: cls.schema_name)
def test_an_events_data_is_frozen(cls):
    data = sample(cls).data  # type: ignore[attr-defined]

    with pytest.raises(ValidationError, match="frozen"):
        data.case_id = uuid.uuid4()


@pytest.mark.parametrize("cls", CONTRACT_EVENTS, ids=lambda cls: cls.schema_name)
def test_an_event_refuses_an_unknown_envelope_attribute(cls):
    raw = {**sample(cls).model_dump(), "childname": "李小雨"}

    with pytest.raises(ValidationError, match="childname"):
        cls.model_validate(raw)


@pytest.mark.parametrize("cls", CONTRACT_EVENTS, ids=lambda cls: cls.schema_name)
def test_an_event_refuses_an_unknown_data_field(cls):
    raw = sample(cls).model_dump()
    raw["data"]["id_card_number"] = "330382201605120027"

    with pytest.raises(ValidationError, match="id_card_number"):
        cls.model_validate(raw)


@pytest.mark.parametrize("cls", CONTRACT_EVENTS, ids=lambda cls: cls.schema_name)
def test_an_event_round_trips_through_json_into_its_own_class(cls):
    event = sample(cls)

    parsed = parse_event(event.model_dump_json())

    assert type(parsed) is cls
    assert parsed == event


@pytest.mark.parametrize("cls", CONTRACT_EVENTS, ids=lambda cls: cls.schema_name)
def test_an_events_type_attribute_is_its_event_type(cls):
    assert json.loads(sample(cls).model_dump_json())["type"] == cls.event_type
