"""Calling the platform's APIs with a token: ``httpx.Auth`` for the platform's own workers and for agency systems.

- :class:`MintedTokenAuth`: the platform's workers (the router's gateways, the sweep, the care checks,
  guardianship's report filing) mint a ``system`` token locally from the signing key in their settings, and mint a
  new one shortly before it expires (or when a service answers 401, e.g. after a key rotation). They never hold a
  client secret, and no token endpoint has to be up for them to work.
- :class:`ClientCredentialsAuth`: an agency system (or the demo) with a client id and secret gets its token from
  ``POST /v1/oauth/token`` and asks again before it expires.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Generator
from urllib.parse import quote_plus

import httpx

from contracts.agencies import LEAD_AGENCY
from huhang.auth.principal import Principal, Role
from huhang.auth.tokens import TokenService
from huhang.settings import Settings

REFRESH_MARGIN_S = 60  # a token is renewed this long before it expires, so that none expires in flight


def system_principal(name: str = "huhang-system") -> Principal:
    """The platform itself (``name`` says which part: the router, the sweeper, ...), acting for the lead agency."""
    return Principal(subject=name, kind="client", agency=LEAD_AGENCY, roles=frozenset({Role.system}))


class _CachedToken:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: str | None = None
        self.renew_at = 0.0

    def fresh(self) -> str | None:
        return self.value if self.value is not None and time.monotonic() < self.renew_at else None

    def keep(self, token: str, expires_in: int) -> str:
        self.value = token
        self.renew_at = time.monotonic() + max(expires_in - REFRESH_MARGIN_S, expires_in / 2)
        return token


class MintedTokenAuth(httpx.Auth):
    """Bearer tokens minted locally for ``principal`` with the signing key; renewed before they expire."""

    def __init__(self, tokens: TokenService, principal: Principal) -> None:
        self.tokens = tokens
        self.principal = principal
        self._cached = _CachedToken()

    def token(self, *, renew: bool = False) -> str:
        with self._cached.lock:
            token = None if renew else self._cached.fresh()
            if token is None:
                issued = self.tokens.issue(self.principal)
                token = self._cached.keep(issued.access_token, issued.expires_in)
            return token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        response = yield request
        if response.status_code == 401:  # e.g. the services moved to a new key: mint once more and retry
            request.headers["Authorization"] = f"Bearer {self.token(renew=True)}"
            yield request


def system_auth(settings: Settings, name: str = "huhang-system") -> MintedTokenAuth:
    """The ``system`` token of one part of the platform, from the signing key in ``settings``."""
    return MintedTokenAuth(TokenService.from_settings(settings), system_principal(name))


class ClientCredentialsAuth(httpx.Auth):
    """OAuth2 client credentials: a token from ``token_url`` (HTTP Basic), fetched again before it expires."""

    requires_response_body = True

    def __init__(self, token_url: str, client_id: str, client_secret: str) -> None:
        self.token_url = token_url
        # RFC 6749 §2.3.1: each part form-encoded, then HTTP Basic.
        pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
        self._basic = f"Basic {base64.b64encode(pair).decode()}"
        self._cached = _CachedToken()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._cached.fresh()
        if token is None:
            ask = httpx.Request("POST", self.token_url, data={"grant_type": "client_credentials"})
            ask.headers["Authorization"] = self._basic
            answer = yield ask
            answer.raise_for_status()
            body = answer.json()
            token = self._cached.keep(str(body["access_token"]), int(body["expires_in"]))
        request.headers["Authorization"] = f"Bearer {token}"
        yield request
