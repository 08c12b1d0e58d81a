import uuid
from datetime import UTC, date, datetime

import pytest

from contracts.agencies import Agency
from contracts.events import CourtProtectionOrderIssued, GuardianshipRiskAssessed, ReportFiled, ReportFiledData
from contracts.vocabulary import CourtOrderKind, RiskColour, RiskLevel
from huhang.problems import Conflict, NotFound, Unprocessable
from huhang.settings import Settings
from huhang.streams import NotificationLogSource
from services.guardianship.domain import NotPermitted
from services.guardianship.main import GuardianshipService, build
from services.guardianship.risk import GuardianshipRiskFactor as F


def report_filed(case_id: uuid.UUID, child_id: uuid.UUID) -> ReportFiled:
    event_id = uuid.uuid4()
    return ReportFiled(
        id=event_id, source="/huhang/intake", subject=str(case_id), time=datetime.now(UTC),
        dataschema=ReportFiled.schema_uri(), correlationid=event_id, actoragency=Agency.education,
        data=ReportFiledData(
            report_id=uuid.uuid4(), case_id=case_id, child_id=child_id, reporter_agency=Agency.education,
            reporter_role="teacher", concern_category="guardian_neglect", urgency="urgent",
            child_categories=("left_behind",), township="虹桥镇", village="溪西村", observed_on=date(2026, 11, 27),
        ),
    )


@pytest.fixture
def service() -> GuardianshipService:
    return build(Settings(storage="memory"))


@pytest.fixture
def known_case(service: GuardianshipService) -> ReportFiled:
    report = report_filed(uuid.uuid4(), uuid.uuid4())
    service.known_cases.handle([report])
    return report


def published(service: GuardianshipService) -> list:
    source = NotificationLogSource("test", service.application, service.to_integration_events(), service.positions)
    batch = source.poll(0.01)
    return list(batch.events) if batch else []


def test_an_assessment_for_an_unknown_case_is_not_found(service):
    with pytest.raises(NotFound) as raised:
        service.application.assess(uuid.uuid4(), uuid.uuid4(), [F.extreme_poverty], Agency.civil_affairs)

    assert [e.field for e in raised.value.errors] == ["case_id"]


def test_an_assessment_naming_another_child_than_the_case_s_is_unprocessable(service, known_case):
    with pytest.raises(Unprocessable) as raised:
        service.application.assess(uuid.uuid4(), known_case.data.case_id, [], Agency.civil_affairs)

    assert [e.field for e in raised.value.errors] == ["child_id"]


def test_an_assessment_of_a_known_case_publishes_risk_assessed_with_its_colour(service, known_case):
    d = known_case.data
    service.application.assess(d.child_id, d.case_id, [F.domestic_violence], Agency.civil_affairs)

    [event] = published(service)
    assert isinstance(event, GuardianshipRiskAssessed)
    assert (event.data.risk_level, event.data.colour) == (RiskLevel.high, RiskColour.red)
    assert event.data.factors == ("domestic_violence",)


def test_risk_assessed_carries_the_case_its_place_and_the_report_s_correlation(service, known_case):
    d = known_case.data
    service.application.assess(d.child_id, d.case_id, [], Agency.village)

    [event] = published(service)
    assert (event.subject, event.data.township, event.data.village) == (str(d.case_id), "虹桥镇", "溪西村")
    assert (event.correlationid, event.actoragency, event.source) == (
        known_case.id, Agency.village, "/huhang/guardianship"
    )


def test_a_second_assessment_records_the_previous_level(service, known_case):
    d = known_case.data
    service.application.assess(d.child_id, d.case_id, [F.extreme_poverty, F.unsafe_housing], Agency.civil_affairs)

    second = service.application.assess(d.child_id, d.case_id, [], Agency.civil_affairs)

    assert (second.previous_risk_level, second.risk_level, second.colour) == ("medium", "low", "green")


def test_a_court_order_maps_to_court_protection_order_issued(service, known_case):
    d = known_case.data
    order_id = service.application.record_court_order(
        d.child_id, d.case_id, CourtOrderKind.personal_safety_protection, "(2026)浙0382民保令1号",
        date(2026, 11, 20), date(2027, 5, 19), Agency.court,
    )

    [event] = published(service)
    assert isinstance(event, CourtProtectionOrderIssued)
    assert (event.data.order_id, event.data.court_case_number, event.actoragency) == (
        order_id, "(2026)浙0382民保令1号", Agency.court
    )
    assert (event.data.issued_on, event.data.expires_on) == (date(2026, 11, 20), date(2027, 5, 19))


def test_only_the_court_records_court_orders(service, known_case):
    d = known_case.data
    with pytest.raises(NotPermitted) as raised:
        service.application.record_court_order(
            d.child_id, d.case_id, CourtOrderKind.guardianship_revocation, "(2026)浙0382民特1号",
            date(2026, 11, 20), None, Agency.police,
        )

    assert [e.field for e in raised.value.errors] == ["agency"]


def test_the_same_court_case_number_is_recorded_once(service, known_case):
    d = known_case.data
    record = service.application.record_court_order
    record(d.child_id, d.case_id, CourtOrderKind.family_education_guidance, "(2026)浙0382民1号",
           date(2026, 11, 20), None, Agency.court)

    with pytest.raises(Conflict):
        record(d.child_id, d.case_id, CourtOrderKind.family_education_guidance, "(2026)浙0382民1号",
               date(2026, 11, 20), None, Agency.court)


def test_the_child_s_file_lists_assessments_and_orders_with_the_latest_colour(service, known_case):
    d = known_case.data
    service.application.assess(d.child_id, d.case_id, [F.child_disability], Agency.civil_affairs)
    service.application.record_court_order(
        d.child_id, d.case_id, CourtOrderKind.personal_safety_protection, "(2026)浙0382民保令2号",
        date(2026, 11, 20), None, Agency.court,
    )

    file = service.application.get_file(d.child_id)

    assert (file["risk_level"], file["colour"]) == ("medium", "yellow")
    assert (len(file["assessments"]), len(file["court_orders"])) == (1, 1)
