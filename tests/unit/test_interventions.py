"""The guardianship ladder: who may take which step, which step needs which before it, idempotent retries, the
events published and where the routing rules send them."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from contracts.cases import care_case_id
from contracts.events import (
    ChildFileUpdated,
    ChildFileUpdatedData,
    ChildrenMerged,
    ChildrenMergedData,
    CourtProtectionOrderIssued,
    InterventionRecorded,
    ReportFiled,
    ReportFiledData,
)
from contracts.routing import load_rules
from contracts.vocabulary import InterventionDocumentKind, InterventionKind
from huhang.bootstrap import service_api
from huhang.settings import Settings
from huhang.streams import NotificationLogSource
from services.guardianship.domain import NotPermitted
from services.guardianship.interventions import (
    LADDER,
    Applicant,
    DocumentRef,
    RecordIntervention,
    Step,
    check_may_record,
    missing_steps,
    next_steps,
)
from services.guardianship.ladder_schemas import china_today
from services.guardianship.main import GuardianshipService, build
from tests.support.auth import client_for

K = InterventionKind
TOWNSHIP, VILLAGE = "虹桥镇", "溪西村"
TODAY = china_today()
DAY = TODAY - timedelta(days=10)

# The table the rules must keep (DOMAIN.md workflows 1 and 3; services/guardianship/interventions.py).
WHO_RECORDS: dict[InterventionKind, set[str]] = {
    K.admonition: {"village"},
    K.police_report: {"village", "township", "civil_affairs", "education"},
    K.police_reprimand: {"police"},
    K.family_education_order: {"police"},
    K.family_education_guidance: {"womens_federation"},
    K.protection_order_application: {"civil_affairs", "procuratorate", "village", "police", "womens_federation"},
    K.protection_order_issued: {"court"},
    K.guardianship_revocation_application: {
        "civil_affairs", "procuratorate", "village", "education", "health", "womens_federation", "dpf",
    },
    K.guardianship_revoked: {"court"},
    K.temporary_guardianship_placement: {"civil_affairs"},
    K.long_term_state_guardianship: {"civil_affairs"},
}
DOCUMENT_OF: dict[InterventionKind, str] = {
    K.admonition: "admonition_record",
    K.police_report: "police_report_receipt",
    K.police_reprimand: "reprimand_letter",
    K.family_education_order: "family_education_order_letter",
    K.family_education_guidance: "guidance_record",
    K.protection_order_application: "application",
    K.protection_order_issued: "protection_order",
    K.guardianship_revocation_application: "application",
    K.guardianship_revoked: "court_judgment",
    K.temporary_guardianship_placement: "placement_decision",
    K.long_term_state_guardianship: "state_guardianship_decision",
}


def report_filed(case_id: uuid.UUID, child_id: uuid.UUID) -> ReportFiled:
    event_id = uuid.uuid4()
    return ReportFiled(
        id=event_id, source="/huhang/intake", subject=str(case_id), time=datetime.now(UTC),
        dataschema=ReportFiled.schema_uri(), correlationid=event_id, actoragency=Agency.education,
        data=ReportFiledData(
            report_id=uuid.uuid4(), case_id=case_id, child_id=child_id, reporter_agency=Agency.education,
            reporter_role="teacher", concern_category="guardian_neglect", urgency="urgent",
            child_categories=("left_behind",), township=TOWNSHIP, village=VILLAGE, observed_on=DAY,
        ),
    )


def child_file(child_id: uuid.UUID, township: str = "柳市镇", village: str = "东风村") -> ChildFileUpdated:
    event_id = uuid.uuid4()
    return ChildFileUpdated(
        id=event_id, source="/huhang/intake", subject=str(care_case_id(child_id)), time=datetime.now(UTC),
        dataschema=ChildFileUpdated.schema_uri(), correlationid=event_id, actoragency=Agency.village,
        data=ChildFileUpdatedData(
            child_id=child_id, case_id=care_case_id(child_id), township=township, village=village,
            categories=("left_behind",), added_categories=("left_behind",), removed_categories=(),
            category_reasons=("parents_away_3_months_outside_county",), parents_away=True,
            parents_away_since=date(2025, 3, 1), frequent_visit_reasons=(), has_entrusted_caregiver=True,
        ),
    )


def children_merged(survivor: uuid.UUID, merged: uuid.UUID) -> ChildrenMerged:
    event_id = uuid.uuid4()
    return ChildrenMerged(
        id=event_id, source="/huhang/intake", subject=str(care_case_id(survivor)), time=datetime.now(UTC),
        dataschema=ChildrenMerged.schema_uri(), correlationid=event_id, actoragency=Agency.civil_affairs,
        data=ChildrenMergedData(
            child_id=survivor, merged_child_id=merged, case_id=care_case_id(survivor), township=TOWNSHIP,
            village=VILLAGE, merged_by=Agency.civil_affairs,
        ),
    )


@pytest.fixture
def service() -> GuardianshipService:
    return build(Settings(storage="memory"))


@pytest.fixture
def client(service: GuardianshipService) -> TestClient:
    return client_for(service_api(service.settings, service))


@pytest.fixture
def case(service: GuardianshipService) -> ReportFiledData:
    report = report_filed(uuid.uuid4(), uuid.uuid4())
    service.known_cases.handle([report])
    return report.data


_numbers = iter(range(1, 10_000))


def step(child_id: uuid.UUID, kind: InterventionKind, agency: str | None = None, **changes: Any) -> dict[str, Any]:
    occurred_on = changes.pop("occurred_on", DAY)
    body: dict[str, Any] = {
        "child_id": str(child_id), "kind": kind.value, "agency": agency or sorted(WHO_RECORDS[kind])[0],
        "occurred_on": occurred_on.isoformat(),
        "documents": [{"kind": DOCUMENT_OF[kind], "reference": f"乐文〔2026〕{next(_numbers)}号",
                       "issued_on": occurred_on.isoformat()}],
    }
    return {**body, **changes}


def post(client: TestClient, case_id: uuid.UUID, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/v1/cases/{case_id}/interventions", json=body, headers=headers)


def take(client: TestClient, case: ReportFiledData, kind: InterventionKind, **changes: Any) -> dict[str, Any]:
    response = post(client, case.case_id, step(case.child_id, kind, **changes))
    assert response.status_code == 201, response.json()
    return response.json()


def published(service: GuardianshipService) -> list[Any]:
    source = NotificationLogSource("test", service.application, service.to_integration_events(), service.positions)
    batch = source.poll(0.01)
    return list(batch.events) if batch else []


def of_type(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def assert_problem(response: Any, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.json()
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert field in [e["field"] for e in body["errors"]], body
    return body


# --- who may record which step ------------------------------------------------------------------------------------


def test_the_rules_cover_every_kind_of_the_vocabulary():
    assert set(LADDER) == set(InterventionKind) == set(WHO_RECORDS)


@pytest.mark.parametrize("kind", list(InterventionKind), ids=str)
@pytest.mark.parametrize("agency", list(Agency), ids=str)
def test_only_the_agency_whose_step_it_is_may_record_it(kind, agency):
    if agency.value in WHO_RECORDS[kind]:
        check_may_record(kind, agency)
    else:
        with pytest.raises(NotPermitted) as raised:
            check_may_record(kind, agency)
        assert [e.field for e in raised.value.errors] == ["agency"]


def test_another_agency_s_step_answers_403_problem_naming_agency_and_records_nothing(client, service, case):
    body = assert_problem(post(client, case.case_id, step(case.child_id, K.admonition, "police")), 403, "agency")

    assert "village" in body["errors"][0]["reason"]
    assert client.get(f"/v1/children/{case.child_id}/interventions").json()["steps"] == []
    assert published(service) == []


def test_the_police_may_not_issue_a_protection_order(client, case):
    take(client, case, K.protection_order_application)

    assert_problem(post(client, case.case_id, step(case.child_id, K.protection_order_issued, "police")), 403, "agency")


# --- which step needs which before it ---------------------------------------------------------------------------


def test_a_family_education_order_without_a_reprimand_answers_409_naming_the_missing_step(client, case):
    body = assert_problem(post(client, case.case_id, step(case.child_id, K.family_education_order)), 409, "kind")

    assert "police_reprimand" in body["errors"][0]["reason"]


def test_a_family_education_order_on_the_day_of_the_reprimand_is_recorded(client, case):
    take(client, case, K.police_reprimand, occurred_on=DAY)

    take(client, case, K.family_education_order, occurred_on=DAY)


def test_a_reprimand_dated_after_the_order_is_not_a_prior_step(client, case):
    take(client, case, K.police_reprimand, occurred_on=DAY + timedelta(days=1))

    assert_problem(post(client, case.case_id, step(case.child_id, K.family_education_order, occurred_on=DAY)),
                   409, "kind")


def test_issuing_a_protection_order_needs_an_application(client, case):
    body = assert_problem(post(client, case.case_id, step(case.child_id, K.protection_order_issued)), 409, "kind")

    assert "protection_order_application" in body["errors"][0]["reason"]


def test_one_application_answers_one_protection_order_and_a_second_application_a_second(client, case):
    take(client, case, K.protection_order_application)
    take(client, case, K.protection_order_issued)

    assert_problem(post(client, case.case_id, step(case.child_id, K.protection_order_issued)), 409, "kind")
    take(client, case, K.protection_order_application)
    take(client, case, K.protection_order_issued)


def test_revoking_guardianship_needs_a_revocation_application(client, case):
    take(client, case, K.protection_order_application)  # another court's matter: not a revocation application

    body = assert_problem(post(client, case.case_id, step(case.child_id, K.guardianship_revoked)), 409, "kind")
    assert "guardianship_revocation_application" in body["errors"][0]["reason"]


def test_long_term_state_guardianship_needs_a_revocation_or_a_temporary_placement(client, case):
    body = assert_problem(
        post(client, case.case_id, step(case.child_id, K.long_term_state_guardianship)), 409, "kind"
    )

    reason = body["errors"][0]["reason"]
    assert "guardianship_revoked" in reason
    assert "temporary_guardianship_placement" in reason


def test_long_term_state_guardianship_after_a_temporary_placement(client, case):
    take(client, case, K.temporary_guardianship_placement)

    take(client, case, K.long_term_state_guardianship)


def test_long_term_state_guardianship_after_a_revocation(client, case):
    take(client, case, K.guardianship_revocation_application)
    take(client, case, K.guardianship_revoked)

    take(client, case, K.long_term_state_guardianship)


def test_no_step_follows_long_term_state_guardianship(client, case):
    take(client, case, K.temporary_guardianship_placement)
    take(client, case, K.long_term_state_guardianship)

    assert_problem(post(client, case.case_id, step(case.child_id, K.long_term_state_guardianship)), 409, "kind")
    assert_problem(post(client, case.case_id, step(case.child_id, K.admonition)), 409, "kind")
    ladder = client.get(f"/v1/children/{case.child_id}/interventions").json()
    assert ladder["ended"] is True
    assert ladder["next_steps"] == []


def test_missing_steps_counts_only_steps_dated_on_or_before():
    reprimand = Step(uuid.uuid4(), K.police_reprimand, uuid.uuid4(), date(2026, 3, 1))

    assert missing_steps(K.family_education_order, date(2026, 2, 28), [reprimand]) == (K.police_reprimand,)
    assert missing_steps(K.family_education_order, date(2026, 3, 1), [reprimand]) == ()
    assert missing_steps(K.admonition, date(2026, 1, 1), []) == ()


def test_next_steps_of_an_empty_ladder_are_the_steps_that_need_nothing_before():
    kinds = [n.kind for n in next_steps([], TODAY)]

    assert kinds == [k for k in InterventionKind if not LADDER[k].requires_any]
    assert K.protection_order_issued not in kinds
    assert K.long_term_state_guardianship not in kinds


def test_next_steps_open_the_step_a_prior_step_makes_possible():
    placement = Step(uuid.uuid4(), K.temporary_guardianship_placement, uuid.uuid4(), TODAY)

    following = {n.kind: n for n in next_steps([placement], TODAY)}

    assert following[K.long_term_state_guardianship].agencies == (Agency.civil_affairs,)
    assert following[K.long_term_state_guardianship].after == (
        K.guardianship_revoked, K.temporary_guardianship_placement,
    )


# --- the court's rulings go through the GuardianshipFile: CourtProtectionOrderIssued ------------------------------


def test_an_issued_protection_order_publishes_court_protection_order_issued(client, service, case):
    take(client, case, K.protection_order_application)
    issued_on = DAY + timedelta(days=2)
    ruling = {"kind": "protection_order", "reference": "(2026)浙0382民保令7号", "issued_on": issued_on.isoformat()}
    expires_on = issued_on + timedelta(days=180)
    recorded = take(client, case, K.protection_order_issued, occurred_on=issued_on, documents=[ruling],
                    expires_on=expires_on.isoformat())

    orders = of_type(published(service), CourtProtectionOrderIssued)
    assert len(orders) == 1
    data = orders[0].data
    assert (data.order_id, data.order_kind, data.court_case_number, data.issued_on, data.expires_on) == (
        uuid.UUID(recorded["intervention_id"]), "personal_safety_protection", "(2026)浙0382民保令7号", issued_on,
        expires_on,
    )
    assert orders[0].subject == str(case.case_id)
    assert orders[0].actoragency == Agency.court
    file = client.get(f"/v1/children/{case.child_id}/guardianship").json()
    assert [o["court_case_number"] for o in file["court_orders"]] == ["(2026)浙0382民保令7号"]


def test_a_revocation_publishes_court_protection_order_issued_of_kind_guardianship_revocation(client, service, case):
    take(client, case, K.guardianship_revocation_application)
    take(client, case, K.guardianship_revoked)

    orders = of_type(published(service), CourtProtectionOrderIssued)
    assert [o.data.order_kind for o in orders] == ["guardianship_revocation"]


def test_a_protection_order_without_its_ruling_document_answers_422_naming_documents(client, case):
    take(client, case, K.protection_order_application)
    body = step(case.child_id, K.protection_order_issued)
    body["documents"] = [{"kind": "application", "reference": "申请书1号", "issued_on": DAY.isoformat()}]

    assert_problem(post(client, case.case_id, body), 422, "documents")


def test_the_same_ruling_recorded_twice_answers_409_naming_documents(client, case):
    ruling = [{"kind": "protection_order", "reference": "(2026)浙0382民保令9号", "issued_on": DAY.isoformat()}]
    take(client, case, K.protection_order_application)
    take(client, case, K.protection_order_issued, documents=ruling)
    take(client, case, K.protection_order_application)

    assert_problem(post(client, case.case_id, step(case.child_id, K.protection_order_issued, documents=ruling)),
                   409, "documents")


@pytest.mark.parametrize("days_after", [0, -1])
def test_a_protection_order_must_expire_after_its_ruling(client, case, days_after):
    take(client, case, K.protection_order_application)
    body = step(case.child_id, K.protection_order_issued, expires_on=(DAY + timedelta(days=days_after)).isoformat())

    assert_problem(post(client, case.case_id, body), 422, "expires_on")


def test_only_a_protection_order_expires(client, case):
    body = step(case.child_id, K.admonition, expires_on=(DAY + timedelta(days=30)).isoformat())

    assert_problem(post(client, case.case_id, body), 422, "expires_on")


# --- idempotency ----------------------------------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_records_nothing_twice(client, service, case):
    body = step(case.child_id, K.admonition)
    first = post(client, case.case_id, body, key="adm-1")
    again = post(client, case.case_id, body, key="adm-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(client.get(f"/v1/children/{case.child_id}/interventions").json()["steps"]) == 1
    assert len(of_type(published(service), InterventionRecorded)) == 1


def test_the_same_idempotency_key_with_another_body_answers_422_naming_the_key(client, case):
    post(client, case.case_id, step(case.child_id, K.admonition), key="adm-2")

    assert_problem(post(client, case.case_id, step(case.child_id, K.admonition), key="adm-2"), 422, "Idempotency-Key")


def test_a_retry_with_the_same_intervention_id_records_nothing_twice(client, service, case):
    body = step(case.child_id, K.protection_order_application, intervention_id=str(uuid.uuid4()))
    first = post(client, case.case_id, body)

    again = post(client, case.case_id, body)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["intervention_id"] == body["intervention_id"]
    assert len(client.get(f"/v1/children/{case.child_id}/interventions").json()["steps"]) == 1


def test_the_same_intervention_id_for_another_step_answers_409_naming_intervention_id(client, case):
    intervention_id = str(uuid.uuid4())
    take(client, case, K.admonition, intervention_id=intervention_id)

    assert_problem(post(client, case.case_id, step(case.child_id, K.police_report, intervention_id=intervention_id)),
                   409, "intervention_id")


def test_a_retried_court_ruling_records_one_court_order(client, service, case):
    take(client, case, K.guardianship_revocation_application)
    body = step(case.child_id, K.guardianship_revoked)

    assert post(client, case.case_id, body, key="ruling-1").status_code == 201
    assert post(client, case.case_id, body, key="ruling-1").status_code == 201
    assert len(client.get(f"/v1/children/{case.child_id}/guardianship").json()["court_orders"]) == 1
    assert len(of_type(published(service), CourtProtectionOrderIssued)) == 1


# --- the case and the child -------------------------------------------------------------------------------------


def test_an_unknown_case_answers_404_naming_case_id(client):
    assert_problem(post(client, uuid.uuid4(), step(uuid.uuid4(), K.admonition)), 404, "case_id")


def test_another_child_than_the_case_s_answers_422_naming_child_id(client, case):
    assert_problem(post(client, case.case_id, step(uuid.uuid4(), K.admonition)), 422, "child_id")


def test_a_step_on_the_standing_care_case_of_a_known_child_takes_its_place_from_the_child_file(client, service):
    child_id = uuid.uuid4()
    service.known_children.handle([child_file(child_id, "柳市镇", "东风村")])

    response = post(client, care_case_id(child_id), step(child_id, K.admonition))

    assert response.status_code == 201
    [recorded] = of_type(published(service), InterventionRecorded)
    assert (recorded.subject, recorded.data.township, recorded.data.village) == (
        str(care_case_id(child_id)), "柳市镇", "东风村",
    )


def test_the_care_case_of_a_child_unknown_to_guardianship_answers_404(client):
    child_id = uuid.uuid4()

    assert_problem(post(client, care_case_id(child_id), step(child_id, K.admonition)), 404, "case_id")


def test_a_merged_child_file_takes_no_step(client, service, case):
    service.known_children.handle([child_file(case.child_id), children_merged(uuid.uuid4(), case.child_id)])

    body = assert_problem(post(client, case.case_id, step(case.child_id, K.admonition)), 422, "child_id")
    assert "merged" in body["errors"][0]["reason"]


# --- bad input --------------------------------------------------------------------------------------------------


def test_a_step_in_the_future_answers_422_naming_occurred_on(client, case):
    body = step(case.child_id, K.admonition, occurred_on=TODAY + timedelta(days=1))

    assert_problem(post(client, case.case_id, body), 422, "occurred_on")


def test_a_step_taken_today_is_recorded(client, case):
    take(client, case, K.admonition, occurred_on=TODAY)


def test_a_step_without_documents_answers_422_naming_documents(client, case):
    assert_problem(post(client, case.case_id, step(case.child_id, K.admonition, documents=[])), 422, "documents")


def test_an_unknown_kind_answers_422_naming_kind(client, case):
    assert_problem(post(client, case.case_id, {**step(case.child_id, K.admonition), "kind": "scolding"}), 422, "kind")


def test_a_document_reference_with_a_line_break_answers_422(client, case):
    body = step(case.child_id, K.admonition)
    body["documents"][0]["reference"] = "第1号\n张三"

    assert_problem(post(client, case.case_id, body), 422, "documents.0.reference")


def test_malformed_json_answers_400_problem(client, case):
    response = client.post(f"/v1/cases/{case.case_id}/interventions", content=b"{not json",
                           headers={"content-type": "application/json"})

    assert_problem(response, 400, "body")


def test_an_applicant_is_only_for_applications(client, case):
    assert_problem(post(client, case.case_id, step(case.child_id, K.admonition, applicant="near_relative")),
                   422, "applicant")
    recorded = take(client, case, K.protection_order_application, applicant="near_relative")

    [entry] = client.get(f"/v1/children/{case.child_id}/interventions").json()["steps"]
    assert (entry["intervention_id"], entry["applicant"]) == (recorded["intervention_id"], Applicant.near_relative)


# --- the ladder and the published event ---------------------------------------------------------------------------


def test_the_ladder_lists_the_steps_in_order_with_documents_and_the_next_steps(client, case):
    take(client, case, K.admonition, occurred_on=DAY)
    take(client, case, K.police_report, occurred_on=DAY + timedelta(days=1))
    take(client, case, K.police_reprimand, occurred_on=DAY + timedelta(days=2))

    response = client.get(f"/v1/children/{case.child_id}/interventions")

    assert response.status_code == 200
    ladder = response.json()
    assert [s["kind"] for s in ladder["steps"]] == ["admonition", "police_report", "police_reprimand"]
    assert ladder["steps"][2]["documents"][0]["kind"] == "reprimand_letter"
    assert ladder["steps"][2]["case_id"] == str(case.case_id)
    assert ladder["ended"] is False
    following = {n["kind"]: n for n in ladder["next_steps"]}
    assert following["family_education_order"] == {
        "kind": "family_education_order", "agencies": ["police"], "after": ["police_reprimand"],
    }
    assert "protection_order_issued" not in following


def test_the_ladder_of_a_child_without_steps_is_empty_with_the_first_steps(client):
    ladder = client.get(f"/v1/children/{uuid.uuid4()}/interventions").json()

    assert ladder["steps"] == []
    assert ladder["ended"] is False
    assert "admonition" in [n["kind"] for n in ladder["next_steps"]]


def test_intervention_recorded_carries_ids_codes_and_document_references_only(client, service, case):
    body = step(case.child_id, K.police_reprimand)
    recorded = take(client, case, K.police_reprimand, documents=body["documents"])

    [event] = of_type(published(service), InterventionRecorded)
    assert event.type == "cn.huhang.guardianship.intervention-recorded.v1"
    assert event.subject == str(case.case_id)
    assert event.actoragency == Agency.police
    assert event.data.model_dump(mode="json") == {
        "intervention_id": recorded["intervention_id"], "child_id": str(case.child_id),
        "case_id": str(case.case_id), "kind": "police_reprimand", "agency": "police",
        "documents": [{"kind": "reprimand_letter", "reference": body["documents"][0]["reference"]}],
        "township": TOWNSHIP, "village": VILLAGE,
    }


ROUTED_TO: dict[InterventionKind, set[str]] = {
    K.admonition: {"village", "womens_federation"},
    K.police_report: {"police"},
    K.police_reprimand: {"village", "justice"},
    K.family_education_order: {"womens_federation"},
    K.family_education_guidance: {"village"},
    K.protection_order_application: {"court", "procuratorate"},
    K.protection_order_issued: set(),  # routed as CourtProtectionOrderIssued
    K.guardianship_revocation_application: {"court", "procuratorate", "civil_affairs"},
    K.guardianship_revoked: set(),  # routed as CourtProtectionOrderIssued
    K.temporary_guardianship_placement: {"civil_affairs", "education", "procuratorate"},
    K.long_term_state_guardianship: {"civil_affairs", "education", "procuratorate"},
}


@pytest.mark.parametrize("kind", list(InterventionKind), ids=str)
def test_each_step_is_routed_to_the_next_agency_on_the_ladder(kind):
    event_id = uuid.uuid4()
    event = InterventionRecorded.model_validate({
        "id": event_id, "source": "/huhang/guardianship", "subject": str(uuid.uuid4()), "time": datetime.now(UTC),
        "dataschema": InterventionRecorded.schema_uri(), "correlationid": event_id,
        "actoragency": sorted(WHO_RECORDS[kind])[0],
        "data": {
            "intervention_id": uuid.uuid4(), "child_id": uuid.uuid4(), "case_id": uuid.uuid4(), "kind": kind,
            "agency": sorted(WHO_RECORDS[kind])[0], "township": TOWNSHIP, "village": VILLAGE,
            "documents": [{"kind": DOCUMENT_OF[kind], "reference": "乐文〔2026〕1号"}],
        },
    })

    assert {r.agency.value for r in load_rules().route(event)} == ROUTED_TO[kind]


def test_a_protection_order_application_reaches_the_court_asap():
    event_id = uuid.uuid4()
    event = InterventionRecorded.model_validate({
        "id": event_id, "source": "/huhang/guardianship", "subject": str(uuid.uuid4()), "time": datetime.now(UTC),
        "dataschema": InterventionRecorded.schema_uri(), "correlationid": event_id, "actoragency": "village",
        "data": {
            "intervention_id": uuid.uuid4(), "child_id": uuid.uuid4(), "case_id": uuid.uuid4(),
            "kind": "protection_order_application", "agency": "village", "township": TOWNSHIP, "village": VILLAGE,
            "documents": [],
        },
    })

    [court] = [r for r in load_rules().route(event) if r.agency == Agency.court]
    assert (court.referral_type, court.priority, court.due_at - event.time) == (
        "protection_order_decision", "asap", timedelta(hours=24),
    )


def test_every_request_body_example_is_a_valid_step():
    from services.guardianship.ladder_schemas import ADMONITION_EXAMPLE, PROTECTION_ORDER_EXAMPLE, InterventionCreate

    for example in (ADMONITION_EXAMPLE, PROTECTION_ORDER_EXAMPLE):
        InterventionCreate.model_validate(example)


# --- on every store ---------------------------------------------------------------------------------------------


def test_the_ladder_on_every_store(any_storage_settings: Settings):
    service = build(any_storage_settings)
    report = report_filed(uuid.uuid4(), uuid.uuid4())
    service.known_cases.handle([report])
    case = report.data

    def record(kind: InterventionKind, key: str) -> Any:
        return service.interventions.record(RecordIntervention(
            case_id=case.case_id, child_id=case.child_id, kind=kind, agency=Agency(sorted(WHO_RECORDS[kind])[0]),
            occurred_on=DAY, fingerprint=key,
            documents=(DocumentRef(InterventionDocumentKind(DOCUMENT_OF[kind]), f"乐文〔2026〕{key}号", DAY),),
            idempotency_key=key,
        ))

    first = record(K.temporary_guardianship_placement, "p-1")
    assert record(K.temporary_guardianship_placement, "p-1") == dataclasses.replace(first, replayed=True)
    record(K.long_term_state_guardianship, "l-1")

    ladder = service.interventions.ladder(case.child_id, TODAY)
    assert [s.kind for s in ladder.steps] == [K.temporary_guardianship_placement, K.long_term_state_guardianship]
    assert ladder.ended
    assert ladder.next_steps == ()
