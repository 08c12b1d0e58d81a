"""End to end, distributed: every service, relay and consumer as its own process, on PostgreSQL, a real
Kafka-protocol broker and Prefect (the router's flow), exactly as compose.yaml runs them
(``tests/support/platform.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.flows import check_idempotent_retry, check_report_is_routed
from tests.support.platform import distributed_platform

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def distributed(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, kafka_bootstrap: str
) -> Iterator[dict[str, Any]]:
    with distributed_platform(tmp_path_factory.mktemp("distributed"), postgres_url, kafka_bootstrap) as platform:
        yield platform.urls | {"auth": platform.auth}


def test_a_report_travels_intake_kafka_prefect_referral(distributed: dict[str, Any]) -> None:
    check_report_is_routed(distributed["intake"], distributed["referral"], distributed["auth"])


def test_a_retried_report_is_filed_and_routed_once(distributed: dict[str, Any]) -> None:
    check_idempotent_retry(distributed["intake"], distributed["referral"], distributed["auth"])
