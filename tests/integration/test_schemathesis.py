"""Schemathesis against the full OpenAPI of the platform: the embedded app (every service's routes and the token
endpoint) and each service's own app (the distributed form), as the platform's ``system`` principal and as
restricted callers.

Whatever routes exist when the suite runs are covered: the operations are read from the apps' own documents.
For every generated request: no 5xx, the status code and the content type are the documented ones, the body
matches its schema, and every error is ``application/problem+json`` (but the token endpoint's RFC 6749 errors).
Bounded by hypothesis ``max_examples`` so the suite stays fast; nothing is mocked (memory stores, and PostgreSQL
for what only it refuses; real tokens).
Stateful testing is not run: the OpenAPI documents declare no links for schemathesis to follow.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from huhang.auth.dependency import TOKEN_PATH
from huhang.auth.principal import Principal
from huhang.bootstrap import SERVICE_NAMES, build_services, embedded_api, service_api
from huhang.problems import PROBLEM_JSON
from huhang.settings import Settings
from tests.conftest import postgres_settings
from tests.support.auth import SYSTEM, bearer
from tests.support.principals import CHILD_DIRECTOR, POLICE_OFFICER

RESTRICTED = {"child-director": CHILD_DIRECTOR, "police-officer": POLICE_OFFICER}


def errors_are_problems(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every 4xx and 5xx answer is RFC 9457 problem+json naming a status (the token endpoint excepted: OAuth2
    clients expect RFC 6749 §5.2 JSON there)."""
    if response.status_code < 400 or case.path == TOKEN_PATH:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith(PROBLEM_JSON), f"{response.status_code} answered as {content_type!r}"
    body = response.json()
    assert body["status"] == response.status_code, body


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          errors_are_problems]


def _settings() -> Settings:
    """Memory stores; the notification stream (Server-Sent Events) ends after a moment instead of minutes."""
    return Settings(storage="memory", notifications_stream_max_s=0.2, notifications_stream_poll_s=0.05)


def _platform() -> FastAPI:
    platform_settings = _settings()
    return embedded_api(platform_settings, build_services(platform_settings))


def _service(name: str) -> FastAPI:
    """One service's own app (distributed mode), alone in its process: peers are reached over HTTP, never here."""
    service_settings = _settings()
    return service_api(service_settings, build_services(service_settings, [name])[name])


def fuzz(app: FastAPI, principal: Principal, max_examples: int) -> dict[str, str]:
    """Runs every operation of ``app``'s OpenAPI document ``max_examples`` times as ``principal``; returns the
    failures by operation (schemathesis's report, with a curl to reproduce), empty when none."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = bearer(app, principal)
    failures: dict[str, str] = {}
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation schemathesis cannot read is a failure of the document
            raise result.err()
        operations.append(result.ok())
    assert len(operations) > 10, "the OpenAPI document lists (almost) no operations"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=max_examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except (AssertionError, FailureGroup) as exc:
            failures[operation.label] = str(exc)
        except Exception as exc:  # the test client re-raises what the app did not answer: a 500
            failures[operation.label] = f"unhandled {type(exc).__name__}: {exc}"
    return failures


def _report(failures: dict[str, str]) -> str:
    return "\n\n".join(f"=== {label}\n{text[:2000]}" for label, text in failures.items())


@pytest.fixture(scope="module")
def embedded() -> FastAPI:
    return _platform()


def test_embedded_api_as_the_system(embedded: FastAPI) -> None:
    failures = fuzz(embedded, SYSTEM, max_examples=25)
    assert not failures, _report(failures)


@pytest.mark.parametrize("who", sorted(RESTRICTED))
def test_embedded_api_as_restricted_callers(embedded: FastAPI, who: str) -> None:
    failures = fuzz(embedded, RESTRICTED[who], max_examples=8)
    assert not failures, _report(failures)


@pytest.mark.integration
def test_embedded_api_on_postgresql(postgres_url: str) -> None:
    """PostgreSQL refuses what SQLite stores (the NUL character, integers past 64 bits): the same run on it."""
    settings = postgres_settings(postgres_url, notifications_stream_max_s=0.2, notifications_stream_poll_s=0.05)
    failures = fuzz(embedded_api(settings, build_services(settings)), SYSTEM, max_examples=10)
    assert not failures, _report(failures)


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_each_service_api(name: str) -> None:
    failures = fuzz(_service(name), SYSTEM, max_examples=5)
    assert not failures, _report(failures)


def test_every_operation_documents_its_problems(embedded: FastAPI) -> None:
    """The schema the runs above hold the app to says problem+json for every 4xx, and lists the shell's answers
    (a route added without them would make schemathesis fail only on the inputs that reach them)."""
    spec = embedded.openapi()
    operations = [(path, op) for path, ops in spec["paths"].items() for op in ops.values()]
    assert len(operations) > 40
    for path, operation in operations:
        responses = operation["responses"]
        assert {"400", "413", "422", "429"} <= set(responses), path
        if operation.get("security"):
            assert {"401", "403"} <= set(responses), path
        for code, response in responses.items():
            if code.startswith("4") and path != TOKEN_PATH:
                assert list(response["content"]) == [PROBLEM_JSON], (path, code)
