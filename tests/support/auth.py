"""Authenticated test clients: tokens minted with the app's own key ring (or the settings' key), never mocked."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from huhang.auth.client import MintedTokenAuth, system_principal
from huhang.auth.principal import Principal, Role
from huhang.auth.tokens import TokenService
from huhang.settings import Settings

SYSTEM = system_principal("test-system")


def officer(agency: Agency, *roles: Role, township: str | None = None, village: str | None = None) -> Principal:
    """A person of ``agency`` (default role: agency officer)."""
    return Principal(f"p-test-{agency.value}", "person", agency, frozenset(roles or {Role.agency_officer}),
                     township, village)


def token(source: FastAPI | Settings, principal: Principal = SYSTEM) -> str:
    """A token the app (or every app built from these settings) accepts."""
    tokens = source.state.auth_tokens if isinstance(source, FastAPI) else TokenService.from_settings(source)
    return str(tokens.issue(principal).access_token)


def bearer(source: FastAPI | Settings, principal: Principal = SYSTEM) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(source, principal)}"}


def client_for(app: FastAPI, principal: Principal = SYSTEM, **kwargs: Any) -> TestClient:
    """``TestClient(app)`` sending a bearer token for ``principal`` on every request."""
    return TestClient(app, headers=bearer(app, principal), **kwargs)


def new_signing_key() -> str:
    """A fresh HUHANG_AUTH_SIGNING_KEY for processes started by a test."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from huhang.auth.keys import private_b64

    return private_b64(Ed25519PrivateKey.generate())


def minted_auth(signing_key: str, principal: Principal = SYSTEM) -> MintedTokenAuth:
    """``httpx`` auth for processes running with ``HUHANG_AUTH_SIGNING_KEY=signing_key``."""
    return MintedTokenAuth(TokenService.from_settings(Settings(auth_signing_key=signing_key)), principal)
