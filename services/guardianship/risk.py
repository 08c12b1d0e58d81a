"""Family guardianship capacity assessment (家庭监护能力评估) and colour-coded management (赋色管理).

A pure function of structured factors: each factor has a weight (data, below); a few severe factors force
``high`` on their own; otherwise the total score against the thresholds gives low/medium/high, coloured
green/yellow/red. The reasons say, in codes, why the level is what it is, so that an inspector can check it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from contracts.vocabulary import RiskColour, RiskLevel


class GuardianshipRiskFactor(StrEnum):
    guardian_physical_disability = "guardian_physical_disability"  # 监护人重度肢体残疾
    guardian_mental_or_intellectual_disability = "guardian_mental_or_intellectual_disability"  # 精神或智力残疾
    guardian_serious_illness = "guardian_serious_illness"  # 监护人重病
    guardian_absent_no_caregiver = "guardian_absent_no_caregiver"  # 监护人外出且无人照护(监护缺失)
    caregiver_elderly_or_frail = "caregiver_elderly_or_frail"  # 受托照护人年老体弱
    substance_abuse = "substance_abuse"  # 吸毒、酗酒
    domestic_violence = "domestic_violence"  # 家庭暴力
    extreme_poverty = "extreme_poverty"  # 家庭极度贫困
    unsafe_housing = "unsafe_housing"  # 住房不安全
    child_disability = "child_disability"  # 儿童残疾
    child_psychological_or_behavioural_abnormality = "child_psychological_or_behavioural_abnormality"  # 心理行为异常
    previous_neglect_report = "previous_neglect_report"  # 曾有监护缺失或不当的报告


F = GuardianshipRiskFactor

# A parent's serious disability, the child's disability or psychological abnormality each call for more frequent
# visits in the plan, so each of them alone reaches ``medium``. A severe factor scores below ``HIGH_AT`` on its own
# and is ``high`` only because it is severe: the rule, not the arithmetic, decides.
WEIGHTS: dict[GuardianshipRiskFactor, int] = {
    F.guardian_physical_disability: 2,
    F.guardian_mental_or_intellectual_disability: 2,
    F.guardian_serious_illness: 2,
    F.guardian_absent_no_caregiver: 3,
    F.caregiver_elderly_or_frail: 1,
    F.substance_abuse: 3,
    F.domestic_violence: 3,
    F.extreme_poverty: 1,
    F.unsafe_housing: 1,
    F.child_disability: 2,
    F.child_psychological_or_behavioural_abnormality: 2,
    F.previous_neglect_report: 2,
}
SEVERE: frozenset[GuardianshipRiskFactor] = frozenset({F.domestic_violence, F.guardian_absent_no_caregiver})
MEDIUM_AT = 2
HIGH_AT = 4
COLOURS: dict[RiskLevel, RiskColour] = {
    RiskLevel.low: RiskColour.green,
    RiskLevel.medium: RiskColour.yellow,
    RiskLevel.high: RiskColour.red,
}


@dataclass(frozen=True)
class RiskAssessment:
    level: RiskLevel
    colour: RiskColour
    score: int
    reasons: tuple[str, ...]


def assess_risk(factors: Iterable[GuardianshipRiskFactor]) -> RiskAssessment:
    present = sorted(set(factors))
    score = sum(WEIGHTS[f] for f in present)
    reasons = [f"severe factor: {f.value}" for f in present if f in SEVERE]
    if score >= HIGH_AT:
        level = RiskLevel.high
        reasons.append(f"score {score} >= {HIGH_AT}")
    elif score >= MEDIUM_AT:
        level = RiskLevel.medium
        reasons.append(f"score {score} >= {MEDIUM_AT}")
    else:
        level = RiskLevel.low
        reasons.append(f"score {score} < {MEDIUM_AT}")
    if any(f in SEVERE for f in present):
        level = RiskLevel.high
    return RiskAssessment(level=level, colour=COLOURS[level], score=score, reasons=tuple(reasons))
