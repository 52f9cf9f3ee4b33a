"""``SandboxServer``: the sandbox on a loopback port in a background thread (tests, demo, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from airflow_provider_sms.sandbox.app import create_app, reset_sandbox
from airflow_provider_sms.sandbox.faults import Faults
from airflow_provider_sms.sandbox.store import Store
from airflow_provider_sms.sandbox.webhooks import WebhookPusher


class SandboxServer:
    """Serve the sandbox on ``host:port`` (port 0 picks a free one) until ``stop()``.

    :param db: SQLite file to keep messages in; ``:memory:`` by default.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, db: str = ":memory:") -> None:
        import uvicorn

        self.store = Store(db)
        self.faults = Faults()
        self.webhooks = WebhookPusher(self.store)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            create_app(self.store, self.faults, webhooks=self.webhooks),
            log_level="error",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True, name="sms-sandbox"
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        """Back to a fresh sandbox: no messages, default settings, no faults, zeroed statistics."""
        reset_sandbox(self.store, self.faults, self.webhooks)

    def start(self, timeout: float = 10.0) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the SMS sandbox did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.webhooks.stop()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
