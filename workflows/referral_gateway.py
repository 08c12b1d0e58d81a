"""How the routing workflow asks the referral service to open referrals: in-process or over HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import httpx

from contracts.commands import OpenReferral, OpenReferrals
from services.referral.application import ReferralApplication


class ReferralGateway(Protocol):
    def open(self, commands: Sequence[OpenReferral]) -> int:
        """Open the referrals (idempotently); returns how many were new."""
        ...


class LocalReferralGateway:
    """Embedded mode: the referral application lives in this process."""

    def __init__(self, app: ReferralApplication) -> None:
        self.app = app

    def open(self, commands: Sequence[OpenReferral]) -> int:
        return sum(1 for opened in self.app.open_referrals(commands) if opened.created)


class HttpReferralGateway:
    """Distributed mode: ``POST /v1/referrals`` on the referral service, in requests of at most ``chunk``
    referrals (well under the API's body limit, whatever the size of the batch being routed)."""

    def __init__(
        self, base_url: str, timeout_s: float = 10.0, chunk: int = 50, auth: httpx.Auth | None = None
    ) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=timeout_s, auth=auth)  # auth: the system token
        self.chunk = chunk

    def open(self, commands: Sequence[OpenReferral]) -> int:
        created = 0
        for start in range(0, len(commands), self.chunk):
            body = OpenReferrals(referrals=tuple(commands[start : start + self.chunk])).model_dump(mode="json")
            response = self.client.post("/v1/referrals", json=body)
            response.raise_for_status()
            created += sum(1 for r in response.json()["referrals"] if r["created"])
        return created
