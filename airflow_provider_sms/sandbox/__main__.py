"""``python -m airflow_provider_sms.sandbox`` / ``airflow-sms-sandbox``: run the sandbox in the foreground."""

from __future__ import annotations

import argparse
import sys


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

    import uvicorn

    from airflow_provider_sms.sandbox.app import create_app
    from airflow_provider_sms.sandbox.store import Store

    store = Store(args.db)
    if args.token:
        store.settings.tokens = set(args.token)
    print(f"SMS sandbox on http://{args.host}:{args.port} (open it in a browser for the conversations)", flush=True)
    from airflow_provider_sms.core.http import is_loopback_host

    app = create_app(store, loopback_only=is_loopback_host(args.host))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
