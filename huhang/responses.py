"""JSON responses validated and serialised in one pass of pydantic's core.

A FastAPI route that returns a model has it validated again against its ``response_model`` and then serialised: on
the hot read paths (an inbox page of 50 referrals) that second pass cost as much as building the page. A route
that builds its answer here still declares ``response_model`` (the OpenAPI document, and schemathesis holding the
responses to it); the answer is checked against that same model once, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from fastapi import Response
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def model_response(model_type: type[M], data: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    """``data`` (rows as dicts, nested as the model nests) validated as ``model_type``, answered as JSON."""
    return json_response(model_body(model_type, data), headers)


def model_body(model_type: type[M], data: Mapping[str, Any]) -> bytes:
    """``data`` validated as ``model_type`` and serialised: the body ``model_response`` sends."""
    return model_type.model_validate(data).model_dump_json(by_alias=True).encode()


def json_response(body: bytes, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, media_type="application/json", headers=dict(headers) if headers else None)
