"""The webhook deliverer: sends queued deliveries (``webhooks_store``) to the agencies' endpoints.

One thread claims due deliveries and hands them to a small pool of sender threads. Isolation: each endpoint has at
most ``webhook_per_endpoint`` requests in flight and claims go round-robin across subscriptions, so a slow or dead
endpoint holds a few senders for at most its timeout while every other endpoint keeps its own; there is no single
sequential loop. Ordering per case and the lease that survives a crash are the store's (see its docstring).

Time is injected (``clock``) and so is chance (``rng``): the tests drive the retry schedule without waiting.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from services.notifications.webhooks_model import Backoff, Outcome, classify, parse_retry_after, webhook_headers
from services.notifications.webhooks_store import DEAD, DELIVERED, PENDING, Claimed, Result, WebhookStore

logger = logging.getLogger(__name__)
PREFETCH = 8  # claims per sender thread: keeps the senders busy between rounds


@dataclass(frozen=True)
class DeliveryPolicy:
    backoff: Backoff = field(default_factory=Backoff)
    timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    per_endpoint: int = 4
    senders: int = 16
    lease_s: float = 60.0  # longer than a request can take: a claimed delivery is claimed again only after a crash
    poll_interval_s: float = 0.2
    round_interval_s: float = 0.02  # at least this between claiming rounds


class Deliverer:
    def __init__(self, store: WebhookStore, policy: DeliveryPolicy | None = None, *,
                 clock: Callable[[], datetime] | None = None, rng: random.Random | None = None,
                 client: httpx.Client | None = None) -> None:
        self.store = store
        self.policy = policy or DeliveryPolicy()
        self.clock = clock or store.clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        p = self.policy
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(p.timeout_s, connect=p.connect_timeout_s), follow_redirects=False,
            limits=httpx.Limits(max_connections=p.senders * 2, max_keepalive_connections=p.senders * 2),
        )
        self._pool = ThreadPoolExecutor(max_workers=p.senders, thread_name_prefix="webhook-sender")
        self._busy: dict[str, int] = {}  # claimed and not yet recorded, per subscription
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._failing: set[str] = set()  # subscriptions whose last attempt failed

    def run(self, stop: threading.Event) -> None:
        """The claiming loop, until ``stop``; woken as soon as deliveries are queued or attempts finish."""
        try:
            while not stop.is_set():
                self.store.wake.clear()  # before claiming: a wake during the claim is not lost
                try:
                    self.run_once()
                except Exception:  # a database hiccup: keep going, the queue is durable
                    logger.exception("webhook deliverer: claiming failed")
                    stop.wait(1.0)
                self.store.wake.wait(self.policy.poll_interval_s)
                stop.wait(self.policy.round_interval_s)  # let finished attempts gather: fewer, fuller rounds
        finally:
            self.close()

    def run_once(self, *, wait_for_sends: bool = False) -> int:
        """Record finished attempts, claim what is due and start sending it; returns how many were claimed.

        Claims are prefetched up to a few per sender (the pool queues them), each endpoint still limited to
        ``per_endpoint`` claimed at once; outcomes are written in one transaction per round, not one per request.
        """
        self._record()
        free = self.policy.senders * PREFETCH - sum(self._busy.values())
        # an endpoint that is failing gets one request at a time: it holds at most one sender while it times out
        held = {s: self._busy.get(s, 0) + self.policy.per_endpoint - 1 for s in self._failing}
        claimed = self.store.claim(self.clock(), self.policy.lease_s, self.policy.per_endpoint,
                                   {**self._busy, **held}, free)
        futures = []
        for delivery in claimed:
            self._busy[delivery.subscription_id] = self._busy.get(delivery.subscription_id, 0) + 1
            futures.append(self._pool.submit(self._send, delivery))
        if wait_for_sends:
            wait(futures)
            self._record()
        return len(claimed)

    def drain(self, max_rounds: int = 100) -> None:
        """Send everything due now, waiting for each round (tests and benchmarks)."""
        for _ in range(max_rounds):
            if not self.run_once(wait_for_sends=True):
                return

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            self._record()
        finally:
            self.client.close()

    def _record(self) -> None:
        results: list[Result] = []
        while True:
            try:
                results.append(self._results.get_nowait())
            except queue.Empty:
                break
        if not results:
            return
        try:
            self.store.record(results)
        finally:  # not recorded (a database failure): the rows stay in flight and their leases bring them back
            for r in results:
                if r.status == DELIVERED:
                    self._failing.discard(r.subscription_id)
                else:
                    self._failing.add(r.subscription_id)
                left = self._busy.get(r.subscription_id, 1) - 1
                if left:
                    self._busy[r.subscription_id] = left
                else:
                    self._busy.pop(r.subscription_id, None)

    def _send(self, delivery: Claimed) -> None:
        try:
            self._results.put(self._attempt(delivery))
        except Exception:  # never lose the sender thread; the lease brings the delivery back
            logger.exception("webhook delivery %s failed unexpectedly", delivery.id)
        self.store.wake.set()

    def _attempt(self, delivery: Claimed) -> Result:
        body = delivery.body.encode()
        headers = webhook_headers(delivery.secrets, delivery.event_id, int(time.time()), body)
        status: int | None = None
        retry_after: str | None = None
        error = "timeout"
        try:
            response = self.client.post(delivery.url, content=body, headers=headers)
            status, retry_after, error = response.status_code, response.headers.get("retry-after"), ""
            response.close()
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.TransportError:
            error = "connection"
        now = self.clock()
        outcome = classify(status)
        code = error or f"http_{status}"

        def result(new_status: str, error: str | None, *, gone: bool = False,
                   retry_at: datetime | None = None) -> Result:
            return Result(delivery.seq, delivery.subscription_id, new_status, status, error, now, retry_at, gone)

        if outcome is Outcome.delivered:
            return result(DELIVERED, None)
        if outcome is Outcome.gone:
            logger.warning("webhook subscription %s disabled: its endpoint answered 410", delivery.subscription_id)
            return result(DEAD, code, gone=True)
        if outcome is Outcome.dead:
            return result(DEAD, code)
        after = parse_retry_after(retry_after, now) if status is not None else None
        delay = self.policy.backoff.delay(delivery.attempts, self.rng, after)
        if delay is None:
            logger.warning("webhook delivery %s dead-lettered after %d attempts", delivery.id, delivery.attempts)
            return result(DEAD, code)
        return result(PENDING, code, retry_at=now + timedelta(seconds=delay))
