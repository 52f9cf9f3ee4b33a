"""A throwaway Postgres 15 cluster for real-stack tests: one per test session, on a free loopback port.

``PostgresServer`` runs Debian's ``postgresql-15`` binaries (``initdb``, ``postgres``) on a data
directory under a temporary directory, listening on 127.0.0.1 only, trusting local connections (it is
a throwaway cluster). Postgres refuses to run as root, so when the tests run as root (CI does) the
cluster runs as the unprivileged system user ``sms-pg``, created on first use. The server is the
direct child process, so ``stop()`` ends it by PID (a fast shutdown, then SIGKILL), and ``start()``
brings it back on the same port and data: what the database-outage tests use. ``create_database``
gives each test module a database of its own.

Fixtures (re-exported by ``tests/realstack/conftest.py``; a test module elsewhere can import them):
``postgres_server`` (session), ``postgres_url`` (session: a SQLAlchemy URL of the ``airflow``
database) and ``fresh_postgres_url`` (module: a new, empty database for that module). Where the
binaries are absent, the tests using them skip with a reason saying how to get them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BINDIR_CANDIDATES = (os.environ.get("SMS_TEST_PG_BINDIR", ""), "/usr/lib/postgresql/15/bin")
SYSTEM_USER = "sms-pg"
SUPERUSER = "postgres"
HOW_TO_GET_IT = (
    "Postgres 15 binaries not found (looked in /usr/lib/postgresql/15/bin and $SMS_TEST_PG_BINDIR): "
    "install them with `apt-get install postgresql-15` (Debian/Ubuntu) to run the real-stack tests"
)


def find_bindir() -> Path | None:
    for candidate in PG_BINDIR_CANDIDATES:
        if candidate and (Path(candidate) / "initdb").is_file() and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _unprivileged_user() -> str | None:
    """The user to run Postgres as: ``sms-pg`` (created if missing) when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        # Another process may create it at the same moment: only the user's existence matters.
        subprocess.run(
            [
                shutil.which("useradd") or "/usr/sbin/useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=False,
            capture_output=True,
        )
        pwd.getpwnam(SYSTEM_USER)
    return SYSTEM_USER


class PostgresServer:
    """One Postgres cluster under ``base_dir`` (a new temporary directory by default)."""

    def __init__(self, base_dir: Path | None = None, *, bindir: Path | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise FileNotFoundError(HOW_TO_GET_IT)
        self.bindir = found
        self.base_dir = base_dir or Path(tempfile.mkdtemp(prefix="sms-pg-"))
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        self.log_path = self.base_dir / "postgres.log"
        self.port = free_port()
        self.user = _unprivileged_user()
        self.process: subprocess.Popen[bytes] | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def _as_user(self) -> dict[str, object]:
        return {"user": self.user, "group": self.user, "extra_groups": []} if self.user else {}

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
            cwd=self.base_dir,
            **self._as_user(),  # type: ignore[arg-type]
        )

    def start(self, timeout: float = 60) -> PostgresServer:
        if not self.data_dir.exists():
            self.init()
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": "400",
            # A throwaway cluster: durability is not what the tests measure.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "64MB",
        }
        command = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.base_dir,
            start_new_session=True,
            **self._as_user(),  # type: ignore[arg-type]
        )
        log.close()
        self.wait_until_accepting(timeout)
        return self

    def wait_until_accepting(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}; see {self.log_path}")
            probe = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres did not accept connections within {timeout} s; see {self.log_path}")

    def stop(self, timeout: float = 30) -> None:
        """End the server by its PID: a fast shutdown (SIGINT), SIGKILL if it does not finish."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # --- databases --------------------------------------------------------------------------------

    def url(self, database: str = "postgres", driver: str = "psycopg2") -> str:
        return f"postgresql+{driver}://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through ``psql``; return its unaligned, tuples-only output."""
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
            capture_output=True,
            check=True,
            text=True,
        )
        return result.stdout.strip()

    def create_database(self, name: str | None = None) -> str:
        """Create a new, empty database; return its SQLAlchemy (psycopg2) URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)


# --- pytest fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One Postgres 15 cluster for the test session (skips where the binaries are absent)."""
    if find_bindir() is None:
        pytest.skip(HOW_TO_GET_IT)
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg2://``) of the session's ``airflow`` database."""
    return postgres_server.create_database("airflow")


@pytest.fixture(scope="module")
def fresh_postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty database for one test module."""
    return postgres_server.create_database()
