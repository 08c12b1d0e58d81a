"""The FastAPI application shell shared by every service (errors, body limit, health, authentication)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import Engine, text

from huhang.auth.dependency import authenticate, install_auth_handlers
from huhang.auth.endpoint import jwks_router
from huhang.auth.tokens import TokenService
from huhang.problems import (
    DATABASE_ERRORS,
    PROBLEM_JSON,
    BodySizeLimit,
    JsonBodyGuard,
    document_problems,
    install_problem_handlers,
    unavailable_response,
)
from huhang.ratelimit import install_rate_limit
from huhang.settings import Settings
from huhang.storage import readiness_engine

logger = logging.getLogger(__name__)


class Readiness(BaseModel):
    status: str
    database: str


UNAVAILABLE_DOC: dict[int | str, dict[str, Any]] = {503: {
    "description": "The database cannot be reached",
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    "headers": {"Retry-After": {"description": "Seconds to wait before asking again", "schema": {"type": "integer"}}},
}}

DESCRIPTION = """
Huhang (护航) — the inter-agency referral and workflow platform for the care and protection of left-behind
children (留守儿童) and children in difficulty (困境儿童).

Errors are RFC 9457 `application/problem+json` documents naming the field and the reason.

Every route but `/healthz`, `/readyz`, the token endpoint and the key set needs `Authorization: Bearer <token>`: get
one at `POST /v1/oauth/token` (client credentials for agency systems, password for people), or press **Authorize**.
"""


# A route declared with ``openapi_extra={UPLOAD: True}`` takes a file upload: bodies up to settings.max_upload_bytes.
UPLOAD = "x-huhang-upload"


def upload_paths(routers: Sequence[APIRouter]) -> list[str]:
    return [
        route.path for router in routers for route in router.routes
        if isinstance(route, APIRoute) and (route.openapi_extra or {}).get(UPLOAD)
    ]


def create_api(
    title: str, settings: Settings, routers: Sequence[APIRouter], open_routers: Sequence[APIRouter] = ()
) -> FastAPI:
    """The app serving ``routers``, each behind the bearer-token dependency; ``open_routers`` (the token
    endpoint) and the health check, the JWKS and the documentation stay open. Loading the token keys here
    makes a production process without ``HUHANG_AUTH_SIGNING_KEY`` refuse to start."""
    traced = settings.telemetry
    app = FastAPI(
        title=title, version="1.0.0", description=DESCRIPTION,
        telemetry={"tracing": traced, "metrics": traced, "logs": traced},
        lifespan=_thread_limit(settings.api_threads),
    )
    app.state.auth_tokens = TokenService.from_settings(settings)
    install_problem_handlers(app, retry_after_s=settings.unavailable_retry_after_s)
    install_auth_handlers(app)
    app.add_middleware(JsonBodyGuard)  # inside the body limit: it reads bodies already bounded
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes,
        larger={path: settings.max_upload_bytes for path in upload_paths(routers)},
    )
    install_rate_limit(app, settings)  # added last: the outermost, so a refused request costs the least
    _document_problems(app)

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    def healthz() -> dict[str, str]:
        """The process serves requests. Touches nothing else: a database outage must not get a live process
        restarted (that is what /readyz is for)."""
        return {"status": "ok"}

    probe = DatabaseProbe(settings)

    @app.get(
        "/readyz", tags=["operations"], summary="Readiness: the database answers", response_model=Readiness,
        responses=UNAVAILABLE_DOC,
    )
    def readyz(request: Request) -> Readiness | JSONResponse:
        """200 while this process can reach its database; 503 problem+json with `Retry-After` while it cannot
        (take the process out of the load balancer, do not restart it: its pools reconnect by themselves)."""
        if not probe.ready():
            return unavailable_response(request.url.path, settings.unavailable_retry_after_s)
        return Readiness(status="ok", database=probe.kind)

    app.include_router(jwks_router)
    for router in open_routers:
        app.include_router(router)
    for router in routers:
        app.include_router(router, dependencies=[Depends(authenticate)])
    return app


def _thread_limit(threads: int) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that sizes the thread pool of the app's event loop (``HUHANG_API_THREADS``)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    return lifespan


def _document_problems(app: FastAPI) -> None:
    """The OpenAPI document names the problem+json answers every route can give (huhang/problems.py)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class DatabaseProbe:
    """Whether the database the settings name accepts a connection and a statement now. PostgreSQL is asked with
    a fresh connection per probe (``SELECT 1``, a 2 s connect timeout); SQLite files and memory have nothing to
    reach. The engine is made on the first probe, not when the app is built."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kind = settings.storage
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def ready(self) -> bool:
        if self.settings.storage != "postgres":
            return True
        with self._lock:
            if self._engine is None:
                self._engine = readiness_engine(self.settings)
        if self._engine is None:
            return True
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DATABASE_ERRORS as exc:
            logger.warning("readiness: database unavailable (%s)", type(exc).__name__)
            return False
        return True
