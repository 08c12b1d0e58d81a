"""Closing the loop (反馈闭环): the notification feed told by the referral service's own integration events. A
referral that ends is reported to its requester and the lead agency, an escalation to the owner and then to the
supervising agency, a transfer to the new owner; a redelivered event tells nobody twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from contracts.events import ReferralEscalated, ReferralOwnerChanged, ReferralStatusChanged
from contracts.vocabulary import Outcome, ReferralStatus
from huhang.settings import Settings
from services.notifications.main import NotificationsService
from services.notifications.main import build as build_notifications
from services.referral.application import ReferralApplication
from services.referral.integration import to_integration_events
from services.referral.main import build as build_referral
from tests.unit.test_referral import opened

S = ReferralStatus
OWNER, REQUESTER = Agency.police, Agency.education
# How each closing status is reached, and the code it needs.
PATHS: dict[ReferralStatus, tuple[tuple[ReferralStatus, dict[str, object]], ...]] = {
    S.completed: ((S.accepted, {}), (S.in_progress, {}), (S.completed, {"outcome": Outcome.service_delivered})),
    S.rejected: ((S.rejected, {"reason_code": "not_responsible"}),),
    S.failed: ((S.accepted, {}), (S.in_progress, {}), (S.failed, {"reason_code": "family_refused"})),
}


@pytest.fixture
def referrals() -> Iterator[ReferralApplication]:
    service = build_referral(Settings(storage="memory"))
    yield service.application
    service.application.close()
    service.positions.engine.dispose()


@pytest.fixture
def notifications() -> Iterator[NotificationsService]:
    service = build_notifications(Settings(storage="memory"))
    yield service
    service.application.close()
    service.positions.engine.dispose()


def published(referrals: ReferralApplication, kind: type[CloudEvent]) -> list[CloudEvent]:
    """The referral service's integration events of one kind, from its notification log."""
    notifications = referrals.recorder.select_notifications(start=None, limit=10_000)
    events = [ce for n in notifications for ce in to_integration_events(referrals.mapper.to_domain_event(n))]
    return [e for e in events if isinstance(e, kind)]


def closing_event(referrals: ReferralApplication, status: ReferralStatus, owner: Agency = OWNER) -> CloudEvent:
    referral_id = opened(referrals, owner_agency=owner, requester_agency=REQUESTER)
    for step, codes in PATHS[status]:
        referrals.change_status(referral_id, step, owner.value, **codes)  # type: ignore[arg-type]
    (closing,) = [e for e in published(referrals, ReferralStatusChanged) if e.data.status == status]  # type: ignore[attr-defined]
    return closing


def escalations(referrals: ReferralApplication, times: int) -> list[CloudEvent]:
    referral_id = opened(referrals, owner_agency=OWNER, requester_agency=REQUESTER)
    for _ in range(times):
        referrals.escalate_by_supervisor(referral_id, Agency.civil_affairs.value, datetime.now(UTC))
    return published(referrals, ReferralEscalated)


def kinds(notifications: NotificationsService, agency: Agency) -> list[str]:
    return [n["kind"] for n in notifications.feed.for_agency(agency.value)]


@pytest.mark.parametrize("status", list(PATHS))
def test_a_closed_referral_is_reported_to_its_requester_and_the_lead_agency(referrals, notifications, status):
    notifications.feed.handle([closing_event(referrals, status)])

    assert (kinds(notifications, REQUESTER), kinds(notifications, Agency.civil_affairs)) == (
        ["referral_closed"],
        ["referral_closed"],
    )


@pytest.mark.parametrize("status", list(PATHS))
def test_a_closed_referral_is_not_reported_to_its_owner(referrals, notifications, status):
    notifications.feed.handle([closing_event(referrals, status)])

    assert kinds(notifications, OWNER) == []


def test_a_referral_the_lead_agency_closes_is_reported_to_the_requester_only(referrals, notifications):
    notifications.feed.handle([closing_event(referrals, S.completed, owner=Agency.civil_affairs)])

    assert (kinds(notifications, REQUESTER), kinds(notifications, Agency.civil_affairs)) == (["referral_closed"], [])


def test_the_closing_notice_names_the_owner_and_the_code(referrals, notifications):
    notifications.feed.handle([closing_event(referrals, S.rejected)])

    (notice,) = notifications.feed.for_agency(REQUESTER.value)
    assert notice["text_en"] == "A referral owned by Public Security Bureau ended: rejected (not_responsible)."


def test_a_closing_delivered_twice_is_reported_once(referrals, notifications):
    closing = closing_event(referrals, S.completed)

    notifications.feed.handle([closing])
    notifications.feed.handle([closing])

    assert (kinds(notifications, REQUESTER), kinds(notifications, Agency.civil_affairs)) == (
        ["referral_closed"],
        ["referral_closed"],
    )


def test_an_accepted_referral_is_not_reported_as_closed(referrals, notifications):
    referral_id = opened(referrals, owner_agency=OWNER, requester_agency=REQUESTER)
    referrals.change_status(referral_id, S.accepted, OWNER.value)

    notifications.feed.handle(published(referrals, ReferralStatusChanged))

    assert "referral_closed" not in kinds(notifications, REQUESTER) + kinds(notifications, Agency.civil_affairs)


def test_a_level_1_escalation_reminds_the_owner(referrals, notifications):
    (level_1,) = escalations(referrals, times=1)

    notifications.feed.handle([level_1])

    assert (kinds(notifications, OWNER), kinds(notifications, Agency.civil_affairs)) == (["overdue_reminder"], [])


def test_a_level_2_escalation_asks_the_supervising_agency_to_act(referrals, notifications):
    _level_1, level_2 = escalations(referrals, times=2)

    notifications.feed.handle([level_2])

    assert (kinds(notifications, OWNER), kinds(notifications, Agency.civil_affairs)) == ([], ["overdue_supervision"])


def test_an_escalation_delivered_twice_is_reported_once(referrals, notifications):
    (level_1,) = escalations(referrals, times=1)

    notifications.feed.handle([level_1])
    notifications.feed.handle([level_1])

    assert kinds(notifications, OWNER) == ["overdue_reminder"]


def test_a_change_of_owner_tells_the_new_owner(referrals, notifications):
    referral_id = opened(referrals, owner_agency=OWNER, requester_agency=REQUESTER)
    referrals.propose_transfer(referral_id, Agency.hrss.value, OWNER.value, None, None)
    referrals.answer_transfer(referral_id, Agency.hrss.value, True, None, None)
    (owner_changed,) = published(referrals, ReferralOwnerChanged)

    notifications.feed.handle([owner_changed])

    assert (kinds(notifications, Agency.hrss), kinds(notifications, OWNER)) == (["referral_transferred"], [])
