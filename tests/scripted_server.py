"""A tiny loopback HTTP server for tests: scripted answers per endpoint, every request recorded.

Used where requests-mock cannot help: urllib3 retries, timeouts and dropped connections only happen
over a real socket.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=lambda: {"status": "success", "data": {"id": "1"}})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ScriptedServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: dict[tuple[str, str], deque[Answer]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer._lock:
                    outer.requests.append(
                        Recorded(self.command, parts.path, parts.query, dict(self.headers.items()), body)
                    )
                    queue = outer._script.get((self.command, parts.path))
                    answer = queue.popleft() if queue else Answer()
                    outer.in_flight += 1
                    outer.peak_in_flight = max(outer.peak_in_flight, outer.in_flight)
                try:
                    self._answer(answer)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

            def _answer(self, answer: Answer) -> None:
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                payload = answer.body if isinstance(answer.body, (bytes, str)) else json.dumps(answer.body)
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(answer.status)
                ctype = answer.headers.get("Content-Type", "application/json")
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for key, value in answer.headers.items():
                    if key != "Content-Type":
                        self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def script_default(self, method: str, path: str, answer: Answer, count: int) -> None:
        self._script[(method, path)].extend([answer] * count)

    def script(self, method: str, path: str, *answers: Answer) -> None:
        self._script[(method, path)].extend(answers)

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
