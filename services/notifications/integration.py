"""The one mapping from notifications' domain events to integration events (contracts/): none, as yet.

Notifications publishes nothing: its output is the agency feeds. The mapping exists so that the service offers
what every service offers (``huhang.service.Service``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.envelope import CloudEvent


def to_integration_events(domain_event: Any) -> Sequence[CloudEvent]:
    return []
