"""The indicator catalogue and colour thresholds, loaded from ``contracts/indicators.yaml`` (data, one source of truth).

Validated with pydantic when loaded, so a bad file fails at start naming the entry, not at the first query. The
colour rule lives here, next to the data it reads: ``colour_of`` is the only place thresholds are evaluated.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.indicators.model import Colour, Indicator, Threshold, UnitKind


class _Band(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    colour: Colour
    at: float | None = None


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name_zh: str
    name_en: str
    measure: Literal["share", "count", "hours"]
    direction: Literal["up", "down", "none"]
    unit_kinds: tuple[UnitKind, ...]
    per_month: bool = False
    breakdowns: tuple[str, ...] = ()
    small_cells: bool
    description: str = ""
    thresholds: tuple[_Band, ...] = ()

    @model_validator(mode="after")
    def _bands(self) -> _Entry:
        if self.thresholds and self.direction == "none":
            raise ValueError(f"{self.code}: an indicator without a direction takes no thresholds")
        for band in self.thresholds[:-1]:
            if band.at is None:
                raise ValueError(f"{self.code}: only the last band may go without `at`")
        ats = [b.at for b in self.thresholds if b.at is not None]
        ordered = sorted(ats, reverse=self.direction == "up")
        if ats != ordered:
            raise ValueError(f"{self.code}: thresholds out of order for direction {self.direction}")
        return self


class _Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    indicators: tuple[_Entry, ...]

    @model_validator(mode="after")
    def _unique(self) -> _Catalogue:
        codes = [e.code for e in self.indicators]
        if len(codes) != len(set(codes)):
            raise ValueError("indicator codes repeat")
        return self


def load_catalogue(path: Path | None = None) -> tuple[Indicator, ...]:
    """Read and validate the catalogue (the packaged ``contracts/indicators.yaml`` unless a path is given)."""
    if path is None:
        text = resources.files("contracts").joinpath("indicators.yaml").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    parsed = _Catalogue.model_validate(yaml.safe_load(text))
    return tuple(
        Indicator(
            code=e.code,
            name_zh=e.name_zh,
            name_en=e.name_en,
            measure=e.measure,
            direction=e.direction,
            unit_kinds=e.unit_kinds,
            per_month=e.per_month,
            breakdowns=e.breakdowns,
            thresholds=tuple(Threshold(colour=b.colour, at=b.at) for b in e.thresholds),
            small_cells=e.small_cells,
            description=e.description,
        )
        for e in parsed.indicators
    )


@cache
def default_catalogue() -> tuple[Indicator, ...]:
    """The packaged catalogue, read once per process."""
    return load_catalogue()


def colour_of(indicator: Indicator, value: float | None) -> Colour | None:
    """The colour of ``value`` by the indicator's thresholds; ``None`` without a value or thresholds."""
    if value is None or not indicator.thresholds:
        return None
    for band in indicator.thresholds:
        if band.at is None:
            return band.colour
        if indicator.direction == "up" and value >= band.at - 1e-12:
            return band.colour
        if indicator.direction == "down" and value <= band.at + 1e-12:
            return band.colour
    return indicator.thresholds[-1].colour
