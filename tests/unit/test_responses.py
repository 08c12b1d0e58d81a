"""``model_response``: the answer FastAPI would have given for the model, validated once and serialised once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from huhang.responses import model_response
from services.referral.schemas import ReferralsPublic

ROW = {
    "referral_id": str(uuid4()), "case_id": str(uuid4()), "child_id": str(uuid4()), "owner_agency": "police",
    "requester_agency": "civil_affairs", "referral_type": "investigation", "priority": "urgent",
    "status": "requested", "due_at": datetime(2026, 6, 1, 8, tzinfo=UTC),
    "complete_by": datetime(2026, 6, 8, 8, tzinfo=UTC), "escalation_level": 0, "township": "T1", "village": "V1",
    "plan_tasks": [3, 7], "rule_id": "r1", "rules_version": "v1", "requested_at": datetime(2026, 6, 1, tzinfo=UTC),
    "updated_at": datetime(2026, 6, 1, tzinfo=UTC),
}
PAGE = {"agency": "police", "items": [ROW], "counts_by_status": {"requested": 1}, "next_cursor": None}


def test_the_body_is_what_fastapi_serialises_from_the_same_model() -> None:
    app = FastAPI()

    @app.get("/by-fastapi", response_model=ReferralsPublic)
    def by_fastapi() -> ReferralsPublic:
        return ReferralsPublic.model_validate(PAGE)

    @app.get("/once", response_model=ReferralsPublic)
    def once() -> object:
        return model_response(ReferralsPublic, PAGE, headers={"Cache-Control": "no-store"})

    with TestClient(app) as client:
        expected, answer = client.get("/by-fastapi"), client.get("/once")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert json.loads(answer.content) == json.loads(expected.content)


def test_data_that_does_not_fit_the_model_is_not_sent() -> None:
    with pytest.raises(ValidationError):
        model_response(ReferralsPublic, {**PAGE, "items": [{**ROW, "status": "lost"}]})
