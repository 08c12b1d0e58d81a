"""Group commit: many concurrent requests' events saved in one transaction.

Each save to the event store takes a lock and a commit; under concurrency, writers queue. Saving the events of
all waiting requests in one ``save()`` is many times faster (ARCHITECTURE.md). If the batch conflicts, each
request is saved on its own, so one request's conflict never fails another.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError


class GroupCommitter:
    def __init__(self, app: Application[Any], max_batch: int = 256) -> None:
        self.app = app
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[list[Any], Future[None]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def save(self, *aggregates: Any) -> None:
        """Save the pending events of these aggregates atomically; raise what the store raised."""
        events = [e for aggregate in aggregates for e in aggregate.collect_events()]
        if not events:
            return
        future: Future[None] = Future()
        self._ensure_thread()
        self._queue.put((events, future))
        future.result()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[tuple[list[Any], Future[None]]]) -> None:
        if len(batch) > 1:
            try:
                self.app.save(*(e for events, _ in batch for e in events))
            except IntegrityError:
                pass  # someone in the batch conflicts: save each on its own below
            except Exception as exc:
                for _, future in batch:
                    future.set_exception(exc)
                return
            else:
                for _, future in batch:
                    future.set_result(None)
                return
        for events, future in batch:
            try:
                self.app.save(*events)
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)
