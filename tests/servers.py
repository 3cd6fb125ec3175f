"""Throw-away servers for the tests: started on free loopback ports, stopped by pid.

A server that cannot start fails the test run with its own output: never a silent skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from gateway.embedded_broker import BrokerStartError, free_port, stop_pid, wait_for_port

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto")


def find_mosquitto() -> str | None:
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Mosquitto:
    """`users` (name -> password) and `acl` (Mosquitto acl_file text) make it authenticate
    and authorise as a production broker would; without them anyone may do anything."""

    def __init__(self, users: dict[str, str] | None = None, acl: str | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.users = users or {}
        self.acl = acl

    def start(self, timeout: float = 10.0) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerStartError(
                "mosquitto is not installed (apt-get install mosquitto; the README test command "
                "does it)"
            )
        conf = self.dir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence false",
            f"log_dest file {self.dir / 'mosquitto.log'}",
        ]
        if self.users:
            passwords = self.dir / "passwords"
            passwords.touch(mode=0o600)
            tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            for user, password in self.users.items():
                subprocess.run(
                    [tool, "-b", str(passwords), user, password], check=True, capture_output=True
                )
            lines.append(f"password_file {passwords}")
        if self.acl is not None:
            (self.dir / "acl").write_text(self.acl)
            lines.append(f"acl_file {self.dir / 'acl'}")
        conf.write_text("\n".join(lines) + "\n")
        _give_to_mosquitto_user(self.dir)
        log = open(self.dir / "stdout.log", "wb")
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(
                self.host, self.port, timeout, self.proc, self.dir / "mosquitto.log", "mosquitto"
            )
        except BrokerStartError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class _Server(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Server)


def running(
    server: S, what: str, errors: tuple[type[BaseException], ...] = (BrokerStartError,)
) -> Iterator[S]:
    """A fixture's body: the server started (or the run failed loudly), then stopped."""
    try:
        server.start()
    except errors as exc:
        server.stop()
        pytest.fail(f"cannot start {what}: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def _give_to_mosquitto_user(folder: Path) -> None:
    """Started as root, Mosquitto drops to its own user: its files must be that user's (as
    they would be in production), not root's."""
    if os.geteuid() != 0:
        return
    import pwd

    try:
        user = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    for path in (folder, *folder.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)


def external_kafka() -> str | None:
    """A real cluster to test against instead of the embedded broker, when one is given."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None


def find_postgres_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres (Debian keeps them off the PATH)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


class Postgres:
    """A throw-away PostgreSQL cluster: initdb into a temporary directory, pg_ctl start on a
    free loopback port, stopped by the postmaster's pid. As root, the server runs as the
    `postgres` system user (PostgreSQL refuses to run as root)."""

    user = "gateway"

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-"))
        self.data = self.dir / "data"
        self.pid: int | None = None
        self._run_as: dict[str, str] = {}

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def _cmd(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(
            list(args),
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **self._run_as,  # type: ignore[call-overload]
        )
        if done.returncode != 0:
            raise BrokerStartError(
                f"{' '.join(args[:2])} failed ({done.returncode}):\n"
                + (done.stdout + done.stderr).decode(errors="replace")[-3000:]
            )

    def start(self, timeout: float = 30.0) -> None:
        bindir = find_postgres_bin()
        if bindir is None:
            raise BrokerStartError(
                "PostgreSQL is not installed (apt-get install postgresql; the README test "
                "command does it)"
            )
        if os.geteuid() == 0 and not self._run_as:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise BrokerStartError(
                    "running as root and there is no `postgres` user to run the server as"
                ) from None
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._run_as = {"user": "postgres", "group": "postgres"}
        if not self.data.exists():  # else a restart: the cluster keeps its data
            self._cmd(
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            )
        self._cmd(
            str(bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
            "-o",
            f"-p {self.port} -c listen_addresses={self.host} -k {self.dir} "
            "-c fsync=off -c max_connections=100",
            timeout=timeout + 10,
        )
        pid_file = self.data / "postmaster.pid"
        self.pid = int(pid_file.read_text().split()[0])

    def stop(self, keep_data: bool = False) -> None:
        """Stop the server; unless `keep_data`, remove the cluster (else `start` restarts it)."""
        if self.pid is not None:
            # SIGINT: PostgreSQL's fast shutdown (rolls back open transactions, then exits).
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and process_alive(self.pid):
                time.sleep(0.05)
            if process_alive(self.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        if not keep_data:
            shutil.rmtree(self.dir, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stopped(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """The exit code of `proc`, waited for up to `timeout` s; if it does not end, its threads'
    stacks (SIGUSR1: the service registers faulthandler) and its log's tail fail the test."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        proc.kill()
        proc.wait(10)
        raise AssertionError(
            f"did not stop within {timeout} s; its stacks and log:\n" + log.read_text()[-8000:]
        ) from None
