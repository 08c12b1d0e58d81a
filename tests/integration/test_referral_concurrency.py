"""Referral under concurrency on PostgreSQL: many agencies' clerks sending the same change at once, through the
application and over HTTP with If-Match, and the routing workflow opening the same referrals from many threads.
Exactly one change wins, the others are told their version is stale, and nothing is opened twice."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from contracts.vocabulary import ReferralStatus
from huhang.bootstrap import service_api
from huhang.settings import Settings
from services.referral.application import Opened, ReferralApplication, StaleVersion
from services.referral.main import ReferralService
from tests.conftest import postgres_settings
from tests.support.auth import client_for
from tests.support.referrals import referral_service
from tests.unit.test_referral import OWNER, an_open_referral, opened

pytestmark = [pytest.mark.integration]

THREADS = 16
T = TypeVar("T")


@pytest.fixture
def settings(postgres_url: str) -> Settings:
    return postgres_settings(postgres_url)


@pytest.fixture
def service(settings: Settings) -> Iterator[ReferralService]:
    with referral_service(settings) as built:
        yield built


@pytest.fixture
def referrals(service: ReferralService) -> ReferralApplication:
    return service.application


def all_at_once(action: Callable[[], T]) -> list[T | BaseException]:
    """Run ``action`` in THREADS threads released together; each one's result or exception."""
    start = threading.Barrier(THREADS)

    def attempt() -> T | BaseException:
        start.wait()
        try:
            return action()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda _: attempt(), range(THREADS)))


def outcome(result: Any) -> str:
    return type(result).__name__ if isinstance(result, BaseException) else "won"


def test_of_many_equal_changes_at_the_same_version_exactly_one_wins(referrals):
    referral_id = opened(referrals)
    version = referrals.get(referral_id).version

    results = all_at_once(
        lambda: referrals.change_status(
            referral_id, ReferralStatus.received, OWNER.value, None, expected_version=version
        )
    )

    assert Counter(outcome(r) for r in results) == {"won": 1, "StaleVersion": THREADS - 1}
    assert all(isinstance(r, StaleVersion) for r in results if isinstance(r, BaseException))


def test_many_equal_changes_at_the_same_version_store_one_new_version(referrals):
    referral_id = opened(referrals)
    version = referrals.get(referral_id).version

    all_at_once(
        lambda: referrals.change_status(
            referral_id, ReferralStatus.received, OWNER.value, None, expected_version=version
        )
    )

    referral = referrals.get(referral_id)
    assert (referral.version, referral.status) == (version + 1, "received")
    assert [h["status"] for h in referrals.history(referral_id)] == ["requested", "received"]


def test_http_of_many_equal_changes_with_the_same_if_match_one_answers_200_and_the_others_412(
    settings, service, referrals
):
    referral_id = opened(referrals)
    body = {"status": "received", "agency": OWNER.value}
    with client_for(service_api(settings, service)) as client:
        etag = client.get(f"/v1/referrals/{referral_id}").headers["ETag"]

        answers = all_at_once(
            lambda: (
                client.post(f"/v1/referrals/{referral_id}/status", json=body, headers={"If-Match": etag}).status_code
            )
        )

    assert Counter(answers) == {200: 1, 412: THREADS - 1}
    assert referrals.get(referral_id).version == int(etag.strip('"')) + 1


def test_many_threads_opening_the_same_referrals_create_each_exactly_once(referrals):
    commands = [an_open_referral() for _ in range(20)]

    results = all_at_once(lambda: referrals.open_referrals(commands))

    created = Counter(
        o.referral_id for r in results if isinstance(r, list) for o in r if isinstance(o, Opened) and o.created
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert created == {c.referral_id: 1 for c in commands}


def test_many_threads_opening_the_same_referrals_store_one_request_each(referrals):
    commands = [an_open_referral() for _ in range(20)]

    all_at_once(lambda: referrals.open_referrals(commands))

    assert {c.referral_id: len(referrals.history(c.referral_id)) for c in commands} == {
        c.referral_id: 1 for c in commands
    }
