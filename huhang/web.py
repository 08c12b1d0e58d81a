"""The FastAPI application shell shared by every service (errors, body limit, health)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from huhang.problems import BodySizeLimit, install_problem_handlers
from huhang.settings import Settings

DESCRIPTION = """
Huhang (护航) — the inter-agency referral and workflow platform for the care and protection of left-behind
children (留守儿童) and children in difficulty (困境儿童).

Errors are RFC 9457 `application/problem+json` documents naming the field and the reason.
"""


# A route declared with ``openapi_extra={UPLOAD: True}`` takes a file upload: bodies up to settings.max_upload_bytes.
UPLOAD = "x-huhang-upload"


def upload_paths(routers: Sequence[APIRouter]) -> list[str]:
    return [
        route.path for router in routers for route in router.routes
        if isinstance(route, APIRoute) and (route.openapi_extra or {}).get(UPLOAD)
    ]


def create_api(title: str, settings: Settings, routers: Sequence[APIRouter]) -> FastAPI:
    app = FastAPI(title=title, version="1.0.0", description=DESCRIPTION)
    install_problem_handlers(app)
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes,
        larger={path: settings.max_upload_bytes for path in upload_paths(routers)},
    )

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in routers:
        app.include_router(router)
    return app
