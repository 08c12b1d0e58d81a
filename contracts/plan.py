"""The plan's responsibility list: its 17 tasks and the agencies assigned to each (DOMAIN.md).

Routing rules (``routing_rules.yaml``) name the plan task(s) each rule serves; a test checks that every task
is served and that every agency the plan assigns to a task receives referrals under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.agencies import Agency as A


@dataclass(frozen=True)
class PlanTask:
    number: int
    title_zh: str
    title_en: str
    agencies: frozenset[A]


def _task(number: int, zh: str, en: str, *agencies: A) -> PlanTask:
    return PlanTask(number, zh, en, frozenset(agencies))


PLAN_TASKS: dict[int, PlanTask] = {
    t.number: t
    for t in (
        _task(1, "思想道德和法治教育", "moral and legal education",
              A.court, A.procuratorate, A.education, A.justice, A.youth_league, A.womens_federation),
        _task(2, "心理健康关爱", "mental health",
              A.education, A.civil_affairs, A.health, A.youth_league, A.womens_federation),
        _task(3, "文化生活", "cultural life", A.civil_affairs, A.education, A.youth_league, A.womens_federation),
        _task(4, "监护职责", "guardianship duty", A.police, A.justice, A.womens_federation),
        _task(5, "委托照护", "entrusted care", A.civil_affairs),
        _task(6, "监护干预", "guardianship intervention",
              A.court, A.procuratorate, A.education, A.police, A.civil_affairs, A.health),
        _task(7, "国家兜底监护", "state fallback guardianship", A.civil_affairs),
        _task(8, "摸底走访建档", "survey, visits, files", A.civil_affairs),
        _task(9, "救助保障", "relief",
              A.civil_affairs, A.health, A.police, A.court, A.procuratorate, A.youth_league,
              A.womens_federation, A.dpf),
        _task(10, "教育帮扶", "education help", A.education, A.police, A.civil_affairs),
        _task(11, "日常关爱", "daily care", A.civil_affairs, A.youth_league, A.womens_federation),
        _task(12, "源头帮扶", "source assistance", A.civil_affairs, A.education, A.hrss),
        _task(13, "安全教育", "safety education",
              A.education, A.police, A.civil_affairs, A.wcwc, A.youth_league, A.womens_federation),
        _task(14, "安全风险防范", "safety risks",
              A.education, A.police, A.civil_affairs, A.emergency, A.court, A.procuratorate),
        _task(15, "网络保护", "online protection", A.cac, A.police),
        _task(16, "儿童主任队伍", "child directors", A.civil_affairs),
        _task(17, "社会力量参与", "social forces", A.civil_affairs, A.youth_league, A.womens_federation),
    )
}
