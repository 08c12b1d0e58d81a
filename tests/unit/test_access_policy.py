"""Need-to-know as pure rules, the disclosure file and its redaction, and the case-access read model that feeds
the rules (on every store: memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import Engine

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from contracts.events import (
    BreakGlassAccessOpened,
    BreakGlassAccessReviewed,
    ChildrenMerged,
    ReferralOwnerChanged,
    ReferralRequested,
    ReferralStatusChanged,
    ReportFiled,
)
from contracts.vocabulary import AccessPurpose
from huhang.access.case_access import CaseAccess
from huhang.access.disclosure import View, load_disclosure, mask_id_card, packaged_disclosure, redact
from huhang.access.policy import (
    Basis,
    Grant,
    RecordFacts,
    may_act_for,
    may_break_glass,
    may_create,
    may_oversee,
    may_read,
    may_read_agency_queue,
    may_review_break_glass,
    may_search_area,
    may_write,
)
from huhang.auth.principal import Role
from huhang.settings import Settings
from huhang.storage import read_model_engine
from tests.support.auth import SYSTEM
from tests.support.principals import (
    ADMINISTRATOR,
    AUDITOR,
    CHILD_DIRECTOR,
    EDUCATION_OFFICER,
    HRSS_OFFICER,
    JUSTICE_OFFICER,
    LEAD_OFFICER,
    LEAD_SUPERVISOR,
    OTHER_CHILD_DIRECTOR,
    OTHER_VILLAGE,
    POLICE_OFFICER,
    POLICE_SYSTEM,
    TOWNSHIP,
    TOWNSHIP_OFFICER,
    VILLAGE,
    WCWC_OFFICER,
    person,
)

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
CASE = RecordFacts(township=TOWNSHIP, village=VILLAGE, holding_agencies=frozenset({"police"}))


# --- the policy ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "basis"),
    [
        (SYSTEM, Basis.role), (AUDITOR, Basis.role), (LEAD_OFFICER, Basis.agency), (WCWC_OFFICER, Basis.agency),
        (POLICE_OFFICER, Basis.referral), (POLICE_SYSTEM, Basis.referral), (TOWNSHIP_OFFICER, Basis.area),
        (CHILD_DIRECTOR, Basis.area),
    ],
    ids=lambda v: getattr(v, "subject", str(v)),
)
def test_who_sees_a_case_and_why(principal, basis):
    assert may_read(principal, CASE, NOW).basis is basis


@pytest.mark.parametrize(
    "principal", [HRSS_OFFICER, EDUCATION_OFFICER, JUSTICE_OFFICER, OTHER_CHILD_DIRECTOR, ADMINISTRATOR],
    ids=lambda p: p.subject,
)
def test_an_agency_without_referral_area_or_grant_does_not_see_the_case(principal):
    assert not may_read(principal, CASE, NOW).allowed


def test_a_township_principal_of_another_township_does_not_see_its_children():
    elsewhere = person("t2", Agency.township, township="白石镇")

    assert not may_read(elsewhere, CASE, NOW).allowed


def test_a_child_director_without_a_village_sees_no_child_of_the_township():
    unbound = person("d0", Agency.village, Role.child_director, township=TOWNSHIP)

    assert not may_read(unbound, CASE, NOW).allowed


def test_an_officer_of_another_agency_bound_to_the_area_does_not_see_it_by_area():
    police_in_township = person("p2", Agency.hrss, township=TOWNSHIP)

    assert not may_read(police_in_township, CASE, NOW).allowed


def test_a_case_not_known_yet_is_seen_only_by_those_who_see_everything():
    assert may_read(LEAD_OFFICER, None, NOW).allowed
    assert may_read(AUDITOR, None, NOW).allowed
    assert not may_read(POLICE_OFFICER, None, NOW).allowed


def test_an_open_grant_gives_its_holder_access_until_it_expires():
    grant = Grant(uuid.uuid4(), JUSTICE_OFFICER.subject, NOW + timedelta(hours=4))
    facts = RecordFacts(township=TOWNSHIP, village=VILLAGE, grants=(grant,))

    assert may_read(JUSTICE_OFFICER, facts, NOW).basis is Basis.break_glass
    assert may_read(JUSTICE_OFFICER, facts, NOW).outcome == "break-glass"
    assert not may_read(JUSTICE_OFFICER, facts, NOW + timedelta(hours=4)).allowed
    assert not may_read(person("justice-2", Agency.justice), facts, NOW).allowed  # the person's, not the agency's


def test_auditors_and_administrators_never_write():
    assert may_read(AUDITOR, CASE, NOW).allowed
    assert not may_write(AUDITOR, CASE, NOW).allowed
    assert not may_write(ADMINISTRATOR, CASE, NOW).allowed
    assert not may_create(AUDITOR).allowed
    assert may_write(POLICE_OFFICER, CASE, NOW).allowed
    assert may_create(CHILD_DIRECTOR).allowed


def test_an_inbox_is_its_agencys_own_unless_the_caller_sees_everything():
    assert may_read_agency_queue(POLICE_OFFICER, Agency.police).allowed
    assert not may_read_agency_queue(POLICE_OFFICER, Agency.education).allowed
    assert may_read_agency_queue(LEAD_OFFICER, Agency.police).allowed
    assert may_read_agency_queue(AUDITOR, Agency.police).allowed


def test_a_command_acts_for_the_callers_own_agency():
    assert may_act_for(POLICE_OFFICER, Agency.police)
    assert not may_act_for(POLICE_OFFICER, Agency.court)
    assert may_act_for(SYSTEM, Agency.court)


def test_an_area_search_is_held_to_the_callers_township():
    assert may_search_area(TOWNSHIP_OFFICER, None) == (may_search_area(TOWNSHIP_OFFICER, None)[0], TOWNSHIP)
    assert not may_search_area(TOWNSHIP_OFFICER, "白石镇")[0].allowed
    assert not may_search_area(POLICE_OFFICER, None)[0].allowed
    assert may_search_area(LEAD_OFFICER, "白石镇")[1] == "白石镇"


def test_oversight_break_glass_and_its_review():
    assert may_oversee(LEAD_OFFICER).allowed
    assert may_oversee(AUDITOR).allowed
    assert not may_oversee(POLICE_OFFICER).allowed
    assert not may_oversee(WCWC_OFFICER).allowed
    assert may_break_glass(JUSTICE_OFFICER)
    assert may_break_glass(CHILD_DIRECTOR)
    assert not may_break_glass(POLICE_SYSTEM)
    assert not may_break_glass(AUDITOR)
    assert may_review_break_glass(LEAD_SUPERVISOR)
    assert not may_review_break_glass(LEAD_OFFICER)
    assert not may_review_break_glass(AUDITOR)


# --- disclosure ---------------------------------------------------------------------------------------------------

CHILD_FILE: dict[str, Any] = {
    "child_id": "c-1", "name": "张雨涵", "sex": "female", "birth_date": "2017-03-08",
    "id_card_number": "330382201703081224", "township": TOWNSHIP, "village": VILLAGE,
    "categories": ["left_behind"], "parents_away": True, "parents_away_since": "2026-02-20",
    "facts": {
        "guardians": [{"relation": "father", "status": "away_for_work", "away_since": "2026-02-20",
                       "works_outside_county": True, "serious_illness": True}],
        "entrusted_caregiver": {"relation": "grandparent"},
        "school": {"name": "虹桥镇第一小学", "grade": 3},
        "health_notes": "哮喘", "psychological_notes": "情绪低落",
        "needs": [{"kind": "basic_living", "source": "dibao"}],
        "guardianship": {"kind": "improper", "source": "police"},
    },
}


def view(principal: Any, kind: Any = "child", purpose: AccessPurpose | None = None) -> View:
    return View.for_principal(packaged_disclosure(), kind, principal, purpose)


def test_hrss_sees_a_parents_employment_not_abuse_health_or_school():
    seen = redact(CHILD_FILE, view(HRSS_OFFICER))

    assert seen["facts"]["guardians"] == [
        {"relation": "father", "status": "away_for_work", "away_since": "2026-02-20", "works_outside_county": True}
    ]
    assert seen["parents_away_since"] == "2026-02-20"
    assert seen["facts"]["needs"] == CHILD_FILE["facts"]["needs"]
    for hidden in ("guardianship", "health_notes", "psychological_notes", "school", "entrusted_caregiver"):
        assert hidden not in seen["facts"]
    assert {"facts.guardianship", "facts.health_notes", "facts.school", "facts.guardians.*.serious_illness"} <= set(
        seen["redacted"]
    )


def test_education_sees_school_matters_not_protection_findings():
    seen = redact(CHILD_FILE, view(EDUCATION_OFFICER))

    assert seen["facts"]["school"] == CHILD_FILE["facts"]["school"]
    assert "guardianship" not in seen["facts"]
    assert "health_notes" not in seen["facts"]
    assert seen["name"] == "张雨涵"


def test_identity_card_numbers_are_masked_except_for_agencies_that_need_them():
    assert redact(CHILD_FILE, view(HRSS_OFFICER))["id_card_number"] == "3303**********1224"
    assert redact(CHILD_FILE, view(AUDITOR))["id_card_number"] == "3303**********1224"
    assert redact(CHILD_FILE, view(CHILD_DIRECTOR))["id_card_number"] == "3303**********1224"
    for in_clear in (POLICE_OFFICER, LEAD_OFFICER, SYSTEM, person("court", Agency.court)):
        assert redact(CHILD_FILE, view(in_clear))["id_card_number"] == "330382201703081224"


def test_the_lead_agency_sees_the_whole_file_and_nothing_is_listed_as_redacted():
    seen = redact(CHILD_FILE, view(LEAD_OFFICER))

    assert seen == {**CHILD_FILE, "redacted": []}


def test_a_declared_purpose_narrows_what_is_shown_never_widens_it(tmp_path: Path):
    document = yaml.safe_load(Path("contracts/disclosure.yaml").read_text(encoding="utf-8"))
    document["purposes"] = {"investigation": ["identity"], "audit": ["identity", "school", "protection"]}
    path = tmp_path / "disclosure.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    rules = load_disclosure(path)

    narrowed = redact(CHILD_FILE, View.for_principal(rules, "child", POLICE_OFFICER, AccessPurpose.investigation))
    not_widened = redact(CHILD_FILE, View.for_principal(rules, "child", HRSS_OFFICER, AccessPurpose.audit))

    assert "guardians" not in narrowed["facts"]
    assert narrowed["name"] == "张雨涵"
    assert "school" not in not_widened["facts"]
    assert "guardianship" not in not_widened["facts"]


def test_concerns_are_left_out_of_a_case_and_its_timeline_for_agencies_without_protection():
    case = {"case_id": "k", "reports": [{"report_id": "r", "concern_category": "guardian_abuse", "urgency": "urgent"}]}
    timeline = {"case_id": "k", "events": [{"type": "t", "data": {"concern_category": "guardian_abuse", "x": 1}}]}

    assert redact(case, view(HRSS_OFFICER, "case"))["reports"] == [{"report_id": "r"}]
    assert redact(timeline, view(HRSS_OFFICER, "timeline"))["events"] == [{"type": "t", "data": {"x": 1}}]
    assert redact(case, view(POLICE_OFFICER, "case"))["reports"] == case["reports"]


def test_a_disclosure_file_naming_an_unknown_section_or_agency_is_refused(tmp_path: Path):
    document = yaml.safe_load(Path("contracts/disclosure.yaml").read_text(encoding="utf-8"))
    for broken in ({**document, "agencies": {**document["agencies"], "hrss": ["salary"]}},
                   {**document, "agencies": {**document["agencies"], "bank": ["identity"]}}):
        path = tmp_path / "d.yaml"
        path.write_text(yaml.safe_dump(broken, allow_unicode=True), encoding="utf-8")
        with pytest.raises(ValidationError):
            load_disclosure(path)


def test_short_numbers_are_masked_whole():
    assert mask_id_card("1234") == "****"


# --- the read model -----------------------------------------------------------------------------------------------

CASE_ID, CHILD_ID = uuid.uuid4(), uuid.uuid4()
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
PLACE = {"township": TOWNSHIP, "village": VILLAGE}


def event(cls: type[CloudEvent], data: dict[str, Any], at: datetime = T0, case_id: uuid.UUID = CASE_ID) -> CloudEvent:
    event_id = uuid.uuid4()
    return cls.model_validate({
        "id": event_id, "source": "/huhang/test", "subject": str(case_id), "time": at,
        "dataschema": cls.schema_uri(), "correlationid": event_id, "actoragency": "education", "data": data,
    })


def filed(case_id: uuid.UUID = CASE_ID, child_id: uuid.UUID = CHILD_ID, at: datetime = T0, **place: str) -> CloudEvent:
    return event(ReportFiled, {
        "report_id": uuid.uuid4(), "case_id": case_id, "child_id": child_id, "reporter_agency": "education",
        "reporter_role": "teacher", "concern_category": "guardian_neglect", "urgency": "urgent",
        "child_categories": (), "observed_on": "2026-11-27", **(place or PLACE),
    }, at, case_id)


def requested(referral_id: uuid.UUID, owner: str, at: datetime = T0) -> CloudEvent:
    return event(ReferralRequested, {
        "referral_id": referral_id, "case_id": CASE_ID, "child_id": CHILD_ID, "owner_agency": owner,
        "requester_agency": "education", "referral_type": "guardianship_investigation", "priority": "urgent",
        "due_at": T0 + timedelta(days=1), "plan_tasks": (4,), "rule_id": "r", "rules_version": "v",
        "source_event_id": uuid.uuid4(), **PLACE,
    }, at)


def status(referral_id: uuid.UUID, owner: str, value: str, at: datetime) -> CloudEvent:
    return event(ReferralStatusChanged, {
        "referral_id": referral_id, "case_id": CASE_ID, "owner_agency": owner, "status": value,
    }, at)


@pytest.fixture
def engine(any_storage_settings: Settings) -> Iterator[Engine]:
    built = read_model_engine(any_storage_settings, "access")
    yield built
    built.dispose()


@pytest.fixture
def access(engine: Engine) -> CaseAccess:
    return CaseAccess(engine)


def test_a_case_event_records_the_case_its_child_and_its_place(access):
    access.handle([filed()])

    facts = access.facts_for_case(CASE_ID)
    assert facts is not None
    assert (facts.township, facts.village) == (TOWNSHIP, VILLAGE)
    assert access.case(CASE_ID).child_id == CHILD_ID
    assert access.facts_for_case(uuid.uuid4()) is None
    assert access.facts_for_child(CHILD_ID).village == VILLAGE


def test_the_owner_of_a_referral_holds_the_case_and_loses_it_when_it_rejects(access):
    referral = uuid.uuid4()
    access.handle([filed(), requested(referral, "police")])
    assert access.facts_for_case(CASE_ID).holding_agencies == {"police"}

    access.handle([status(referral, "police", "rejected", T0 + timedelta(hours=1))])

    assert access.facts_for_case(CASE_ID).holding_agencies == frozenset()


def test_a_completed_referral_keeps_the_access_it_gave(access):
    referral = uuid.uuid4()
    access.handle([filed(), requested(referral, "hrss"), status(referral, "hrss", "completed", T0 + timedelta(days=2))])

    assert "hrss" in access.facts_for_case(CASE_ID).holding_agencies


def test_status_changes_arriving_out_of_order_leave_the_latest(access):
    referral = uuid.uuid4()
    access.handle([
        filed(), status(referral, "police", "rejected", T0 + timedelta(hours=2)),
        status(referral, "police", "accepted", T0 + timedelta(hours=1)), requested(referral, "police"),
    ])

    assert access.facts_for_case(CASE_ID).holding_agencies == frozenset()


def test_a_redelivered_batch_changes_nothing(access):
    referral = uuid.uuid4()
    batch = [filed(), requested(referral, "police"), status(referral, "police", "accepted", T0 + timedelta(hours=1))]
    access.handle(batch)
    before = access.facts_for_case(CASE_ID)

    access.handle(batch)

    assert access.facts_for_case(CASE_ID) == before


def test_a_transfer_gives_the_new_owner_access_and_the_previous_owner_keeps_it(access):
    referral = uuid.uuid4()
    access.handle([
        filed(), requested(referral, "police"), status(referral, "police", "accepted", T0 + timedelta(hours=1)),
        event(ReferralOwnerChanged, {"referral_id": referral, "case_id": CASE_ID, "from_agency": "police",
                                     "to_agency": "education"}, T0 + timedelta(hours=2)),
    ])
    assert access.facts_for_case(CASE_ID).holding_agencies == {"police", "education"}

    access.handle([status(referral, "education", "rejected", T0 + timedelta(hours=3))])

    assert access.facts_for_case(CASE_ID).holding_agencies == {"police"}


def test_a_child_is_seen_through_all_its_cases_and_follows_its_latest_place(access):
    other_case, referral = uuid.uuid4(), uuid.uuid4()
    access.handle([
        filed(),
        filed(other_case, at=T0 + timedelta(days=1), township=TOWNSHIP, village=OTHER_VILLAGE),
        filed(at=T0 - timedelta(days=1), township="白石镇", village="白石村"),  # older news of the place: ignored
        requested(referral, "hrss"),
    ])

    facts = access.facts_for_child(CHILD_ID)
    assert (facts.township, facts.village) == (TOWNSHIP, OTHER_VILLAGE)
    assert facts.holding_agencies == {"hrss"}


def test_a_merged_childs_cases_count_for_the_survivor_and_the_survivor_for_it(access):
    survivor, merged, merged_case, referral = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    access.handle([
        filed(CASE_ID, survivor), filed(merged_case, merged), requested(referral, "police"),
        event(ChildrenMerged, {"child_id": survivor, "merged_child_id": merged, "case_id": CASE_ID,
                               "merged_by": "civil_affairs", **PLACE}, T0 + timedelta(hours=1)),
    ])

    assert access.facts_for_child(merged).holding_agencies == {"police"}
    assert access.facts_for_child(survivor).holding_agencies == {"police"}


def test_a_grant_counts_until_it_is_found_not_justified_and_the_register_lists_it(access):
    grant = uuid.uuid4()
    opened = event(BreakGlassAccessOpened, {
        "grant_id": grant, "case_id": CASE_ID, "child_id": CHILD_ID, "agency": "justice", "subject": "acct-j",
        "purpose": "emergency_protection", "opened_at": T0, "expires_at": T0 + timedelta(hours=4), **PLACE,
    })
    access.handle([filed(), opened])
    assert [g.grant_id for g in access.facts_for_case(CASE_ID).grants] == [grant]
    assert [g["grant_id"] for g in access.grants(unreviewed=True, since=None, limit=10)] == [str(grant)]

    access.handle([event(BreakGlassAccessReviewed, {
        "grant_id": grant, "case_id": CASE_ID, "child_id": CHILD_ID, "justified": False,
        "reviewer_agency": "civil_affairs", **PLACE,
    }, T0 + timedelta(hours=1))])

    assert access.facts_for_case(CASE_ID).grants == ()
    assert access.grants(unreviewed=True, since=None, limit=10) == []
    assert access.grant(grant)["justified"] is False


def test_a_review_arriving_before_its_grant_still_ends_it(access):
    grant = uuid.uuid4()
    access.handle([
        filed(),
        event(BreakGlassAccessReviewed, {
            "grant_id": grant, "case_id": CASE_ID, "child_id": CHILD_ID, "justified": False,
            "reviewer_agency": "civil_affairs", **PLACE,
        }, T0 + timedelta(hours=1)),
        event(BreakGlassAccessOpened, {
            "grant_id": grant, "case_id": CASE_ID, "child_id": CHILD_ID, "agency": "justice", "subject": "acct-j",
            "purpose": "emergency_protection", "opened_at": T0, "expires_at": T0 + timedelta(hours=4), **PLACE,
        }),
    ])

    assert access.facts_for_case(CASE_ID).grants == ()


def test_the_entrusted_caregivers_name_in_a_care_answer_is_for_agencies_that_see_the_family():
    care = {
        "child_id": "c", "agreements": [{"agreement_id": "a", "caregiver_name": "王秀英", "relation": "grandmother"}],
    }
    hidden = redact(care, View.for_principal(packaged_disclosure(), "care", HRSS_OFFICER))
    assert hidden["agreements"] == [{"agreement_id": "a", "relation": "grandmother"}]
    assert hidden["redacted"] == ["agreements.*.caregiver_name"]
    shown = redact(care, View.for_principal(packaged_disclosure(), "care", LEAD_OFFICER))
    assert shown["agreements"][0]["caregiver_name"] == "王秀英"
