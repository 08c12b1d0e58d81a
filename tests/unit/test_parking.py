"""Poison messages (issue 7): a consumer parks the events it cannot handle, with their reason, and handles the rest;
faults of the infrastructure park nothing; an operator hands a parked event back (API, CLI) and it is handled once.

Real notification logs (eventsourcing), real SQLite stores for positions and parked events, the real consumer loop;
the handlers fail on purpose, on the events the test makes poison.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, event
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from contracts.envelope import CloudEvent
from contracts.events import parse_event
from huhang.bootstrap import build_services, embedded_api
from huhang.cli import main as cli_main
from huhang.eventstore import ServiceApplication
from huhang.lease import lease_for
from huhang.parking import HANDLED, PARKED, RETRYING, ParkedEvents, parked_events, unavailable
from huhang.settings import Settings
from huhang.storage import read_model_engine
from huhang.streams import Consumer, NotificationLogSource, Positions
from tests.support.principals import ADMINISTRATOR, AUDITOR, LEAD_OFFICER, as_
from tests.support.processes import eventually
from tests.unit.test_routing_rules import report

NAMESPACE = uuid.UUID("6a0d1f3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f")


class Note(Aggregate):
    @event("Written")
    def __init__(self, text: str) -> None:
        self.text = text


class NotesApplication(ServiceApplication):
    pass


def as_report(domain_event: Any) -> Sequence[CloudEvent]:
    """Each note becomes a report event whose id is derived from the note (so the test knows it in advance)."""
    return [report_for(domain_event.originator_id)]


_reports: dict[uuid.UUID, CloudEvent] = {}


def report_for(note_id: uuid.UUID) -> CloudEvent:
    if note_id not in _reports:
        _reports[note_id] = report().model_copy(update={"id": uuid.uuid5(NAMESPACE, str(note_id))})
    return _reports[note_id]


class Handler:
    """Handles events in order, counting each; fails on the events named poison (after handling those before it,
    as a real handler that dies half-way), or on the first ``flaky`` calls with ``flaky_error``."""

    def __init__(self, poison: set[uuid.UUID] | None = None, flaky: int = 0,
                 flaky_error: Callable[[], Exception] = lambda: RuntimeError("blip")) -> None:
        self.poison = poison or set()
        self.flaky = flaky
        self.flaky_error = flaky_error
        self.calls = 0
        self.handled: Counter[uuid.UUID] = Counter()
        self.lock = threading.Lock()

    def handle(self, events: Sequence[CloudEvent]) -> None:
        with self.lock:
            self.calls += 1
            if self.calls <= self.flaky:
                raise self.flaky_error()
            for e in events:
                if e.id in self.poison:
                    raise ValueError("cannot handle this one")
                self.handled[e.id] += 1


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(storage="sqlite", data_dir=tmp_path)


@pytest.fixture
def app() -> NotesApplication:
    return NotesApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})


@pytest.fixture
def store(settings: Settings) -> Iterator[tuple[Positions, ParkedEvents]]:
    engine = read_model_engine(settings, "notes")
    yield Positions(engine), ParkedEvents(engine)
    engine.dispose()


def notes(app: NotesApplication, n: int) -> list[uuid.UUID]:
    """``n`` notes saved together (one batch for the follower); the ids of their report events, in order."""
    written = [Note(f"n{i}") for i in range(n)]
    app.save(*written)
    return [report_for(note.id).id for note in written]


def run_until(consumer: Consumer, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """The consumer's own loop (backoff, rewind, retries) in a thread until ``done``."""
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        eventually(done, timeout_s=timeout_s, interval_s=0.05)
    finally:
        stop.set()
        thread.join(10)


def consumer(app: NotesApplication, store: tuple[Positions, ParkedEvents], handler: Handler,
             max_attempts: int = 3) -> Consumer:
    positions, parking = store
    return Consumer("notes.reader", NotificationLogSource("notes.reader", app, as_report, positions), handler,
                    poll_timeout_s=0.05, parking=parking, max_attempts=max_attempts, retry_check_s=0.0)


def test_a_poison_event_in_the_middle_of_a_batch_is_parked_with_its_reason_and_the_rest_handled(app, store):
    ids = notes(app, 7)
    poison = ids[3]
    handler = Handler(poison={poison})
    reader = consumer(app, store, handler)
    run_until(reader, lambda: set(handler.handled) == set(ids) - {poison} and store[0].get("notes.reader") > 0)

    positions, parking = store
    assert positions.get("notes.reader") == 7  # the batch is committed: nothing behind the poison waits
    [row] = parking.entries()
    assert row["consumer"] == "notes.reader"
    assert row["event_id"] == str(poison)
    assert row["event_type"] == report_for_id(poison).type  # type: ignore[attr-defined]
    assert row["subject"] == report_for_id(poison).subject
    assert row["reason"] == "ValueError:invalid_event"  # type and code; never the exception's text
    assert row["status"] == PARKED
    assert row["attempts"] >= 3
    assert parse_event(row["event"]) == report_for_id(poison)  # the event as it came, to be handed back
    assert poison not in handler.handled


def report_for_id(event_id: uuid.UUID) -> CloudEvent:
    return next(e for e in _reports.values() if e.id == event_id)


def test_a_failure_that_clears_after_two_attempts_parks_nothing(app, store):
    ids = notes(app, 5)
    handler = Handler(flaky=2)
    run_until(consumer(app, store, handler, max_attempts=5), lambda: set(handler.handled) == set(ids))
    assert store[1].entries() == []
    assert handler.calls >= 3


def test_a_database_that_stays_unavailable_parks_nothing_however_often_it_fails(app, store):
    ids = notes(app, 4)
    handler = Handler(flaky=5, flaky_error=lambda: OperationalError("SELECT 1", {}, ConnectionError("refused")))
    run_until(consumer(app, store, handler, max_attempts=2), lambda: set(handler.handled) == set(ids), 30)
    assert handler.calls > 5  # well past max_attempts, and still
    assert store[1].entries() == []


def test_a_batch_whose_every_event_fails_is_not_parked_whole(app, store):
    """A broken consumer, not a batch of poison: it keeps retrying instead of parking everything."""
    ids = notes(app, 3)
    handler = Handler(poison=set(ids))
    reader = consumer(app, store, handler, max_attempts=1)
    run_until(reader, lambda: handler.calls > 8)
    assert store[1].entries() == []
    assert store[0].get("notes.reader") == 0


def test_a_parked_event_handed_back_is_handled_once(app, store):
    ids = notes(app, 3)
    poison = ids[1]
    handler = Handler(poison={poison})
    positions, parking = store
    run_until(consumer(app, store, handler), lambda: positions.get("notes.reader") == 3)
    [row] = parking.entries()

    handler.poison.clear()  # the cause is fixed
    assert parking.request_retry(row["parked_id"])["status"] == RETRYING
    reader = consumer(app, store, handler)
    run_until(reader, lambda: parking.get(row["parked_id"])["status"] == HANDLED)
    for _ in range(3):
        reader.run_once()
    assert handler.handled[poison] == 1
    assert parking.request_retry(row["parked_id"])["status"] == HANDLED


def test_a_parked_event_that_fails_again_is_parked_again_with_the_new_reason(app, store):
    ids = notes(app, 1)
    handler = Handler(poison=set(ids))
    positions, parking = store
    run_until(consumer(app, store, handler), lambda: positions.get("notes.reader") == 1)
    [row] = parking.entries()
    parking.request_retry(row["parked_id"])
    handler.poison.clear()
    handler.flaky, handler.calls = 1, 0  # the next call fails: a type error this time
    handler.flaky_error = lambda: TypeError("still broken")
    consumer(app, store, handler).run_once()
    again = parking.get(row["parked_id"])
    assert again is not None
    assert (again["status"], again["reason"], again["attempts"]) == (PARKED, "TypeError:handler_bug",
                                                                     row["attempts"] + 1)


def test_faults_of_the_infrastructure_are_told_from_faults_of_the_event():
    import httpx

    request = httpx.Request("POST", "http://referral/v1/referrals")

    def status(code: int) -> httpx.HTTPStatusError:
        return httpx.HTTPStatusError("x", request=request, response=httpx.Response(code, request=request))

    assert unavailable(OperationalError("SELECT 1", {}, ConnectionError()))
    assert unavailable(httpx.ConnectError("refused"))
    assert unavailable(status(503))
    assert unavailable(status(429))
    assert unavailable(status(401))
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = ConnectionRefusedError()
    assert unavailable(wrapped)
    assert not unavailable(status(422))
    assert not unavailable(ValueError("bad"))


def test_no_lease_is_needed_on_sqlite_or_memory(settings):
    assert lease_for(settings, "intake.relay") is None
    assert lease_for(Settings(storage="memory"), "intake.relay") is None
    assert lease_for(Settings(storage="postgres"), "intake.relay") is not None  # nothing connects until used


# --- the operators' view: API and CLI -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[TestClient, Any, Any]]:
    settings = Settings(storage="memory")
    services = build_services(settings)
    api = embedded_api(settings, services)
    yield TestClient(api), api, services
    for service in services.values():
        service.application.close()


def test_administrators_and_auditors_list_parked_events_and_administrators_hand_them_back(platform):
    client, api, services = platform
    parking = parked_events(services["intake"].positions.engine)
    poison = report()
    key = parking.park("intake.relay", poison, "ValueError:invalid_event", 5)

    listed = client.get("/v1/parked-events", headers=as_(api, AUDITOR))
    assert listed.status_code == 200, listed.text
    [item] = [i for i in listed.json()["items"] if i["parked_id"] == key]
    assert (item["store"], item["consumer"], item["event_id"], item["status"], item["reason"]) == (
        "intake", "intake.relay", str(poison.id), "parked", "ValueError:invalid_event")
    assert item["event"]["id"] == str(poison.id)
    assert client.get("/v1/parked-events", headers=as_(api, LEAD_OFFICER)).status_code == 403

    assert client.post(f"/v1/parked-events/{key}/retry", headers=as_(api, AUDITOR)).status_code == 403
    retried = client.post(f"/v1/parked-events/{key}/retry", headers=as_(api, ADMINISTRATOR))
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "retrying"
    assert [i["parked_id"] for i in client.get("/v1/parked-events", params={"status": "retrying"},
                                                headers=as_(api, ADMINISTRATOR)).json()["items"]] == [key]
    missing = client.post(f"/v1/parked-events/{uuid.uuid4()}/retry", headers=as_(api, ADMINISTRATOR))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    parking.handled(key)
    assert client.post(f"/v1/parked-events/{key}/retry", headers=as_(api, ADMINISTRATOR)).status_code == 409
    bad = client.get("/v1/parked-events", params={"status": "lost"}, headers=as_(api, AUDITOR))
    assert bad.status_code == 422


def test_the_cli_lists_parked_events_and_hands_one_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HUHANG_STORAGE", "sqlite")
    monkeypatch.setenv("HUHANG_DATA_DIR", str(tmp_path))
    engine = read_model_engine(Settings(storage="sqlite", data_dir=tmp_path), "referral")
    poison = report()
    key = ParkedEvents(engine).park("referral.inbox", poison, "KeyError:invalid_event", 5)

    assert cli_main(["parked", "list", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["parked_id"], listed["store"], listed["event"]["id"]) == (key, "referral", str(poison.id))
    assert cli_main(["parked", "retry", key]) == 0
    assert ParkedEvents(engine).get(key)["status"] == RETRYING  # type: ignore[index]
    assert cli_main(["parked", "retry", str(uuid.uuid4())]) == 2
    engine.dispose()
