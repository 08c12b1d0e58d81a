"""``huhang``: run the platform (embedded), or one part of it (distributed: api, worker, router)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

import uvicorn

from huhang.settings import Settings

logger = logging.getLogger("huhang")


def _quiet_prefect() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Prefect's local mode starts a temporary server on first use; on a busy 2-core machine it can take longer
    # than Prefect's default 20 s. Automations (triggers) are not used.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED", "false")


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request lines carry ids; keep logs to what matters


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Embedded: every service, the routing workflow and a demo, in this process."""
    from huhang.bootstrap import (
        Runtime,
        build_router,
        build_services,
        build_sweep_gateway,
        embedded_api,
        subscription_consumers,
    )

    services = build_services(settings)
    runtime = Runtime()
    for service in services.values():
        runtime.start_consumers(subscription_consumers(settings, service, services))
    runtime.start_router(build_router(settings, services))
    runtime.start_sweeper(build_sweep_gateway(settings, services), settings.sweep_interval_s)
    api = embedded_api(settings, services)
    url = f"http://{args.host}:{args.port}"
    if not args.no_demo:
        threading.Thread(target=_load_demo, args=(url,), name="demo", daemon=True).start()
    print(f"Huhang (护航) embedded: API on {url}, documentation at {url}/docs; data in {settings.data_dir}/")
    print("Press Ctrl-C to stop.", flush=True)
    try:
        uvicorn.run(api, host=args.host, port=args.port, log_level="warning")
    finally:
        runtime.shutdown()
        print("Stopped.", flush=True)
    return 0


def _load_demo(url: str) -> None:
    from huhang.demo import load_demo

    time.sleep(1.0)
    try:
        cases = load_demo(url)
    except Exception as exc:
        logger.warning("demo data not loaded (%s)", type(exc).__name__)
        return
    print(f"Demo loaded: {len(cases)} cases. Try {url}/v1/agencies/police/referrals", flush=True)


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """Distributed: one service's HTTP API."""
    from huhang.bootstrap import build_service, service_api

    service = build_service(settings, args.service)
    uvicorn.run(service_api(settings, service), host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Distributed: one service's outbox relay and the consumers of its read models."""
    from huhang.bootstrap import Runtime, build_service, relay, subscription_consumers
    from huhang.kafka import ensure_topics

    service = build_service(settings, args.service)
    runtime = Runtime()
    consumers = subscription_consumers(settings, service)
    if not args.no_relay and service.name in ("intake", "referral", "guardianship"):
        from huhang.bootstrap import all_topics

        ensure_topics(settings.kafka_bootstrap_servers, all_topics(settings))
        consumers.append(relay(settings, service))
    runtime.start_consumers(consumers)
    print(f"worker {service.name}: {', '.join(c.name for c in consumers)}", flush=True)
    _wait_for_signal(runtime.stop)
    runtime.shutdown()
    return 0


def cmd_router(args: argparse.Namespace, settings: Settings) -> int:
    """Distributed: the Prefect routing workflow consuming case events from Kafka."""
    from huhang.bootstrap import Runtime, all_topics, build_router, build_sweep_gateway
    from huhang.kafka import ensure_topics

    ensure_topics(settings.kafka_bootstrap_servers, all_topics(settings))
    runtime = Runtime()
    runtime.start_router(build_router(settings))
    runtime.start_sweeper(build_sweep_gateway(settings), settings.sweep_interval_s)
    print(f"router: route-case-events running; sweep-overdue-referrals every {settings.sweep_interval_s:.0f}s",
          flush=True)
    _wait_for_signal(runtime.stop)
    runtime.shutdown()
    return 0


def _wait_for_signal(stop: threading.Event) -> None:
    def _stop(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop.is_set():
        stop.wait(0.5)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="huhang", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    services = ("intake", "referral", "guardianship", "notifications")

    run = sub.add_parser("run", help="run everything in one process with demo data (embedded)")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    run.add_argument("--no-demo", action="store_true", help="do not load the synthetic demo data")
    run.set_defaults(func=cmd_run)

    api = sub.add_parser("api", help="serve one service's HTTP API (distributed)")
    api.add_argument("service", choices=services)
    api.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))  # noqa: S104 - a container's API
    api.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="run one service's outbox relay and consumers (distributed)")
    worker.add_argument("service", choices=services)
    worker.add_argument("--no-relay", action="store_true", help="consumers only")
    worker.set_defaults(func=cmd_worker)

    router = sub.add_parser("router", help="run the Prefect routing and sweep workflows (distributed)")
    router.set_defaults(func=cmd_router)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _quiet_prefect()
    settings = Settings()
    _configure_logging(settings)
    return int(args.func(args, settings))


if __name__ == "__main__":
    sys.exit(main())
