"""Outbound webhooks, the pure rules: signatures checked by the Standard Webhooks reference library (not by our own
code), who receives which event, the endpoint rule, and the retry schedule."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from contracts.events import (
    ReferralRequested,
    ReferralRequestedData,
    ReferralStatusChanged,
    ReferralStatusChangedData,
    ReportFiled,
    ReportFiledData,
)
from contracts.vocabulary import Priority, ReferralStatus
from services.notifications.webhooks_model import (
    Area,
    Backoff,
    EndpointRefused,
    Filter,
    Outcome,
    area_of,
    check_endpoint,
    classify,
    new_secret,
    parse_retry_after,
    wants,
    webhook_headers,
)

TOWNSHIP, VILLAGE = "虹桥镇", "溪西村"


def envelope(case_id: uuid.UUID, actor: Agency) -> dict[str, object]:
    event_id = uuid.uuid4()
    return {"id": event_id, "source": "/huhang/test", "subject": str(case_id), "time": datetime.now(UTC),
            "correlationid": event_id, "actoragency": actor}


def report_filed(case_id: uuid.UUID, reporter: Agency = Agency.education, township: str = TOWNSHIP,
                 village: str = VILLAGE) -> ReportFiled:
    return ReportFiled(
        **envelope(case_id, reporter), dataschema=ReportFiled.schema_uri(),
        data=ReportFiledData(
            report_id=uuid.uuid4(), case_id=case_id, child_id=uuid.uuid4(), reporter_agency=reporter,
            reporter_role="teacher", concern_category="guardian_neglect", urgency="urgent",
            child_categories=("left_behind",), township=township, village=village, observed_on=date(2026, 11, 27),
        ),
    )


def referral_requested(case_id: uuid.UUID, owner: Agency = Agency.police) -> ReferralRequested:
    return ReferralRequested(
        **envelope(case_id, Agency.civil_affairs), dataschema=ReferralRequested.schema_uri(),
        data=ReferralRequestedData(
            referral_id=uuid.uuid4(), case_id=case_id, child_id=uuid.uuid4(), owner_agency=owner,
            requester_agency=Agency.civil_affairs, referral_type="guardianship_intervention",
            priority=Priority.urgent, due_at=datetime(2026, 11, 30, 1, 0, tzinfo=UTC), plan_tasks=(4, 6),
            rule_id="neglect-to-police", rules_version="2026.11", source_event_id=uuid.uuid4(),
            township=TOWNSHIP, village=VILLAGE,
        ),
    )


def status_changed(case_id: uuid.UUID, status: ReferralStatus, owner: Agency = Agency.police) -> ReferralStatusChanged:
    return ReferralStatusChanged(
        **envelope(case_id, owner), dataschema=ReferralStatusChanged.schema_uri(),
        data=ReferralStatusChangedData(referral_id=uuid.uuid4(), case_id=case_id, owner_agency=owner, status=status),
    )


# --- signatures ---------------------------------------------------------------------------------------------------


def test_our_signature_verifies_with_the_reference_library():
    secret = new_secret()
    body = referral_requested(uuid.uuid4()).model_dump_json().encode()
    headers = webhook_headers([secret], "msg-1", int(datetime.now(UTC).timestamp()), body)
    assert Webhook(secret).verify(body, headers)["type"] == "cn.huhang.referral.requested.v1"


def test_during_a_rotation_either_secret_verifies_and_a_stranger_does_not():
    old, new = new_secret(), new_secret()
    body = b'{"specversion": "1.0"}'
    headers = webhook_headers([new, old], "msg-2", int(datetime.now(UTC).timestamp()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):  # a changed body does not verify
        Webhook(new).verify(b'{"specversion": "1.1"}', headers)


def test_a_secret_is_whsec_and_32_random_bytes():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert secret != new_secret()
    assert len(Webhook(secret)._whsecret) == 32


# --- who receives what --------------------------------------------------------------------------------------------

AREA = Area(TOWNSHIP, VILLAGE)


def test_an_agency_receives_the_events_that_name_it_and_only_those():
    case = uuid.uuid4()
    to_police = referral_requested(case, Agency.police)
    assert wants(Filter(Agency.police), to_police, AREA)
    assert not wants(Filter(Agency.hrss), to_police, AREA)
    assert wants(Filter(Agency.civil_affairs), to_police, AREA)  # the lead agency hears everything
    assert wants(Filter(Agency.education), report_filed(case, Agency.education), AREA)
    assert not wants(Filter(Agency.police), report_filed(case, Agency.education), AREA)


def test_type_and_area_filters():
    event = referral_requested(uuid.uuid4(), Agency.police)
    assert not wants(Filter(Agency.police, frozenset({"cn.huhang.referral.status-changed.v1"})), event, AREA)
    assert wants(Filter(Agency.police, frozenset({"cn.huhang.referral.requested.v1"})), event, AREA)
    assert wants(Filter(Agency.police, township=TOWNSHIP, village=VILLAGE), event, AREA)
    assert not wants(Filter(Agency.police, township=TOWNSHIP, village="溪东村"), event, AREA)
    assert not wants(Filter(Agency.police, township="其他镇"), event, AREA)


def test_a_township_system_hears_its_own_area_only():
    event = referral_requested(uuid.uuid4(), Agency.police)
    assert wants(Filter(Agency.township, township=TOWNSHIP), event, AREA)
    assert not wants(Filter(Agency.township, township="其他镇"), event, AREA)
    assert not wants(Filter(Agency.township), event, AREA)  # no area: nothing
    # an event without its own area is placed by the case's remembered area
    change = status_changed(uuid.uuid4(), ReferralStatus.accepted)
    assert area_of(change) == Area(None, None)
    assert not wants(Filter(Agency.village, township=TOWNSHIP, village=VILLAGE), change, Area(None, None))
    assert wants(Filter(Agency.village, township=TOWNSHIP, village=VILLAGE), change, AREA)


def test_events_carry_no_names_to_webhooks():
    """The body is the integration event: ids and codes (what contracts/ allow), never the child's name."""
    event: CloudEvent = report_filed(uuid.uuid4())
    assert "name" not in event.model_dump()["data"]


# --- endpoints ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["https://school.example.cn/hook", "http://127.0.0.1:8080/hook",
                                 "http://localhost/hook", "http://[::1]:9/x"])
def test_acceptable_endpoints_in_development(url):
    assert check_endpoint(url, development=True) == url


@pytest.mark.parametrize(("url", "development"), [
    ("http://school.example.cn/hook", True), ("http://127.0.0.1:8080/hook", False), ("ftp://x.cn/a", True),
    ("https://user:pw@x.cn/a", True), ("not a url", True),
])
def test_refused_endpoints(url, development):
    with pytest.raises(EndpointRefused):
        check_endpoint(url, development=development)


# --- retries ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.delivered), (204, Outcome.delivered), (None, Outcome.retry), (500, Outcome.retry),
    (503, Outcome.retry), (429, Outcome.retry), (410, Outcome.gone), (400, Outcome.dead), (404, Outcome.dead),
    (301, Outcome.dead),
])
def test_classification(status, outcome):
    assert classify(status) is outcome


def test_backoff_is_exponential_with_full_jitter_and_ends():
    backoff = Backoff(base_s=30, factor=4, cap_s=12 * 3600, max_attempts=8)
    assert [backoff.bound(n) for n in range(1, 8)] == [30, 120, 480, 1920, 7680, 30720, 43200]
    assert sum(backoff.bound(n) for n in range(1, 8)) / 3600 == pytest.approx(23.3, abs=0.1)  # about a day
    rng = random.Random(7)
    delays = [backoff.delay(1, rng) or 0.0 for _ in range(2000)]
    assert all(0 <= d <= 30 for d in delays)
    assert min(delays) < 3  # spread over the whole interval: full jitter
    assert max(delays) > 27
    assert backoff.delay(8, rng) is None  # the last attempt: dead-letter
    assert backoff.delay(2, rng, retry_after_s=90) == 90  # Retry-After wins
    assert backoff.delay(2, rng, retry_after_s=10**9) == 12 * 3600  # within the cap


def test_retry_after_in_seconds_or_as_an_http_date():
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
