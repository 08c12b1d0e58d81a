"""The simulated county: the agencies with desks, the concerns reported, and tokens of the desks' own subjects.

Shared by ``bench/mixed_workload.py`` (the driver, a normal threaded process) and ``bench/locustfile.py`` (run by
locust under gevent); nothing here imports locust.
"""

from __future__ import annotations

from functools import cache

from contracts.agencies import Agency
from huhang.auth.principal import Principal, PrincipalKind, Role
from huhang.auth.tokens import TokenService
from huhang.settings import Settings

OFFICER_AGENCIES = ("police", "civil_affairs", "education", "health", "womens_federation")
# The role a reporter of each agency files as (ReporterRole); the other desks report through their village.
REPORTER_ROLES = {"police": "police_officer", "education": "teacher", "health": "doctor"}
# Seeded reports use the first five (each routed to 2-5 of the officer agencies); the workload files all eight.
CONCERNS = ("guardian_neglect", "school_dropout", "online_harm", "injury_or_acute_illness", "psychological_crisis",
            "caregiver_unable", "basic_living_hardship", "parents_need_local_work")
FACTORS = ("guardian_absent_no_caregiver", "caregiver_elderly_or_frail", "previous_neglect_report")
NEXT_STATUS = {"requested": "received", "received": "accepted", "accepted": "in-progress",
               "in-progress": "completed"}
OBSERVATIONS = "（基准测试合成数据）家访发现孩子近期情绪低落，照护人年老体弱，需要相关部门跟进。"
TOKEN_LIFETIME_S = 12 * 3600  # one token per persona for a whole run: a bench outlasts the 15-minute default


@cache
def _tokens(signing_key: str) -> TokenService:
    return TokenService.from_settings(Settings(auth_signing_key=signing_key))


def bearer(signing_key: str, subject: str, kind: PrincipalKind, agency: str, role: str,
           township: str | None = None, village: str | None = None) -> dict[str, str]:
    """The Authorization header of a token for this subject, minted with the run's signing key."""
    principal = Principal(subject, kind, Agency(agency), frozenset({Role(role)}), township, village)
    return {"Authorization": f"Bearer {_tokens(signing_key).issue(principal, TOKEN_LIFETIME_S).access_token}"}
