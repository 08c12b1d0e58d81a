"""``IndicatorQueries`` on the temporal read models (SQLAlchemy Core; SQLite and PostgreSQL alike).

Each indicator is two steps. A *family* statement (``_groups``: one per family of indicators that read the same
rows, e.g. the three visit indicators) selects, with ``as_of`` as a filter on ``valid_from``/``valid_to`` (or
``recorded_at``) and the asked unit pushed down as a filter, the things an indicator counts (children, villages,
directors, referrals) already counted in the database: ``GROUP BY`` township, village (and agency, breakdown
parts, and whether in the denominator and the numerator). ``_aggregate`` then sums those few groups per unit, each
weighing its count. At county scale (100,000 children) this is what keeps a figure within tens of milliseconds:
loading one row per child into Python was seconds.

``children_behind`` (drill-down) needs the children themselves: it keeps the row-per-thing ``_facts``, whose rules
are the same as the groups' (``tests/unit/test_indicators_perf_semantics.py`` holds the two to equal figures on a
random county), so a figure and its children never disagree. Dates (a visit's day, "the last month", the month of a
flow) are China's calendar days.
"""

from __future__ import annotations

import calendar
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, Table, and_, case, func, literal, or_, select

from services.indicators import tables as t
from services.indicators.catalogue import colour_of, default_catalogue
from services.indicators.model import (
    COUNTY,
    SMALL_CELL,
    ColourChange,
    Indicator,
    IndicatorValue,
    UnitKind,
)
from services.indicators.projection import CHINA, RISK_ORDER, utc

CLOSED_REFERRAL = ("completed", "failed", "rejected", "cancelled", "entered-in-error")
WAITING_REFERRAL = ("requested", "received")
LARGE_VILLAGE = 30


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing an indicator counts, with its units (kind -> unit) and breakdown parts."""

    units: dict[str, str]
    item: str
    child: bool
    denominator: bool
    numerator: bool
    parts: tuple[str, ...] = ()
    hours: float | None = None
    weight: int = 1
    """How many things this fact stands for: 1 for one row, the count of a group from a family statement."""


@dataclass(frozen=True, slots=True)
class Window:
    """What "as of" means for one query: the instant, its China calendar day and month."""

    at: datetime
    day: date
    month_start: datetime
    month: str
    present: bool = False
    """Nothing was recorded after ``at``: the temporal tables' open rows are what holds at ``at`` (``valid_to IS
    NULL``), and the children's facts are read from their present rows (``ind_child_present``) in one scan."""

    @staticmethod
    def of(as_of: datetime | None) -> Window:
        at = utc(as_of) if as_of is not None else datetime.now(UTC)
        day = at.astimezone(CHINA).date()
        start = datetime.combine(day.replace(day=1), time(), CHINA).astimezone(UTC)
        return Window(at, day, start, f"{day.year:04d}-{day.month:02d}")


def months_back(day: date, months: int) -> date:
    """The same calendar day ``months`` earlier (the month's last day when it has no such day)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _holds(table: Any, at: datetime) -> Any:
    return and_(table.c.valid_from <= at, or_(table.c.valid_to.is_(None), table.c.valid_to > at))


def _current(table: Any, w: Window) -> Any:
    """The rows of a temporal table that hold at ``w``: the open ones when ``w`` is the present."""
    return table.c.valid_to.is_(None) if w.present else _holds(table, w.at)


def _kids(w: Window) -> tuple[Table, Any]:
    """The children registered at ``w``: their present rows, or the temporal rows that held then (the same columns:
    child_id, township, village, categories, parents_away, frequent)."""
    if w.present:
        return t.child_present, t.child_present.c.registered.is_(True)
    return t.children, _holds(t.children, w.at)


def _place(township: str, village: str) -> dict[str, str]:
    return {"county": COUNTY, "township": township, "village": f"{township}/{village}"}


FAMILY: dict[str, str] = {
    "children_registered": "children",
    "visit_compliance": "visits", "contact_compliance": "visits", "home_visit_compliance": "visits",
    "parent_contact_compliance": "parents",
    "entrusted_care_coverage": "agreements",
    "director_coverage": "villages", "director_sufficiency": "villages",
    "training_coverage": "training",
    "risk_distribution": "risks", "risk_red_share": "risks",
    "risk_worsened": "worsened",
    "referrals_open": "open", "referrals_overdue": "open",
    "referral_accept_hours": "accept", "referral_complete_hours": "complete",
    "dropout_return_rate": "dropouts",
    "interventions": "interventions",
}
"""Indicator -> the family statement that counts it (indicators of one family read the same rows)."""


@dataclass(frozen=True, slots=True)
class _Scope:
    """The unit asked for, as a filter pushed down into a family statement (only ever narrows what is counted:
    ``_aggregate`` still keeps the asked unit alone)."""

    unit_kind: UnitKind
    unit: str | None

    def where(self, township: Any, village: Any, agency: Any = None) -> list[Any]:
        if self.unit is None or self.unit_kind == "county":
            return []
        if self.unit_kind == "township":
            return [township == self.unit]
        if self.unit_kind == "village":  # "<township>/<village>": try every "/" (a name may hold one)
            cuts = [i for i, ch in enumerate(self.unit) if ch == "/"]
            if not cuts:
                return [literal(False)]
            return [or_(*(and_(township == self.unit[:i], village == self.unit[i + 1:]) for i in cuts))]
        return [agency == self.unit] if agency is not None else []

    def keys(self, township: Any, village: Any, agency: Any = None) -> list[Any]:
        """The columns a family statement groups on for this unit kind (none for the county)."""
        if self.unit_kind == "township":
            return [township]
        if self.unit_kind == "village":
            return [township, village]
        if self.unit_kind == "agency":
            return [agency] if agency is not None else [literal("")]
        return []

    def split(self, row: Sequence[Any]) -> tuple[dict[str, str], Sequence[Any]]:
        """A grouped row as (its unit, keyed by unit kind; the rest of the row)."""
        if self.unit_kind == "township":
            return {"township": row[0]}, row[1:]
        if self.unit_kind == "village":
            return {"village": f"{row[0]}/{row[1]}"}, row[2:]
        if self.unit_kind == "agency":
            return {"agency": row[0]}, row[1:]
        return {"county": COUNTY}, row


def _no_jit(conn: Connection) -> None:
    """PostgreSQL: no JIT compilation for this transaction. The family statements are estimated costly enough to
    be compiled, which took longer (15 ms and more) than running them."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")


def _flag(condition: Any) -> Any:
    """A condition as 0/1 (NULL counts as false), so that it can be selected and grouped on both dialects."""
    return case((condition, 1), else_=0)


@dataclass
class _Cell:
    numerator: int = 0
    denominator: int = 0
    hours: list[float] = field(default_factory=list)


class SqlIndicatorQueries:
    """The read side; stateless apart from the engine and the catalogue."""

    def __init__(self, engine: Engine, catalogue: Sequence[Indicator] | None = None) -> None:
        self.engine = engine
        self._catalogue = tuple(catalogue) if catalogue is not None else default_catalogue()
        self._by_code = {i.code: i for i in self._catalogue}
        self._facts: dict[str, Callable[[Connection, Window], list[Fact]]] = {
            "children_registered": self._children_registered,
            "visit_compliance": lambda c, w: self._visits(c, w, contact=True, home=True),
            "contact_compliance": lambda c, w: self._visits(c, w, contact=True, home=False),
            "home_visit_compliance": lambda c, w: self._visits(c, w, contact=False, home=True),
            "parent_contact_compliance": self._parent_contacts,
            "entrusted_care_coverage": self._agreements,
            "director_coverage": lambda c, w: self._villages(c, w, large_only=False),
            "director_sufficiency": lambda c, w: self._villages(c, w, large_only=True),
            "training_coverage": self._trainings,
            "risk_distribution": lambda c, w: self._risks(c, w, parts=True),
            "risk_red_share": lambda c, w: self._risks(c, w, parts=False),
            "risk_worsened": self._risk_worsened,
            "referrals_open": lambda c, w: self._referrals_open(c, w, overdue=False),
            "referrals_overdue": lambda c, w: self._referrals_open(c, w, overdue=True),
            "referral_accept_hours": lambda c, w: self._referral_hours(c, w, "accepted"),
            "referral_complete_hours": lambda c, w: self._referral_hours(c, w, "completed"),
            "dropout_return_rate": self._dropouts,
            "interventions": self._interventions,
        }
        self._groups: dict[str, Callable[[Connection, Window, _Scope], dict[str, list[Fact]]]] = {
            "children": self._g_children, "visits": self._g_visits, "parents": self._g_parents,
            "agreements": self._g_agreements, "villages": self._g_villages, "training": self._g_training,
            "risks": self._g_risks, "worsened": self._g_worsened, "open": self._g_open,
            "accept": lambda c, w, s: {"referral_accept_hours": self._referral_hours(c, w, "accepted", s)},
            "complete": lambda c, w, s: {"referral_complete_hours": self._referral_hours(c, w, "completed", s)},
            "dropouts": self._g_dropouts, "interventions": self._g_interventions,
        }
        missing = {code for code in self._by_code if code not in self._facts or code not in FAMILY}
        if missing:
            raise ValueError(f"indicators in the catalogue without a computation: {sorted(missing)}")

    # -- the interface ------------------------------------------------------------------------------------------

    def catalogue(self) -> Sequence[Indicator]:
        return self._catalogue

    def indicator(self, code: str) -> Indicator:
        return self._by_code[code]

    def values(
        self,
        indicator: str | None = None,
        unit_kind: UnitKind = "township",
        unit: str | None = None,
        as_of: datetime | None = None,
        suppress_small_cells: bool = False,
    ) -> list[IndicatorValue]:
        chosen = [self._by_code[indicator]] if indicator is not None else list(self._catalogue)
        scope = _Scope(unit_kind, unit)
        out: list[IndicatorValue] = []
        families: dict[str, dict[str, list[Fact]]] = {}
        with self.engine.connect() as conn:
            _no_jit(conn)
            window = _window(as_of, _latest_recorded(conn))
            for ind in chosen:
                if unit_kind not in ind.unit_kinds:
                    continue
                family = FAMILY[ind.code]
                if family not in families:  # one statement per family, not per indicator or unit
                    families[family] = self._groups[family](conn, window, scope)
                facts = families[family][ind.code]
                out.extend(self._aggregate(ind, facts, unit_kind, unit, window, suppress_small_cells))
        return out

    def trend(
        self,
        indicator: str,
        unit_kind: UnitKind,
        unit: str,
        months: int,
        as_of: datetime | None = None,
        suppress_small_cells: bool = False,
    ) -> list[IndicatorValue]:
        ind = self._by_code[indicator]
        scope = _Scope(unit_kind, unit)
        points: list[IndicatorValue] = []
        with self.engine.connect() as conn:  # one connection, the family statement alone, narrowed to the unit
            _no_jit(conn)
            latest = _latest_recorded(conn)
            last = _window(as_of, latest)
            for back in range(months - 1, -1, -1):
                if back == 0:
                    at = last.at
                else:
                    end = month_end(months_back(last.day, back))
                    at = datetime.combine(end + timedelta(days=1), time(), CHINA).astimezone(UTC) - timedelta(
                        microseconds=1
                    )
                window = last if back == 0 else _window(at, latest)
                found = [
                    v for v in self._aggregate(
                        ind, self._groups[FAMILY[ind.code]](conn, window, scope)[ind.code], unit_kind, unit, window,
                        suppress_small_cells,
                    )
                    if v.breakdown is None
                ] if unit_kind in ind.unit_kinds else []
                points.append(found[0] if found else IndicatorValue(
                    indicator=ind.code, unit_kind=unit_kind, unit=unit, month=window.month, as_of=window.at,
                    numerator=None, denominator=None, value=None, colour=None, suppressed=False,
                ))
        return [
            p if p.month is not None else _with_month(p, Window.of(p.as_of).month) for p in points
        ]

    def children_behind(
        self, indicator: str, unit_kind: UnitKind, unit: str, as_of: datetime | None = None
    ) -> list[UUID]:
        ind = self._by_code[indicator]
        with self.engine.connect() as conn:
            facts = self._facts[ind.code](conn, Window.of(as_of))
        behind = set()
        for f in facts:
            if not f.child or f.units.get(unit_kind) != unit:
                continue
            counted_out = ind.measure == "share" and f.denominator and not f.numerator
            if counted_out or (ind.measure == "count" and f.numerator):
                behind.add(f.item)
        return sorted(UUID(c) for c in behind)

    def colour_changes(self, since: datetime | None = None, limit: int = 1000) -> list[ColourChange]:
        query = select(t.colour_changes).order_by(t.colour_changes.c.seq).limit(limit)
        if since is not None:
            query = query.where(t.colour_changes.c.changed_at > utc(since))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            ColourChange(
                change_id=UUID(r.change_id), indicator=r.indicator, unit_kind=r.unit_kind, unit=r.unit,
                previous=r.previous, colour=r.colour, value=r.value, changed_at=utc(r.changed_at),
            )
            for r in rows
        ]

    # -- aggregation ---------------------------------------------------------------------------------------------

    def _aggregate(
        self, ind: Indicator, facts: Iterable[Fact], unit_kind: UnitKind, unit: str | None, window: Window,
        suppress: bool,
    ) -> list[IndicatorValue]:
        cells: dict[tuple[str, str | None], _Cell] = defaultdict(_Cell)
        for f in facts:
            key = f.units.get(unit_kind)
            if key is None or (unit is not None and key != unit):
                continue
            for part in (None, *f.parts):
                cell = cells[(key, part)]
                cell.denominator += f.denominator * f.weight
                cell.numerator += (f.numerator and (f.denominator or ind.measure != "share")) * f.weight
                if f.hours is not None and f.numerator:
                    cell.hours.append(f.hours)
        if ind.measure == "share":  # a part's share is of the unit's whole
            for (key, part), cell in cells.items():
                if part is not None:
                    cell.denominator = cells[(key, None)].denominator
        out = []
        for (key, part), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            out.append(self._value(ind, unit_kind, key, part, cell, window, suppress))
        return out

    @staticmethod
    def _value(
        ind: Indicator, unit_kind: UnitKind, unit: str, part: str | None, cell: _Cell, window: Window,
        suppress: bool,
    ) -> IndicatorValue:
        numerator: int | None = cell.numerator
        denominator: int | None = cell.denominator if ind.measure == "share" else None
        value: float | None
        if ind.measure == "share":
            value = cell.numerator / cell.denominator if cell.denominator else None
        elif ind.measure == "hours":
            value = round(statistics.median(cell.hours), 3) if cell.hours else None
        else:
            value = float(cell.numerator)
        counted = cell.denominator if ind.measure == "share" and part is None else cell.numerator
        suppressed = suppress and ind.small_cells and 0 < counted < SMALL_CELL
        if suppress and ind.small_cells and ind.measure == "share" and 0 < cell.denominator < SMALL_CELL:
            suppressed = True
        if suppressed:
            numerator = denominator = None
            value = None
        return IndicatorValue(
            indicator=ind.code, unit_kind=unit_kind, unit=unit, month=window.month if ind.per_month else None,
            as_of=window.at, numerator=numerator, denominator=denominator, value=value,
            colour=None if part is not None else colour_of(ind, value), suppressed=suppressed, breakdown=part,
        )

    # -- family statements: counted in the database, one statement per family ----------------------------------

    def _g_children(self, conn: Connection, w: Window, scope: _Scope) -> dict[str, list[Fact]]:
        kids, registered = _kids(w)
        c = kids.c
        rows = conn.execute(
            select(*scope.keys(c.township, c.village), c.categories, func.count())
            .where(registered, *scope.where(c.township, c.village))
            .group_by(*scope.keys(c.township, c.village), c.categories)
        )
        return {"children_registered": [
            Fact(units, "", True, True, True,
                 tuple(f"category:{x}" for x in r[0].strip(",").split(",") if x), weight=r[1])
            for units, r in map(scope.split, rows)
        ]}

    def _g_visits(self, conn: Connection, w: Window, scope: _Scope) -> dict[str, list[Fact]]:
        month_ago, quarter_ago = months_back(w.day, 1), months_back(w.day, 3)
        kids, registered = _kids(w)
        k, c = t.contacts.c, kids.c
        regime = case((c.frequent, month_ago), else_=quarter_ago)
        narrowed = scope.where(c.township, c.village)
        joined: Any = kids
        if w.present:  # the latest days kept on each child's present row
            contacted = t.child_present.c.last_contact >= month_ago
            visited = t.child_present.c.last_home_visit >= regime
        elif narrowed:  # a township or village: each of its children looked up by the (child, kind, day) index
            def last(kinds: tuple[str, ...]) -> Any:
                return select(func.max(k.on_date)).where(
                    k.child_id == c.child_id, k.kind.in_(kinds), k.on_date >= quarter_ago, k.on_date <= w.day,
                    k.recorded_at <= w.at,
                ).scalar_subquery()

            contacted, visited = last(("contact", "home_visit")) >= month_ago, last(("home_visit",)) >= regime
        else:  # the whole county: the quarter's contacts read once, by the (kind, day) index, and joined
            latest = (
                select(k.child_id, func.max(case((k.kind == "home_visit", k.on_date))).label("home"),
                       func.max(k.on_date).label("seen"))
                .where(k.kind.in_(("contact", "home_visit")), k.on_date >= quarter_ago, k.on_date <= w.day,
                       k.recorded_at <= w.at)
                .group_by(k.child_id)
            ).subquery()
            contacted, visited = latest.c.seen >= month_ago, latest.c.home >= regime
            joined = t.children.outerjoin(latest, latest.c.child_id == c.child_id)
        per_child = (
            select(c.township, c.village, _flag(contacted).label("contacted"), _flag(visited).label("visited"))
            .select_from(joined).where(registered, *narrowed)
        ).subquery()
        p = per_child.c
        rows = [scope.split(r) for r in conn.execute(
            select(*scope.keys(p.township, p.village), p.contacted, p.visited, func.count())
            .group_by(*scope.keys(p.township, p.village), p.contacted, p.visited)
        )]

        def facts(contact: bool, home: bool) -> list[Fact]:
            return [
                Fact(units, "", True, True, bool((r[0] or not contact) and (r[1] or not home)), weight=r[2])
                for units, r in rows
            ]

        return {"visit_compliance": facts(True, True), "contact_compliance": facts(True, False),
                "home_visit_compliance": facts(False, True)}

    def _g_parents(self, conn: Connection, w: Window, scope: _Scope) -> dict[str, list[Fact]]:
        week_ago = w.day - timedelta(days=7)
        if w.present:
            return {"parent_contact_compliance": self._away_children(
                conn, w, scope, t.child_present, t.child_present.c.last_parent >= week_ago)}
        kids, _ = _kids(w)
        k = t.contacts.c
        recent = (
            select(k.child_id).where(k.kind == "parent", k.on_date >= week_ago,
                                     k.on_date <= w.day, k.recorded_at <= w.at).distinct()
        ).subquery()
        return {"parent_contact_compliance": self._away_children(
            conn, w, scope, kids.outerjoin(recent, recent.c.child_id == kids.c.child_id),
            recent.c.child_id.is_not(None))}

    def _g_agreements(self, conn: Connection, w: Window, scope: _Scope) -> dict[str, list[Fact]]:
        kids, _ = _kids(w)
        a = t.agreements.c
        in_force = (
            select(a.child_id).where(_current(t.agreements, w))
            .where(or_(a.expires_on.is_(None), a.expires_on >= w.day)).distinct()
        ).subquery()
        return {"entrusted_care_coverage": self._away_children(
            conn, w, scope, kids.outerjoin(in_force, in_force.c.child_id == kids.c.child_id),
            in_force.c.child_id.is_not(None))}

    @staticmethod
    def _away_children(conn: Connection, w: Window, scope: _Scope, joined: Any, ok: Any) -> list[Fact]:
        """Children whose parents are away, counted by whether ``ok`` holds for them."""
        kids, registered = _kids(w)
        c = kids.c
        per_child = (
            select(c.township, c.village, _flag(ok).label("ok")).select_from(joined)
            .where(registered, c.parents_away, *scope.where(c.township, c.village))
        ).subquery()
        p = per_child.c
        return [
            Fact(units, "", True, True, bool(r[0]), weight=r[1])
            for units, r in map(scope.split, conn.execute(
                select(*scope.keys(p.township, p.village), p.ok, func.count())
                .group_by(*scope.keys(p.township, p.village), p.ok)))
        ]

    def _g_villages(self, conn: Connection, w: Window, scope: _Scope) -> dict[str, list[Fact]]:
        kids, registered = _kids(w)
        c, d = kids.c, t.directors.c
        children = {
            (r[0], r[1]): r[2] for r in conn.execute(
                select(c.township, c.village, func.count())
                .where(registered, *scope.where(c.township, c.village))
                .group_by(c.township, c.village))
        }
        directors = {
            (r[0], r[1]): r[2] for r in conn.execute(
                select(d.township, d.village, func.count())
                .where(_current(t.directors, w), *scope.where(d.township, d.village))
                .group_by(d.township, d.village))
        }

        def facts(large_only: bool) -> list[Fact]:
            needed = 2 if large_only else 1
            return [
                Fact(_place(*place), f"{place[0]}/{place[1]}", False, True, directors.get(place, 0) >= needed)
                for place, n in sorted(children.items()) if not large_only or n > LARGE_VILLAGE
            ]

        return {"director_coverage": facts(False), "director_sufficiency": facts(True)}

    def _g_training(self, conn: Connection, w: Window, scope: _Scope) -> dict[str, list[Fact]]:
        tr, d = t.trainings.c, t.directors.c
        trained = (
            select(tr.director_id).where(
                tr.recorded_at <= w.at, tr.trained_on >= date(w.day.year, 1, 1), tr.trained_on <= w.day
            ).distinct()
        ).subquery()
        per_director = (
            select(d.township, d.village, _flag(trained.c.director_id.is_not(None)).label("ok"))
            .select_from(t.directors.outerjoin(trained, trained.c.director_id == d.director_id))
            .where(_current(t.directors, w), *scope.where(d.township, d.village))
        ).subquery()
        p = per_director.c
        return {"training_coverage": [
            Fact(units, "", False, True, bool(r[0]), weight=r[1])
            for units, r in map(scope.split, conn.execute(
                select(*scope.keys(p.township, p.village), p.ok, func.count())
                .group_by(*scope.keys(p.township, p.village), p.ok)))
        ]}

    def _g_risks(self, conn: Connection, w: Window, scope: _Scope) -> dict[str, list[Fact]]:
        k = t.risks.c
        rows = [scope.split(r) for r in conn.execute(
            select(*scope.keys(k.township, k.village), k.colour, func.count())
            .where(_current(t.risks, w), *scope.where(k.township, k.village))
            .group_by(*scope.keys(k.township, k.village), k.colour)
        )]
        return {
            "risk_distribution": [
                Fact(units, "", True, True, True, (f"colour:{r[0]}",), weight=r[1]) for units, r in rows],
            "risk_red_share": [Fact(units, "", True, True, r[0] == "red", weight=r[1]) for units, r in rows],
        }

    def _g_worsened(self, conn: Connection, w: Window, scope: _Scope) -> dict[str, list[Fact]]:
        # one month's assessments, few rows; not narrowed to the unit: a child counts where it last worsened
        return {"risk_worsened": self._risk_worsened(conn, w)}

    def _g_open(self, conn: Connection, w: Window, scope: _Scope) -> dict[str, list[Fact]]:
        r = t.referrals.c
        s: Any = r if w.present else t.referral_states.c  # the present status and owner are on the referral
        late = or_(and_(s.status.in_(WAITING_REFERRAL), r.due_at < w.at),
                   and_(r.complete_by.is_not(None), r.complete_by < w.at))
        chosen = select(r.township, r.village, s.owner_agency, r.referral_type, r.priority, _flag(late).label("late"))
        if w.present:
            chosen = chosen.where(r.status.is_not(None))
        else:
            chosen = chosen.join_from(t.referral_states, t.referrals, s.referral_id == r.referral_id).where(
                _holds(t.referral_states, w.at))
        per_referral = chosen.where(
            s.status.not_in(CLOSED_REFERRAL), *scope.where(r.township, r.village, s.owner_agency)).subquery()
        p = per_referral.c
        keys = scope.keys(p.township, p.village, p.owner_agency)
        rows = [scope.split(x) for x in conn.execute(
            select(*keys, p.referral_type, p.priority, p.late, func.count())
            .group_by(*keys, p.referral_type, p.priority, p.late)
        )]

        def facts(overdue: bool) -> list[Fact]:
            return [
                Fact(units, "", False, True, bool(x[2]) if overdue else True,
                     (f"referral_type:{x[0]}", f"priority:{x[1]}"), weight=x[3])
                for units, x in rows
            ]

        return {"referrals_open": facts(False), "referrals_overdue": facts(True)}

    def _g_dropouts(self, conn: Connection, w: Window, scope: _Scope) -> dict[str, list[Fact]]:
        if w.present:  # each child's latest spell is on its present row
            c = t.child_present.c
            latest: Any = (
                select(c.school_township.label("township"), c.school_village.label("village"),
                       _flag(c.school_out.is_(False)).label("back"), literal(1).label("latest"))
                .where(c.school_out.is_not(None))
            ).subquery()
            return self._dropout_facts(conn, scope, latest)
        d = t.dropouts.c
        spells = (  # a child reported out twice counts once: returned if its latest spell ended
            select(d.township, d.village, _flag(and_(d.valid_to.is_not(None), d.valid_to <= w.at)).label("back"),
                   func.row_number().over(partition_by=d.child_id, order_by=(d.valid_from.desc(), d.id.desc()))
                   .label("latest"))
            .where(d.valid_from <= w.at)
        ).subquery()
        return self._dropout_facts(conn, scope, spells)

    @staticmethod
    def _dropout_facts(conn: Connection, scope: _Scope, spells: Any) -> dict[str, list[Fact]]:
        p = spells.c
        rows = conn.execute(
            select(*scope.keys(p.township, p.village), p.back, func.count())
            .where(p.latest == 1, *scope.where(p.township, p.village))
            .group_by(*scope.keys(p.township, p.village), p.back)
        )
        return {"dropout_return_rate": [
            Fact(units, "", True, True, bool(r[0]), weight=r[1]) for units, r in map(scope.split, rows)]}

    def _g_interventions(self, conn: Connection, w: Window, scope: _Scope) -> dict[str, list[Fact]]:
        i = t.interventions.c
        rows = conn.execute(
            select(*scope.keys(i.township, i.village), i.kind, func.count())
            .where(i.recorded_at >= w.month_start, i.recorded_at <= w.at, *scope.where(i.township, i.village))
            .group_by(*scope.keys(i.township, i.village), i.kind)
        )
        return {"interventions": [
            Fact(units, "", True, True, True, (f"kind:{r[0]}",), weight=r[1]) for units, r in map(scope.split, rows)]}

    # -- facts: one row per thing counted (drill-down, and the reference the family statements are held to) -----

    @staticmethod
    def _children(conn: Connection, w: Window) -> list[Any]:
        c = t.children.c
        return list(conn.execute(
            select(c.child_id, c.township, c.village, c.categories, c.parents_away, c.frequent)
            .where(_holds(t.children, w.at))
        ))

    def _children_registered(self, conn: Connection, w: Window) -> list[Fact]:
        return [
            Fact(_place(r.township, r.village), r.child_id, True, True, True,
                 tuple(f"category:{c}" for c in r.categories.strip(",").split(",") if c))
            for r in self._children(conn, w)
        ]

    def _last_contacts(self, conn: Connection, w: Window, kinds: Sequence[str], since: date) -> dict[
        tuple[str, str], date
    ]:
        c = t.contacts.c
        rows = conn.execute(
            select(c.child_id, c.kind, func.max(c.on_date))
            .where(and_(c.kind.in_(kinds), c.recorded_at <= w.at, c.on_date >= since, c.on_date <= w.day))
            .group_by(c.child_id, c.kind)
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def _visits(self, conn: Connection, w: Window, contact: bool, home: bool) -> list[Fact]:
        month_ago, quarter_ago = months_back(w.day, 1), months_back(w.day, 3)
        last = self._last_contacts(conn, w, ("contact", "home_visit"), quarter_ago)
        facts = []
        for r in self._children(conn, w):
            home_on = last.get((r.child_id, "home_visit"))
            any_on = max((d for d in (home_on, last.get((r.child_id, "contact"))) if d), default=None)
            contacted = any_on is not None and any_on >= month_ago
            visited = home_on is not None and home_on >= (month_ago if r.frequent else quarter_ago)
            ok = (contacted or not contact) and (visited or not home)
            facts.append(Fact(_place(r.township, r.village), r.child_id, True, True, ok))
        return facts

    def _parent_contacts(self, conn: Connection, w: Window) -> list[Fact]:
        last = self._last_contacts(conn, w, ("parent",), w.day - timedelta(days=7))
        return [
            Fact(_place(r.township, r.village), r.child_id, True, True, (r.child_id, "parent") in last)
            for r in self._children(conn, w) if r.parents_away
        ]

    def _agreements(self, conn: Connection, w: Window) -> list[Fact]:
        a = t.agreements.c
        in_force = set(conn.execute(
            select(a.child_id).where(_holds(t.agreements, w.at))
            .where(or_(a.expires_on.is_(None), a.expires_on >= w.day))
        ).scalars())
        return [
            Fact(_place(r.township, r.village), r.child_id, True, True, r.child_id in in_force)
            for r in self._children(conn, w) if r.parents_away
        ]

    def _directors_by_village(self, conn: Connection, w: Window) -> dict[tuple[str, str], list[str]]:
        d = t.directors.c
        out: dict[tuple[str, str], list[str]] = defaultdict(list)
        for r in conn.execute(select(d.director_id, d.township, d.village).where(_holds(t.directors, w.at))):
            out[(r.township, r.village)].append(r.director_id)
        return out

    def _villages(self, conn: Connection, w: Window, large_only: bool) -> list[Fact]:
        children: dict[tuple[str, str], int] = defaultdict(int)
        for r in self._children(conn, w):
            children[(r.township, r.village)] += 1
        directors = self._directors_by_village(conn, w)
        needed = 2 if large_only else 1
        return [
            Fact(_place(*place), f"{place[0]}/{place[1]}", False, True, len(directors.get(place, ())) >= needed)
            for place, n in sorted(children.items()) if not large_only or n > LARGE_VILLAGE
        ]

    def _trainings(self, conn: Connection, w: Window) -> list[Fact]:
        tr = t.trainings.c
        trained = set(conn.execute(select(tr.director_id).where(and_(
            tr.recorded_at <= w.at, tr.trained_on >= date(w.day.year, 1, 1), tr.trained_on <= w.day
        ))).scalars())
        return [
            Fact(_place(*place), director, False, True, director in trained)
            for place, ids in self._directors_by_village(conn, w).items() for director in ids
        ]

    def _risks(self, conn: Connection, w: Window, parts: bool) -> list[Fact]:
        k = t.risks.c
        rows = conn.execute(select(k.child_id, k.colour, k.township, k.village).where(_holds(t.risks, w.at)))
        return [
            Fact(_place(r.township, r.village), r.child_id, True, True, parts or r.colour == "red",
                 (f"colour:{r.colour}",) if parts else ())
            for r in rows
        ]

    def _risk_worsened(self, conn: Connection, w: Window) -> list[Fact]:
        k = t.risks.c
        rows = conn.execute(select(k.child_id, k.colour, k.previous, k.township, k.village).where(and_(
            k.valid_from >= w.month_start, k.valid_from <= w.at, k.previous.is_not(None)
        )).order_by(k.valid_from, k.id))
        seen: dict[str, Fact] = {}
        for r in rows:
            if RISK_ORDER.get(r.colour, 0) > RISK_ORDER.get(r.previous, 0):
                seen[r.child_id] = Fact(_place(r.township, r.village), r.child_id, True, True, True)
        return list(seen.values())

    def _referrals_open(self, conn: Connection, w: Window, overdue: bool) -> list[Fact]:
        s, r = t.referral_states.c, t.referrals.c
        rows = conn.execute(
            select(r.referral_id, r.referral_type, r.priority, r.township, r.village, r.due_at, r.complete_by,
                   s.status, s.owner_agency)
            .join_from(t.referral_states, t.referrals, s.referral_id == r.referral_id)
            .where(_holds(t.referral_states, w.at)).where(s.status.not_in(CLOSED_REFERRAL))
        )
        facts = []
        for x in rows:
            late = (x.status in WAITING_REFERRAL and utc(x.due_at) < w.at) or (
                x.complete_by is not None and utc(x.complete_by) < w.at
            )
            units = {**_place(x.township, x.village), "agency": x.owner_agency}
            facts.append(Fact(units, x.referral_id, False, True, late if overdue else True,
                              (f"referral_type:{x.referral_type}", f"priority:{x.priority}")))
        return facts

    def _referral_hours(
        self, conn: Connection, w: Window, status: str, scope: _Scope | None = None
    ) -> list[Fact]:
        s, r = t.referral_states.c, t.referrals.c
        stamp = r.accepted_at if status == "accepted" else r.completed_at
        rows = conn.execute(
            select(r.referral_id, r.referral_type, r.priority, r.township, r.village, r.requested_at, stamp,
                   s.owner_agency)
            .join_from(t.referrals, t.referral_states, and_(s.referral_id == r.referral_id, s.valid_from == stamp,
                                                            s.status == status))
            .where(and_(stamp >= w.month_start, stamp <= w.at),
                   *(scope.where(r.township, r.village, s.owner_agency) if scope is not None else ()))
        )
        facts = []
        for x in rows:
            hours = (utc(x[6]) - utc(x.requested_at)).total_seconds() / 3600
            units = {**_place(x.township, x.village), "agency": x.owner_agency}
            facts.append(Fact(units, x.referral_id, False, True, True,
                              (f"referral_type:{x.referral_type}", f"priority:{x.priority}"), hours))
        return facts

    def _dropouts(self, conn: Connection, w: Window) -> list[Fact]:
        d = t.dropouts.c
        rows = conn.execute(select(d.child_id, d.township, d.village, d.valid_to).where(d.valid_from <= w.at)
                            .order_by(d.valid_from))
        latest: dict[str, Fact] = {}
        for r in rows:  # a child reported out twice counts once: returned if its latest spell ended
            back = r.valid_to is not None and utc(r.valid_to) <= w.at
            latest[r.child_id] = Fact(_place(r.township, r.village), r.child_id, True, True, back)
        return list(latest.values())

    def _interventions(self, conn: Connection, w: Window) -> list[Fact]:
        i = t.interventions.c
        rows = conn.execute(select(i.intervention_id, i.child_id, i.kind, i.township, i.village).where(and_(
            i.recorded_at >= w.month_start, i.recorded_at <= w.at
        )))
        return [
            Fact(_place(r.township, r.village), r.child_id, True, True, True, (f"kind:{r.kind}",)) for r in rows
        ]


def _with_month(value: IndicatorValue, month: str) -> IndicatorValue:
    return replace(value, month=month)


def _latest_recorded(conn: Connection) -> datetime | None:
    """The latest recorded time in the inbox (one read of its time index); None when it is empty."""
    latest = conn.execute(select(func.max(t.inbox.c.time))).scalar()
    return None if latest is None else utc(latest)


def _window(as_of: datetime | None, latest: datetime | None) -> Window:
    """``Window.of(as_of)``, marked the present when nothing in the inbox was recorded after it."""
    window = Window.of(as_of)
    return replace(window, present=latest is None or window.at >= latest)
