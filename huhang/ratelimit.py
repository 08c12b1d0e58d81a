"""Rate limits per client: a token bucket per principal, and per IP address for the token endpoint.

Why: one misbehaving agency system (a loop that retries without pause, a stolen client secret) must not starve
every other agency of the API, and the token endpoint (Argon2id, deliberately slow) must not be usable to guess
secrets at speed or to burn the CPU. A request over its bucket answers ``429 application/problem+json`` with
``Retry-After`` (RFC 9110 §10.2.3); every limited answer also carries the ``RateLimit-Policy`` and ``RateLimit``
fields of the IETF draft (draft-ietf-httpapi-ratelimit-headers): ``"<policy>";q=<burst>;w=<seconds>`` and
``"<policy>";r=<remaining>;t=<seconds until the bucket is full again>``.

Who is counted:

- a request with a bearer token that verifies is counted against the token's subject (the client id or the
  account id), wherever it comes from: one agency system behind a NAT does not share its quota with another;
- a request without a valid token (answered 401, or an open route: the documentation, the key set) is counted
  against the caller's IP address, at the same rate;
- the token endpoint is counted against the caller's IP address at its own, lower rate: every attempt costs an
  Argon2id hash, and guessed secrets are what must be slowed.

The buckets live in the API process (``HUHANG_RATE_LIMIT_*`` settings). Distributed, every service process keeps
its own buckets, so a client's effective limit is the per-process rate times the number of API processes that
serve the route (behind a load balancer: times the replicas). That is the intent here — protect each process
from overload — not an exact global quota; a global one would need a shared store (PostgreSQL or Redis) on every
request. The bucket table is bounded (least recently used buckets are dropped: a dropped bucket starts full).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from huhang.auth.dependency import TOKEN_PATH
from huhang.auth.tokens import InvalidToken, TokenService
from huhang.problems import FieldError, Problem, problem_response
from huhang.settings import Settings

TOKEN_CACHE_S = 60.0  # how long a verified token's subject is remembered (saves a second signature check)
MAX_TOKEN_CACHE = 10_000


@dataclass(frozen=True)
class Rate:
    """``per_s`` requests a second on average, bursts up to ``burst``."""

    per_s: float
    burst: int

    @property
    def window_s(self) -> int:
        """The draft's ``w``: the seconds in which a full bucket refills."""
        return max(1, math.ceil(self.burst / self.per_s))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after_s: int  # when refused: seconds until one request is allowed again
    reset_s: int  # seconds until the bucket is full again


class TokenBuckets:
    """Token buckets by key, bounded to ``max_keys`` (least recently used dropped). Thread-safe: an app may be
    driven from several threads (test clients, the threadpool), and a lock costs little next to a request."""

    def __init__(self, rate: Rate, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> Decision:
        rate = self.rate
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.pop(key, (float(rate.burst), now))
            tokens = min(float(rate.burst), tokens + (now - at) * rate.per_s)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        retry = 0 if allowed else max(1, math.ceil((1.0 - tokens) / rate.per_s))
        reset = math.ceil((rate.burst - tokens) / rate.per_s)
        return Decision(allowed, int(tokens), retry, reset)


class RateLimit:
    """ASGI middleware: counts every HTTP request but those to ``exempt`` paths (health checks) against its
    client's bucket and answers 429 when it is empty, before the app (or its body limit) does any work.

    ``subject_of`` turns a bearer token into its subject, or None when it does not verify."""

    def __init__(
        self, app: ASGIApp, *, per_client: Rate, token_endpoint: Rate, token_path: str,
        subject_of: Callable[[str], str | None], exempt: Collection[str] = ("/healthz", "/readyz"),
    ) -> None:
        self.app = app
        self.clients = TokenBuckets(per_client)
        self.addresses = TokenBuckets(per_client)
        self.token_requests = TokenBuckets(token_endpoint)
        self.token_path = token_path
        self.subject_of = subject_of
        self.exempt = frozenset(exempt)
        self._subjects: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.exempt:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = f"ip:{client[0] if client else 'unknown'}"
        subject = None if path == self.token_path else self._subject(scope)
        if path == self.token_path:
            policy, buckets, key = "token-endpoint", self.token_requests, address
        elif subject is not None:
            policy, buckets, key = "per-client", self.clients, f"sub:{subject}"
        else:
            policy, buckets, key = "per-address", self.addresses, address
        decision = buckets.take(key)
        headers = {
            "RateLimit-Policy": f'"{policy}";q={buckets.rate.burst};w={buckets.rate.window_s}',
            "RateLimit": f'"{policy}";r={decision.remaining};t={decision.reset_s}',
        }
        if not decision.allowed:
            headers["Retry-After"] = str(decision.retry_after_s)
            response = problem_response(
                Problem(
                    type="urn:huhang:problem:rate-limited", title="Too Many Requests", status=429,
                    detail=f"Too many requests: try again in {decision.retry_after_s} s.", instance=path,
                    errors=[FieldError(field="Authorization" if subject else "client",
                                       reason=f"over {buckets.rate.per_s:g} requests/s")],
                ),
                headers=headers,
            )
            await response(scope, receive, send)
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)

    def _subject(self, scope: Scope) -> str | None:
        """The verified subject of the request's bearer token (remembered a minute), None without a valid one."""
        raw = dict(scope.get("headers", [])).get(b"authorization", b"")
        scheme, _, token = raw.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        now = time.monotonic()
        with self._lock:
            cached = self._subjects.get(token)
        if cached is not None and now - cached[1] < TOKEN_CACHE_S:
            return cached[0]
        subject = self.subject_of(token)
        with self._lock:
            self._subjects[token] = (subject, now)
            self._subjects.move_to_end(token)
            while len(self._subjects) > MAX_TOKEN_CACHE:
                self._subjects.popitem(last=False)
        return subject


def install_rate_limit(app: FastAPI, settings: Settings) -> None:
    """Puts :class:`RateLimit` on ``app`` (unless ``HUHANG_RATE_LIMIT_ENABLED=false``), counting clients by the
    subject of a token that ``app.state.auth_tokens`` verifies."""
    if not settings.rate_limit_enabled:
        return
    tokens: TokenService = app.state.auth_tokens

    def subject_of(token: str) -> str | None:
        try:
            return tokens.verify(token).subject
        except InvalidToken:
            return None

    app.add_middleware(
        RateLimit, subject_of=subject_of, token_path=TOKEN_PATH,
        per_client=Rate(settings.rate_limit_per_client_per_s, settings.rate_limit_per_client_burst),
        token_endpoint=Rate(settings.rate_limit_token_endpoint_per_s, settings.rate_limit_token_endpoint_burst),
    )
