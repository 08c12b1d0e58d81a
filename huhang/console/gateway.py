"""``huhang console``: the console's one origin in the distributed form.

The browser may call only its own origin (the Content-Security-Policy's ``connect-src 'self'``, and no CORS on the
APIs), but distributed, each service has its own API. This small process serves the console's files and forwards
``/v1/...``, the token endpoint and the key set to the service that serves each path, found from the services' own
routers (the same route templates their APIs are built from), so a new route needs no change here. It keeps no
state and reads no store: what a page shows is what the service answers for the caller's token.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import compile_path

from huhang.console.serve import mount_console

logger = logging.getLogger(__name__)

# The services whose APIs the console reaches, and the setting naming each one's base URL.
UPSTREAMS = {
    "intake": "intake_url", "referral": "referral_url", "guardianship": "guardianship_url",
    "notifications": "notifications_url", "indicators": "indicators_url",
}
# Served by the front door (intake) whatever its routers say: the token endpoint, the public keys, and the access
# log (every service keeps one; intake's holds the reads of children's files and cases).
FRONT_DOOR_PATHS = ("/v1/oauth/token", "/.well-known/jwks.json", "/v1/access-log")
# Hop-by-hop headers (RFC 9110 §7.6.1) and those the proxy sets itself.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding",
    "upgrade", "host", "content-length",
})


class ConsoleSettings(BaseSettings):
    """Where the console gateway finds each service's API (the same ``HUHANG_*_URL`` names the platform uses)."""

    model_config = SettingsConfigDict(env_prefix="HUHANG_", extra="ignore")

    intake_url: str = "http://127.0.0.1:8001"
    referral_url: str = "http://127.0.0.1:8002"
    guardianship_url: str = "http://127.0.0.1:8003"
    notifications_url: str = "http://127.0.0.1:8004"
    indicators_url: str = "http://127.0.0.1:8005"
    console_upstream_timeout_s: float = 30.0

    def url_of(self, service: str) -> str:
        return str(getattr(self, UPSTREAMS[service])).rstrip("/")


@dataclass(frozen=True)
class Target:
    pattern: re.Pattern[str]
    methods: frozenset[str]
    service: str


def service_routes(service: str) -> list[APIRoute]:
    """The API routes a service serves: its composition's routers (``services/<name>/main.py``), read without
    building the service (``routers`` returns module-level routers). Empty when the service is not installed."""
    if importlib.util.find_spec(f"services.{service}") is None:
        return []
    module = importlib.import_module(f"services.{service}.main")
    kinds: list[Any] = [v for v in vars(module).values()
             if isinstance(v, type) and v.__module__ == module.__name__ and callable(getattr(v, "routers", None))]
    routes: list[APIRoute] = []
    for kind in kinds:
        routers: Iterable[Any] = kind.routers(None)  # no state is read: the routers are the module's own
        routes.extend(r for router in routers for r in router.routes if isinstance(r, APIRoute))
    return routes


class RouteTable:
    """Method and path → the service serving it."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = list(targets)

    @classmethod
    def from_services(cls, services: Iterable[str] = tuple(UPSTREAMS)) -> RouteTable:
        targets = [Target(re.compile(f"^{re.escape(path)}$"), frozenset({"GET", "POST"}), "intake")
                   for path in FRONT_DOOR_PATHS]
        for service in services:
            for route in service_routes(service):
                pattern, _, _ = compile_path(route.path)
                targets.append(Target(pattern, frozenset(route.methods or ()), service))
        return cls(targets)

    def service_for(self, method: str, path: str) -> str | None:
        method = "GET" if method == "HEAD" else method
        for target in self.targets:
            if method in target.methods and target.pattern.match(path):
                return target.service
        for target in self.targets:  # the path exists, another method: the service answers 405 itself
            if target.pattern.match(path):
                return target.service
        return None


def _not_found(path: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "No service serves this path.",
         "instance": path}, status_code=404, media_type="application/problem+json",
    )


def _unavailable(path: str, service: str) -> JSONResponse:
    return JSONResponse(
        {"type": "urn:huhang:problem:upstream-unavailable", "title": "Bad Gateway", "status": 502,
         "detail": f"The {service} service did not answer; try again.", "instance": path},
        status_code=502, media_type="application/problem+json",
    )


def console_gateway(settings: ConsoleSettings, table: RouteTable | None = None) -> FastAPI:
    """The console's files at ``/console/`` and the API forwarded by path; ``/healthz`` for the orchestrator."""
    routes = table or RouteTable.from_services()
    app = FastAPI(title="Huhang console", docs_url=None, redoc_url=None, openapi_url=None)
    timeout = httpx.Timeout(settings.console_upstream_timeout_s, connect=5.0)
    # The notification stream (Server-Sent Events) stays open: no read timeout on streamed answers.
    client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
    app.router.add_event_handler("shutdown", client.aclose)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def forward(request: Request) -> Response:
        path = request.url.path
        service = routes.service_for(request.method, path)
        if service is None:
            return _not_found(path)
        url = f"{settings.url_of(service)}{path}"
        if request.url.query:
            url = f"{url}?{request.url.query}"
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        if request.client is not None:
            headers.append(("x-forwarded-for", request.client.host))
        outgoing = client.build_request(request.method, url, headers=headers, content=await request.body())
        try:
            answer = await client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            logger.warning("console gateway: %s unreachable (%s)", service, type(exc).__name__)
            return _unavailable(path, service)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(answer.aiter_raw(), status_code=answer.status_code, headers=kept,
                                 background=BackgroundTask(answer.aclose))

    app.add_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    app.add_route("/v1/{rest:path}", forward, methods=methods, include_in_schema=False)
    app.add_route("/.well-known/{rest:path}", forward, methods=["GET", "HEAD"], include_in_schema=False)
    mount_console(app)
    return app
