"""Throw-away servers for the tests: started on free loopback ports, stopped by pid.

A server that cannot start fails the test run with its own output: never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from gateway.embedded_broker import BrokerStartError, free_port, stop_pid, wait_for_port

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto")


def find_mosquitto() -> str | None:
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Mosquitto:
    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerStartError(
                "mosquitto is not installed (apt-get install mosquitto; the README test command "
                "does it)"
            )
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"log_dest file {self.dir / 'mosquitto.log'}\n"
        )
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


def external_kafka() -> str | None:
    """A real cluster to test against instead of the embedded broker, when one is given."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
