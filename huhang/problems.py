"""RFC 9457 problem details: the one place where errors become HTTP answers.

Every 4xx names the field(s) and the reason; unexpected errors answer a bare 500 problem with no internals
(and the log carries the request id, never the request body). A database that cannot be reached (restarting,
failing over, out of connections) answers 503 with ``Retry-After``: the client's retry is the cure, not a bug report.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import psycopg
import sqlalchemy.exc
from eventsourcing.persistence import ConnectionUnavailableError, PersistenceError
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


UNAVAILABLE_TYPE = "urn:huhang:problem:database-unavailable"
DEFAULT_RETRY_AFTER_S = 5
# The families a database failure is raised as, whoever raised it: the drivers, SQLAlchemy (read models, positions,
# keys) and eventsourcing (the event stores). Which of them mean "unavailable" is decided by database_unavailable.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.Error, sqlalchemy.exc.SQLAlchemyError, PersistenceError, sqlite3.Error,
)
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, says the database cannot serve the request right now and
    a retry later may succeed: it is unreachable, restarting or shutting down (the connection refused, closed or
    terminated by an administrator), no connection was free in time, or it is too busy (locked, out of
    connections, a serialization failure or deadlock). Then the answer is 503 with ``Retry-After``, never a 500.

    A mistake in a statement (a table missing, a constraint violated) is not: it stays a 500 (or its own 4xx),
    which a retry would not cure."""
    return any(_says_unavailable(cause) for cause in _causes(exc))


def _causes(exc: BaseException, limit: int = 16) -> Iterator[BaseException]:
    """``exc`` and what it was raised from or while handling (SQLAlchemy and eventsourcing wrap driver errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < limit:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None) if isinstance(current, sqlalchemy.exc.DBAPIError) else None
        if isinstance(orig, BaseException) and orig is not current.__cause__:
            yield orig
        current = current.__cause__ or current.__context__


def _says_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # PostgreSQL: connection failures, AdminShutdown / CannotConnectNow (a restart), the pool's PoolTimeout,
        # too many connections, and class 40 (serialization failure, deadlock); InterfaceError: connection closed
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sqlalchemy.exc.TimeoutError | sqlalchemy.exc.DisconnectionError | ConnectionUnavailableError):
        return True  # no pooled connection came free in time
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+; "no such table" is an OperationalError too
        return isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return False


def unavailable_response(instance: str | None, retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> JSONResponse:
    """503 problem+json saying when to try again (RFC 9110 §10.2.3: Retry-After in seconds)."""
    return problem_response(
        Problem(
            type=UNAVAILABLE_TYPE, title=_title(503), status=503, instance=instance,
            detail=f"The database cannot be reached for the moment. Retry after {retry_after_s} seconds, with the "
                   "same Idempotency-Key: nothing is recorded twice.",
        ),
        headers={"Retry-After": str(retry_after_s)},
    )


def _log_unavailable(request: Request, exc: BaseException) -> None:
    """Exception types only: a driver's message may quote the statement's parameters."""
    root = [_type_name(cause) for cause in _causes(exc) if _says_unavailable(cause)]
    logger.warning("database unavailable (%s <- %s) on %s %s", _type_name(exc), root[-1] if root else "?",
                   request.method, request.url.path)


def _type_name(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def install_problem_handlers(app: FastAPI, *, retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> None:
    """Every error becomes a problem+json answer; ``retry_after_s`` is what a 503 for an unavailable database
    tells the client (settings.unavailable_retry_after_s)."""

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            raise exc  # a real fault: the 500 below (ServerErrorMiddleware), as if no handler were here
        _log_unavailable(request, exc)
        return unavailable_response(request.url.path, retry_after_s)

    for family in DATABASE_ERRORS:
        app.add_exception_handler(family, _database)

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
        # FastAPI's own 400 for a body its parser refused (a number too long to convert, say) names no field
        unparsable = exc.status_code == 400 and exc.detail == "There was an error parsing the body"
        return problem_response(
            Problem(title=_title(exc.status_code), status=exc.status_code, detail=str(exc.detail),
                    instance=request.url.path,
                    errors=[FieldError(field="body", reason="cannot be parsed")] if unparsable else None),
            headers=dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):  # raised outside the routes (a middleware) or wrapped in another error
            _log_unavailable(request, exc)
            return unavailable_response(request.url.path, retry_after_s)
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


MAX_JSON_DEPTH = 32  # no request schema nests half as deep; the parsers recurse, and free-form fields would keep it
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not count). Malformed
    text is measured as far as it goes: the parser refuses it afterwards."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub(b"", body)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 not itself escaped (\\u0000 is text)


class JsonBodyGuard:
    """Refuses a JSON body that is not UTF-8 (400, RFC 8259 §8.1) or nests deeper than ``max_depth`` (422) with
    a problem naming the reason, before a parser recurses into it or a free-form field stores it; and the NUL
    character anywhere in the path, the query or a JSON body (422): PostgreSQL text cannot hold it, so a value
    with one would fail a read model's write after its event was saved (a 500, and a projection stuck on it).

    Reads the whole body (bounded by :class:`BodySizeLimit`, which must wrap this middleware) and hands it on
    unchanged. Bodies of another type (forms, file uploads) pass untouched; a body without a content type is
    checked, since FastAPI parses an untyped body as JSON."""

    def __init__(self, app: ASGIApp, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _nul_in_url(scope)
        if where is not None:
            await problem_response(_nul_problem(where, scope.get("path")))(scope, _noop_receive, send)
            return
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"").lower()
        if content_type and b"json" not in content_type:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = self._problem(body, scope.get("path"))
        if problem is not None:
            await problem_response(problem)(scope, _noop_receive, send)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)

    def _problem(self, body: bytes, path: str | None) -> Problem | None:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Problem(
                type="urn:huhang:problem:malformed-json", title=_title(400), status=400, instance=path,
                detail="The request body is not UTF-8.",
                errors=[FieldError(field="body", reason=f"not valid UTF-8 at byte {exc.start}")],
            )
        opening = body.count(b"[") + body.count(b"{")  # the usual body has too few to nest deep: no scan
        if opening > self.max_depth and json_depth(body) > self.max_depth:
            return Problem(
                type="urn:huhang:problem:json-too-deep", title=_title(422), status=422, instance=path,
                detail=f"The request body nests deeper than {self.max_depth} levels.",
                errors=[FieldError(field="body", reason=f"nested deeper than {self.max_depth} levels")],
            )
        if b"u0000" in body and _JSON_NUL.search(body):
            return _nul_problem("body", path)
        return None


def _nul_in_url(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "path"
    query = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query:
        return "query"
    return None


def _nul_problem(where: str, path: str | None) -> Problem:
    return Problem(
        type="urn:huhang:problem:validation", title=_title(422), status=422, instance=path,
        detail="The request is not valid.",
        errors=[FieldError(field=where, reason="contains the NUL character (U+0000), which no field accepts")],
    )


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives ``messages`` first, then whatever the client sends next (a disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def _noop_receive() -> Message:
    return {"type": "http.disconnect"}


# The answers any route may give whatever it declares: the shell's own (malformed JSON, body limit, validation,
# rate limit) and, behind a bearer token, authentication and need-to-know.
SHELL_PROBLEMS = {400: "Malformed request", 413: "Body too large", 422: "Invalid field(s)",
                  429: "Too many requests (see Retry-After)"}
AUTHENTICATED_PROBLEMS = {401: "No valid bearer token", 403: "Not for this caller (need-to-know)"}


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Makes the OpenAPI document say what the app answers on error: every 4xx is ``application/problem+json``
    with the :class:`Problem` schema (FastAPI documents its default 422 and ``problem_doc`` entries as
    ``application/json``), and every operation lists the shell's problems. Schemathesis holds the app to this
    document (tests/integration/test_schemathesis.py). A 4xx documented with another schema of its own (the
    token endpoint's RFC 6749 errors) is left as it is."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    problem_content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            for code, response in responses.items():
                if code.startswith("4") and _is_problem_or_default(response):
                    response["content"] = dict(problem_content)
            extra = {**SHELL_PROBLEMS, **(AUTHENTICATED_PROBLEMS if operation.get("security") else {})}
            if "{" in path:  # a path naming a record answers 404 when there is none
                extra[404] = "Not found"
            for status, description in extra.items():
                responses.setdefault(str(status), {"description": description, "content": dict(problem_content)})
            if "429" in responses and responses["429"].get("content") == problem_content:
                responses["429"]["headers"] = {"Retry-After": {
                    "description": "Seconds to wait before asking again", "schema": {"type": "integer"}}}
    return spec


def _is_problem_or_default(response: dict[str, Any]) -> bool:
    content = response.get("content") or {}
    if not content or PROBLEM_JSON in content:
        return True
    schema = (content.get("application/json") or {}).get("schema") or {}
    return schema.get("$ref", "").rsplit("/", 1)[-1] in ("Problem", "HTTPValidationError")
