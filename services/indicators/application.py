"""The indicators service's own event store: the facts it comes to own (colour changes; H5's spot checks).

Its notification log is its outbox: ``services/indicators/integration.py`` maps its domain events to the contract
events published on ``huhang.indicators.events.v1``.
"""

from __future__ import annotations

from datetime import datetime

from eventsourcing.application import AggregateNotFoundError

from huhang.eventstore import ServiceApplication
from services.indicators.colours import UnitColour, unit_colour_id


class IndicatorsApplication(ServiceApplication):
    name = "indicators"

    def record_colour(
        self, indicator: str, unit_kind: str, unit: str, colour: str | None, value: float | None, at: datetime
    ) -> tuple[str | None, int] | None:
        """Save the unit's colour if it changed: answers (previous colour, the change's version) or ``None``."""
        colour_id = unit_colour_id(indicator, unit_kind, unit)
        try:
            aggregate: UnitColour = self.repository.get(colour_id)
        except AggregateNotFoundError:
            aggregate = UnitColour(indicator, unit_kind, unit)
        previous = aggregate.colour
        if not aggregate.change(colour, value, at):
            return None
        self.save(aggregate)
        return previous, aggregate.version
