"""Access tokens: short-lived JWTs signed with EdDSA (Ed25519) carrying the principal, verified by every service.

Claims: ``iss``, ``sub`` (the client id or account id), ``aud`` ("huhang"), ``exp``, ``iat``, ``jti``, ``kind``
("client" or "person"), ``agency``, ``roles``, ``township``, ``village``; the header's ``kid`` names the signing
key. A service needs only the public keys to verify, so only the token endpoint (and the platform's own workers,
which mint their system tokens locally) need the private key.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from contracts.agencies import Agency
from huhang.auth.keys import KeyRing, load_key_ring
from huhang.auth.principal import Principal, Role
from huhang.settings import Settings

AUDIENCE = "huhang"
ALGORITHM = "EdDSA"
LEEWAY_S = 30  # clock skew tolerated between the services' hosts
VERIFIED_CACHE_SIZE = 10_000
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "kind", "agency", "roles"]


class InvalidToken(Exception):
    """The token is missing, malformed, expired, for another audience or signed by a key not trusted.

    The message says why, for the caller (``WWW-Authenticate`` and the problem's detail); it never holds the
    token or a claim's value.
    """


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


class TokenService:
    """Issues tokens with the key ring's active key; verifies them with any key of the ring."""

    def __init__(
        self, keys: KeyRing, issuer: str = "huhang", *, client_lifetime_s: int = 900, person_lifetime_s: int = 3600
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.lifetime_s = {"client": client_lifetime_s, "person": person_lifetime_s}
        # Tokens verified already (an agency system sends the same token with every request for its lifetime):
        # token -> (principal, expiry, key id). A hit still checks the expiry and that the key is still trusted.
        self._verified: dict[str, tuple[Principal, float, str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenService:
        """The settings' key ring and lifetimes (development: the generated key; production: refused without)."""
        return cls(
            load_key_ring(settings), settings.auth_issuer, client_lifetime_s=settings.auth_client_token_lifetime_s,
            person_lifetime_s=settings.auth_person_token_lifetime_s,
        )

    def issue(self, principal: Principal, lifetime_s: int | None = None, *, now: float | None = None) -> IssuedToken:
        """A token for ``principal``, valid ``lifetime_s`` (default: the lifetime for its kind)."""
        lifetime_s = lifetime_s if lifetime_s is not None else self.lifetime_s[principal.kind]
        issued_at = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": principal.subject, "aud": AUDIENCE, "iat": issued_at,
            "exp": issued_at + lifetime_s, "jti": uuid.uuid4().hex, "kind": principal.kind,
            "agency": principal.agency.value, "roles": sorted(r.value for r in principal.roles),
            "township": principal.township, "village": principal.village,
        }
        token = jwt.encode(claims, self.keys.signing_key, algorithm=ALGORITHM, headers={"kid": self.keys.active_kid})
        return IssuedToken(token, lifetime_s)

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires_at, kid = known
            if time.time() < expires_at + LEEWAY_S and kid in self.keys.verifying:
                return principal
            with self._lock:
                self._verified.pop(token, None)
        principal, expires_at, kid = self._verify(token)
        with self._lock:
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()  # rare (this many live tokens): start again rather than track age
            self._verified[token] = (principal, expires_at, kid)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float, str]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise InvalidToken("the token is malformed") from None
        key = self.keys.verifying.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("the token is signed by a key that is not trusted")
        try:
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=self.issuer, leeway=LEEWAY_S,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is malformed") from None
        return _principal(claims), float(claims["exp"]), str(kid)


def _principal(claims: dict[str, Any]) -> Principal:
    try:
        kind = claims["kind"]
        if kind not in ("client", "person"):
            raise ValueError
        roles = claims["roles"]
        if not isinstance(roles, list):
            raise ValueError
        return Principal(
            subject=str(claims["sub"]), kind=kind, agency=Agency(claims["agency"]),
            roles=frozenset(Role(r) for r in roles), township=_optional(claims.get("township")),
            village=_optional(claims.get("village")),
        )
    except (ValueError, TypeError):
        raise InvalidToken("the token's claims are not valid") from None


def _optional(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError
    return value
