"""Hostile and bad input on the embedded app: each gets a clear 4xx ``application/problem+json`` naming the field and
the reason, and leaves nothing behind (every service's event log is unchanged); text shaped like SQL or script
is stored and returned as it came, inert; clients over their rate get 429 with ``Retry-After``.

Real parts only: the embedded app on memory stores (and SQLite and PostgreSQL for the round trip), real tokens.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from faker import Faker
from fastapi import FastAPI
from fastapi.testclient import TestClient

from huhang.auth.keys import private_b64
from huhang.auth.tokens import TokenService
from huhang.bootstrap import build_services, embedded_api
from huhang.problems import MAX_JSON_DEPTH, PROBLEM_JSON, json_depth
from huhang.ratelimit import Rate, TokenBuckets
from huhang.service import Service
from huhang.settings import Settings
from services.intake.schemas import CHILD_REGISTRATION_EXAMPLE, FACTS_EXAMPLE, REPORT_EXAMPLE
from tests.support.auth import SYSTEM, bearer, client_for
from tests.support.principals import POLICE_OFFICER

JSON = {"content-type": "application/json"}


@dataclass
class Platform:
    app: FastAPI
    client: TestClient
    services: dict[str, Service]

    def log_heads(self) -> dict[str, int]:
        """Where every service's event log ends: what a rejected request must leave as it was."""
        return {name: s.application.recorder.max_notification_id() or 0 for name, s in self.services.items()}


def _platform(settings: Settings) -> Iterator[Platform]:
    services = build_services(settings)
    app = embedded_api(settings, services)
    with client_for(app, raise_server_exceptions=False) as client:
        yield Platform(app, client, services)


@pytest.fixture
def platform(memory_settings: Settings) -> Iterator[Platform]:
    yield from _platform(memory_settings)


def assert_problem(answer: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == status
    if field is not None:
        assert field in {e["field"] for e in problem.get("errors") or []}, problem
        assert all(e["reason"] for e in problem["errors"])
    return problem


def report(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(REPORT_EXAMPLE)
    body.update(changes)
    return body


# -- bodies: size, nesting, encoding ------------------------------------------------------------------------------


def test_an_oversized_body_is_refused_413_whether_declared_or_streamed(platform: Platform) -> None:
    before = platform.log_heads()
    big = json.dumps(report(observations="孩" * 40_000)).encode()
    assert len(big) > Settings().max_body_bytes
    assert_problem(platform.client.post("/v1/reports", content=big, headers=JSON), 413, "body")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    assert_problem(platform.client.post("/v1/reports", content=chunks(), headers=JSON), 413, "body")
    assert platform.log_heads() == before


@pytest.mark.parametrize("shape", ["arrays", "objects", "inside a field"])
def test_deeply_nested_json_is_refused_422_before_it_is_parsed(platform: Platform, shape: str) -> None:
    depth = 5_000
    body = {
        "arrays": "[" * depth + "]" * depth,
        "objects": '{"a":' * depth + "1" + "}" * depth,
        "inside a field": json.dumps(report())[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}",
    }[shape]
    before = platform.log_heads()
    problem = assert_problem(platform.client.post("/v1/reports", content=body, headers=JSON), 422, "body")
    assert problem["type"] == "urn:huhang:problem:json-too-deep"
    assert platform.log_heads() == before


def test_nesting_is_measured_outside_strings_and_ordinary_bodies_pass(platform: Platform) -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert json_depth(b'"[[[[\\"[[[["' + b"[" * 40) == 40
    legal = json.dumps(report(observations="[" * (MAX_JSON_DEPTH * 4) + "{\\\"}"))
    answer = platform.client.post("/v1/reports", content=legal, headers={**JSON, "Idempotency-Key": "deep-text"})
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("body", [b'{"observations": "\xff\xfe"}', b"\xc3\x28", b"\xed\xa0\x80"],
                         ids=["bad byte in a string", "broken sequence", "surrogate"])
def test_a_body_that_is_not_utf8_is_refused_400(platform: Platform, body: bytes) -> None:
    before = platform.log_heads()
    problem = assert_problem(platform.client.post("/v1/reports", content=body, headers=JSON), 400, "body")
    assert "UTF-8" in problem["errors"][0]["reason"]
    assert platform.log_heads() == before


def test_a_number_too_long_to_parse_is_a_400_naming_the_body(platform: Platform) -> None:
    body = json.dumps(report())[:-1] + ', "n": ' + "9" * 5_000 + "}"
    assert_problem(platform.client.post("/v1/reports", content=body, headers=JSON), 400, "body")


def test_undecodable_path_and_query_text_is_a_4xx_problem(platform: Platform) -> None:
    assert_problem(platform.client.get("/v1/cases/%FF%FE"), 422, "path.case_id")
    answer = platform.client.get("/v1/duplicates?township=%FF%FE")
    assert answer.status_code in (200, 422), answer.text


# -- huge strings in every free-text field ------------------------------------------------------------------------


def _unbounded_strings(spec: dict[str, Any]) -> list[str]:
    """Every string a JSON request body takes with no bound on its length: no ``maxLength``, no enum, no format
    or pattern that bounds it. Not counted: files and other non-JSON bodies (bounded by the body limits), the
    token form (parsed by hand), decimals (``anyOf`` number or string: bounded by their digits), and headers and
    query strings (bounded by the HTTP server's line and header limits)."""
    components = spec["components"]["schemas"]
    seen: set[str] = set()
    found: list[str] = []

    def walk(schema: dict[str, Any], where: str) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                walk(components[name], name)
            return
        options = [option.get("type") for option in schema.get("anyOf", [])]
        if "number" in options and "string" in options:
            return  # a decimal
        for key in ("anyOf", "oneOf", "allOf"):
            for option in schema.get(key, []):
                walk(option, where)
        if schema.get("type") == "string" and not (
            {"maxLength", "enum", "const", "pattern", "contentMediaType"} & set(schema)
            or schema.get("format") in {"date", "date-time", "uuid", "time", "binary"}
        ):
            found.append(where)
        if schema.get("type") == "array":
            walk(schema.get("items", {}), f"{where}[]")
        for name, prop in schema.get("properties", {}).items():
            walk(prop, f"{where}.{name}")
        if isinstance(schema.get("additionalProperties"), dict):
            walk(schema["additionalProperties"], f"{where}.*")

    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path == "/v1/oauth/token":
                continue
            for media_type, content in (operation.get("requestBody") or {}).get("content", {}).items():
                if "json" in media_type:
                    walk(content.get("schema", {}), f"{method.upper()} {path}")
    return found


def test_every_string_a_json_body_takes_has_a_maximum_length(platform: Platform) -> None:
    assert _unbounded_strings(platform.app.openapi()) == []


@pytest.mark.parametrize(("field", "limit"), [
    ("observations", 4000), ("reporter.reference", 64), ("child.name", 50), ("child.township", 50),
])
def test_a_huge_string_in_a_free_text_field_is_a_422_naming_it(platform: Platform, field: str, limit: int) -> None:
    body = report()
    target = body
    *parents, leaf = field.split(".")
    for parent in parents:
        target = target[parent]
    target[leaf] = "字" * (limit + 1)
    before = platform.log_heads()
    problem = assert_problem(platform.client.post("/v1/reports", json=body), 422, field)
    assert "字" * 10 not in json.dumps(problem, ensure_ascii=False)  # the answer never echoes the input
    assert platform.log_heads() == before


# -- SQL- and script-shaped text: stored and returned as it came -------------------------------------------------

HOSTILE_TEXT = [
    "'); DROP TABLE stored_events; --",
    "\" OR 1=1; SELECT * FROM pg_catalog.pg_user; --",
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>{{7*7}}${7*7}",
    "a\u202eb\u0007c\\'\"%s%n\\u0000",
]


@pytest.fixture
def any_platform(any_storage_settings: Settings) -> Iterator[Platform]:
    yield from _platform(any_storage_settings)


def test_sql_and_script_shaped_text_is_stored_and_returned_inert(any_platform: Platform, fake: Faker) -> None:
    client = any_platform.client
    for i, text in enumerate(HOSTILE_TEXT):
        registration = copy.deepcopy(CHILD_REGISTRATION_EXAMPLE)
        registration["child"].update(name=text[:50], id_card_number=None, birth_date=str(fake.date_of_birth(
            minimum_age=3, maximum_age=15)))
        registration["child"]["township"] = fake.street_name()[:20] + str(i)
        created = client.post("/v1/children", json=registration, headers={"Idempotency-Key": f"hostile-{i}"})
        assert created.status_code == 201, created.text
        child_id = created.json()["child_id"]
        facts = copy.deepcopy(FACTS_EXAMPLE)
        facts["facts"]["psychological_notes"] = text
        updated = client.put(f"/v1/children/{child_id}/facts", json=facts)
        assert updated.status_code == 200, updated.text

        answer = client.get(f"/v1/children/{child_id}")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        child = answer.json()
        assert child["name"] == text[:50].strip()
        assert child["facts"]["psychological_notes"] == text.strip()
    assert client.get("/healthz").status_code == 200  # the store is still there, tables and all


def test_the_nul_character_is_refused_422_in_a_body_the_path_or_the_query(any_platform: Platform) -> None:
    """PostgreSQL text cannot hold U+0000: accepted, it would fail a read model after the event was saved."""
    director = {"name": "王芳", "phone": "13800000000", "township": "虹桥镇", "village": "溪西\u0000村",
                "appointed_on": "2026-01-05"}
    before = any_platform.log_heads()
    client = any_platform.client
    assert_problem(client.post("/v1/child-directors", json=director), 422, "body")
    assert_problem(client.get("/v1/duplicates?township=%00"), 422, "query")
    assert_problem(client.get("/v1/cases/%00"), 422, "path")
    assert any_platform.log_heads() == before
    assert client.get("/v1/child-directors").status_code == 200
    director["village"] = "溪西村\\u0000"  # the six characters \u0000 are text, not NUL
    assert client.post("/v1/child-directors", json=director).status_code == 201


@pytest.fixture
def fake() -> Faker:
    generator = Faker("zh_CN")
    generator.seed_instance(7)
    return generator


# -- tokens -------------------------------------------------------------------------------------------------------


def _bad_tokens(app: FastAPI) -> dict[str, str]:
    own = app.state.auth_tokens
    stranger = TokenService.from_settings(Settings(storage="memory", auth_signing_key=private_b64(
        Ed25519PrivateKey.generate())))
    valid = own.issue(SYSTEM).access_token
    head, payload, signature = valid.split(".")
    return {
        "expired": TokenService(own.keys).issue(SYSTEM, 60, now=time.time() - 3600).access_token,
        "forged (another key)": stranger.issue(SYSTEM).access_token,
        "tampered": f"{head}.{payload[:-4]}AAAA.{signature}",
        "unsigned": f"{head}.{payload}.",
        "garbage": "' OR 1=1 --",
    }


def test_forged_and_expired_tokens_get_401_and_change_nothing(platform: Platform) -> None:
    before = platform.log_heads()
    anonymous = TestClient(platform.app)
    for name, token in _bad_tokens(platform.app).items():
        answer = anonymous.post("/v1/reports", json=report(), headers={"Authorization": f"Bearer {token}"})
        assert_problem(answer, 401, "Authorization")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer"), name
    assert platform.log_heads() == before


# -- rate limits --------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(per_s=2.0, burst=3), clock=clock)
    assert [buckets.take("a").allowed for _ in range(4)] == [True, True, True, False]
    refused = buckets.take("a")
    assert refused.retry_after_s == 1
    assert refused.remaining == 0
    assert buckets.take("b").allowed  # another key has its own bucket
    clock.now += 0.5
    assert buckets.take("a").allowed
    assert not buckets.take("a").allowed
    clock.now += 60
    assert buckets.take("a").remaining == 2  # refilled to the burst, never beyond


def test_the_bucket_table_is_bounded() -> None:
    buckets = TokenBuckets(Rate(per_s=1.0, burst=1), max_keys=10)
    for i in range(100):
        buckets.take(f"k{i}")
    assert len(buckets._buckets) == 10


def _limited(**rates: Any) -> tuple[FastAPI, dict[str, Service]]:
    settings = Settings(storage="memory", **rates)
    services = build_services(settings)
    return embedded_api(settings, services), services


def test_a_client_over_its_rate_gets_429_with_retry_after_and_others_are_not_slowed() -> None:
    app, services = _limited(rate_limit_per_client_per_s=0.01, rate_limit_per_client_burst=3)
    client = TestClient(app)
    system, police = bearer(app, SYSTEM), bearer(app, POLICE_OFFICER)
    answers = [client.get("/v1/agencies/police/referrals", headers=system) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].headers["RateLimit-Policy"] == '"per-client";q=3;w=300'
    assert answers[-1].headers["RateLimit"].startswith('"per-client";r=0;t=')
    before = services["intake"].application.recorder.max_notification_id()
    refused = client.post("/v1/reports", json=report(), headers=system)
    problem = assert_problem(refused, 429)
    assert problem["type"] == "urn:huhang:problem:rate-limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 100
    assert services["intake"].application.recorder.max_notification_id() == before
    # a new token of the same subject shares the bucket; another principal has its own
    assert client.get("/v1/agencies/police/referrals", headers=bearer(app, SYSTEM)).status_code == 429
    assert client.get("/v1/agencies/police/referrals", headers=police).status_code == 200
    assert client.get("/healthz").status_code == 200  # probes are never limited


def test_the_token_endpoint_is_limited_per_address_at_its_own_rate() -> None:
    app, _ = _limited(rate_limit_token_endpoint_per_s=0.01, rate_limit_token_endpoint_burst=2)
    client = TestClient(app)
    form = {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "wrong"}
    assert [client.post("/v1/oauth/token", data=form).status_code for _ in range(2)] == [401, 401]
    refused = client.post("/v1/oauth/token", data=form)
    assert_problem(refused, 429)
    assert refused.headers["RateLimit-Policy"] == '"token-endpoint";q=2;w=200'
    assert "Retry-After" in refused.headers
    # the rest of the API keeps its own quotas, with a token or without
    assert client.get("/v1/agencies/police/referrals", headers={"Authorization": "Bearer forged"}).status_code == 401
    assert client.get("/v1/agencies/police/referrals", headers=bearer(app, SYSTEM)).status_code == 200


def test_requests_without_a_valid_token_are_limited_per_address() -> None:
    app, _ = _limited(rate_limit_per_client_per_s=0.01, rate_limit_per_client_burst=2)
    client = TestClient(app)
    forged = {"Authorization": "Bearer forged"}
    assert [client.get("/v1/agencies/police/referrals", headers=forged).status_code for _ in range(2)] == [401, 401]
    refused = client.get("/.well-known/jwks.json")
    assert_problem(refused, 429)
    assert refused.headers["RateLimit-Policy"] == '"per-address";q=2;w=200'
    assert client.get("/v1/agencies/police/referrals", headers=bearer(app, SYSTEM)).status_code == 200


def test_rate_limits_can_be_turned_off_and_the_defaults_are_generous() -> None:
    app, _ = _limited(rate_limit_enabled=False)
    answer = TestClient(app).get("/v1/agencies/police/referrals", headers=bearer(app, SYSTEM))
    assert answer.status_code == 200
    assert "RateLimit" not in answer.headers
    defaults = Settings()
    assert defaults.rate_limit_per_client_per_s >= 300
    assert defaults.rate_limit_per_client_burst >= 1000
