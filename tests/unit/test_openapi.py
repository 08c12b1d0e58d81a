"""The embedded API's OpenAPI document: every request body can be tried from /docs as it stands."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from huhang.bootstrap import build_services, embedded_api
from huhang.settings import Settings


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    settings = Settings(storage="memory")
    return TestClient(embedded_api(settings, build_services(settings))).get("/openapi.json").json()


def _request_bodies(openapi: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    bodies = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body:
                media = body["content"].get("application/json") or next(iter(body["content"].values()))
                bodies.append((f"{method.upper()} {path}", media["schema"]))
    return bodies


def test_every_request_body_carries_an_example(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    missing = []
    for operation, schema in _request_bodies(openapi):
        resolved = schemas[schema["$ref"].split("/")[-1]] if "$ref" in schema else schema
        if not resolved.get("examples") and not resolved.get("example"):
            missing.append(operation)
    assert _request_bodies(openapi)
    assert not missing


def test_every_service_is_documented(openapi: dict[str, Any]) -> None:
    paths = set(openapi["paths"])
    assert {
        "/v1/reports",
        "/v1/cases/{case_id}/timeline",
        "/v1/agencies/{agency}/referrals",
        "/v1/referrals/{referral_id}/status",
        "/v1/cases/{case_id}/guardianship-assessments",
        "/v1/cases/{case_id}/court-orders",
        "/v1/agencies/{agency}/notifications",
    } <= paths


def test_client_errors_are_documented_as_problem_details(openapi: dict[str, Any]) -> None:
    report = openapi["paths"]["/v1/reports"]["post"]["responses"]
    assert {"400", "413", "422"} <= set(report)
    assert "application/problem+json" in report["422"]["content"]
