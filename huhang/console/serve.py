"""Serving the console's static files under ``/console/`` with caching headers and a strict CSP.

A Starlette mount, not API routes: the files are public (the sign-in page must load without a token) and are no
part of the OpenAPI document or of the need-to-know walk over API routes; what they show comes from the API.

Caching: the files change only with a deployment, so they are revalidated on every load (``no-cache`` with an
ETag: a 304 costs one small round trip and a new version is never hidden by a stale copy). Offline, the service
worker (``sw.js``) answers from its own cache instead.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
CONSOLE_PATH = "/console"

# No inline script or style, nothing from another origin; the API is at the same origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "worker-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """Static files with the console's headers; the service worker may control the whole ``/console/`` scope."""

    def __init__(self) -> None:
        super().__init__(directory=STATIC_DIR, html=True)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        if path.endswith("sw.js"):
            response.headers["Service-Worker-Allowed"] = f"{CONSOLE_PATH}/"
        if path.endswith(".json"):
            response.headers["Content-Type"] = "application/json; charset=utf-8"
        return response


def mount_console(app: FastAPI) -> None:
    """``/console/`` on ``app`` (the embedded app, or the console gateway), and ``/console`` redirecting to it."""

    async def redirect(request: Request) -> Response:
        return RedirectResponse(f"{CONSOLE_PATH}/", status_code=308)

    app.add_route(CONSOLE_PATH, redirect, include_in_schema=False)
    app.mount(CONSOLE_PATH, ConsoleFiles(), name="console")
