"""A real HTTP receiver for the webhook tests: a small threaded server on 127.0.0.1.

Each path is an endpoint with a script of answers (``Reply``): fail (5xx), stall (answer late), 429 with a
``Retry-After``, 410, or succeed; once a script runs out the path answers its default (204). Every request is
recorded with its headers, body and arrival time, whatever the answer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # stall this long before answering (cut short when the receiver stops)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival
    status: int  # what the receiver answered


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many senders connect at once (the benchmark): no resets from a full backlog


class Receiver:
    def __init__(self) -> None:
        self._scripts: dict[str, deque[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply, default: Reply | None = None, webhook_id: str | None = None) -> None:
        """The next answers at ``path`` (only to requests with this ``webhook-id``, when given), then ``default``."""
        with self._changed:
            self._scripts[self._key(path, webhook_id)] = deque(replies)
            if default is not None:
                self._defaults[path] = default

    @staticmethod
    def _key(path: str, webhook_id: str | None) -> str:
        return path if webhook_id is None else f"{path}#{webhook_id}"

    def at(self, path: str) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout_s: float = 10.0, *, status: int | None = None) -> list[Received]:
        """Until ``count`` requests reached ``path`` (answered ``status``, when given); fails on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = [r for r in self.received if r.path == path and (status is None or r.status == status)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{path}: {len(found)} of {count} requests after {timeout_s}s")
                self._changed.wait(left)

    def _next(self, path: str, webhook_id: str | None) -> Reply:
        with self._changed:
            for key in (self._key(path, webhook_id), path):
                script = self._scripts.get(key)
                if script:
                    return script.popleft()
            return self._defaults.get(path, Reply())

    def _record(self, received: Received) -> None:
        with self._changed:
            self.received.append(received)
            self._changed.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                arrived = time.time()
                reply = receiver._next(self.path, self.headers.get("webhook-id"))
                # recorded on arrival: a stalled request has reached the receiver even if its sender never learns
                receiver._record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                          arrived, reply.status))
                if reply.delay_s:
                    receiver._stopping.wait(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:  # the client gave up (its timeout)
                    pass

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        return Handler

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
