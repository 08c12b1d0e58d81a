"""Webhook delivery against a real HTTP receiver on 127.0.0.1 (tests/support/webhook_receiver.py), on SQLite and
PostgreSQL: the retry schedule (time and jitter injected into the deliverer, not the receiver), Retry-After, 410,
dead letters and replay, ordering per case, isolation of a stalled endpoint, and signatures checked with the
Standard Webhooks reference library."""

from __future__ import annotations

import base64
import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from contracts.agencies import Agency
from contracts.vocabulary import ReferralStatus
from huhang.personal import new_data_key
from huhang.settings import Settings
from huhang.storage import read_model_engine
from services.notifications.webhooks_deliverer import Deliverer, DeliveryPolicy
from services.notifications.webhooks_model import Backoff
from services.notifications.webhooks_store import DEAD, DELIVERED, PENDING, SecretBox, WebhookStore, utc
from tests.conftest import postgres_settings
from tests.support.webhook_receiver import Receiver, Reply, webhook_receiver
from tests.unit.test_webhooks_model import referral_requested, status_changed


class Clock:
    """The deliverer's time: starts now (the receiver and the signatures keep real time) and moves on demand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> WebhookStore:
    """On each store; queued deliveries are due by the deliverer's clock."""
    if request.param == "sqlite":
        settings = Settings(storage="sqlite", data_dir=tmp_path / "data")
    else:
        request.applymarker(pytest.mark.integration)
        settings = postgres_settings(request.getfixturevalue("postgres_url"))
    box = SecretBox(base64.b64decode(new_data_key()))
    return WebhookStore(read_model_engine(settings, "notifications"), box, clock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture
def clock() -> Clock:
    return Clock()


BACKOFF = Backoff(base_s=30, factor=4, cap_s=3600, max_attempts=4)


def deliverer(store: WebhookStore, clock: Clock, seed: int = 1, **policy: object) -> Deliverer:
    options: dict[str, object] = {"backoff": BACKOFF, "timeout_s": 2.0, **policy}
    return Deliverer(store, DeliveryPolicy(**options), clock=clock, rng=random.Random(seed))  # type: ignore[arg-type]


def subscribe(store: WebhookStore, receiver: Receiver, path: str, agency: Agency = Agency.police) -> tuple[str, str]:
    row, secret = store.create(agency, receiver.url(path), [], None, None, datetime.now(UTC))
    return row["id"], secret


def one(store: WebhookStore, subscription_id: str) -> dict[str, object]:
    (row,) = store.deliveries(subscription_id)
    return row


def test_a_delivery_is_signed_per_standard_webhooks_with_the_event_id(store, receiver, clock):
    sub, secret = subscribe(store, receiver, "/police")
    event = referral_requested(uuid.uuid4(), Agency.police)
    store.handle([event])
    store.handle([event])  # a redelivered integration event queues nothing twice
    sender = deliverer(store, clock)
    sender.drain()
    sender.close()
    (got,) = receiver.at("/police")
    assert got.headers["webhook-id"] == str(event.id)
    assert got.headers["content-type"] == "application/cloudevents+json"
    body = Webhook(secret).verify(got.body, got.headers)  # the reference library, not our code
    assert body["id"] == str(event.id)
    assert body["data"]["owner_agency"] == "police"
    assert one(store, sub)["status"] == DELIVERED


def test_retries_follow_exponential_backoff_with_full_jitter_and_honour_retry_after(store, receiver, clock):
    sub, secret = subscribe(store, receiver, "/police")
    receiver.script("/police", Reply(503), Reply(502), Reply(429, {"Retry-After": "90"}), Reply(204))
    event = referral_requested(uuid.uuid4(), Agency.police)
    store.handle([event])
    sender = deliverer(store, clock, seed=42)
    expected = random.Random(42)

    sender.drain()
    assert len(receiver.at("/police")) == 1
    for bound in (30, 120):  # after the 1st and the 2nd failure: uniform in [0, 30 * 4^(n-1)]
        delay = expected.uniform(0, bound)
        row = one(store, sub)
        assert row["status"] == PENDING
        assert utc(row["next_attempt_at"]) == pytest.approx(clock.now + timedelta(seconds=delay),  # type: ignore[arg-type]
                                                            abs=timedelta(milliseconds=1))
        seen = len(receiver.at("/police"))
        clock.advance(delay - 0.5)
        sender.drain()
        assert len(receiver.at("/police")) == seen  # not before its time
        clock.advance(1)
        sender.drain()
        assert len(receiver.at("/police")) == seen + 1

    # the 429 said 90 s: exactly that, no jitter
    assert utc(one(store, sub)["next_attempt_at"]) == pytest.approx(  # type: ignore[arg-type]
        clock.now + timedelta(seconds=90), abs=timedelta(milliseconds=1))
    clock.advance(89)
    sender.drain()
    assert len(receiver.at("/police")) == 3
    clock.advance(2)
    sender.drain()
    sender.close()
    requests = receiver.at("/police")
    assert [r.status for r in requests] == [503, 502, 429, 204]
    assert {r.headers["webhook-id"] for r in requests} == {str(event.id)}  # the same id every time: dedupable
    for r in requests:
        Webhook(secret).verify(r.body, r.headers)
    row = one(store, sub)
    assert row["status"] == DELIVERED
    assert row["attempts"] == 4


def test_after_the_last_retry_the_delivery_is_dead_lettered_and_can_be_replayed(store, receiver, clock):
    sub, _ = subscribe(store, receiver, "/police")
    receiver.script("/police", default=Reply(500))
    store.handle([referral_requested(uuid.uuid4(), Agency.police)])
    sender = deliverer(store, clock)
    for _ in range(BACKOFF.max_attempts):
        sender.drain()
        clock.advance(BACKOFF.cap_s)
    assert len(receiver.at("/police")) == BACKOFF.max_attempts
    row = one(store, sub)
    assert row["status"] == DEAD
    assert row["last_status"] == 500
    assert row["last_error"] == "http_500"
    sender.drain()
    assert len(receiver.at("/police")) == BACKOFF.max_attempts  # nothing more

    receiver.script("/police", default=Reply(200))
    assert store.replay(sub, str(row["id"]), clock.now)
    assert not store.replay(sub, str(row["id"]), clock.now)  # no longer a dead letter
    sender.drain()
    sender.close()
    assert one(store, sub)["status"] == DELIVERED
    assert receiver.at("/police")[-1].status == 200


def test_a_client_error_is_dead_lettered_at_once_and_410_disables_the_subscription(store, receiver, clock):
    refused, _ = subscribe(store, receiver, "/refuses")
    gone, _ = subscribe(store, receiver, "/gone")
    receiver.script("/refuses", default=Reply(400))
    receiver.script("/gone", default=Reply(410))
    store.handle([referral_requested(uuid.uuid4(), Agency.police)])
    sender = deliverer(store, clock)
    sender.drain()
    assert one(store, refused)["status"] == DEAD
    assert one(store, gone)["status"] == DEAD
    assert (store.get(Agency.police, refused) or {})["enabled"]
    disabled = store.get(Agency.police, gone)
    assert disabled is not None
    assert not disabled["enabled"]
    assert disabled["disabled_reason"] == "gone"
    store.handle([referral_requested(uuid.uuid4(), Agency.police)])  # nothing more is queued for it
    clock.advance(BACKOFF.cap_s)
    sender.drain()
    sender.close()
    assert len(receiver.at("/gone")) == 1
    assert len(receiver.at("/refuses")) == 2


def test_deliveries_of_one_case_keep_their_order_while_one_is_retried(store, receiver, clock):
    sub, _ = subscribe(store, receiver, "/police")
    case_a, case_b = uuid.uuid4(), uuid.uuid4()
    first = referral_requested(case_a, Agency.police)
    later = [status_changed(case_a, s) for s in (ReferralStatus.received, ReferralStatus.accepted)]
    other = referral_requested(case_b, Agency.police)
    receiver.script("/police", Reply(503), webhook_id=str(first.id))
    store.handle([first, *later, other])
    sender = deliverer(store, clock)
    sender.drain()
    ids = [r.headers["webhook-id"] for r in receiver.at("/police")]
    assert sorted(ids) == sorted([str(first.id), str(other.id)])  # case B is not held up by case A
    clock.advance(BACKOFF.bound(1))
    sender.drain()
    sender.close()
    of_a = [r.headers["webhook-id"] for r in receiver.at("/police") if r.headers["webhook-id"] != str(other.id)]
    assert of_a == [str(first.id), str(first.id), *(str(e.id) for e in later)]
    assert {r["status"] for r in store.deliveries(sub)} == {DELIVERED}


def test_a_stalled_endpoint_does_not_delay_another(store, receiver, clock):
    subscribe(store, receiver, "/stalled")
    subscribe(store, receiver, "/healthy")
    receiver.script("/stalled", default=Reply(204, delay_s=5))
    events = [referral_requested(uuid.uuid4(), Agency.police) for _ in range(6)]
    sender = deliverer(store, clock, timeout_s=3.0, senders=4, per_endpoint=2, poll_interval_s=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    thread.start()
    try:
        started = time.time()
        store.handle(events)
        healthy = receiver.wait_for("/healthy", len(events), timeout_s=2.0)
        assert max(r.at for r in healthy) - started < 1.0  # while /stalled holds its two requests for seconds
        assert len(receiver.at("/stalled")) <= 2  # at most its own limit in flight
    finally:
        stop.set()
        thread.join(10)


def test_during_a_rotation_both_secrets_sign(store, receiver, clock):
    sub, old = subscribe(store, receiver, "/police")
    new = store.rotate(Agency.police, sub, 3600, datetime.now(UTC))
    assert new is not None
    assert new != old
    store.handle([referral_requested(uuid.uuid4(), Agency.police)])
    sender = deliverer(store, clock)
    sender.drain()
    (got,) = receiver.at("/police")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(got.body, got.headers)
    Webhook(new).verify(got.body, got.headers)
    # after the overlap, only the new one
    store.rotate(Agency.police, sub, 0, datetime.now(UTC))
    newest = store.get(Agency.police, sub)
    assert newest is not None
    assert len(store.secrets_of(newest, datetime.now(UTC))) == 1
    sender.close()


def test_secrets_are_sealed_at_rest(store, receiver):
    sub, secret = subscribe(store, receiver, "/police")
    row = store.get(Agency.police, sub)
    assert row is not None
    assert secret.encode() not in row["secret"]
    assert secret.removeprefix("whsec_").encode() not in row["secret"]


def test_a_lease_that_ran_out_is_claimed_again(store, receiver, clock):
    """What a deliverer killed mid-delivery leaves behind: an in-flight row, sent again after its lease."""
    sub, _ = subscribe(store, receiver, "/police")
    store.handle([referral_requested(uuid.uuid4(), Agency.police)])
    (claimed,) = store.claim(clock.now, 60, 2, {}, 10)  # claimed, then the process "dies"
    assert store.claim(clock.now, 60, 2, {}, 10) == []
    sender = deliverer(store, clock)
    sender.drain()
    assert receiver.at("/police") == []
    clock.advance(61)
    sender.drain()
    sender.close()
    (got,) = receiver.at("/police")
    assert got.headers["webhook-id"] == claimed.event_id
    assert one(store, sub)["status"] == DELIVERED


def test_replay_since_sends_again_what_was_delivered(store, receiver, clock):
    sub, _ = subscribe(store, receiver, "/police")
    events = [referral_requested(uuid.uuid4(), Agency.police) for _ in range(3)]
    store.handle(events)
    sender = deliverer(store, clock)
    sender.drain()
    assert store.replay_since(sub, events[1].time, clock.now) == 2
    sender.drain()
    sender.close()
    ids = [r.headers["webhook-id"] for r in receiver.at("/police")]
    assert len(ids) == 5
    assert sorted(ids[3:]) == sorted(str(e.id) for e in events[1:])


def test_an_area_system_hears_of_its_cases_by_their_remembered_area(store, receiver, clock):
    """A status change carries no area: the case's area is remembered from its earlier events."""
    row, _ = store.create(Agency.township, receiver.url("/township"), [], "虹桥镇", None, clock.now)
    elsewhere, _ = store.create(Agency.township, receiver.url("/elsewhere"), [], "其他镇", None, clock.now)
    case = uuid.uuid4()
    store.handle([referral_requested(case, Agency.police)])
    store.handle([status_changed(case, ReferralStatus.accepted), status_changed(uuid.uuid4(), ReferralStatus.accepted)])
    assert [d["case_id"] for d in store.deliveries(row["id"])] == [str(case), str(case)]
    assert store.deliveries(elsewhere["id"]) == []
