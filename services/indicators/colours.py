"""Colour-coded management (赋色管理): a unit's colour per indicator, and its changes as events.

``UnitColour`` is one aggregate per (indicator, unit kind, unit): its ``Changed`` events are the fact "this unit
went from yellow to red on indicator X", recorded in the indicators service's own event store and published as
the contract event ``IndicatorColourChanged`` (``services/indicators/integration.py``), which routing and
notifications may act on. ``ColourWatch.check`` evaluates every indicator that has thresholds for every unit, and
records a change where the colour differs from the one last seen (``ind_colour``). The aggregate decides: a
check repeated after a crash between saving the event and updating ``ind_colour`` finds the aggregate already at
the new colour and records nothing twice. Figures are evaluated unsuppressed: the colour is about the unit.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from sqlalchemy import select

from huhang.sql import reading, upsert
from services.indicators import tables as t
from services.indicators.model import UNIT_KINDS, ColourChange, UnitKind
from services.indicators.projection import utc
from services.indicators.queries import SqlIndicatorQueries

logger = logging.getLogger(__name__)
UNIT_COLOUR_NAMESPACE = uuid.UUID("3f0c6a2e-8d41-4b7a-9e55-1c2d7b9a0f64")


def unit_colour_id(indicator: str, unit_kind: str, unit: str) -> UUID:
    return uuid.uuid5(UNIT_COLOUR_NAMESPACE, f"{indicator}/{unit_kind}/{unit}")


class UnitColour(Aggregate):
    """The colour of one unit on one indicator, over time."""

    @staticmethod
    def create_id(indicator: str, unit_kind: str, unit: str, **_: Any) -> UUID:
        return unit_colour_id(indicator, unit_kind, unit)

    @event("Opened")
    def __init__(self, indicator: str, unit_kind: str, unit: str) -> None:
        self.indicator = indicator
        self.unit_kind = unit_kind
        self.unit = unit
        self.colour: str | None = None

    def change(self, colour: str | None, value: float | None, at: datetime) -> bool:
        """Record the new colour; ``False`` (nothing recorded) when it is the colour already held."""
        if colour == self.colour:
            return False
        self._changed(
            indicator=self.indicator, unit_kind=self.unit_kind, unit=self.unit, previous=self.colour, colour=colour,
            value=value, changed_at=at,
        )
        return True

    @event("Changed")
    def _changed(
        self, indicator: str, unit_kind: str, unit: str, previous: str | None, colour: str | None,
        value: float | None, changed_at: datetime,
    ) -> None:
        self.colour = colour


class ColourRecorder(Protocol):
    def record_colour(
        self, indicator: str, unit_kind: str, unit: str, colour: str | None, value: float | None, at: datetime
    ) -> tuple[str | None, int] | None: ...


class ColourWatch:
    """Evaluates colours and records their changes (run after the projection, on a schedule)."""

    def __init__(self, queries: SqlIndicatorQueries, application: ColourRecorder) -> None:
        self.queries = queries
        self.application = application

    def check(self, as_of: datetime | None = None, unit_kinds: tuple[UnitKind, ...] = UNIT_KINDS) -> list[
        ColourChange
    ]:
        """Every thresholded indicator for every unit: record the colours that changed; answers the changes."""
        engine = self.queries.engine
        with reading(engine) as conn:
            held = {
                (r.indicator, r.unit_kind, r.unit): r.colour for r in conn.execute(select(t.colours))
            }
        changes: list[ColourChange] = []
        for ind in self.queries.catalogue():
            if not ind.thresholds:
                continue
            for kind in ind.unit_kinds:
                if kind not in unit_kinds:
                    continue
                small = {
                    v.unit for v in self.queries.values(ind.code, kind, None, as_of, suppress_small_cells=True)
                    if v.suppressed and v.breakdown is None
                }
                for v in self.queries.values(ind.code, kind, None, as_of):
                    if v.breakdown is not None:
                        continue
                    shared = None if v.unit in small else v.value  # published: no figure about a small cell
                    key = (ind.code, kind, v.unit)
                    if key in held and held[key] == v.colour:
                        continue
                    if key not in held and v.colour is None:
                        continue
                    saved = self.application.record_colour(ind.code, kind, v.unit, v.colour, shared, v.as_of)
                    with engine.begin() as conn:
                        upsert(conn, t.colours, {
                            "indicator": ind.code, "unit_kind": kind, "unit": v.unit, "colour": v.colour,
                            "value": shared, "changed_at": utc(v.as_of),
                        }, ["indicator", "unit_kind", "unit"])
                        if saved is not None:
                            previous, version = saved  # the id is integration.change_id's
                            change = ColourChange(
                                change_id=uuid.uuid5(unit_colour_id(*key), str(version)), indicator=ind.code,
                                unit_kind=kind, unit=v.unit, previous=previous,  # type: ignore[arg-type]
                                colour=v.colour, value=shared, changed_at=utc(v.as_of),
                            )
                            conn.execute(t.colour_changes.insert().values(
                                change_id=str(change.change_id), indicator=change.indicator,
                                unit_kind=change.unit_kind, unit=change.unit, previous=change.previous,
                                colour=change.colour, value=change.value, changed_at=change.changed_at,
                            ))
                            changes.append(change)
        if changes:
            logger.info("indicator colours changed: %d", len(changes))
        return changes
