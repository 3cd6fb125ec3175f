"""What one `connect-gateway run` must have to itself before it starts anything: its ports
(the embedded broker's, the probes') and, on SQLite, its state file. A second instance on the
same host is refused in one line instead of sharing the first one's broker, file and group.

The SQLite file is held with an exclusive lock on a file beside it for the life of the
process (released by the kernel when the process ends, however it ends). Only `run` takes it:
`connect-gateway cycle ...` may use the file beside a running instance, as SQLite allows.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from gateway.config import Config


class InstanceConflict(RuntimeError):
    """Another program holds what this instance needs: said in one line."""


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(config: Config) -> None:
    """The ports this instance will listen on are free (0: any free port, nothing to check)."""
    wanted = []
    if not config.kafka.bootstrap_servers and config.kafka.embedded_port:
        wanted.append(("127.0.0.1", config.kafka.embedded_port, "kafka.embedded_port"))
    if config.ops.http_port:
        wanted.append((config.ops.http_host, config.ops.http_port, "ops.http_port"))
    for host, port, setting in wanted:
        if not _port_free(host, port):
            raise InstanceConflict(
                f"{host}:{port} ({setting}) is in use, by another connect-gateway or another "
                f"program: stop it, or set {setting}"
            )


def lock_state_file(config: Config) -> IO[str] | None:
    """Hold the SQLite state file for this process; None with PostgreSQL (shared by design).
    Keep the returned handle open for as long as the instance runs."""
    if config.state.backend != "sqlite":
        return None
    path = Path(config.state.sqlite_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise InstanceConflict(
            f"state file {path} is in use by another connect-gateway run (pid {holder}): one "
            "instance per SQLite file; use PostgreSQL for several"
        ) from None
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
    return handle
