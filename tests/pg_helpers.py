"""A PostgreSQL server the tests start themselves, from the Debian ``postgresql`` package.

:func:`pg_server` is a session-scoped fixture: it finds the binaries (``/usr/lib/postgresql/
<version>/bin``, the newest; ``SMSGW_PG_BIN`` overrides), runs ``initdb`` in a temporary
directory (trust on the unix socket, a password over TCP so the tests go through the
password path the daemon uses), starts ``postgres`` on a free loopback port with its socket
in that directory, and stops it (and removes the directory) at the end of the session. Each
test makes its own database (:meth:`PgServer.create_database`), so tests never see each
other's rows.

initdb and postgres refuse to run as root: as root (CI's ``.ci/run``), the server runs as
the ``postgres`` user the Debian package creates (``nobody`` without it), through
``subprocess``'s ``user=``/``group=``.

Without the binaries (or asyncpg) the PostgreSQL tests skip, saying why, unless
``SMSGW_REQUIRE_PG=1`` (set by ``.ci/run``, which installs the package): then they fail, so
CI can never pass by skipping them.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REQUIRE_ENV = "SMSGW_REQUIRE_PG"
BIN_ENV = "SMSGW_PG_BIN"
SUPERUSER = "smsgw"


def find_pg_bin() -> Path | None:
    """The directory with ``initdb`` and ``postgres``: ``$SMSGW_PG_BIN``, else the newest
    ``/usr/lib/postgresql/*/bin``; ``None`` when there is none."""
    wanted = os.environ.get(BIN_ENV)
    candidates = [wanted] if wanted else glob.glob("/usr/lib/postgresql/*/bin")

    def version(path: str) -> float:
        with contextlib.suppress(ValueError):
            return float(Path(path).parent.name)
        return 0.0

    for candidate in sorted(candidates, key=version, reverse=True):
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "postgres").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PgServer:
    """A running server: connect as :data:`SUPERUSER` with :attr:`password` over TCP."""

    bin_dir: Path
    root: Path
    port: int
    password: str
    process: subprocess.Popen[bytes]
    run_as: tuple[int, int] | None
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def dsn(self, database: str = "postgres", *, with_password: bool = False) -> str:
        """A DSN over TCP; the password only when asked (the daemon reads it from a file)."""
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{SUPERUSER}{secret}@{self.host}:{self.port}/{database}"

    def password_file(self, directory: Path) -> Path:
        """The password in a file of ``directory``, as ``[store] password_file`` reads it."""
        path = directory / "pg-password"
        path.write_text(self.password + "\n")
        path.chmod(0o600)
        return path

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` through ``psql`` on the unix socket (trust there); its output."""
        out = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return out.stdout.decode()

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database (its name)."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY file_copy')
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Fast shutdown (SIGINT: active connections are ended), then remove the files."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _unprivileged() -> tuple[int, int] | None:
    """As root: the (uid, gid) to run the server as; otherwise ``None`` (run as we are)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root with neither a 'postgres' nor a 'nobody' user")


def _run(args: list[str], run_as: tuple[int, int] | None, log: Path) -> None:
    with log.open("ab") as out:
        kwargs: dict[str, object] = {}
        if run_as is not None:
            kwargs = {"user": run_as[0], "group": run_as[1], "extra_groups": []}
        subprocess.run(
            args, check=True, stdout=out, stderr=subprocess.STDOUT, timeout=120, **kwargs
        )  # type: ignore[call-overload]


def start_pg_server(bin_dir: Path) -> PgServer:
    """initdb in a fresh temporary directory and start ``postgres``; ready when it returns."""
    run_as = _unprivileged()
    # Our own directory under the system temp dir (pytest's are 0700 root-owned: the
    # server's user could not reach them).
    root = Path(tempfile.mkdtemp(prefix="smsgw-pg-"))
    try:
        (root / "sock").mkdir()
        password = secrets.token_urlsafe(16)
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        if run_as is not None:
            for path in (root, root / "sock", pwfile):
                os.chown(path, *run_as)
        log = root / "server.log"
        log.touch()
        if run_as is not None:
            os.chown(log, *run_as)
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            run_as,
            log,
        )
        pwfile.unlink()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    for _attempt in range(5):  # another process may take the free port before us
        port = _free_port()
        popen_kwargs: dict[str, object] = {}
        if run_as is not None:
            popen_kwargs = {"user": run_as[0], "group": run_as[1], "extra_groups": []}
        with log.open("ab") as out:
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(root / "data"),
                    "-p",
                    str(port),
                    "-k",
                    str(root / "sock"),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    # Test data: no need to survive a power cut (a killed client or a
                    # restarted store still sees every commit).
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                **popen_kwargs,  # type: ignore[arg-type]
            )
        server = PgServer(bin_dir, root, port, password, process, run_as)
        if _wait_ready(server):
            return server
        if process.poll() is None:
            process.kill()
        process.wait()
    text = log.read_text(errors="replace")[-2000:]
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"postgres did not start:\n{text}")


def _wait_ready(server: PgServer) -> bool:
    """Poll ``pg_isready`` until the server accepts connections or its process ends."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        ready = subprocess.run(
            [
                str(server.bin_dir / "pg_isready"),
                "-q",
                "-h",
                str(server.socket_dir),
                "-p",
                str(server.port),
            ],
            check=False,
        )
        if ready.returncode == 0:
            return True
        time.sleep(0.05)
    return False


def unavailable_reason() -> str | None:
    """Why the PostgreSQL tests cannot run here, or ``None`` when they can."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (make install)"
    if find_pg_bin() is None:
        return (
            "PostgreSQL binaries not found (/usr/lib/postgresql/*/bin: "
            "apt-get install postgresql; or set SMSGW_PG_BIN)"
        )
    return None


def skip_or_fail(reason: str) -> None:
    """Skip, unless ``SMSGW_REQUIRE_PG=1`` makes a missing PostgreSQL a failure."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but the PostgreSQL tests cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole test session (skips without the binaries)."""
    reason = unavailable_reason()
    if reason is not None:
        skip_or_fail(reason)
    bin_dir = find_pg_bin()
    assert bin_dir is not None
    server = start_pg_server(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """A fresh database for one test (its name), dropped after it."""
    name = pg_server.create_database()
    try:
        yield name
    finally:
        pg_server.drop_database(name)
