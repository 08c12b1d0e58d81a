"""``POST /v1/oauth/token`` (RFC 6749) and ``GET /.well-known/jwks.json``.

Two grants: ``client_credentials`` for agency systems (client id and secret in the form or in HTTP Basic,
RFC 6749 §2.3.1) and ``password`` for people (login name and password; the interactive users of ``/docs``). Errors
are RFC 6749 §5.2 JSON, not problem+json, because OAuth2 clients expect that shape: ``invalid_request`` 400,
``invalid_client`` 401 (with a Basic challenge), ``invalid_grant`` 400, ``unsupported_grant_type`` 400.

The token endpoint needs the accounts store and the signing key: it is served by intake (the front door) in
distributed mode and by the embedded app. Every service serves the JWKS (public keys only).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any, Literal
from urllib.parse import parse_qs, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from huhang.auth.accounts import AccountStore
from huhang.auth.dependency import REALM, TOKEN_PATH, token_service
from huhang.auth.principal import Principal

logger = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - RFC 6750 token type
    expires_in: int


class OAuthError(BaseModel):
    error: Literal["invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type"]
    error_description: str


class _TokenError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


TOKEN_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object",
            "required": ["grant_type"],
            "example": {"grant_type": "password", "username": "demo-police-officer", "password": "hh_..."},
            "properties": {
                "grant_type": {"type": "string", "enum": ["client_credentials", "password"]},
                "client_id": {"type": "string", "description": "client_credentials (or send HTTP Basic)"},
                "client_secret": {"type": "string", "format": "password"},
                "username": {"type": "string", "description": "password grant: the login name"},
                "password": {"type": "string", "format": "password"},
            },
        }}},
    }
}


def get_accounts(request: Request) -> AccountStore:
    return request.app.state.accounts


token_router = APIRouter(tags=["authentication"])
jwks_router = APIRouter(tags=["authentication"])


@token_router.post(
    TOKEN_PATH, summary="Get an access token (OAuth2 client credentials or password)",
    response_model=TokenResponse, openapi_extra=TOKEN_FORM,
    responses={400: {"model": OAuthError, "description": "invalid_request, invalid_grant, unsupported_grant_type"},
               401: {"model": OAuthError, "description": "invalid_client"}},
)
async def issue_token(request: Request) -> JSONResponse:
    """Exchange credentials for a short-lived bearer token (``expires_in`` seconds). No refresh tokens: ask
    again before it expires."""
    try:
        form = _form(request.headers.get("content-type", ""), await request.body())
        grant = form.get("grant_type")
        if grant == "client_credentials":
            principal = await _client_credentials(request, form)
        elif grant == "password":
            principal = await _password(request, form)
        elif grant is None:
            raise _TokenError("invalid_request", "grant_type is required")
        else:
            raise _TokenError("unsupported_grant_type", "grant_type must be client_credentials or password")
    except _TokenError as exc:
        headers = dict(NO_STORE)
        if exc.status == 401:
            headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
        return JSONResponse(OAuthError(error=exc.error, error_description=exc.description).model_dump(),
                            status_code=exc.status, headers=headers)
    issued = token_service(request).issue(principal)
    logger.info("token issued to %s %s", principal.kind, principal.subject)
    return JSONResponse(TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in).model_dump(),
                        headers=NO_STORE)


@jwks_router.get("/.well-known/jwks.json", summary="The public keys that verify access tokens (JWKS)")
def jwks(request: Request) -> JSONResponse:
    return JSONResponse(token_service(request).keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


def _form(content_type: str, body: bytes) -> dict[str, str]:
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise _TokenError("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise _TokenError("invalid_request", "the form is not valid") from None
    repeated = sorted(k for k, v in parsed.items() if len(v) > 1)
    if repeated:
        raise _TokenError("invalid_request", f"parameters sent more than once: {', '.join(repeated)}")
    return {k: v[0] for k, v in parsed.items()}


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _TokenError("invalid_client", "the Basic credentials are malformed", 401) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _TokenError("invalid_client", "the Basic credentials are malformed", 401)
    return unquote_plus(client_id), unquote_plus(secret)  # RFC 6749 §2.3.1: form-encoded, then Basic


async def _client_credentials(request: Request, form: dict[str, str]) -> Principal:
    basic = _basic(request.headers.get("authorization"))
    in_form = form.get("client_id"), form.get("client_secret")
    if basic is not None and any(in_form):
        raise _TokenError("invalid_request", "send the client credentials either in HTTP Basic or in the form")
    client_id, secret = basic if basic is not None else in_form
    if not client_id or not secret:
        raise _TokenError("invalid_client", "client_id and client_secret are required", 401)
    principal = await run_in_threadpool(get_accounts(request).authenticate_client, client_id, secret)
    if principal is None:
        logger.info("client authentication refused")
        raise _TokenError("invalid_client", "unknown client, wrong secret or client disabled", 401)
    return principal


async def _password(request: Request, form: dict[str, str]) -> Principal:
    username, password = form.get("username"), form.get("password")
    if not username or not password:
        raise _TokenError("invalid_request", "username and password are required")
    principal = await run_in_threadpool(get_accounts(request).authenticate_person, username, password)
    if principal is None:
        logger.info("sign-in refused")
        raise _TokenError("invalid_grant", "wrong login name or password, or account disabled")
    return principal
