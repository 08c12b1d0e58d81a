"""``Idempotency-Key`` for the routes agency systems post their facts to (draft-ietf-httpapi-idempotency-key-header).

An agency system that lost an answer (a timeout, a dropped connection) sends the same request again with the same
key, and must not create the fact twice:

- same key, same request (method, path, body): the stored answer again, same status and body
  (``Idempotent-Replayed: true``), nothing done twice;
- same key, a different request: **422** (the key was reused for something else);
- same key while the first request is still being processed: **409** (retry later);
- a route that requires the key and got none: **400**.

Keys are scoped by the caller's agency (one agency's keys never collide with another's). A request holds its key
with a lease (``idempotency_lease_s``): a process that dies mid-request frees the key when the lease runs out, so
a retry then runs. Only answers below 500 are stored; a failure (an exception, a 5xx, a refused request) frees the
key so that the corrected or retried request runs. Stored answers are kept ``idempotency_retention_s``.

A route opts in with ``route_class=IdempotentRoute`` on its router and the ``IdempotencyKeyRequired`` (or
``...Optional``) dependency, declared **after** its access guard so that a refused caller never holds a key.
The table lives in the owning service's read-model database; the row holds ids, a hash of the request and the
answer the caller already received (inbound answers carry ids and codes, never personal data).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from sqlalchemy import Column, Engine, Float, Integer, MetaData, String, Table, Text, and_, delete, select, update

from huhang.auth.dependency import authenticate
from huhang.auth.principal import Principal
from huhang.problems import Conflict, DomainError, FieldError, Unprocessable
from huhang.sql import create_tables, insert_ignoring_duplicates

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
IN_FLIGHT = "in_flight"
DONE = "done"

metadata = MetaData()
idempotency_table = Table(
    "idempotency_keys",
    metadata,
    Column("agency", String(40), primary_key=True),
    Column("key", String(MAX_KEY_LENGTH), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("state", String(10), nullable=False),
    Column("holder", String(36), nullable=False, doc="The claim holding the key (a fresh id per attempt)."),
    Column("lease_until", Float, nullable=False, doc="Epoch seconds; an in-flight claim past it may be taken over."),
    Column("created_at", Float, nullable=False),
    Column("status_code", Integer),
    Column("content_type", String(100)),
    Column("location", String(500)),
    Column("body", Text),
)


class MissingIdempotencyKey(DomainError):
    status = 400
    type = "urn:huhang:problem:idempotency-key-missing"


class KeyReused(Unprocessable):
    type = "urn:huhang:problem:idempotency-key-reused"


class KeyInFlight(Conflict):
    type = "urn:huhang:problem:idempotency-key-in-flight"


def _key_error(reason: str) -> list[FieldError]:
    return [FieldError(field=HEADER, reason=reason)]


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    content_type: str | None
    location: str | None
    body: str

    def response(self) -> Response:
        headers = {REPLAYED_HEADER: "true", **({"Location": self.location} if self.location else {})}
        return Response(self.body, status_code=self.status_code, media_type=self.content_type, headers=headers)


@dataclass(frozen=True)
class Claim:
    """This request holds the key: it runs, then stores its answer (or frees the key)."""

    agency: str
    key: str
    holder: str


class Replay(Exception):
    """Raised by the dependency when the answer is already stored; the route class answers it."""

    def __init__(self, answer: StoredAnswer) -> None:
        super().__init__("stored answer")
        self.answer = answer


class IdempotencyStore:
    """The keys and stored answers. Every decision is one compare-and-set statement, so two processes serving the
    same agency agree on who holds a key."""

    def __init__(self, engine: Engine, lease_s: float, retention_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.lease_s = lease_s
        self.retention_s = retention_s
        self.clock = clock
        create_tables(metadata, engine)

    def claim(self, agency: str, key: str, fingerprint: str) -> Claim | StoredAnswer:
        """Hold the key for this request, or the stored answer; raises 422 for another request, 409 in flight."""
        t = idempotency_table
        where = and_(t.c.agency == agency, t.c.key == key)
        for _ in range(3):  # a row removed or taken over between two statements: look again
            now = self.clock()
            holder = str(uuid.uuid4())
            with self.engine.begin() as conn:
                conn.execute(delete(t).where(where, t.c.created_at < now - self.retention_s))
                before = conn.execute(select(t.c.holder).where(where)).first()
                if before is None:
                    insert_ignoring_duplicates(conn, t, [{
                        "agency": agency, "key": key, "fingerprint": fingerprint, "state": IN_FLIGHT,
                        "holder": holder, "lease_until": now + self.lease_s, "created_at": now,
                    }])
                row = conn.execute(select(t).where(where)).first()
            if row is None:
                continue
            if row.holder == holder:
                return Claim(agency, key, holder)
            if row.fingerprint != fingerprint:
                raise KeyReused(
                    "This Idempotency-Key was used for a different request.",
                    errors=_key_error("already used with another method, path or body: use a new key"),
                )
            if row.state == DONE:
                return StoredAnswer(row.status_code, row.content_type, row.location, row.body)
            if row.lease_until > now:
                raise KeyInFlight(
                    "A request with this Idempotency-Key is still being processed; retry later.",
                    errors=_key_error("a request with this key is in flight"),
                )
            with self.engine.begin() as conn:  # the holder died: take the key over, if nobody else did
                taken = conn.execute(
                    update(t).where(where, t.c.holder == row.holder, t.c.state == IN_FLIGHT)
                    .values(holder=holder, lease_until=now + self.lease_s)
                ).rowcount
            if taken == 1:
                return Claim(agency, key, holder)
        raise KeyInFlight("The Idempotency-Key is contended; retry later.", errors=_key_error("contended"))

    def complete(self, claim: Claim, answer: StoredAnswer) -> None:
        t = idempotency_table
        with self.engine.begin() as conn:
            conn.execute(
                update(t).where(t.c.agency == claim.agency, t.c.key == claim.key, t.c.holder == claim.holder)
                .values(state=DONE, status_code=answer.status_code, content_type=answer.content_type,
                        location=answer.location, body=answer.body)
            )

    def release(self, claim: Claim) -> None:
        """The request failed: the key is free for the retry."""
        t = idempotency_table
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(
                t.c.agency == claim.agency, t.c.key == claim.key, t.c.holder == claim.holder, t.c.state == IN_FLIGHT,
            ))


def parse_key(raw: str) -> str:
    """The key as an RFC 8941 string (``"abc"``); a bare token is accepted too. Printable ASCII, 1-255."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not value or len(value) > MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in value):
        raise MissingIdempotencyKey(
            "The Idempotency-Key header is malformed.",
            errors=_key_error(f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"),
        )
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    """The request's identity: method, path and body (JSON compared by value, not by spacing or key order)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def get_idempotency(request: Request) -> IdempotencyStore:
    store: IdempotencyStore = request.app.state.idempotency
    return store


KEY_DESCRIPTION = (
    "A unique key per fact (e.g. a UUID), the same on every retry: the same request again answers the stored "
    "answer; another request with this key answers 422; while the first is in flight, 409."
)


RequiredKeyHeader = Annotated[str | None, Header(alias=HEADER, description="**Required.** " + KEY_DESCRIPTION)]
OptionalKeyHeader = Annotated[str | None, Header(alias=HEADER, description="Optional. " + KEY_DESCRIPTION)]


def _dependency(required: bool) -> Callable[..., Awaitable[Claim | None]]:
    async def claim_key(request: Request, principal: Principal, key: str | None) -> Claim | None:
        if key is None:
            if required:
                raise MissingIdempotencyKey(
                    "This route requires an Idempotency-Key header.", errors=_key_error("required"),
                )
            return None
        store = get_idempotency(request)
        request_print = fingerprint(request.method, request.url.path, await request.body())
        held = await run_in_threadpool(store.claim, principal.agency.value, parse_key(key), request_print)
        if isinstance(held, StoredAnswer):
            raise Replay(held)
        request.state.idempotency_claim = held
        return held

    # Two signatures (annotations are resolved from this module's globals, not from the closure).
    async def required_key(request: Request, principal: Annotated[Principal, Depends(authenticate)],
                           key: RequiredKeyHeader = None) -> Claim | None:
        return await claim_key(request, principal, key)

    async def optional_key(request: Request, principal: Annotated[Principal, Depends(authenticate)],
                           key: OptionalKeyHeader = None) -> Claim | None:
        return await claim_key(request, principal, key)

    return required_key if required else optional_key


IdempotencyKeyRequired = Annotated[Claim | None, Depends(_dependency(required=True))]
IdempotencyKeyOptional = Annotated[Claim | None, Depends(_dependency(required=False))]


class IdempotentRoute(APIRoute):
    """Answers a replay with the stored answer, stores the route's answer under the key it holds, and frees the key
    when the route fails. A request without a claim (no key sent on an optional route) passes untouched."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except Replay as replay:
                return replay.answer.response()
            except BaseException:
                await _release(request)
                raise
            claim: Claim | None = getattr(request.state, "idempotency_claim", None)
            if claim is not None:
                if response.status_code >= 500 or not hasattr(response, "body"):
                    await _release(request)
                else:
                    answer = StoredAnswer(
                        response.status_code, response.headers.get("content-type"), response.headers.get("location"),
                        bytes(response.body).decode(),
                    )
                    await run_in_threadpool(get_idempotency(request).complete, claim, answer)
            return response

        return run


async def _release(request: Request) -> None:
    claim: Claim | None = getattr(request.state, "idempotency_claim", None)
    if claim is not None:
        request.state.idempotency_claim = None
        await run_in_threadpool(get_idempotency(request).release, claim)
