"""``huhang``: run the platform (embedded), or one part of it (distributed: api, worker, router)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import uvicorn

from huhang.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from huhang.demo import DemoCredentials

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
        build_care_check_gateway,
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
    runtime.start_care_checker(build_care_check_gateway(settings, services), settings.care_check_interval_s)
    runtime.start_chainers(settings, services.values())
    runtime.start_webhook_deliverer(services.values())
    runtime.start_digester(services.values())
    api = embedded_api(settings, services)
    url = f"http://{args.host}:{args.port}"
    if not args.no_demo:
        from huhang.demo import create_demo_accounts

        credentials, path = create_demo_accounts(api.state.accounts, settings.data_dir)
        # The demo's secrets go to this console only (never to a log): how to try every role from /docs.
        print(f"Demo clients and people: {path} (secrets made anew at each start). A token for the police "
              f"client:\n  {credentials.curl(url)}\nIn {url}/docs press Authorize with any of them.")
        threading.Thread(target=_load_demo, args=(url, credentials), name="demo", daemon=True).start()
    print(f"Huhang (护航) embedded: API on {url}, documentation at {url}/docs; data in {settings.data_dir}/")
    print("Press Ctrl-C to stop.", flush=True)
    try:
        uvicorn.run(api, host=args.host, port=args.port, log_level="warning")
    finally:
        runtime.shutdown()
        print("Stopped.", flush=True)
    return 0


def _load_demo(url: str, credentials: DemoCredentials) -> None:
    from huhang.demo import load_demo

    time.sleep(1.0)
    try:
        cases = load_demo(url, credentials)
    except Exception as exc:
        logger.warning("demo data not loaded (%s)", type(exc).__name__)
        return
    print(f"Demo loaded: {len(cases)} cases. Try {url}/v1/agencies/police/referrals", flush=True)


API_SERVICE_ENV = "HUHANG_API_SERVICE"


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """Distributed: one service's HTTP API, in ``--workers`` processes sharing its port (uvicorn's supervisor
    restarts one that dies)."""
    if args.workers > 1:
        os.environ[API_SERVICE_ENV] = args.service  # read by each worker process's factory
        uvicorn.run("huhang.cli:service_app_from_env", factory=True, workers=args.workers, host=args.host,
                    port=args.port, log_level="warning")
        return 0
    from huhang.bootstrap import build_service, service_api

    service = build_service(settings, args.service)
    uvicorn.run(service_api(settings, service), host=args.host, port=args.port, log_level="warning")
    return 0


def service_app_from_env() -> FastAPI:
    """The API of the service ``HUHANG_API_SERVICE`` names, built in each process of ``huhang api --workers N``."""
    from huhang.bootstrap import build_service, service_api

    settings = Settings()
    _configure_logging(settings)
    return service_api(settings, build_service(settings, os.environ[API_SERVICE_ENV]))


def lower_priority(settings: Settings) -> int:
    """A background process's niceness raised by ``settings.background_nice``; answers the niceness now.

    Linux groups a session's processes for the scheduler (autogroup), and a niceness only weighs within its group:
    a process leading its own session (started with ``setsid``, as a supervisor does) sets its group's niceness
    too, or it would still share the CPU equally with the APIs' groups."""
    nice = settings.background_nice
    autogroup = Path("/proc/self/autogroup")
    if nice and os.getsid(0) == os.getpid() and autogroup.exists():
        with contextlib.suppress(OSError):  # not allowed: the process's own niceness still weighs in its group
            autogroup.write_text(str(nice))
    return os.nice(nice)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Distributed: one service's outbox relay and the consumers of its read models."""
    from huhang.bootstrap import TOPIC_OF, Runtime, build_service, relay, subscription_consumers
    from huhang.kafka import ensure_topics

    lower_priority(settings)
    service = build_service(settings, args.service)
    runtime = Runtime()
    consumers = subscription_consumers(settings, service)
    if not args.no_relay and service.name in TOPIC_OF:  # the services that publish integration events
        from huhang.bootstrap import all_topics

        ensure_topics(settings.kafka_bootstrap_servers, all_topics(settings))
        consumers.append(relay(settings, service))
    runtime.start_consumers(consumers)
    runtime.start_chainers(settings, [service])
    runtime.start_webhook_deliverer([service])
    runtime.start_digester([service])
    print(f"worker {service.name}: {', '.join(c.name for c in consumers)}, {service.name}.chainer", flush=True)
    _wait_for_signal(runtime.stop)
    runtime.shutdown()
    return 0


def cmd_router(args: argparse.Namespace, settings: Settings) -> int:
    """Distributed: the Prefect routing workflow consuming case events from Kafka."""
    from huhang.bootstrap import Runtime, all_topics, build_care_check_gateway, build_router, build_sweep_gateway
    from huhang.kafka import ensure_topics

    lower_priority(settings)
    ensure_topics(settings.kafka_bootstrap_servers, all_topics(settings))
    runtime = Runtime()
    runtime.start_router(build_router(settings))
    runtime.start_sweeper(build_sweep_gateway(settings), settings.sweep_interval_s)
    runtime.start_care_checker(build_care_check_gateway(settings), settings.care_check_interval_s)
    print(f"router: route-case-events running; sweep-overdue-referrals every {settings.sweep_interval_s:.0f}s; "
          f"check-care-obligations every {settings.care_check_interval_s:.0f}s", flush=True)
    _wait_for_signal(runtime.stop)
    runtime.shutdown()
    return 0


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    """Distributed: the web console's one origin (its files, and the API forwarded to each service by path)."""
    from huhang.console.gateway import ConsoleSettings, console_gateway

    print(f"Huhang console on http://{args.host}:{args.port}/console/", flush=True)
    uvicorn.run(console_gateway(ConsoleSettings()), host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_import_survey(args: argparse.Namespace, settings: Settings) -> int:
    """Import a survey roster (摸底排查) into intake's store as the settings name it, with a progress bar."""
    from services.intake.main import build  # not huhang.bootstrap: the workflows (Prefect) are not needed here
    from services.intake.survey import import_survey_command

    service = build(settings)
    try:
        return import_survey_command(
            service.application.register_children, args.file, agency=args.agency, errors_path=args.errors
        )
    finally:
        service.application.close()
        service.positions.engine.dispose()


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Check every hash chain and signed checkpoint; 0 when intact, 1 with a report of what is wrong where."""
    from huhang.audit import SERVICES, verify

    try:
        report = verify(settings, [args.service] if args.service else SERVICES, args.checkpoints)
    except Exception as exc:  # the stores cannot be read: neither intact nor proven otherwise
        print(f"huhang audit verify: could not read the logs ({type(exc).__name__})", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.render(), flush=True)
    return 0 if report.ok else 1


def cmd_audit_bundle(args: argparse.Namespace, settings: Settings) -> int:
    """Write a case's audit bundle; 0 when every record links to a signed checkpoint, 1 when some do not (the
    bundle is written and the verifier names them), 2 when no bundle could be made."""
    from huhang.bundle import BundleError, bundle_command

    try:
        summary = bundle_command(settings, args.case, args.out, since=args.since, until=args.until,
                                 sign=not args.no_sign)
    except BundleError as exc:
        print(f"huhang audit bundle: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the stores cannot be read
        print(f"huhang audit bundle: could not read the logs ({type(exc).__name__})", file=sys.stderr)
        return 2
    for name, count in summary.records.items():
        print(f"{name}: {count} stored events, {summary.chain_rows[name]} chain rows", flush=True)
    unproven = {name: positions for name, positions in summary.unproven.items() if positions}
    if unproven:
        print(f"not covered by a signed checkpoint: {unproven}", file=sys.stderr)
    print(f"bundle of case {args.case} written to {args.out}; verify it with: python bundle_verify.py "
          f"{args.out} --public-key \"$(huhang audit public-key)\"", flush=True)
    return 0 if summary.complete else 1


def _rfc3339(text: str) -> datetime:
    """An RFC 3339 time with its offset (argparse type)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs its offset from UTC (Z or +08:00)")
    return value


def cmd_audit_public_key(args: argparse.Namespace, settings: Settings) -> int:
    """Print the signing key's public key (base64) for verifiers; its key id goes to stderr."""
    from huhang.checkpoints import load_signer, public_key_b64

    signer = load_signer(settings)
    if signer is None:  # load_signer makes a development key when none is set
        return 2
    print(public_key_b64(signer.public_key), flush=True)
    print(f"key id {signer.key_id}", file=sys.stderr)
    return 0


def cmd_audit_new_key(args: argparse.Namespace, settings: Settings) -> int:
    """Print a new Ed25519 private key (base64) for HUHANG_AUDIT_SIGNING_KEY; its public key goes to stderr."""
    from huhang.checkpoints import Signer, public_key_b64

    signer = Signer.generate()
    print(signer.private_b64(), flush=True)
    print(f"public key {public_key_b64(signer.public_key)} (key id {signer.key_id})", file=sys.stderr)
    return 0


PARKING_STORES = ("intake", "referral", "guardianship", "notifications", "workflows")  # workflows: the router's


def cmd_parked_list(args: argparse.Namespace, settings: Settings) -> int:
    """List parked (poison) events of every store, or of one: id, store, consumer, event, reason, status."""
    from huhang.parking import ParkedEvents
    from huhang.storage import read_model_engine

    rows = []
    for name in [args.store] if args.store else PARKING_STORES:
        store = ParkedEvents(read_model_engine(settings, name))
        rows += [{**row, "store": name} for row in store.entries(consumer=args.consumer, status=args.status,
                                                                  limit=args.limit)]
        store.engine.dispose()
    rows.sort(key=lambda r: (r["first_failed_at"], r["parked_id"]))
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "event"} | {"event": json.loads(r["event"])}
                          for r in rows], indent=2, default=str), flush=True)
        return 0
    for r in rows:
        print(f"{r['parked_id']}  {r['store']:<13} {r['consumer']:<28} {r['status']:<8} {r['attempts']:>3}  "
              f"{r['event_type']} {r['event_id']}  {r['reason']}  first failed {r['first_failed_at']}", flush=True)
    print(f"{len(rows)} parked event(s)", file=sys.stderr)
    return 0


def cmd_parked_retry(args: argparse.Namespace, settings: Settings) -> int:
    """Hand a parked event back to its consumer (handled at its next look). 0 done, 1 already handled, 2 unknown."""
    from huhang.parking import HANDLED, ParkedEvents
    from huhang.storage import read_model_engine

    for name in PARKING_STORES:
        store = ParkedEvents(read_model_engine(settings, name))
        try:
            row = store.get(str(args.parked_id))
            if row is None:
                continue
            if row["status"] == HANDLED:
                print(f"parked event {args.parked_id} was handled already", file=sys.stderr)
                return 1
            store.request_retry(str(args.parked_id))
            print(f"parked event {args.parked_id} handed back to {row['consumer']} ({name}); it is handled at the "
                  "consumer's next look", flush=True)
            return 0
        finally:
            store.engine.dispose()
    print(f"no parked event {args.parked_id}", file=sys.stderr)
    return 2


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
    services = ("intake", "referral", "guardianship", "notifications", "indicators")

    run = sub.add_parser("run", help="run everything in one process with demo data (embedded)")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    run.add_argument("--no-demo", action="store_true", help="do not load the synthetic demo data")
    run.set_defaults(func=cmd_run)

    api = sub.add_parser("api", help="serve one service's HTTP API (distributed)")
    api.add_argument("service", choices=services)
    api.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))  # noqa: S104 - a container's API
    api.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    api.add_argument("--workers", type=int, default=int(os.environ.get("HUHANG_API_WORKERS", "1")),
                     help="processes serving the API on the same port (default: HUHANG_API_WORKERS or 1)")
    api.set_defaults(func=cmd_api)

    console = sub.add_parser("console", help="serve the web console and forward its API calls (distributed)")
    console.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))  # noqa: S104 - a container's port
    console.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    console.set_defaults(func=cmd_console)

    worker = sub.add_parser("worker", help="run one service's outbox relay and consumers (distributed)")
    worker.add_argument("service", choices=services)
    worker.add_argument("--no-relay", action="store_true", help="consumers only")
    worker.set_defaults(func=cmd_worker)

    router = sub.add_parser("router", help="run the Prefect routing and sweep workflows (distributed)")
    router.set_defaults(func=cmd_router)

    survey = sub.add_parser(
        "import-survey", help="import a survey roster (摸底排查, CSV or XLSX) with a progress bar",
        description="Exit status: 0 every row imported, 1 some rows rejected (see the error report), "
        "2 the file refused (nothing imported).",
    )
    survey.add_argument("file", type=Path, help="the roster: .xlsx (first sheet) or .csv (UTF-8 or GB18030)")
    survey.add_argument("--agency", default="civil_affairs", help="the importing agency's code (default civil_affairs)")
    survey.add_argument("--errors", type=Path, default=None,
                        help="where to write the error report (CSV; default: <file>.errors.csv beside the file)")
    survey.set_defaults(func=cmd_import_survey)

    audit = sub.add_parser("audit", help="tamper evidence: verify the hash-chained logs and signed checkpoints")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", help="check every chain and checkpoint; name each record altered, deleted, inserted or reordered",
        description="Exit status: 0 every chain and checkpoint verifies, 1 problems found (each named with its "
        "service, position, originator id and version), 2 the logs could not be read.",
    )
    verify.add_argument("--service", choices=services, help="only this service's log (default: every service)")
    verify.add_argument("--checkpoints", type=Path, default=None,
                        help="a folder of published checkpoint files (*.checkpoints.jsonl; default: "
                        "HUHANG_AUDIT_PUBLISH_DIR, or <data dir>/audit)")
    verify.add_argument("--json", action="store_true", help="the report as JSON")
    verify.set_defaults(func=cmd_audit_verify)
    bundle = audit_sub.add_parser(
        "bundle", help="export a case's audit bundle: its stored events, chain proofs, signed checkpoints, history "
        "and an offline verifier",
        description="Exit status: 0 written, every record linked to a signed checkpoint; 1 written, some records "
        "not covered (named); 2 not written.",
    )
    bundle.add_argument("--case", type=UUID, required=True, help="the case id")
    bundle.add_argument("--since", type=_rfc3339, default=None, help="only events from this time (RFC 3339)")
    bundle.add_argument("--until", type=_rfc3339, default=None,
                        help="only events up to this time (RFC 3339); the history is the case as of then")
    bundle.add_argument("--out", type=Path, required=True, help="where to write it: FILE.zip, or a directory")
    bundle.add_argument("--no-sign", action="store_true",
                        help="do not chain and sign the current heads first (records after the last checkpoint are "
                        "then not covered)")
    bundle.set_defaults(func=cmd_audit_bundle)
    public_key = audit_sub.add_parser(
        "public-key", help="print the public key (base64) of the checkpoint signing key, for HUHANG_AUDIT_TRUSTED_KEYS"
    )
    public_key.set_defaults(func=cmd_audit_public_key)
    new_key = audit_sub.add_parser("new-key", help="print a new signing key (base64) for HUHANG_AUDIT_SIGNING_KEY")
    new_key.set_defaults(func=cmd_audit_new_key)

    parked = sub.add_parser("parked", help="poison events parked by the consumers: list them, hand one back")
    parked_sub = parked.add_subparsers(dest="parked_command", required=True)
    parked_list = parked_sub.add_parser("list", help="list parked events (oldest first)")
    parked_list.add_argument("--store", choices=PARKING_STORES, help="only this store's (default: every store)")
    parked_list.add_argument("--consumer", default=None, help="only this consumer's (e.g. intake.relay, router)")
    parked_list.add_argument("--status", choices=("parked", "retrying", "handled"), default=None)
    parked_list.add_argument("--limit", type=int, default=100)
    parked_list.add_argument("--json", action="store_true", help="as JSON, with the events")
    parked_list.set_defaults(func=cmd_parked_list)
    parked_retry = parked_sub.add_parser(
        "retry", help="hand a parked event back to its consumer",
        description="Exit status: 0 handed back, 1 handled already, 2 no such parked event.",
    )
    parked_retry.add_argument("parked_id", type=UUID)
    parked_retry.set_defaults(func=cmd_parked_retry)

    from huhang.auth.commands import add_auth_commands
    from services.indicators.commands import add_indicators_commands

    add_auth_commands(sub)
    add_indicators_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _quiet_prefect()
    settings = Settings()
    _configure_logging(settings)
    return int(args.func(args, settings))


if __name__ == "__main__":
    sys.exit(main())
