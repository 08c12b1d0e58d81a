from contracts.vocabulary import RiskColour, RiskLevel
from services.guardianship.risk import HIGH_AT, MEDIUM_AT, SEVERE, WEIGHTS, assess_risk
from services.guardianship.risk import GuardianshipRiskFactor as F


def test_no_factors_is_low_and_green():
    result = assess_risk([])

    assert (result.level, result.colour, result.score) == (RiskLevel.low, RiskColour.green, 0)


def test_score_just_below_the_medium_threshold_is_low():
    result = assess_risk([F.extreme_poverty])

    assert result.score == MEDIUM_AT - 1
    assert result.level == RiskLevel.low
    assert result.reasons == (f"score 1 < {MEDIUM_AT}",)


def test_score_exactly_at_the_medium_threshold_is_medium_and_yellow():
    result = assess_risk([F.extreme_poverty, F.unsafe_housing])

    assert result.score == MEDIUM_AT
    assert (result.level, result.colour) == (RiskLevel.medium, RiskColour.yellow)


def test_score_exactly_at_the_high_threshold_is_high_and_red():
    result = assess_risk([F.child_disability, F.guardian_serious_illness])

    assert result.score == HIGH_AT
    assert (result.level, result.colour) == (RiskLevel.high, RiskColour.red)
    assert result.reasons == (f"score 4 >= {HIGH_AT}",)


def test_a_severe_factor_alone_forces_high_although_its_score_is_below_the_threshold():
    result = assess_risk([F.domestic_violence])

    assert result.score < HIGH_AT
    assert (result.level, result.colour) == (RiskLevel.high, RiskColour.red)
    assert result.reasons[0] == "severe factor: domestic_violence"


def test_reasons_state_the_score_against_the_threshold_met():
    result = assess_risk([F.substance_abuse, F.guardian_physical_disability])

    assert result.reasons == ("score 5 >= 4",)


def test_a_repeated_factor_counts_once():
    assert assess_risk([F.extreme_poverty, F.extreme_poverty]).level == RiskLevel.low


def test_every_factor_has_a_weight_and_every_severe_factor_is_a_factor():
    assert set(WEIGHTS) == set(F)
    assert set(F) >= SEVERE
