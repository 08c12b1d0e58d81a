"""The routing rules: the packaged file is valid and complete, and ``route`` opens what each rule demands."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from contracts.events import (
    BreakGlassAccessOpened,
    ChildFileUpdated,
    ChildrenMerged,
    CourtProtectionOrderIssued,
    EmergencyTreatmentReported,
    EntrustedCareAgreementSigned,
    EntrustedCareFlagged,
    GuardianshipRiskAssessed,
    InterventionRecorded,
    JobAssistanceGiven,
    JobAssistanceRequested,
    NeedRecorded,
    ParentContactMissed,
    ParentContactRecorded,
    ReferralStatusChanged,
    ReferralStatusChangedData,
    ReportFiled,
    SchoolDropoutReported,
    SchoolReturnReported,
    SpotCheckFollowUpRequired,
    VisitOverdue,
    VisitRecorded,
)
from contracts.plan import PLAN_TASKS
from contracts.routing import RoutedReferral, RoutingRules, Rule, load_rules
from contracts.vocabulary import Priority
from workflows.routing import plan_referrals

EVENT_TIME = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
RULES = load_rules()

# Data for each routable event that matches as few rules as possible; a test overrides the fields it is about.
BASE_DATA: dict[type[CloudEvent], dict[str, Any]] = {
    ReportFiled: {
        "reporter_agency": "education", "reporter_role": "teacher", "concern_category": "online_harm",
        "urgency": "routine", "child_categories": (), "township": "虹桥镇", "village": "溪西村",
        "observed_on": date(2026, 11, 27),
    },
    GuardianshipRiskAssessed: {
        "risk_level": "low", "colour": "green", "previous_risk_level": None, "factors": (),
        "township": "虹桥镇", "village": "溪西村",
    },
    CourtProtectionOrderIssued: {
        "order_kind": "personal_safety_protection", "court_case_number": "(2026)浙0382民保令12号",
        "issued_on": date(2026, 11, 27), "expires_on": None, "township": "虹桥镇", "village": "溪西村",
    },
    SchoolDropoutReported: {
        "school_code": "3303820001", "last_attended_on": date(2026, 11, 20), "child_categories": ("left_behind",),
        "township": "虹桥镇", "village": "溪西村",
    },
    JobAssistanceRequested: {
        "parent_relation": "mother", "wants_local_work": True, "wants_training": False,
        "township": "虹桥镇", "village": "溪西村",
    },
    SchoolReturnReported: {
        "school_code": "3303820001", "returned_on": date(2026, 11, 27), "child_categories": ("left_behind",),
        "township": "虹桥镇", "village": "溪西村",
    },
    JobAssistanceGiven: {
        "parent_relation": "mother", "assistance_kind": "skills_training", "given_on": date(2026, 11, 27),
        "township": "虹桥镇", "village": "溪西村",
    },
    EmergencyTreatmentReported: {
        "hospital_code": "330382H001", "treated_on": date(2026, 11, 27), "cause": "injury", "admitted": False,
        "child_categories": (), "township": "虹桥镇", "village": "溪西村",
    },
    ChildFileUpdated: {
        "categories": (), "added_categories": (), "removed_categories": (), "category_reasons": (),
        "parents_away": False, "parents_away_since": None, "frequent_visit_reasons": (),
        "has_entrusted_caregiver": False, "township": "虹桥镇", "village": "溪西村",
    },
    ChildrenMerged: {
        "merged_child_id": uuid.uuid4(), "merged_by": "civil_affairs", "township": "虹桥镇", "village": "溪西村",
    },
    VisitRecorded: {
        "kind": "contact", "visited_on": date(2026, 11, 27), "findings": ("all_well",),
        "next_contact_due_on": date(2026, 12, 27), "next_home_visit_due_on": date(2027, 2, 27),
        "township": "虹桥镇", "village": "溪西村",
    },
    VisitOverdue: {
        "kind": "contact", "due_on": date(2026, 11, 20), "days_overdue": 1, "township": "虹桥镇", "village": "溪西村",
    },
    ParentContactMissed: {
        "last_contact_on": date(2026, 11, 18), "days_without_contact": 8, "consecutive_misses": 1, "escalated": False,
        "township": "虹桥镇", "village": "溪西村",
    },
    EntrustedCareFlagged: {"problem": "missing", "township": "虹桥镇", "village": "溪西村"},
    ParentContactRecorded: {"contacted_on": date(2026, 11, 24), "channel": "video", "parent": "mother"},
    EntrustedCareAgreementSigned: {
        "signed_on": date(2026, 3, 1), "starts_on": date(2026, 3, 1), "expires_on": date(2027, 2, 28),
    },
    InterventionRecorded: {
        "kind": "admonition", "agency": "village", "documents": (), "township": "虹桥镇", "village": "溪西村",
    },
    BreakGlassAccessOpened: {
        "agency": "police", "subject": "acct-7f3a", "purpose": "emergency_protection", "opened_at": EVENT_TIME,
        "expires_at": EVENT_TIME + timedelta(hours=4), "township": "虹桥镇", "village": "溪西村",
    },
    NeedRecorded: {"category": "tuition_supplies", "found_by": "village", "township": "虹桥镇", "village": "溪西村"},
    SpotCheckFollowUpRequired: {
        "year": 2026, "items_failed": ("director_assigned",), "township": "虹桥镇", "village": "溪西村",
    },
}
CLASS_OF_TYPE = {cls.event_type: cls for cls in BASE_DATA}
ID_FIELDS = ("report_id", "assessment_id", "order_id", "intervention_id", "visit_id", "grant_id", "need_id",
             "spot_check_id", "contact_id", "agreement_id")


def make_event(cls: type[CloudEvent], event_id: uuid.UUID | None = None, **data: Any) -> CloudEvent:
    data_class = cls.model_fields["data"].annotation
    assert data_class is not None
    fields = {**BASE_DATA[cls], "case_id": uuid.uuid4(), "child_id": uuid.uuid4(), **data}
    fields.update({name: uuid.uuid4() for name in ID_FIELDS if name in data_class.model_fields})
    event_id = event_id or uuid.uuid4()
    return cls.model_validate(
        {
            "id": event_id, "source": "/huhang/test", "subject": str(fields["case_id"]), "time": EVENT_TIME,
            "dataschema": cls.schema_uri(), "correlationid": event_id, "actoragency": "education", "data": fields,
        }
    )


def report(**data: Any) -> CloudEvent:
    return make_event(ReportFiled, **data)


def event_matching(rule: Rule) -> CloudEvent:
    """An event of the rule's type whose data satisfies the rule's ``where`` (first accepted value of each)."""
    cls = CLASS_OF_TYPE[rule.when.event]
    overrides: dict[str, Any] = {}
    for name, accepted in rule.when.where.items():
        overrides[name] = (accepted[0],) if isinstance(BASE_DATA[cls].get(name), tuple) else accepted[0]
    return make_event(cls, **overrides)


def referral_to(routed: list[RoutedReferral], agency: Agency, referral_type: str) -> RoutedReferral:
    found = [r for r in routed if r.agency == agency and r.referral_type == referral_type]
    assert len(found) == 1, f"expected one {agency.value}/{referral_type} referral, got {found}"
    return found[0]


def agencies(routed: list[RoutedReferral]) -> set[Agency]:
    return {r.agency for r in routed}


def write_rules(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "routing_rules.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def rules_document(**rule_changes: Any) -> dict[str, Any]:
    rule = {
        "id": "guardian-neglect",
        "plan_tasks": [4],
        "when": {"event": ReportFiled.event_type, "where": {"concern_category": ["guardian_neglect"]}},
        "route": [{"agency": "police", "referral_type": "guardianship_investigation", "priority": "urgent",
                   "due": "PT24H"}],
    }
    return {"version": "test.1", "rules": [{**rule, **rule_changes}]}


# --- the packaged rules -------------------------------------------------------------------------------------------


def test_packaged_rules_load_with_a_version_and_rules():
    assert RULES.version
    assert len(RULES.rules) > 0


def test_a_rules_file_written_by_hand_loads_from_its_path(tmp_path):
    rules = load_rules(write_rules(tmp_path, rules_document()))

    assert [rule.id for rule in rules.rules] == ["guardian-neglect"]


@pytest.mark.parametrize("task", sorted(PLAN_TASKS))
def test_every_plan_task_is_served_by_some_rule(task):
    assert any(task in rule.plan_tasks for rule in RULES.rules), f"no routing rule serves plan task {task}"


@pytest.mark.parametrize("task", sorted(PLAN_TASKS))
def test_every_agency_assigned_to_a_plan_task_receives_referrals_under_it(task):
    routed_to = {target.agency for rule in RULES.rules if task in rule.plan_tasks for target in rule.route}

    missing = PLAN_TASKS[task].agencies - routed_to
    assert not missing, f"plan task {task} assigns {sorted(missing)} but no rule for it routes to them"


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda rule: rule.id)
def test_an_event_matching_a_rule_opens_each_of_its_targets_due_on_time(rule):
    event = event_matching(rule)

    routed = RULES.route(event)

    for target in rule.route:
        referral = referral_to(routed, target.agency, target.referral_type)
        assert rule.id in referral.rule_ids
        assert referral.due_at == event.time + target.due
        assert referral.priority.rank >= target.priority.rank
        assert set(rule.plan_tasks) <= set(referral.plan_tasks)
        assert referral.rules_version == RULES.version
        assert referral.source_event_id == event.id


def test_a_guardianship_risk_of_low_opens_no_referral():
    assert RULES.route(make_event(GuardianshipRiskAssessed, risk_level="low")) == []


def test_an_event_type_without_rules_opens_no_referral():
    event = ReferralStatusChanged(
        id=uuid.uuid4(), source="/huhang/referral", subject=str(uuid.uuid4()), time=EVENT_TIME,
        dataschema=ReferralStatusChanged.schema_uri(), correlationid=uuid.uuid4(), actoragency=Agency.police,
        data=ReferralStatusChangedData(referral_id=uuid.uuid4(), case_id=uuid.uuid4(), owner_agency=Agency.police,
                                       status="accepted"),
    )

    assert RULES.route(event) == []


@pytest.mark.parametrize("cls", [ParentContactRecorded, EntrustedCareAgreementSigned], ids=lambda c: c.__name__)
def test_care_done_as_the_plan_asks_opens_no_referral(cls):
    """A parent's call or a signed agreement is counted (indicators), not routed: only their absence is."""
    assert RULES.route(make_event(cls)) == []


# --- examples from the issue --------------------------------------------------------------------------------------


def test_a_guardian_neglect_report_reaches_police_and_civil_affairs():
    routed = RULES.route(report(concern_category="guardian_neglect"))

    assert {Agency.police, Agency.civil_affairs} <= agencies(routed)


def test_a_school_dropout_report_reaches_education_police_and_civil_affairs():
    routed = RULES.route(report(concern_category="school_dropout"))

    assert agencies(routed) == {Agency.education, Agency.police, Agency.civil_affairs}


def test_a_dropout_reported_by_the_school_system_reaches_education_police_and_civil_affairs():
    routed = RULES.route(make_event(SchoolDropoutReported))

    assert agencies(routed) == {Agency.education, Agency.police, Agency.civil_affairs}


def test_a_child_in_immediate_danger_gets_a_stat_police_referral_due_within_one_hour():
    event = report(concern_category="guardian_neglect", urgency="immediate_danger")

    police = [r for r in RULES.route(event) if r.agency == Agency.police and r.priority == Priority.stat]

    assert police, "no stat referral to the police"
    assert all(r.due_at - event.time <= timedelta(hours=1) for r in police)


def test_a_routine_report_opens_no_stat_referral():
    routed = RULES.route(report(concern_category="lack_of_care", urgency="routine"))

    assert routed
    assert all(r.priority != Priority.stat for r in routed)


def test_a_job_assistance_request_asking_for_training_also_reaches_education():
    without = RULES.route(make_event(JobAssistanceRequested, wants_training=False))
    with_training = RULES.route(make_event(JobAssistanceRequested, wants_training=True))

    assert Agency.education not in agencies(without)
    assert Agency.education in agencies(with_training)


def test_a_child_category_rule_matches_when_any_category_overlaps():
    routed = RULES.route(report(child_categories=("disabled", "guardianship_missing")))

    referral_to(routed, Agency.civil_affairs, "temporary_guardianship_placement")
    referral_to(routed, Agency.civil_affairs, "child_file_and_director_visit")


# --- merging ------------------------------------------------------------------------------------------------------


@pytest.fixture
def overlapping_rules() -> RoutingRules:
    """Two rules sending the same referral type to the same agency: one more urgent, the other due sooner."""
    target = {"agency": "police", "referral_type": "home_visit"}
    return RoutingRules.model_validate(
        {
            "version": "test.merge",
            "rules": [
                {"id": "urgent-but-late", "plan_tasks": [4], "when": {"event": ReportFiled.event_type},
                 "route": [{**target, "priority": "stat", "due": "P2D"}]},
                {"id": "routine-but-soon", "plan_tasks": [6], "when": {"event": ReportFiled.event_type},
                 "route": [{**target, "priority": "routine", "due": "PT2H"}]},
            ],
        }
    )


def test_merged_rules_open_one_referral_per_agency_and_type(overlapping_rules):
    assert len(overlapping_rules.route(report())) == 1


def test_merging_keeps_the_most_urgent_priority(overlapping_rules):
    (referral,) = overlapping_rules.route(report())

    assert referral.priority == Priority.stat


def test_merging_keeps_the_earliest_due_time(overlapping_rules):
    event = report()

    (referral,) = overlapping_rules.route(event)

    assert referral.due_at == event.time + timedelta(hours=2)


def test_merging_records_every_rule_and_plan_task(overlapping_rules):
    (referral,) = overlapping_rules.route(report())

    assert referral.rule_ids == ("urgent-but-late", "routine-but-soon")
    assert referral.plan_tasks == (4, 6)


# --- deterministic ids --------------------------------------------------------------------------------------------


def test_routing_the_same_event_twice_gives_the_same_referral_ids():
    event = report(concern_category="guardian_abuse")

    assert [r.referral_id for r in RULES.route(event)] == [r.referral_id for r in RULES.route(event)]


def test_routing_a_different_event_gives_different_referral_ids():
    first = {r.referral_id for r in RULES.route(report(concern_category="guardian_abuse"))}
    second = {r.referral_id for r in RULES.route(report(concern_category="guardian_abuse"))}

    assert first.isdisjoint(second)


def test_the_referrals_of_one_event_have_distinct_ids():
    routed = RULES.route(report(concern_category="sexual_abuse", urgency="immediate_danger"))

    assert len({r.referral_id for r in routed}) == len(routed)


# --- plan_referrals (the workflow's pure planning step) -----------------------------------------------------------


def test_planned_referrals_carry_case_child_place_and_requester_of_the_event():
    event = report(concern_category="guardian_neglect")

    commands = plan_referrals(RULES, [event])

    assert commands
    for command in commands:
        assert (command.case_id, command.child_id) == (event.data.case_id, event.data.child_id)  # type: ignore[attr-defined]
        assert (command.township, command.village) == ("虹桥镇", "溪西村")
        assert command.requester_agency == event.actoragency
        assert command.source_event_id == event.id
        assert command.correlation_id == event.correlationid


def test_planning_the_same_events_twice_gives_the_same_commands():
    events = [report(concern_category="guardian_neglect"), make_event(SchoolDropoutReported)]

    assert plan_referrals(RULES, events) == plan_referrals(RULES, events)


# --- refused rules files ------------------------------------------------------------------------------------------


def test_a_rules_file_naming_an_unknown_event_type_is_refused(tmp_path):
    document = rules_document(when={"event": "cn.huhang.report.lost.v1"})

    with pytest.raises(ValidationError, match="unknown event type"):
        load_rules(write_rules(tmp_path, document))


def test_a_rules_file_naming_an_unknown_data_field_is_refused(tmp_path):
    document = rules_document(when={"event": ReportFiled.event_type, "where": {"child_name": ["李小雨"]}})

    with pytest.raises(ValidationError, match="no data field 'child_name'"):
        load_rules(write_rules(tmp_path, document))


def test_a_rules_file_naming_an_unknown_agency_is_refused(tmp_path):
    document = rules_document(
        route=[{"agency": "ministry_of_magic", "referral_type": "x", "priority": "urgent", "due": "P1D"}]
    )

    with pytest.raises(ValidationError) as refused:
        load_rules(write_rules(tmp_path, document))
    assert any(error["loc"][-1] == "agency" for error in refused.value.errors())


def test_a_rules_file_with_a_duplicate_rule_id_is_refused(tmp_path):
    document = rules_document()
    document["rules"] = document["rules"] * 2

    with pytest.raises(ValidationError, match="duplicate rule id"):
        load_rules(write_rules(tmp_path, document))


def test_a_rules_file_naming_an_unknown_plan_task_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="unknown plan task"):
        load_rules(write_rules(tmp_path, rules_document(plan_tasks=[18])))


def test_a_rules_file_with_a_non_positive_due_is_refused(tmp_path):
    document = rules_document(
        route=[{"agency": "police", "referral_type": "x", "priority": "urgent", "due": "PT0S"}]
    )

    with pytest.raises(ValidationError, match="positive duration"):
        load_rules(write_rules(tmp_path, document))


def test_a_rules_file_naming_an_unknown_value_of_a_coded_field_is_refused(tmp_path):
    misspelled = {"concern_category": ["gaurdian_neglect"]}
    document = rules_document(when={"event": ReportFiled.event_type, "where": misspelled})

    with pytest.raises(ValidationError, match="gaurdian_neglect"):
        load_rules(write_rules(tmp_path, document))
