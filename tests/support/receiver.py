"""Real HTTP endpoints for the notification tests, on 127.0.0.1 in threads.

- `RecordingReceiver`: records every POST (path, JSON body, arrival time) and answers with the
  statuses it was scripted with (then 200).
- `SilentServer`: accepts connections and never answers (a receiver that hangs).
- `closed_port()`: a port nobody listens on (connection refused).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Self

from dashboard.servers.throwaway import free_port


class Request(NamedTuple):
    path: str
    body: Any
    at: float  # time.monotonic() on arrival
    authorization: str | None = None  # the Authorization header, if any


class RecordingReceiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[Request] = []
        self._statuses = list(statuses or [])
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    auth = self.headers.get("Authorization")
                    receiver.requests.append(Request(self.path, json.loads(raw), time.monotonic(), auth))
                    status = receiver._statuses.pop(0) if receiver._statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll so shutdown() returns at once, not after the default 0.5 s.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def bodies(self) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        """The bodies, once at least `count` arrived; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.requests)} requests in {timeout} s, expected {count}")
            time.sleep(0.01)
        return self.bodies()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class SilentServer:
    """Listens and accepts, then says nothing: every request to it times out."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)  # the kernel completes handshakes into the backlog; nobody reads

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


def closed_port() -> int:
    """A port just handed out and released: connecting to it is refused."""
    return free_port()
