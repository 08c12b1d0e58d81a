"""Matching a need to the directory's services: who is eligible, and in which order (issue 10).

Eligibility is a hard filter: the service's category, status ``active``, the child's age *on the day* within the
service's inclusive age range, any of the service's child categories (none listed: every child), the need's place
inside the area served (a township served whole, or the need's own village), and remaining capacity above zero.

The rank is a weighted fit of what is left: distance within the county (township centroids below, as data),
remaining capacity as a share, past response time of the organisation (hours from referral to acceptance), cost.
Weights are data too (``Weights``), so that the lead agency's preference can be tuned and the rank explained.

The index keeps services by category, so that a need is compared only with its category's services: against
10,000 services this is what keeps a match well under 50 ms (bench/charity_matching.py).
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from contracts.vocabulary import ChildCategory, NeedCategory
from services.referral.needs import age_on
from services.referral.resources import Cost, ServiceRow

# Approximate centroids (latitude, longitude) of the townships and sub-districts of Yueqing (乐清市). Distances
# between them rank services; they are not a route. A township missing here ranks as far away, not as ineligible.
TOWNSHIP_CENTROIDS: dict[str, tuple[float, float]] = {
    "乐成街道": (28.126, 120.961), "城东街道": (28.128, 120.990), "城南街道": (28.100, 120.958),
    "盐盆街道": (28.090, 120.985), "翁垟街道": (28.060, 120.930), "白石街道": (28.080, 120.880),
    "石帆街道": (28.090, 120.920), "天成街道": (28.100, 120.940), "柳市镇": (28.040, 120.880),
    "北白象镇": (28.020, 120.830), "虹桥镇": (28.210, 121.000), "淡溪镇": (28.230, 120.950),
    "清江镇": (28.290, 121.080), "芙蓉镇": (28.330, 121.120), "大荆镇": (28.400, 121.150),
    "仙溪镇": (28.430, 121.100), "雁荡镇": (28.370, 121.070), "湖雾镇": (28.360, 121.170),
    "南塘镇": (28.260, 121.050), "南岳镇": (28.280, 121.100), "岭底乡": (28.380, 120.990),
    "智仁乡": (28.430, 121.020), "龙西乡": (28.470, 121.070), "磐石镇": (28.000, 120.860),
    "蒲岐镇": (28.160, 121.040),
}
FAR_KM = 60.0  # the county's width and a bit: beyond it (or unknown) counts as farthest


@dataclass(frozen=True)
class Weights:
    distance: float = 0.4
    capacity: float = 0.25
    response: float = 0.25
    cost: float = 0.1


COST_FIT = {Cost.free: 1.0, Cost.reduced: 0.5, Cost.paid: 0.0}


@dataclass(frozen=True)
class NeedFacts:
    """What matching reads of a need (no name, no text)."""

    category: NeedCategory
    birth_date: date
    child_categories: frozenset[ChildCategory]
    township: str
    village: str


@dataclass(frozen=True)
class Usage:
    """What the directory's projection knows of a service and its organisation beyond the document."""

    in_use: int = 0  # live matches (proposed or referred) taking a place
    response_hours: float | None = None  # the organisation's median hours from referral to acceptance


@dataclass(frozen=True)
class Ranked:
    row: ServiceRow
    score: float
    distance_km: float
    remaining: int | None
    response_hours: float | None


def distance_km(a: str | None, b: str | None) -> float:
    """Great-circle distance between two townships' centroids; ``FAR_KM`` when either is unknown."""
    if a is None or b is None:
        return FAR_KM
    if a == b:
        return 0.0
    pa, pb = TOWNSHIP_CENTROIDS.get(a), TOWNSHIP_CENTROIDS.get(b)
    if pa is None or pb is None:
        return FAR_KM
    lat1, lon1, lat2, lon2 = map(math.radians, (*pa, *pb))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return min(FAR_KM, 2 * 6371.0 * math.asin(math.sqrt(h)))


def remaining_of(row: ServiceRow, usage: Usage) -> int | None:
    return None if row.capacity is None else max(0, row.capacity - usage.in_use)


def covers(row: ServiceRow, township: str, village: str) -> bool:
    """No area listed: the whole county. Otherwise the township served whole, or the need's own village."""
    if not row.townships and not row.villages:
        return True
    return township in row.townships or (township, village) in row.villages


def eligible(row: ServiceRow, need: NeedFacts, on: date, usage: Usage) -> bool:
    if row.category is not need.category or not row.active:
        return False
    if not row.minimum_age <= age_on(need.birth_date, on) <= row.maximum_age:
        return False
    if row.child_categories and not row.child_categories & need.child_categories:
        return False
    if not covers(row, need.township, need.village):
        return False
    remaining = remaining_of(row, usage)
    return remaining is None or remaining > 0


def score(row: ServiceRow, need: NeedFacts, usage: Usage, weights: Weights) -> Ranked:
    km = distance_km(need.township, row.location_township)
    remaining = remaining_of(row, usage)
    capacity_fit = 1.0 if remaining is None or not row.capacity else remaining / row.capacity
    response_fit = 0.5 if usage.response_hours is None else 1.0 / (1.0 + usage.response_hours / 48.0)
    value = (weights.distance * (1.0 - km / FAR_KM) + weights.capacity * capacity_fit
             + weights.response * response_fit + weights.cost * COST_FIT[row.cost])
    return Ranked(row, round(value, 6), round(km, 2), remaining, usage.response_hours)


NO_USAGE = Usage()


def rank(rows: Iterable[ServiceRow], need: NeedFacts, on: date, usage: Mapping[UUID, Usage],
         weights: Weights = Weights(), limit: int = 20) -> list[Ranked]:
    """The eligible services, best first (ties: the service id, so that the order is stable)."""
    scored = (
        score(row, need, usage.get(row.service_id, NO_USAGE), weights)
        for row in rows if eligible(row, need, on, usage.get(row.service_id, NO_USAGE))
    )
    return heapq.nsmallest(limit, scored, key=lambda r: (-r.score, str(r.row.service_id)))


class MatchIndex:
    """The directory's services grouped by category (what a need is compared with)."""

    def __init__(self, rows: Iterable[ServiceRow] = ()) -> None:
        self._by_category: dict[NeedCategory, dict[UUID, ServiceRow]] = defaultdict(dict)
        self._category_of: dict[UUID, NeedCategory] = {}
        self.replace_many(rows)

    def replace_many(self, rows: Iterable[ServiceRow]) -> None:
        for row in rows:
            self.replace(row)

    def replace(self, row: ServiceRow) -> None:
        previous = self._category_of.get(row.service_id)
        if previous is not None:
            self._by_category[previous].pop(row.service_id, None)
        self._by_category[row.category][row.service_id] = row
        self._category_of[row.service_id] = row.category

    def remove_organisation(self, organisation_id: UUID) -> None:
        for service_id, category in list(self._category_of.items()):
            if self._by_category[category][service_id].organisation_id == organisation_id:
                del self._by_category[category][service_id]
                del self._category_of[service_id]

    def get(self, service_id: UUID) -> ServiceRow | None:
        category = self._category_of.get(service_id)
        return None if category is None else self._by_category[category].get(service_id)

    def rows(self) -> list[ServiceRow]:
        return [row for rows in self._by_category.values() for row in rows.values()]

    def match(self, need: NeedFacts, on: date, usage: Mapping[UUID, Usage], weights: Weights = Weights(),
              limit: int = 20) -> list[Ranked]:
        return rank(self._by_category.get(need.category, {}).values(), need, on, usage, weights, limit)
