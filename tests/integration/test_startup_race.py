"""A service's API and worker start at the same moment on a fresh database: both must come up."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from huhang.bootstrap import SERVICE_NAMES, build_service
from tests.conftest import postgres_settings

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_two_processes_creating_a_services_tables_at_once_both_start(postgres_url: str, name: str) -> None:
    settings = postgres_settings(postgres_url)
    barrier = threading.Barrier(4)
    built: list[Any] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            built.append(build_service(settings, name))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, [type(e).__name__ for e in errors]
        assert len(built) == 4
    finally:
        for service in built:
            service.application.close()
            service.positions.engine.dispose()
