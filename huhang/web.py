"""The FastAPI application shell shared by every service (errors, body limit, health, authentication)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from huhang.auth.dependency import authenticate, install_auth_handlers
from huhang.auth.endpoint import jwks_router
from huhang.auth.tokens import TokenService
from huhang.problems import BodySizeLimit, JsonBodyGuard, document_problems, install_problem_handlers
from huhang.ratelimit import install_rate_limit
from huhang.settings import Settings

DESCRIPTION = """
Huhang (护航) — the inter-agency referral and workflow platform for the care and protection of left-behind
children (留守儿童) and children in difficulty (困境儿童).

Errors are RFC 9457 `application/problem+json` documents naming the field and the reason.

Every route but `/healthz`, the token endpoint and the key set needs `Authorization: Bearer <token>`: get one at
`POST /v1/oauth/token` (client credentials for agency systems, password for people), or press **Authorize**.
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
    app = FastAPI(title=title, version="1.0.0", description=DESCRIPTION)
    app.state.auth_tokens = TokenService.from_settings(settings)
    install_problem_handlers(app)
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
        return {"status": "ok"}

    app.include_router(jwks_router)
    for router in open_routers:
        app.include_router(router)
    for router in routers:
        app.include_router(router, dependencies=[Depends(authenticate)])
    return app


def _document_problems(app: FastAPI) -> None:
    """The OpenAPI document names the problem+json answers every route can give (huhang/problems.py)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
