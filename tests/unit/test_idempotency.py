"""Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) on a real app: stored answers replayed, a reused key
refused with 422, a retry while the first request is in flight refused with 409 (two concurrent requests), failures
free the key, a dead holder's lease runs out; the store on every storage."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, status
from pydantic import BaseModel

from contracts.agencies import Agency
from huhang.idempotency import (
    Claim,
    IdempotencyKeyRequired,
    IdempotencyStore,
    IdempotentRoute,
    KeyInFlight,
    KeyReused,
    StoredAnswer,
    fingerprint,
)
from huhang.problems import Unprocessable
from huhang.settings import Settings
from huhang.storage import read_model_engine
from huhang.web import create_api
from tests.support.auth import bearer, officer


class Thing(BaseModel):
    value: int


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Gate:
    """Holds the route until the test lets it go (the first request "in flight")."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0


def gated_app(settings: Settings, gate: Gate, clock: Clock | None = None) -> FastAPI:
    router = APIRouter(route_class=IdempotentRoute)

    @router.post("/things", status_code=status.HTTP_201_CREATED)
    def create(body: Thing, _: IdempotencyKeyRequired) -> dict[str, object]:
        gate.calls += 1
        gate.entered.set()
        assert gate.release.wait(10)
        if body.value < 0:
            raise Unprocessable("negative")
        return {"id": str(uuid.uuid4()), "value": body.value, "call": gate.calls}

    app = create_api("test", settings, [router])
    app.state.idempotency = IdempotencyStore(read_model_engine(settings, "test-idem"), 30.0, 3600.0,
                                             **({"clock": clock} if clock else {}))
    return app


SCHOOL = officer(Agency.education)
HOSPITAL = officer(Agency.health)


@pytest.fixture
def gate() -> Gate:
    opened = Gate()
    opened.release.set()
    return opened


@pytest.fixture
def app(memory_settings: Settings, gate: Gate) -> FastAPI:
    return gated_app(memory_settings, gate)


def post(app: FastAPI, key: str | None, body: dict[str, object], principal: object = SCHOOL) -> httpx.Response:
    headers = bearer(app, principal)  # type: ignore[arg-type]
    if key is not None:
        headers["Idempotency-Key"] = key

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.post("/things", json=body, headers=headers)

    return asyncio.run(send())


def test_the_same_key_and_body_answers_the_stored_answer_and_runs_once(app, gate):
    first = post(app, '"k-1"', {"value": 7})
    again = post(app, '"k-1"', {"value": 7})

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert gate.calls == 1


def test_the_same_body_with_its_keys_in_another_order_is_the_same_request(app, gate):
    post(app, "k-order", {"value": 7})
    assert post(app, "k-order", {"value": 7}).headers.get("Idempotent-Replayed") == "true"
    assert fingerprint("POST", "/x", b'{"a": 1, "b": 2}') == fingerprint("POST", "/x", b'{"b":2,"a":1}')


def test_the_same_key_with_another_body_answers_422_naming_the_header(app, gate):
    post(app, "k-2", {"value": 7})
    other = post(app, "k-2", {"value": 8})

    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert gate.calls == 1


def test_keys_are_scoped_by_agency(app, gate):
    school = post(app, "k-3", {"value": 7})
    hospital = post(app, "k-3", {"value": 8}, HOSPITAL)

    assert school.status_code == hospital.status_code == 201
    assert gate.calls == 2


def test_a_missing_key_answers_400_and_runs_nothing(app, gate):
    answer = post(app, None, {"value": 7})

    assert answer.status_code == 400
    assert answer.json()["errors"] == [{"field": "Idempotency-Key", "reason": "required"}]
    assert gate.calls == 0


def test_a_failed_request_frees_its_key_for_the_corrected_retry(app, gate):
    failed = post(app, "k-4", {"value": -1})
    invalid = post(app, "k-4", {"value": "x"})
    retried = post(app, "k-4", {"value": 5})

    assert (failed.status_code, invalid.status_code, retried.status_code) == (422, 422, 201)
    assert retried.json()["value"] == 5


def test_a_retry_while_the_first_request_is_in_flight_answers_409(memory_settings):
    gate = Gate()
    app = gated_app(memory_settings, gate)
    headers = {**bearer(app, SCHOOL), "Idempotency-Key": "k-concurrent"}

    async def both() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            first = asyncio.create_task(client.post("/things", json={"value": 1}, headers=headers))
            await asyncio.to_thread(gate.entered.wait, 10)  # the first request holds the key, inside the route
            second = await client.post("/things", json={"value": 1}, headers=headers)
            gate.release.set()
            done = await first
            third = await client.post("/things", json={"value": 1}, headers=headers)
            return done, second, third

    first, second, third = asyncio.run(both())

    assert second.status_code == 409
    assert second.json()["errors"][0]["field"] == "Idempotency-Key"
    assert first.status_code == 201
    assert third.status_code == 201
    assert third.json() == first.json()
    assert gate.calls == 1


@pytest.fixture
def store(any_storage_settings: Settings) -> Iterator[tuple[IdempotencyStore, Clock]]:
    clock = Clock()
    engine = read_model_engine(any_storage_settings, "idem")
    yield IdempotencyStore(engine, lease_s=30, retention_s=3600, clock=clock), clock
    engine.dispose()


ANSWER = StoredAnswer(201, "application/json", "/v1/x", '{"id": 1}')


def test_the_store_on_every_storage(store):
    keys, _clock = store
    claim = keys.claim("education", "k", "print-a")
    assert isinstance(claim, Claim)
    with pytest.raises(KeyInFlight):
        keys.claim("education", "k", "print-a")
    with pytest.raises(KeyReused):
        keys.claim("education", "k", "print-b")
    keys.complete(claim, ANSWER)
    assert keys.claim("education", "k", "print-a") == ANSWER


def test_a_dead_holders_key_is_taken_over_when_its_lease_runs_out(store):
    keys, clock = store
    dead = keys.claim("education", "k", "p")
    clock.now += 31
    taken = keys.claim("education", "k", "p")
    assert isinstance(taken, Claim)
    assert isinstance(dead, Claim)
    assert taken.holder != dead.holder
    keys.complete(dead, StoredAnswer(500, None, None, "late"))  # the old holder's answer no longer counts
    keys.complete(taken, ANSWER)
    assert keys.claim("education", "k", "p") == ANSWER


def test_a_stored_answer_expires_after_the_retention(store):
    keys, clock = store
    claim = keys.claim("education", "k", "p")
    assert isinstance(claim, Claim)
    keys.complete(claim, ANSWER)
    clock.now += 3601
    assert isinstance(keys.claim("education", "k", "other"), Claim)


def test_the_header_is_parsed_as_a_structured_field_string(app):
    assert post(app, '"a b"', {"value": 1}).status_code == 201
    assert post(app, "a b", {"value": 1}).headers.get("Idempotent-Replayed") == "true"
    assert post(app, '""', {"value": 1}).status_code == 400

