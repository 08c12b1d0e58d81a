"""The indicators service's query interface: what reports, spot checks and the API ask of the read models.

Published first and kept stable (reports and spot checks are written against it): add optional fields or
methods, never change or remove one. The read models behind it are temporal tables kept by
``services/indicators/store.py``; every query takes ``as_of`` and answers the figure as it stood then, the same
every time it is asked (``as_of`` is a filter on the rows' ``valid_from``/``valid_to``, not a replay).

Units: ``county`` (one unit, the whole county, ``unit`` is ``"county"``), ``township``, ``village`` (``unit`` is
``"<township>/<village>"``: village names repeat across townships) and ``agency`` (an agency code, for the
referral indicators). ``month`` is ``"YYYY-MM"`` for a figure of one calendar month (flows: referrals accepted
in the month, interventions taken in the month) and for ``trend`` points; ``None`` for a stock as of ``as_of``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

UnitKind = Literal["county", "township", "village", "agency"]
Colour = Literal["green", "yellow", "red"]
Direction = Literal["up", "down", "none"]

UNIT_KINDS: tuple[UnitKind, ...] = ("county", "township", "village", "agency")
COUNTY = "county"
SMALL_CELL = 5
"""Published or shared figures about fewer children than this in a unit are suppressed (value and counts null)."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """A colour band: the figure is ``colour`` when it is at least (direction ``up``) or at most (``down``) ``at``;
    a band without ``at`` is the colour of everything the bands before it did not take."""

    colour: Colour
    at: float | None


@dataclass(frozen=True, slots=True)
class Indicator:
    """One entry of the catalogue (``contracts/indicators.yaml``, the one source of truth).

    ``measure`` is what ``value`` is: ``share`` (numerator / denominator, 0..1), ``count`` (numerator; no
    denominator) or ``hours`` (a median, in hours; numerator is the number of items it is the median of).
    ``direction`` says which way is good: ``up`` (more is better), ``down`` (less is better), ``none`` (a
    distribution, no colour). ``unit_kinds`` are the units it is computed for; ``breakdowns`` name the dimensions
    it is also split by (``category``, ``referral_type``, ``priority``, ``kind``, ``colour``). ``thresholds`` are
    checked in order, the first that holds gives the colour. ``small_cells``: the figure is about children and is
    suppressed, when asked, while it counts fewer than ``SMALL_CELL`` of them. ``per_month``: a flow over the
    calendar month that holds ``as_of`` (else a stock as of ``as_of``).
    """

    code: str
    name_zh: str
    name_en: str
    measure: Literal["share", "count", "hours"]
    direction: Direction
    unit_kinds: tuple[UnitKind, ...]
    per_month: bool
    breakdowns: tuple[str, ...]
    thresholds: tuple[Threshold, ...]
    small_cells: bool
    description: str = ""


@dataclass(frozen=True, slots=True)
class IndicatorValue:
    """One figure: an indicator for one unit (and month, and breakdown value), as it stood at ``as_of``.

    ``value`` is ``numerator / denominator`` for a share, ``numerator`` for a count, the median in hours for a
    duration; ``None`` when there is nothing to measure (denominator 0) or when suppressed. ``colour`` comes from
    the catalogue's thresholds (``None`` for indicators without thresholds, for no value, and when suppressed).
    ``suppressed`` is true when the figure is about fewer than ``SMALL_CELL`` children and the caller asked for
    small cells to be suppressed: ``numerator``, ``denominator`` and ``value`` are then ``None``.
    ``breakdown`` is ``"<dimension>:<value>"`` for one part of a broken-down figure (e.g. ``category:left_behind``,
    ``priority:urgent``), ``None`` for the total.
    """

    indicator: str
    unit_kind: UnitKind
    unit: str
    month: str | None
    as_of: datetime
    numerator: int | None
    denominator: int | None
    value: float | None
    colour: Colour | None
    suppressed: bool
    breakdown: str | None = None


@dataclass(frozen=True, slots=True)
class ColourChange:
    """A unit's colour for an indicator changed (recorded as ``IndicatorColourChanged`` and published)."""

    change_id: UUID
    indicator: str
    unit_kind: UnitKind
    unit: str
    previous: Colour | None
    colour: Colour | None
    value: float | None
    changed_at: datetime


class IndicatorQueries(Protocol):
    """What the read models answer. Implemented by ``services.indicators.queries.SqlIndicatorQueries``."""

    def catalogue(self) -> Sequence[Indicator]:
        """The indicator catalogue, in the order of ``contracts/indicators.yaml``."""
        ...

    def values(
        self,
        indicator: str | None = None,
        unit_kind: UnitKind = "township",
        unit: str | None = None,
        as_of: datetime | None = None,
        suppress_small_cells: bool = False,
    ) -> list[IndicatorValue]:
        """Every figure of ``indicator`` (all indicators when ``None``) for every unit of ``unit_kind`` (or the one
        ``unit``), as of ``as_of`` (now when ``None``). Monthly indicators answer the month that holds ``as_of``.
        Raises ``KeyError`` for an unknown indicator code; indicators not computed for ``unit_kind`` are skipped.
        """
        ...

    def trend(
        self,
        indicator: str,
        unit_kind: UnitKind,
        unit: str,
        months: int,
        as_of: datetime | None = None,
        suppress_small_cells: bool = False,
    ) -> list[IndicatorValue]:
        """The figure at each of the last ``months`` month ends (the last point: ``as_of`` itself), oldest first;
        for a broken-down indicator, the total (``breakdown`` ``None``) only."""
        ...

    def children_behind(
        self, indicator: str, unit_kind: UnitKind, unit: str, as_of: datetime | None = None
    ) -> list[UUID]:
        """The child ids a figure counts in its denominator but not its numerator (the children "behind": not
        visited, no agreement, ...); for counts, the children counted. Drill-down, for those allowed only."""
        ...

    def colour_changes(self, since: datetime | None = None, limit: int = 1000) -> list[ColourChange]:
        """Colour changes recorded since ``since`` (exclusive), oldest first."""
        ...
