"""RFC 9457 problem details: the one place where errors become HTTP answers.

Every 4xx names the field(s) and the reason; unexpected errors answer a bare 500 problem with no internals
(and the log carries the request id, never the request body).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger(__name__)


class FieldError(BaseModel):
    field: str
    reason: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class DomainError(Exception):
    """Base of errors the domain raises on purpose; each subclass names its HTTP status."""

    status: int = 400
    type: str = "about:blank"

    def __init__(self, detail: str, *, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)


class NotFound(DomainError):
    status = 404
    type = "urn:huhang:problem:not-found"


class Conflict(DomainError):
    status = 409
    type = "urn:huhang:problem:conflict"


class Gone(DomainError):
    status = 410
    type = "urn:huhang:problem:gone"


class Unprocessable(DomainError):
    status = 422
    type = "urn:huhang:problem:unprocessable"


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(exclude_none=True), status_code=problem.status, media_type=PROBLEM_JSON,
        headers=headers,
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _field_path(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) if parts else "body"


def validation_errors(errors: Sequence[dict[str, Any]]) -> list[FieldError]:
    out = []
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            out.append(FieldError(field="body", reason=f"malformed JSON: {ctx.get('error', 'invalid')}"))
            continue
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append(FieldError(field=_field_path(err.get("loc", ())), reason=msg))
    return out


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc.errors())
        malformed = any(e.reason.startswith("malformed JSON") for e in errors)
        status = 400 if malformed else 422
        return problem_response(
            Problem(
                type="urn:huhang:problem:malformed-json" if malformed else "urn:huhang:problem:validation",
                title=_title(status),
                status=status,
                detail="The request body is not valid JSON." if malformed else "The request is not valid.",
                instance=request.url.path,
                errors=errors,
            )
        )

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(
            Problem(
                type=exc.type, title=_title(exc.status), status=exc.status, detail=exc.detail,
                instance=request.url.path, errors=exc.errors or None,
            )
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            Problem(title=_title(exc.status_code), status=exc.status_code, detail=str(exc.detail),
                    instance=request.url.path),
            headers=dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return problem_response(Problem(title=_title(500), status=500, instance=request.url.path))


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed JSON", "content": {PROBLEM_JSON: {}}},
    413: {"model": Problem, "description": "Body too large", "content": {PROBLEM_JSON: {}}},
    422: {"model": Problem, "description": "Invalid field(s)", "content": {PROBLEM_JSON: {}}},
}


def problem_doc(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    """An OpenAPI ``responses`` entry for a problem+json answer."""
    return {status: {"model": Problem, "description": description, "content": {PROBLEM_JSON: {}}}}


class BodySizeLimit:
    """Refuses bodies over ``max_bytes`` with 413 before the route reads them (declared or streamed).

    ``larger`` names paths allowed more (file uploads): path -> their own limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.max_bytes)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send, limit)
            return
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if not too_large:  # once the limit is hit, whatever the app answers is replaced by a 413
                await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if too_large:
            await self._too_large(scope, send, limit)

    async def _too_large(self, scope: Scope, send: Send, limit: int) -> None:
        response = problem_response(
            Problem(
                type="urn:huhang:problem:body-too-large", title=_title(413), status=413,
                detail=f"The request body exceeds {limit} bytes.", instance=scope.get("path"),
                errors=[FieldError(field="body", reason=f"larger than {limit} bytes")],
            )
        )
        await response(scope, _noop_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _noop_receive() -> Message:
    return {"type": "http.disconnect"}
