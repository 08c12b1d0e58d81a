"""Settings from the environment (prefix ``HUHANG_``). Built once, in a composition root, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_IDENTITY_KEY = "development-only-identity-key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUHANG_", extra="ignore")

    environment: Literal["development", "production"] = "development"

    # Storage: "sqlite" files in data_dir (embedded default), "postgres" at database_url, "memory" for tests.
    storage: Literal["sqlite", "postgres", "memory"] = "sqlite"
    data_dir: Path = Path("data")
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    schema_prefix: str = "huhang_"

    # Transport between services: "inprocess" follows the notification logs directly (embedded);
    # "kafka" publishes through the outbox relays and consumes with consumer groups (distributed).
    transport: Literal["inprocess", "kafka"] = "inprocess"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Prepended to every topic and consumer group name: several platforms (or test runs) on one cluster.
    kafka_namespace: str = ""
    kafka_max_poll_interval_ms: int = 300_000
    kafka_session_timeout_ms: int = 10_000

    # Where the router finds the referral service in distributed mode (embedded mode calls it in-process).
    referral_url: str = "http://127.0.0.1:8002"

    identity_key: SecretStr = SecretStr(DEV_IDENTITY_KEY)
    max_body_bytes: int = 64 * 1024
    follow_interval_s: float = 0.05
    # A follower that keeps up reads its log at most once per window, so that events saved together are handled
    # as one batch: under load, far less work per event for a little latency per hop.
    follow_window_s: float = 0.1
    sweep_interval_s: float = 60.0  # how often overdue referrals are escalated
    # A routing rules file of your own (default: contracts/routing_rules.yaml); changes apply without a restart.
    routing_rules_path: Path | None = None
    batch_size: int = 500
    router_batch_size: int = 100
    log_level: str = "INFO"
    # Fault injection for the crash tests only: "<consumer name>:before-commit" kills the process there.
    failpoint: str | None = None

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> Settings:
        if self.environment == "production" and self.identity_key.get_secret_value() == DEV_IDENTITY_KEY:
            raise ValueError("HUHANG_IDENTITY_KEY must be set to a real secret in production")
        return self
