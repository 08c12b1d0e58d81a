"""Every route authenticated: the dependency that turns ``Authorization: Bearer <token>`` into the principal.

``huhang.web.create_api`` puts :func:`authenticate` on every service router; it verifies the token (signature,
expiry, audience, issuer, a known ``kid``) with the app's :class:`TokenService` and sets
``request.state.principal``, which routes read with ``Depends(current_principal)``. A missing or bad token answers
401 ``application/problem+json`` with a ``WWW-Authenticate: Bearer`` challenge (RFC 6750 §3), never a 500.

Revocation: tokens are short-lived and not revocable one by one. Disabling a client or a person (``huhang auth
disable``) refuses new tokens at once; a token already issued lapses within its lifetime
(``HUHANG_AUTH_CLIENT_TOKEN_LIFETIME_S``, ``HUHANG_AUTH_PERSON_TOKEN_LIFETIME_S``). To cut off every token at once,
rotate the signing key without keeping the old public key.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlowPassword, OAuthFlows
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2

from huhang.auth.principal import Principal
from huhang.auth.tokens import InvalidToken, TokenService
from huhang.problems import DomainError, FieldError, Problem, problem_response

TOKEN_PATH = "/v1/oauth/token"  # noqa: S105 - a path
REALM = "huhang"

bearer_scheme = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(tokenUrl=TOKEN_PATH),
        password=OAuthFlowPassword(tokenUrl=TOKEN_PATH),
    ),
    scheme_name="huhang",
    description="Agency systems: client credentials. People: their login name and password (password flow). "
    "Either way the token goes in `Authorization: Bearer <token>`.",
    auto_error=False,
)


class Unauthenticated(DomainError):
    """401: no token, or one that does not verify. ``error`` is the RFC 6750 error code, or None when the request
    carried no credentials at all (then the challenge names no error, as RFC 6750 §3.1 asks)."""

    status = 401
    type = "urn:huhang:problem:unauthenticated"

    def __init__(self, detail: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(detail, errors=[FieldError(field="Authorization", reason=detail)])
        self.error = error

    @property
    def challenge(self) -> str:
        if self.error is None:
            return f'Bearer realm="{REALM}"'
        description = self.detail.replace('"', "'")
        return f'Bearer realm="{REALM}", error="{self.error}", error_description="{description}"'


def token_service(request: Request) -> TokenService:
    return request.app.state.auth_tokens


async def authenticate(request: Request, authorization: str | None = Depends(bearer_scheme)) -> Principal:
    """The route-level dependency: verifies the bearer token and records the principal on the request."""
    if not authorization:
        raise Unauthenticated("authentication required: send Authorization: Bearer <token>", error=None)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be: Bearer <token>", error="invalid_request")
    try:
        principal = token_service(request).verify(token.strip())
    except InvalidToken as exc:
        raise Unauthenticated(str(exc)) from None
    request.state.principal = principal
    return principal


def install_auth_handlers(app: FastAPI) -> None:
    """401 problems with their ``WWW-Authenticate`` challenge."""

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        problem = Problem(type=exc.type, title="Unauthorized", status=401, detail=exc.detail,
                          instance=request.url.path, errors=exc.errors)
        return problem_response(problem, headers={"WWW-Authenticate": exc.challenge})
