import uuid
from datetime import UTC, date, datetime

import pytest

from contracts.agencies import Agency
from contracts.events import (
    ReferralRequested,
    ReferralRequestedData,
    ReferralStatusChanged,
    ReferralStatusChangedData,
    ReportFiled,
    ReportFiledData,
)
from contracts.vocabulary import Priority, ReferralStatus
from huhang.settings import Settings
from services.notifications.main import NotificationsService, build

CASE = uuid.UUID("0d6c1a2e-4b7f-4e35-9a1c-2f8e6b3d5c70")
REFERRAL = uuid.UUID("9a4e2f61-3c8b-4d17-b5e0-7c1f2a9d6e48")


def envelope(case_id: uuid.UUID, actor: Agency) -> dict:
    event_id = uuid.uuid4()
    return {"id": event_id, "source": "/huhang/test", "subject": str(case_id), "time": datetime.now(UTC),
            "correlationid": event_id, "actoragency": actor}


def report_filed(reporter: Agency = Agency.education, case_id: uuid.UUID = CASE) -> ReportFiled:
    return ReportFiled(
        **envelope(case_id, reporter), dataschema=ReportFiled.schema_uri(),
        data=ReportFiledData(
            report_id=uuid.uuid4(), case_id=case_id, child_id=uuid.uuid4(), reporter_agency=reporter,
            reporter_role="teacher", concern_category="guardian_neglect", urgency="urgent",
            child_categories=("left_behind",), township="虹桥镇", village="溪西村", observed_on=date(2026, 11, 27),
        ),
    )


def referral_requested(owner: Agency = Agency.police, case_id: uuid.UUID = CASE) -> ReferralRequested:
    return ReferralRequested(
        **envelope(case_id, Agency.civil_affairs), dataschema=ReferralRequested.schema_uri(),
        data=ReferralRequestedData(
            referral_id=REFERRAL, case_id=case_id, child_id=uuid.uuid4(), owner_agency=owner,
            requester_agency=Agency.civil_affairs, referral_type="guardianship_intervention",
            priority=Priority.urgent, due_at=datetime(2026, 11, 30, 1, 0, tzinfo=UTC), plan_tasks=(4, 6),
            rule_id="neglect-to-police", rules_version="2026.11", source_event_id=uuid.uuid4(),
            township="虹桥镇", village="溪西村",
        ),
    )


def status_changed(status: ReferralStatus, owner: Agency = Agency.police) -> ReferralStatusChanged:
    return ReferralStatusChanged(
        **envelope(CASE, owner), dataschema=ReferralStatusChanged.schema_uri(),
        data=ReferralStatusChangedData(
            referral_id=REFERRAL, case_id=CASE, owner_agency=owner, status=status
        ),
    )


@pytest.fixture
def service() -> NotificationsService:
    return build(Settings(storage="memory"))


def kinds(service: NotificationsService, agency: Agency) -> list[str]:
    return [n["kind"] for n in service.feed.for_agency(agency.value)]


def test_a_referral_notifies_the_owner_once_and_the_reporter_once(service):
    service.feed.handle([report_filed(Agency.education)])

    service.feed.handle([referral_requested(Agency.police)])

    assert kinds(service, Agency.police) == ["new_referral"]
    assert kinds(service, Agency.education) == ["report_referred"]


def test_handling_the_same_events_twice_adds_no_notification(service):
    events = [report_filed(Agency.education), referral_requested(Agency.police)]
    service.feed.handle(events)

    service.feed.handle(events)

    assert (len(kinds(service, Agency.police)), len(kinds(service, Agency.education))) == (1, 1)


def test_the_owner_is_told_the_type_priority_and_due_time_in_beijing_time(service):
    service.feed.handle([referral_requested(Agency.police)])

    [notice] = service.feed.for_agency("police")

    assert notice["text_zh"] == "新转介：guardianship_intervention，优先级 urgent，截止 2026-11-30 09:00（北京时间）"
    assert notice["priority"] == "urgent"


def test_the_reporter_is_told_which_agency_the_case_went_to(service):
    service.feed.handle([report_filed(Agency.education), referral_requested(Agency.police)])

    [notice] = service.feed.for_agency("education")

    assert notice["text_zh"] == "您报告的案件已转介至市公安局"
    assert notice["text_en"] == "The case you reported was referred to: Public Security Bureau."


def test_a_referral_seen_before_its_report_reaches_the_reporter_when_the_report_arrives(service):
    service.feed.handle([referral_requested(Agency.police)])

    service.feed.handle([report_filed(Agency.education)])

    assert kinds(service, Agency.education) == ["report_referred"]


def test_an_accepted_referral_is_reported_back_to_the_reporter(service):
    service.feed.handle([report_filed(Agency.education), referral_requested(Agency.police)])

    service.feed.handle([status_changed(ReferralStatus.accepted)])

    assert kinds(service, Agency.education) == ["report_referred", "referral_accepted"]


def test_a_referral_put_in_progress_notifies_no_one(service):
    service.feed.handle([report_filed(Agency.education)])

    service.feed.handle([status_changed(ReferralStatus.in_progress)])

    assert kinds(service, Agency.education) == []


def test_a_reporter_that_owns_the_referral_gets_only_the_new_referral_notice(service):
    service.feed.handle([report_filed(Agency.police)])

    service.feed.handle([referral_requested(Agency.police)])

    assert kinds(service, Agency.police) == ["new_referral"]


def test_the_feed_cursor_pages_through_an_agency_s_notifications(service):
    service.feed.handle([referral_requested(Agency.police, case_id=uuid.uuid4()) for _ in range(3)])

    first = service.feed.for_agency("police", after=0, limit=2)
    rest = service.feed.for_agency("police", after=first[-1]["sequence"], limit=2)

    assert (len(first), len(rest)) == (2, 1)
    assert first[0]["sequence"] < first[1]["sequence"] < rest[0]["sequence"]


def test_an_owner_that_reported_the_case_is_not_told_of_its_own_status_change(service):
    service.feed.handle([report_filed(Agency.police)])

    service.feed.handle([status_changed(ReferralStatus.accepted, owner=Agency.police)])

    assert kinds(service, Agency.police) == []
