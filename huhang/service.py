"""What every service offers the composition root (huhang/bootstrap.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI

from huhang.streams import DomainToContract, EventHandler, Positions


@dataclass(frozen=True)
class Subscription:
    """A read model or reaction of a service, fed by the integration events of the named services."""

    name: str
    handler: EventHandler
    sources: tuple[str, ...]


class Service(Protocol):
    name: str  # "intake", "referral", ...
    title: str  # the title of its own OpenAPI document
    application: Any  # its event store (a WakeableApplication); its notification log is its outbox
    positions: Positions  # where its relay and in-process followers keep their positions

    def to_integration_events(self) -> DomainToContract: ...

    def routers(self) -> list[APIRouter]: ...

    def bind(self, api: FastAPI) -> None:
        """Put what the routes depend on into ``api.state``."""
        ...

    def subscriptions(self) -> list[Subscription]: ...
