"""A local AWS endpoint for rehearsals and tests: moto's server on 127.0.0.1.

moto keeps its objects in memory, so a rehearsal's emulator outlives the command that started it
(its pid and port are kept in the rehearsal's state folder) and `tenantctl rehearse --destroy` stops
it. When it had to be started afresh for an existing stack, the caller refreshes the stack first, so
the engine sees the AWS objects are gone instead of assuming they still exist.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tenantctl.localpg import process_alive

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0


class AwsEmulatorError(Exception):
    pass


@dataclass(frozen=True)
class AwsEmulator:
    endpoint: str
    pid: int
    fresh: bool  # started by this call: it holds no object yet


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no obstacle
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _server_command() -> list[str]:
    beside = Path(sys.executable).parent / "moto_server"
    command = str(beside) if beside.exists() else shutil.which("moto_server")
    if not command:
        raise AwsEmulatorError("moto_server is not installed: run `make setup` (requirements.txt has moto[server])")
    return [command]


def ensure_running(state_dir: Path) -> AwsEmulator:
    """The emulator recorded in `state_dir`, or a new one started detached and recorded there."""
    record = state_dir / "aws-emulator"
    pid = port = 0
    if record.is_file():
        try:
            pid, port = (int(part) for part in record.read_text().split())
        except ValueError:
            pid, port = 0, 0
        if pid and process_alive(pid) and _answers(port):
            return AwsEmulator(f"http://{HOST}:{port}", pid, fresh=False)
    # The stack's AWS provider keeps the endpoint in its state (a refresh reads with it), so a restarted
    # emulator must come back on the same port for the engine to see that its objects are gone.
    if port and not _port_free(port):
        raise AwsEmulatorError(
            f"the AWS emulator's port {port} is taken by another process; free it, or start the rehearsal "
            "afresh with `tenantctl rehearse --destroy`"
        )
    port = port or _free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    log = (state_dir / "aws-emulator.log").open("ab")
    process = subprocess.Popen(
        [*_server_command(), "-H", HOST, "-p", str(port)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AwsEmulatorError(f"moto_server did not start on {HOST}:{port}; see {state_dir / 'aws-emulator.log'}")
        time.sleep(0.1)
    record.write_text(f"{process.pid} {port}\n")
    return AwsEmulator(f"http://{HOST}:{port}", process.pid, fresh=True)


def stop(state_dir: Path) -> None:
    record = state_dir / "aws-emulator"
    if not record.is_file():
        return
    try:
        pid, port = (int(part) for part in record.read_text().split())
        os.killpg(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 10
    while _answers(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The record stays: a later start reuses its port (see ensure_running).
