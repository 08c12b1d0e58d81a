"""Routing rules as data: load and validate ``routing_rules.yaml``, and apply it to one case event.

The rules are pure data checked against the event contracts on load (an unknown event type, data field or
agency is an error at start-up, not a silent miss at run time). ``route`` is a pure function: the same event
and the same rules always give the same referrals, with the same ids, so routing an event twice opens nothing
twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from contracts.agencies import LEAD_AGENCY, Agency
from contracts.envelope import CloudEvent, Contract
from contracts.events import CONTRACT_EVENTS
from contracts.plan import PLAN_TASKS
from contracts.vocabulary import Priority

REFERRAL_ID_NAMESPACE = uuid.UUID("6f1d3f4e-2b7a-4c1e-9a55-1b0f3c2d9e10")
_EVENT_CLASSES: dict[str, type[CloudEvent]] = {cls.event_type: cls for cls in CONTRACT_EVENTS}


DEFAULT_COMPLETE_WITHIN = timedelta(days=30)


class RouteTarget(Contract):
    agency: Agency
    referral_type: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    priority: Priority
    due: timedelta = Field(description="Acceptance due: the owner must receive and accept within this time.")
    complete_within: timedelta = Field(
        default=DEFAULT_COMPLETE_WITHIN, description="Completion due, counted from the acceptance due time."
    )
    fallback: tuple[Agency, ...] | None = Field(
        default=None,
        description="Who gets the referral, in turn, when it is rejected or fails. Default: the lead agency "
        "(civil_affairs), then the working committee office (wcwc).",
    )

    @property
    def fallback_agencies(self) -> tuple[Agency, ...]:
        if self.fallback is not None:
            return tuple(a for a in self.fallback if a != self.agency)
        return tuple(a for a in (LEAD_AGENCY, Agency.wcwc) if a != self.agency)

    @field_validator("due", "complete_within")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("due must be a positive duration")
        return value


class Condition(Contract):
    event: str
    where: dict[str, tuple[Any, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_event_and_fields(self) -> Condition:
        event_class = _EVENT_CLASSES.get(self.event)
        if event_class is None:
            raise ValueError(f"unknown event type {self.event!r}")
        data_fields = event_class.model_fields["data"].annotation.model_fields  # type: ignore[union-attr]
        for name, values in self.where.items():
            if name not in data_fields:
                raise ValueError(f"event {self.event!r} has no data field {name!r}")
            value_type = _element_type(data_fields[name].annotation)
            for value in values:
                try:
                    TypeAdapter(value_type).validate_python(value)
                except ValidationError:
                    raise ValueError(f"{value!r} is not a valid value of {self.event!r} field {name!r}") from None
        return self


def _element_type(annotation: Any) -> Any:
    """``tuple[X, ...]`` → ``X``; anything else as it is (a rule lists accepted values of one element)."""
    if get_origin(annotation) is tuple:
        return get_args(annotation)[0]
    return annotation


class Rule(Contract):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    plan_tasks: tuple[int, ...] = Field(min_length=1)
    when: Condition
    route: tuple[RouteTarget, ...] = Field(min_length=1)

    @field_validator("plan_tasks")
    @classmethod
    def _known_tasks(cls, tasks: tuple[int, ...]) -> tuple[int, ...]:
        unknown = sorted(set(tasks) - set(PLAN_TASKS))
        if unknown:
            raise ValueError(f"unknown plan task(s) {unknown}")
        return tasks

    def matches(self, event: CloudEvent) -> bool:
        if event.type != self.when.event:  # type: ignore[attr-defined]
            return False
        data = event.data  # type: ignore[attr-defined]
        for name, accepted in self.when.where.items():
            value = getattr(data, name)
            values = value if isinstance(value, tuple) else (value,)
            wanted = {str(a).lower() for a in accepted}
            if not any(str(v).lower() in wanted for v in values):
                return False
        return True


class RoutedReferral(Contract):
    """One referral the rules demand for one event."""

    referral_id: uuid.UUID
    agency: Agency
    referral_type: str
    priority: Priority
    due_at: datetime
    complete_by: datetime
    fallback_agencies: tuple[Agency, ...]
    rule_ids: tuple[str, ...]
    plan_tasks: tuple[int, ...]
    rules_version: str
    source_event_id: uuid.UUID


class RoutingRules(Contract):
    version: str
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> RoutingRules:
        ids = [rule.id for rule in self.rules]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"duplicate rule id(s) {duplicated}")
        return self

    @cached_property
    def event_types(self) -> frozenset[str]:
        return frozenset(rule.when.event for rule in self.rules)

    def route(self, event: CloudEvent) -> list[RoutedReferral]:
        """The referrals this event demands, merged per (agency, referral type)."""
        merged: dict[tuple[Agency, str], RoutedReferral] = {}
        for rule in self.rules:
            if not rule.matches(event):
                continue
            for target in rule.route:
                key = (target.agency, target.referral_type)
                candidate = RoutedReferral(
                    referral_id=referral_id_for(event.id, target.agency, target.referral_type),
                    agency=target.agency,
                    referral_type=target.referral_type,
                    priority=target.priority,
                    due_at=event.time + target.due,
                    complete_by=event.time + target.due + target.complete_within,
                    fallback_agencies=target.fallback_agencies,
                    rule_ids=(rule.id,),
                    plan_tasks=rule.plan_tasks,
                    rules_version=self.version,
                    source_event_id=event.id,
                )
                merged[key] = _merge(merged[key], candidate) if key in merged else candidate
        return list(merged.values())


def _merge(a: RoutedReferral, b: RoutedReferral) -> RoutedReferral:
    return a.model_copy(
        update={
            "priority": max(a.priority, b.priority, key=lambda p: p.rank),
            "due_at": min(a.due_at, b.due_at),
            "complete_by": min(a.complete_by, b.complete_by),
            "rule_ids": a.rule_ids + b.rule_ids,
            "plan_tasks": tuple(sorted(set(a.plan_tasks) | set(b.plan_tasks))),
        }
    )


def referral_id_for(source_event_id: uuid.UUID, agency: Agency, referral_type: str) -> uuid.UUID:
    return uuid.uuid5(REFERRAL_ID_NAMESPACE, f"{source_event_id}/{agency.value}/{referral_type}")


def load_rules(path: Path | None = None) -> RoutingRules:
    """Load and validate the rules file (the packaged one unless a path is given)."""
    if path is None:
        text = resources.files("contracts").joinpath("routing_rules.yaml").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    return RoutingRules.model_validate(yaml.safe_load(text))
