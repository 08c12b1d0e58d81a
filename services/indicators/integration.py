"""The one mapping from the indicators service's domain events to integration events (contracts/).

A unit's colour change (``UnitColour.Changed``) becomes ``IndicatorColourChanged``; a spot check's newly failed
items become ``SpotCheckFollowUpRequired`` (``services/indicators/spot_checks.py``). Subject: the unit's colour
id for colour changes (they are about no case), so that one unit's changes keep their order on one partition.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from contracts.agencies import LEAD_AGENCY
from contracts.envelope import CloudEvent
from contracts.events import IndicatorColourChanged, IndicatorColourChangedData
from huhang.eventstore import envelope
from services.indicators.colours import UnitColour
from services.indicators.spot_checks import spot_check_events

SOURCE = "/huhang/indicators"


def change_id(originator_id: uuid.UUID, version: int) -> uuid.UUID:
    """The colour change's id: the same in ``ind_colour_change`` and on the published event."""
    return uuid.uuid5(originator_id, str(version))


def to_integration_events(domain_event: Any) -> Sequence[CloudEvent]:
    e = domain_event
    if isinstance(e, UnitColour.Changed):  # type: ignore[attr-defined]
        township = e.unit.split("/", 1)[0] if e.unit_kind in ("township", "village") else None
        return [IndicatorColourChanged(
            **envelope(e, SOURCE, e.originator_id, LEAD_AGENCY.value),
            dataschema=IndicatorColourChanged.schema_uri(),
            data=IndicatorColourChangedData(
                change_id=change_id(e.originator_id, e.originator_version), indicator=e.indicator,
                unit_kind=e.unit_kind, unit=e.unit, township=township, previous_colour=e.previous,
                colour=e.colour, value=e.value, as_of=e.changed_at,
            ),
        )]
    return list(spot_check_events(e))
