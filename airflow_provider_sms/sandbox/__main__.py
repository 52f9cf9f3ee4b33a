"""``python -m airflow_provider_sms.sandbox`` / ``airflow-sms-sandbox``: run the sandbox in the foreground.

The port is bound before anything is printed, so the URL shown is the real one (``--port 0`` picks a
free port and prints it), and a port already in use is an error with no URL printed first.
"""

from __future__ import annotations

import argparse
import socket
import sys


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port); ``OSError`` when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after a stop
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="airflow-sms-sandbox",
        description="A local server speaking the Cellcast, Clickatell and Cloudware APIs, for demos and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--db", default=":memory:", help="SQLite file to keep messages in (default: memory)")
    parser.add_argument("--token", action="append", help="accept only this token (repeatable); default: any")
    args = parser.parse_args(argv)

    try:
        sock = bind(args.host, args.port)
    except OSError as err:
        print(f"airflow-sms-sandbox: cannot listen on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        print("  pick another port with --port N (or --port 0 for any free one)", file=sys.stderr)
        return 2

    import uvicorn

    from airflow_provider_sms.core.http import is_loopback_host
    from airflow_provider_sms.sandbox.app import create_app
    from airflow_provider_sms.sandbox.store import Store

    store = Store(args.db)
    if args.token:
        store.settings.tokens = set(args.token)
    app = create_app(store, loopback_only=is_loopback_host(args.host))
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"SMS sandbox on http://{shown}:{port} (open it in a browser for the conversations)", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
