"""Kafka topics: one per producing service; messages keyed by case id (``subject``)."""

from __future__ import annotations

INTAKE_TOPIC = "huhang.intake.case-events.v1"
GUARDIANSHIP_TOPIC = "huhang.guardianship.case-events.v1"
REFERRAL_TOPIC = "huhang.referral.case-events.v1"
INDICATORS_TOPIC = "huhang.indicators.events.v1"  # colour changes, spot-check follow-ups (issue 8)

ALL_TOPICS: tuple[str, ...] = (INTAKE_TOPIC, GUARDIANSHIP_TOPIC, REFERRAL_TOPIC, INDICATORS_TOPIC)
