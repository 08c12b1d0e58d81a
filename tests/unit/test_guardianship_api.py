import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from contracts.agencies import Agency
from contracts.events import ReportFiled, ReportFiledData
from huhang.bootstrap import service_api
from huhang.settings import Settings
from services.guardianship.main import build
from tests.support.auth import client_for


def report_filed(case_id: uuid.UUID, child_id: uuid.UUID) -> ReportFiled:
    event_id = uuid.uuid4()
    return ReportFiled(
        id=event_id, source="/huhang/intake", subject=str(case_id), time=datetime.now(UTC),
        dataschema=ReportFiled.schema_uri(), correlationid=event_id, actoragency=Agency.village,
        data=ReportFiledData(
            report_id=uuid.uuid4(), case_id=case_id, child_id=child_id, reporter_agency=Agency.village,
            reporter_role="child_director", concern_category="caregiver_unable", urgency="routine",
            child_categories=("left_behind",), township="柳市镇", village="东风村", observed_on=date(2026, 11, 20),
        ),
    )


@pytest.fixture
def service():
    return build(Settings(storage="memory"))


@pytest.fixture
def client(service):
    return client_for(service_api(service.settings, service))


@pytest.fixture
def case(service) -> ReportFiledData:
    report = report_filed(uuid.uuid4(), uuid.uuid4())
    service.known_cases.handle([report])
    return report.data


def court_order(child_id: uuid.UUID, **changes) -> dict:
    body = {
        "child_id": str(child_id), "agency": "court", "order_kind": "personal_safety_protection",
        "court_case_number": "(2026)浙0382民保令3号", "issued_on": "2026-11-20", "expires_on": "2027-05-19",
    }
    return {**body, **changes}


def test_an_assessment_answers_201_with_its_level_colour_and_reasons(client, case):
    response = client.post(
        f"/v1/cases/{case.case_id}/guardianship-assessments",
        json={"child_id": str(case.child_id), "factors": ["caregiver_elderly_or_frail", "previous_neglect_report"],
              "assessor_agency": "civil_affairs"},
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["risk_level"], body["colour"], body["reasons"]) == ("medium", "yellow", ["score 3 >= 2"])
    assert response.headers["Location"] == f"/v1/children/{case.child_id}/guardianship"


def test_an_assessment_for_an_unknown_case_answers_404_problem_naming_case_id(client):
    response = client.post(
        f"/v1/cases/{uuid.uuid4()}/guardianship-assessments",
        json={"child_id": str(uuid.uuid4()), "factors": [], "assessor_agency": "civil_affairs"},
    )

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["case_id"]


def test_an_unknown_factor_answers_422_naming_the_field(client, case):
    response = client.post(
        f"/v1/cases/{case.case_id}/guardianship-assessments",
        json={"child_id": str(case.child_id), "factors": ["bad_luck"], "assessor_agency": "civil_affairs"},
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["factors.0"]


def test_an_unexpected_body_field_answers_422_naming_it(client, case):
    response = client.post(
        f"/v1/cases/{case.case_id}/guardianship-assessments",
        json={"child_id": str(case.child_id), "factors": [], "assessor_agency": "civil_affairs", "name": "李小雨"},
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["name"]


def test_a_court_order_answers_201_and_shows_in_the_child_s_file(client, case):
    created = client.post(f"/v1/cases/{case.case_id}/court-orders", json=court_order(case.child_id))

    file = client.get(f"/v1/children/{case.child_id}/guardianship").json()
    assert created.status_code == 201
    assert [o["order_id"] for o in file["court_orders"]] == [created.json()["order_id"]]


def test_a_court_order_from_another_agency_answers_403_problem(client, case):
    response = client.post(f"/v1/cases/{case.case_id}/court-orders", json=court_order(case.child_id, agency="police"))

    assert response.status_code == 403
    assert [e["field"] for e in response.json()["errors"]] == ["agency"]


def test_a_court_order_issued_in_the_future_answers_422_naming_issued_on(client, case):
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    response = client.post(
        f"/v1/cases/{case.case_id}/court-orders", json=court_order(case.child_id, issued_on=tomorrow, expires_on=None)
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["issued_on"]


def test_a_court_order_expiring_on_its_issue_date_answers_422_naming_expires_on(client, case):
    response = client.post(
        f"/v1/cases/{case.case_id}/court-orders", json=court_order(case.child_id, expires_on="2026-11-20")
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["expires_on"]


def test_the_file_of_a_child_never_assessed_answers_404_problem(client):
    response = client.get(f"/v1/children/{uuid.uuid4()}/guardianship")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
