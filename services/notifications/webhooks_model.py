"""Outbound webhooks, the pure part: Standard Webhooks secrets and signatures, who receives which event, and the
retry schedule. No I/O here, so that every rule is tested on its own (store: ``webhooks_store``; sending:
``webhooks_deliverer``).

**Signatures** follow the Standard Webhooks spec (https://www.standardwebhooks.com): a secret is ``whsec_`` and
the base64 of 32 random bytes; each request carries ``webhook-id`` (the integration event id, so a receiver
deduplicates a redelivery), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: ``v1,`` and the base64
of HMAC-SHA256 over ``{id}.{timestamp}.{body}``, one per valid secret, space-separated (two during a rotation).

**Need-to-know.** A subscription belongs to one agency and receives only what that agency may know: the lead and
supervising agencies every event; a township or village system the events of its own area; any other agency the
events that name it (owner, requester, reporter, fallback, or the acting agency). Events carry ids and codes only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from huhang.access.policy import AREA_AGENCIES, SEE_ALL_AGENCIES

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,...`` per valid secret, space-separated: a receiver holding either secret verifies."""
    return " ".join(signature(s, msg_id, timestamp, body) for s in secrets_)


def webhook_headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/cloudevents+json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_, msg_id, timestamp, body),
    }


class EndpointRefused(ValueError):
    """The endpoint URL is not acceptable (the message says why; the API names the field)."""


LOOPBACK_NAMES = {"localhost"}


def check_endpoint(url: str, *, development: bool) -> str:
    """https only; plain http to a loopback address in development (local receivers, tests)."""
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in {"https", "http"}:
        raise EndpointRefused("must be an absolute https URL")
    if parts.username or parts.password:
        raise EndpointRefused("must not carry credentials")
    if parts.scheme == "http" and not (development and _is_loopback(parts.hostname)):
        raise EndpointRefused("must use https (http only to a loopback address in development)")
    return url


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Filter:
    """What a subscription wants: event types (empty: all) and an area (township, and a village in it)."""

    agency: Agency
    event_types: frozenset[str] = frozenset()
    township: str | None = None
    village: str | None = None


@dataclass(frozen=True)
class Area:
    township: str | None
    village: str | None


def area_of(event: CloudEvent) -> Area:
    data: Any = getattr(event, "data", None)
    return Area(getattr(data, "township", None), getattr(data, "village", None))


def agencies_named(event: CloudEvent) -> set[Agency]:
    """Every agency an event names: the acting agency and any agency-valued field of its data."""
    named = {event.actoragency}
    data = getattr(event, "data", None)
    if isinstance(data, BaseModel):
        for name in type(data).model_fields:
            named.update(_agencies(getattr(data, name)))
    return named


def _agencies(value: object) -> Iterable[Agency]:
    if isinstance(value, Agency):
        yield value
    elif isinstance(value, tuple | list | frozenset | set):
        yield from (v for v in value if isinstance(v, Agency))


def wants(f: Filter, event: CloudEvent, area: Area) -> bool:
    """Whether a subscription receives an event; ``area`` is the case's area (the event's, or remembered)."""
    if f.event_types and event.type not in f.event_types:  # type: ignore[attr-defined]
        return False
    if f.township is not None and area.township != f.township:
        return False
    if f.village is not None and area.village != f.village:
        return False
    if f.agency in SEE_ALL_AGENCIES:
        return True
    if f.agency in AREA_AGENCIES:
        return f.township is not None  # an area system hears only of its own (required) area
    return f.agency in agencies_named(event)


# --- the retry schedule -------------------------------------------------------------------------------------------


class Outcome(StrEnum):
    delivered = "delivered"
    retry = "retry"  # a timeout, a connection failure, 5xx or 429
    dead = "dead"  # any other 4xx (or 3xx): the receiver refuses it; retrying would not help
    gone = "gone"  # 410: the receiver asks us to stop; the subscription is disabled


def classify(status: int | None) -> Outcome:
    """``None`` is a timeout or a connection failure."""
    if status is None or status == 429 or status >= 500:
        return Outcome.retry
    if 200 <= status < 300:
        return Outcome.delivered
    if status == 410:
        return Outcome.gone
    return Outcome.dead


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter (the delay is uniform between 0 and the exponential bound, so that
    many failed deliveries do not all come back at once); a ``Retry-After`` from the receiver is honoured instead.
    The defaults spread 8 attempts over about a day."""

    base_s: float = 30.0
    factor: float = 4.0
    cap_s: float = 12 * 3600.0
    max_attempts: int = 8

    def bound(self, attempts: int) -> float:
        """The upper bound of the delay after ``attempts`` failed attempts (1, 2, ...)."""
        return min(self.cap_s, self.base_s * self.factor ** (attempts - 1))

    def delay(self, attempts: int, rng: random.Random, retry_after_s: float | None = None) -> float | None:
        """Seconds before the next attempt, or ``None`` when the last attempt has been made (dead-letter)."""
        if attempts >= self.max_attempts:
            return None
        if retry_after_s is not None:
            return min(self.cap_s, max(0.0, retry_after_s))
        return rng.uniform(0.0, self.bound(attempts))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds or as an HTTP date (RFC 9110 §10.2.3); ``None`` when absent or malformed."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
