"""Recent answers of a read model, kept per process for a bounded age.

A read model is fed asynchronously: what a reader sees is already as old as the projection's lag. Some reads are
asked again and again with the same key (every desk of an agency opens the same first page of its inbox, many times a
minute) and cost far more to answer than to keep: those keep their answer here for at most ``max_age_s`` seconds,
and the read model forgets them all at once when it projects events itself. Answers only; who may read them is
decided (and logged) before, on every request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """``get(key, compute)``: ``compute()``'s value for ``key``, computed again when older than ``max_age_s``.

    0 keeps nothing (every read computes). At most ``max_entries`` keys are kept; past that the oldest half goes.
    Two threads missing the same key at once both compute it: the value is a read, not a side effect.
    """

    def __init__(self, max_age_s: float, max_entries: int = 256) -> None:
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._kept: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        if self.max_age_s <= 0:
            return compute()
        kept = self.peek(key)
        if kept is not None:
            return kept
        now = time.monotonic()
        value = compute()
        with self._lock:
            if len(self._kept) >= self.max_entries:
                oldest = sorted(self._kept, key=lambda k: self._kept[k][0])[: self.max_entries // 2 or 1]
                for old in oldest:
                    del self._kept[old]
            self._kept[key] = (now, value)
        return value

    def peek(self, key: Hashable) -> V | None:
        """The value kept for ``key`` if it is younger than the max age; ``None`` otherwise (nothing computed)."""
        kept = self._kept.get(key)
        if kept is not None and time.monotonic() - kept[0] < self.max_age_s:
            return kept[1]
        return None

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
