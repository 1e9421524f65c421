"""The demo's alert receiver: a webhook on 127.0.0.1 that appends each notification it gets (the
Alertmanager webhook JSON the daemon sends) to a file, one JSON document a line, so the demo shows
notifications arriving without any outside service."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 1 << 20


class AlertSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.received = 0
        lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                body = self.rfile.read(length)
                try:
                    line = json.dumps(json.loads(body), sort_keys=True)
                except ValueError:
                    line = json.dumps({"unreadable": body[:200].decode("utf-8", "replace")})
                with lock, sink.path.open("a", encoding="utf-8") as out:
                    out.write(line + "\n")
                    sink.received += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # the demo's console is for its own lines
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="alert-sink", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def start(self) -> AlertSink:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> AlertSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
