"""POST /v1/reports refuses bad input with a problem+json naming the field, and stores nothing when it does."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from huhang.bootstrap import service_api
from huhang.settings import Settings
from services.intake.main import IntakeService
from services.intake.main import build as build_intake
from services.intake.schemas import REPORT_EXAMPLE
from services.referral.main import build as build_referral
from tests.support.auth import client_for, token

PROBLEM_JSON = "application/problem+json"
BODY_LIMIT = 8 * 1024
Body = dict[str, Any]


def today() -> date:
    return datetime.now(UTC).date()


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year - years, day=28)


@pytest.fixture
def settings() -> Settings:
    """Memory storage with an 8 KiB body limit: above every report here but the deliberately oversized ones."""
    return Settings(storage="memory", max_body_bytes=BODY_LIMIT)


@pytest.fixture
def intake(settings: Settings) -> Iterator[IntakeService]:
    service = build_intake(settings)
    yield service
    service.application.close()


@pytest.fixture
def api(settings: Settings, intake: IntakeService) -> FastAPI:
    return service_api(settings, intake)


@pytest.fixture
def client(api: FastAPI) -> TestClient:
    return client_for(api)


def stored(intake: IntakeService) -> int:
    return intake.application.recorder.max_notification_id() or 0


def example() -> Body:
    return copy.deepcopy(REPORT_EXAMPLE)


def without(path: str) -> Callable[[Body], None]:
    *parents, name = path.split(".")

    def change(body: Body) -> None:
        for parent in parents:
            body = body[parent]
        del body[name]

    return change


def setting(path: str, value: Any) -> Callable[[Body], None]:
    *parents, name = path.split(".")

    def change(body: Body) -> None:
        for parent in parents:
            body = body[parent]
        body[name] = value() if callable(value) else value

    return change


def field_names(answer: Any) -> list[str]:
    return [error["field"] for error in answer.json().get("errors", [])]


def assert_refused(answer: Any, status: int, field: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.json()["status"] == status
    named = field_names(answer)
    assert any(f == field or f.startswith(f"{field}.") for f in named), f"{field} not named in {named}"


REQUIRED_FIELDS = [
    "reporter.agency", "reporter.role", "child.name", "child.sex", "child.birth_date", "child.township",
    "child.village", "concern_category", "urgency", "observed_on", "observations",
]

BAD_VALUES: list[tuple[str, str, Any]] = [
    ("birth date of the wrong type", "child.birth_date", 12345),
    ("categories not a list", "child.categories", "left_behind"),
    ("unknown agency code", "reporter.agency", "ministry_of_magic"),
    ("unknown reporter role", "reporter.role", "fortune_teller"),
    ("unknown concern category", "concern_category", "homework_undone"),
    ("unknown urgency", "urgency", "whenever"),
    ("unknown sex", "child.sex", "unknown"),
    ("unknown child category", "child.categories", ["left_behind", "famous"]),
    ("repeated child category", "child.categories", ["left_behind", "left_behind"]),
    ("birth date in the future", "child.birth_date", lambda: (today() + timedelta(days=1)).isoformat()),
    ("child over 18", "child.birth_date", lambda: years_before(today(), 19).isoformat()),
    ("observed_on in the future", "observed_on", lambda: (today() + timedelta(days=1)).isoformat()),
    ("id card number too short", "child.id_card_number", "33038220160512"),
    ("id card number with letters", "child.id_card_number", "33038220160512ABCD"),
    ("blank child name", "child.name", "   "),
    ("child name too long", "child.name", "李" * 51),
    ("blank observations", "observations", "  "),
    ("observations too long", "observations", "x" * 4001),
    ("blank village", "child.village", ""),
]


# --- each bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", REQUIRED_FIELDS)
def test_a_report_missing_a_required_field_is_refused_naming_it(client, intake, path):
    body = example()
    without(path)(body)

    answer = client.post("/v1/reports", json=body)

    assert_refused(answer, 422, path)
    assert stored(intake) == 0


@pytest.mark.parametrize(("case", "path", "value"), BAD_VALUES, ids=[case for case, _, _ in BAD_VALUES])
def test_a_report_with_a_bad_value_is_refused_naming_the_field(client, intake, case, path, value):
    body = example()
    setting(path, value)(body)

    answer = client.post("/v1/reports", json=body)

    assert_refused(answer, 422, path)
    assert stored(intake) == 0


def test_a_report_about_someone_who_turned_18_yesterday_is_refused(client, intake):
    body = example()
    setting("child.birth_date", (years_before(today(), 18) - timedelta(days=1)).isoformat())(body)

    answer = client.post("/v1/reports", json=body)

    assert_refused(answer, 422, "child.birth_date")
    assert stored(intake) == 0


def test_a_report_about_a_child_turning_18_tomorrow_is_accepted(client):
    body = example()
    setting("child.birth_date", (years_before(today(), 18) + timedelta(days=1)).isoformat())(body)

    assert client.post("/v1/reports", json=body).status_code == 201


def test_a_report_observed_before_the_child_was_born_is_refused_naming_observed_on(client, intake):
    body = example()
    setting("observed_on", "2010-01-01")(body)

    answer = client.post("/v1/reports", json=body)

    assert_refused(answer, 422, "observed_on")
    assert stored(intake) == 0


def test_a_report_observed_before_the_child_was_born_is_refused_and_stores_nothing(client, intake):
    body = example()
    setting("observed_on", "2010-01-01")(body)

    answer = client.post("/v1/reports", json=body)

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert stored(intake) == 0


@pytest.mark.parametrize("path", ["nickname", "child.nickname", "reporter.name"])
def test_a_report_with_an_unknown_field_is_refused_naming_it(client, intake, path):
    body = example()
    setting(path, "小雨")(body)

    answer = client.post("/v1/reports", json=body)

    assert_refused(answer, 422, path)
    assert stored(intake) == 0


def test_a_report_that_is_no_json_object_is_refused(client, intake):
    answer = client.post("/v1/reports", json=["not", "a", "report"])

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert stored(intake) == 0


def test_malformed_json_answers_400_naming_the_body(client, intake):
    answer = client.post(
        "/v1/reports", content=b'{"reporter": {"agency": "education",', headers={"content-type": "application/json"}
    )

    assert_refused(answer, 400, "body")
    assert stored(intake) == 0


# --- body size ----------------------------------------------------------------------------------------------------


def oversized() -> bytes:
    """A report valid in every field but larger than the body limit."""
    body = example()
    body["observations"] = "孩子独自在家，无人照看。" * 300  # 3600 characters: within max_length, over the limit
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) > BODY_LIMIT
    return raw


def test_a_body_over_the_limit_answers_413_naming_the_body(client, intake):
    answer = client.post("/v1/reports", content=oversized(), headers={"content-type": "application/json"})

    assert answer.request.headers["content-length"] == str(len(oversized()))
    assert_refused(answer, 413, "body")
    assert stored(intake) == 0


def test_a_streamed_body_over_the_limit_without_content_length_answers_413(client, intake):
    raw = oversized()
    chunks = (raw[i : i + 256] for i in range(0, len(raw), 256))

    answer = client.post("/v1/reports", content=chunks, headers={"content-type": "application/json"})

    assert "content-length" not in answer.request.headers
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert_refused(answer, 413, "body")
    assert stored(intake) == 0


def send_in_chunks(api: FastAPI, raw: bytes, chunk_size: int = 1024) -> tuple[int, bytes]:
    """Drive the ASGI application directly, the body arriving in many messages and no content-length."""
    chunks = [raw[i : i + chunk_size] for i in range(0, len(raw), chunk_size)]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/reports", "raw_path": b"/v1/reports", "root_path": "", "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"testserver"),
                    (b"authorization", f"Bearer {token(api)}".encode())],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }
    asyncio.run(api(scope, receive, send))  # type: ignore[arg-type]
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, f"expected one response, got {len(starts)}"
    return starts[0]["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_a_body_streamed_in_many_chunks_over_the_limit_answers_one_413(api, intake):
    status, body = send_in_chunks(api, oversized())

    assert status == 413
    assert [e["field"] for e in json.loads(body)["errors"]] == ["body"]
    assert stored(intake) == 0


def test_a_body_streamed_in_many_chunks_within_the_limit_is_filed(api, intake):
    status, _ = send_in_chunks(api, json.dumps(example(), ensure_ascii=False).encode(), chunk_size=100)

    assert status == 201
    assert stored(intake) > 0


# --- the documented example ---------------------------------------------------------------------------------------


def documented_example(client: TestClient) -> Body:
    document = client.get("/openapi.json").json()
    schema = document["paths"]["/v1/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    examples = schema.get("examples") or [schema.get("example")]
    assert examples, "the OpenAPI document has no example for POST /v1/reports"
    assert examples[0], "the OpenAPI document has no example for POST /v1/reports"
    return examples[0]


def test_the_openapi_document_carries_an_example_report(client):
    assert documented_example(client) == REPORT_EXAMPLE


def test_posting_the_documented_example_as_it_stands_files_a_report(client, intake):
    answer = client.post("/v1/reports", json=documented_example(client))

    assert answer.status_code == 201, answer.text
    assert stored(intake) > 0


# --- the referral service's inbox path ----------------------------------------------------------------------------


def test_an_unknown_agency_in_the_inbox_path_answers_422_naming_the_agency(settings):
    referral = build_referral(settings)
    client = client_for(service_api(settings, referral))

    answer = client.get("/v1/agencies/nope/referrals")

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert [f.rsplit(".", 1)[-1] for f in field_names(answer)] == ["agency"]
    referral.application.close()
