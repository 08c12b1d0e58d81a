"""compose.yaml cannot run here (no Docker engine), so check that what it names exists and agrees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from huhang.cli import parser
from huhang.console.gateway import UPSTREAMS, ConsoleSettings
from huhang.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _huhang_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("command", [None])[0] == "huhang"}


def test_every_huhang_command_parses_with_the_cli(compose: dict[str, Any]) -> None:
    services = _huhang_services(compose)
    assert services
    for name, service in services.items():
        args = parser().parse_args(service["command"][1:])
        assert callable(args.func), name


def test_each_service_has_an_api_and_a_worker_and_there_is_a_router(compose: dict[str, Any]) -> None:
    commands = [tuple(s["command"][1:3]) for s in _huhang_services(compose).values()]
    for service in ("intake", "referral", "guardianship", "notifications", "indicators"):
        assert ("api", service) in commands
        assert ("worker", service) in commands
    assert ("router",) in [c[:1] for c in commands if c[0] == "router"]


def test_published_ports_match_the_api_ports(compose: dict[str, Any]) -> None:
    for name, service in _huhang_services(compose).items():
        if service["command"][1] != "api":
            continue
        port = service["command"][service["command"].index("--port") + 1]
        assert service["ports"] == [f"{port}:{port}"], name


def test_environment_names_only_real_settings(compose: dict[str, Any]) -> None:
    fields = {f"HUHANG_{name.upper()}" for name in [*Settings.model_fields, *ConsoleSettings.model_fields]}
    for name, service in _huhang_services(compose).items():
        unknown = {k for k in service["environment"] if k.startswith("HUHANG_")} - fields
        assert not unknown, (name, unknown)


def test_the_router_reaches_the_referral_api_where_compose_serves_it(compose: dict[str, Any]) -> None:
    env = compose["services"]["router"]["environment"]
    referral = compose["services"]["referral"]
    port = referral["command"][referral["command"].index("--port") + 1]
    assert env["HUHANG_REFERRAL_URL"] == f"http://referral:{port}"


def test_infrastructure_is_apache_kafka_postgres_and_a_prefect_server(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["prefect-server"]["command"][:3] == ["prefect", "server", "start"]
    assert "postgres" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]


def test_the_image_copies_every_package_and_files_compose_mounts_exist(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("contracts", "huhang", "services", "workflows"):
        assert f"COPY {package} ./{package}" in dockerfile
    for volume in compose["services"]["postgres"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), source


def test_the_console_reaches_every_service_api_where_compose_serves_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    console = services["console"]
    assert console["command"][1] == "console"
    port = console["command"][console["command"].index("--port") + 1]
    assert console["ports"] == [f"{port}:{port}"]
    settings = ConsoleSettings(**{  # as the console process reads its environment
        name.removeprefix("HUHANG_").lower(): value for name, value in console["environment"].items()
        if name.startswith("HUHANG_") and name.removeprefix("HUHANG_").lower() in ConsoleSettings.model_fields
    })
    for service in UPSTREAMS:
        if service not in services:
            continue
        api_port = services[service]["command"][services[service]["command"].index("--port") + 1]
        assert settings.url_of(service) == f"http://{service}:{api_port}", service
