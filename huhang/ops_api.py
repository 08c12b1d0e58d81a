"""``GET /v1/ops/streams``: each follower, relay and consumer group of a service with its position, the head of
what it follows, its lag and when it last advanced (issue 7; the figures from ``huhang.ops``).

Each service's API reports its own streams (distributed: its worker's relay and followers through the store, its
consumer group and, on referral, the router's group through Kafka); the embedded app reports every service's.
Administrators, auditors and the platform's workers read it (``operations_reader``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field

from huhang.access.guards import FORBIDDEN_DOC, OperationsReader
from huhang.auth.dependency import authenticate
from huhang.ops import KafkaGroup, KafkaLag, LogFollower, StreamsReport, StreamStatus
from huhang.problems import PROBLEM_RESPONSES
from huhang.settings import Settings
from huhang.streams import Positions

ops_router = APIRouter(prefix="/v1/ops", tags=["operations"])


class PartitionPublic(BaseModel):
    topic: str
    partition: int
    committed: int | None = Field(description="The group's committed offset; null before its first commit.")
    end: int = Field(description="The partition's end offset (the next record's offset).")
    lag: int


class StreamPublic(BaseModel):
    name: str = Field(description="e.g. `intake.relay<-intake` (a log follower) or `intake.subscriptions` (a group).")
    kind: str = Field(description="`relay`, `follower`, `router` or `consumer_group`.")
    position: int | None = Field(description="A log follower's notification id; a group's committed offsets summed.")
    head: int | None = Field(description="The log's highest notification id; a group's end offsets summed.")
    lag: int | None = Field(description="How far behind; null when it could not be found out (see `error`).")
    last_progress_at: datetime | None = Field(
        description="When a log follower's position last moved, as its process saw it (null: not seen yet).")
    partitions: list[PartitionPublic] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Why a figure is missing: an error type, e.g. "
                                                        "`KafkaTimeoutError` while the broker is away.")

    @classmethod
    def of(cls, status: StreamStatus) -> StreamPublic:
        return cls(
            name=status.name, kind=status.kind, position=status.position, head=status.head, lag=status.lag,
            last_progress_at=status.last_progress_at, error=status.error,
            partitions=[PartitionPublic(topic=p.topic, partition=p.partition, committed=p.committed, end=p.end,
                                        lag=p.lag) for p in status.partitions],
        )


class StreamsPublic(BaseModel):
    streams: list[StreamPublic]
    total_lag: int = Field(description="The sum of the known lags.")


@ops_router.get("/streams", response_model=StreamsPublic, responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC},
                summary="Each follower, relay and consumer group of this service, with its lag")
def streams(request: Request, _: OperationsReader) -> StreamsPublic:
    found = [StreamPublic.of(s) for s in _report(request).statuses()]
    return StreamsPublic(streams=found, total_lag=sum(s.lag or 0 for s in found))


def _report(request: Request) -> StreamsReport:
    state = request.app.state
    report: StreamsReport | None = getattr(state, "ops_streams", None)
    if report is None:  # built on first use: nothing connects while the app is made
        report = state.ops_streams = build_report(state.ops_settings, state.ops_services)
    return report


def install_ops(api: FastAPI, settings: Settings, services: Mapping[str, Any]) -> None:
    """Add ``GET /v1/ops/streams`` reporting on ``services`` (one service distributed, all of them embedded)."""
    api.state.ops_settings = settings
    api.state.ops_services = dict(services)
    api.include_router(ops_router, dependencies=[Depends(authenticate)])


def build_report(settings: Settings, services: Mapping[str, Any]) -> StreamsReport:
    from huhang.bootstrap import ROUTED_SOURCES, TOPIC_OF, topic_of

    followers: list[LogFollower] = []
    groups: list[KafkaGroup] = []
    over_kafka = settings.transport == "kafka"
    for name, service in services.items():
        if over_kafka and name in TOPIC_OF:
            followers.append(LogFollower(f"{name}.relay<-{name}", "relay", service.positions, service.application))
        kafka_sources: set[str] = set()
        for sub in service.subscriptions():
            for source in sub.sources:
                if over_kafka and sub.sources != (name,):
                    kafka_sources.add(source)
                elif source in services:
                    followers.append(LogFollower(f"{sub.name}<-{source}", "follower", service.positions,
                                                 services[source].application))
        if kafka_sources:
            group = f"{name}.subscriptions"
            groups.append(KafkaGroup(group, _group_id(settings, group),
                                     tuple(topic_of(settings, s) for s in sorted(kafka_sources))))
        if over_kafka and name == "referral":
            # The router (a process of its own) opens referrals here: its group is reported with referral's.
            groups.append(KafkaGroup("router", _group_id(settings, "router"),
                                     tuple(topic_of(settings, s) for s in ROUTED_SOURCES)))
    if not over_kafka and settings.storage != "memory" and all(s in services for s in ROUTED_SOURCES):
        from huhang.storage import read_model_engine

        positions = Positions(read_model_engine(settings, "workflows"))
        followers.extend(LogFollower(f"router<-{s}", "router", positions, services[s].application)
                         for s in ROUTED_SOURCES)
    kafka = KafkaLag(settings.kafka_bootstrap_servers) if groups else None
    return StreamsReport(followers, groups, kafka)


def _group_id(settings: Settings, group: str) -> str:
    """As ``huhang.bootstrap._kafka_source`` names a consumer group."""
    return f"{settings.kafka_namespace}huhang.{group}"
