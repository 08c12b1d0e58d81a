"""``huhang indicators migrate`` and ``huhang indicators rebuild [--model NAME]`` (registered by huhang/cli.py).

Both work on the store the settings name (``HUHANG_STORAGE``...). The rebuild empties the named read models and
replays the inbox log into them with a progress bar (events/s); the live subscription should be stopped while it
runs (it would otherwise project into tables being emptied). Exit status: 0 done, 2 unknown model.
"""

from __future__ import annotations

import argparse
from typing import Any

from huhang.settings import Settings
from services.indicators.tables import MODELS


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from huhang.storage import read_model_engine
    from services.indicators.migrate import migrate

    engine = read_model_engine(settings, "indicators")
    try:
        migrate(engine)
    finally:
        engine.dispose()
    print("indicators tables migrated to head", flush=True)
    return 0


def cmd_rebuild(args: argparse.Namespace, settings: Settings, console: Any = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from huhang.storage import read_model_engine
    from services.indicators.migrate import migrate
    from services.indicators.store import IndicatorStore

    err = console or Console(stderr=True)
    models = args.model or None
    unknown = sorted(set(models or ()) - set(MODELS))
    if unknown:
        err.print(f"[red]Unknown read model(s):[/red] {', '.join(unknown)} (known: {', '.join(MODELS)})")
        return 2
    engine = read_model_engine(settings, "indicators")
    try:
        migrate(engine)
        store = IndicatorStore(engine)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=err) as bar:
            task = bar.add_task(f"rebuilding {', '.join(models or MODELS)}", total=store.replay_size())
            done = store.rebuild(models, progress=lambda n: bar.advance(task, n))
    finally:
        engine.dispose()
    err.print(f"rebuilt from {done:,} events")
    return 0


def add_indicators_commands(sub: Any) -> None:
    indicators = sub.add_parser("indicators", help="the indicators read models: migrate, rebuild from the inbox log")
    isub = indicators.add_subparsers(dest="indicators_command", required=True)
    migrate = isub.add_parser("migrate", help="apply the indicators tables' migrations (alembic)")
    migrate.set_defaults(func=cmd_migrate)
    rebuild = isub.add_parser(
        "rebuild", help="empty read models and replay the inbox log into them, with a progress bar",
        description="Exit status: 0 rebuilt, 2 unknown read model.",
    )
    rebuild.add_argument("--model", action="append", choices=sorted(MODELS),
                         help="only this read model (repeat for several; default: all)")
    rebuild.set_defaults(func=cmd_rebuild)
