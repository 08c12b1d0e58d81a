"""Field-level redaction by agency and purpose, as data (``contracts/disclosure.yaml``).

An answer (a child's file, a case, a timeline, a history) is turned into JSON, then every path the agency may not
see is left out and identity-card numbers are masked unless the agency or role needs them in clear. The paths
left out are listed in the answer's ``redacted`` field, so a client can tell "not shown" from "not recorded".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.agencies import Agency
from contracts.vocabulary import AccessPurpose
from huhang.auth.principal import Principal, Role

AnswerKind = Literal["child", "child_history", "case", "timeline", "case_history", "care"]
Path_ = tuple[str, ...]
DEFAULT = "default"


class IdCardRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    paths: dict[AnswerKind, tuple[str, ...]]
    in_clear_agencies: frozenset[Agency]
    in_clear_roles: frozenset[Role]


class DisclosureRules(BaseModel):
    """The validated disclosure file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    sections: dict[str, dict[AnswerKind, tuple[str, ...]]]
    agencies: dict[str, tuple[str, ...]] = Field(description="Agency code (or `default`) -> sections it sees.")
    purposes: dict[AccessPurpose, tuple[str, ...]] = Field(default_factory=dict)
    id_card: IdCardRule

    @model_validator(mode="after")
    def _known_names(self) -> DisclosureRules:
        if DEFAULT not in self.agencies:
            raise ValueError("agencies must name a `default`")
        unknown_agencies = sorted(set(self.agencies) - {DEFAULT, *(a.value for a in Agency)})
        if unknown_agencies:
            raise ValueError(f"unknown agency code(s) {unknown_agencies}")
        for owner, names in [*self.agencies.items(), *((p.value, n) for p, n in self.purposes.items())]:
            unknown = sorted(set(names) - set(self.sections))
            if unknown:
                raise ValueError(f"{owner} names unknown section(s) {unknown}")
        return self

    def visible_sections(self, agency: Agency, purpose: AccessPurpose | None) -> frozenset[str]:
        sections = frozenset(self.agencies.get(agency.value, self.agencies[DEFAULT]))
        if purpose is not None and purpose in self.purposes:
            sections &= frozenset(self.purposes[purpose])  # a declared purpose narrows, never widens
        return sections


def load_disclosure(path: Path | None = None) -> DisclosureRules:
    """Load and validate the disclosure file (the packaged one unless a path is given)."""
    if path is None:
        text = resources.files("contracts").joinpath("disclosure.yaml").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    return DisclosureRules.model_validate(yaml.safe_load(text))


@lru_cache(maxsize=1)
def packaged_disclosure() -> DisclosureRules:
    """The packaged rules, read once on first use (never at import)."""
    return load_disclosure()


def _split(paths: Iterable[str]) -> frozenset[Path_]:
    return frozenset(tuple(p.split(".")) for p in paths)


@dataclass(frozen=True)
class View:
    """What one principal sees of one kind of answer: the protected paths, those granted, those masked."""

    protected: frozenset[Path_]
    granted: frozenset[Path_]
    masked: frozenset[Path_]
    everything: bool = False

    @classmethod
    def packaged(cls, kind: AnswerKind, principal: Principal, purpose: AccessPurpose | None = None) -> View:
        """:meth:`for_principal` under the packaged rules: the same few views serve every request (one per kind,
        agency, roles and purpose), so each is made once."""
        return _packaged_view(kind, principal.agency, principal.roles, purpose)

    @classmethod
    def for_principal(
        cls, rules: DisclosureRules, kind: AnswerKind, principal: Principal, purpose: AccessPurpose | None = None
    ) -> View:
        if principal.has(Role.system):
            return cls(frozenset(), frozenset(), frozenset(), everything=True)
        visible = rules.visible_sections(principal.agency, purpose)
        protected = _split(p for section in rules.sections.values() for p in section.get(kind, ()))
        granted = _split(p for name in visible for p in rules.sections[name].get(kind, ()))
        in_clear = principal.agency in rules.id_card.in_clear_agencies or principal.has(*rules.id_card.in_clear_roles)
        masked = frozenset() if in_clear else _split(rules.id_card.paths.get(kind, ()))
        return cls(protected, granted, masked)


@lru_cache(maxsize=1024)
def _packaged_view(kind: AnswerKind, agency: Agency, roles: frozenset[Role], purpose: AccessPurpose | None) -> View:
    return View.for_principal(packaged_disclosure(), kind, Principal("view", "client", agency, roles), purpose)


def redact(document: Mapping[str, Any], view: View) -> dict[str, Any]:
    """The document with what the view does not grant left out (listed in ``redacted``) and ID numbers masked."""
    if view.everything:
        return {**document, "redacted": []}
    left_out: list[str] = []
    out = _walk(dict(document), (), view, left_out)
    out["redacted"] = sorted(set(left_out))
    return out


def _prefix_of(prefix: Path_, path: Path_) -> bool:
    return len(prefix) <= len(path) and path[: len(prefix)] == prefix


# What _walk does with a key at a path, decided once per view and path (the same few paths come in every answer).
_KEEP, _GRANTED, _DESCEND, _LEAVE_OUT = range(4)


@lru_cache(maxsize=8192)
def _action(view: View, child: Path_) -> int:
    if any(_prefix_of(g, child) for g in view.granted):
        return _GRANTED
    if any(_prefix_of(p, child) for p in view.protected):
        if any(_prefix_of(child, g) and g != child for g in view.granted):
            return _DESCEND  # parts of it are granted
        return _LEAVE_OUT
    if any(_prefix_of(child, p) for p in view.protected | view.masked):
        return _DESCEND
    return _KEEP


def _walk(value: Any, pattern: Path_, view: View, left_out: list[str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            child = (*pattern, key)
            action = _action(view, child)
            if action == _KEEP:
                out[key] = item
            elif action == _GRANTED:
                out[key] = _mask(item, child, view)
            elif action == _DESCEND:
                out[key] = _walk(item, child, view, left_out)
            else:
                left_out.append(".".join(child))
        return out
    if isinstance(value, list):
        return [_walk(item, (*pattern, "*"), view, left_out) for item in value]
    return _mask(value, pattern, view)


def _mask(value: Any, pattern: Path_, view: View) -> Any:
    if isinstance(value, str):
        return mask_id_card(value) if pattern in view.masked else value
    if isinstance(value, dict | list) and _masks_below(view, pattern):
        return _walk_masks(value, pattern, view)
    return value


@lru_cache(maxsize=8192)
def _masks_below(view: View, pattern: Path_) -> bool:
    return any(_prefix_of(pattern, m) for m in view.masked)


def _walk_masks(value: Any, pattern: Path_, view: View) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, (*pattern, k), view) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, (*pattern, "*"), view) for v in value]
    return value


def mask_id_card(number: str) -> str:
    """3301**********1234: the region prefix and the last four, enough to tell two children apart on the phone."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]
