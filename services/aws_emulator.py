"""A local AWS endpoint for rehearsals and tests: moto's server on 127.0.0.1.

moto keeps its objects in memory, so a rehearsal's emulator outlives the command that started it: it
belongs to the rehearsal's state folder (its pid, start time and port are recorded there), is reused by
later runs, and is stopped by `tenantctl rehearse --stop` or `--destroy`, never by pid alone. When it
had to be started afresh for an existing stack, the caller refreshes the stack first, so
the engine sees the AWS objects are gone instead of assuming they still exist.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from services import process_records
from services.ports import HOST, answers, free_port, port_free

START_TIMEOUT_S = 30.0
RECORD = "aws-emulator"  # its pid, start time, boot id and port


class AwsEmulatorError(Exception):
    pass


@dataclass(frozen=True)
class AwsEmulator:
    endpoint: str
    pid: int
    fresh: bool  # started by this call: it holds no object yet


def _server_command() -> list[str]:
    beside = Path(sys.executable).parent / "moto_server"
    command = str(beside) if beside.exists() else shutil.which("moto_server")
    if not command:
        raise AwsEmulatorError("moto_server is not installed: run `make setup` (requirements.txt has moto[server])")
    return [command]


def _read_record(state_dir: Path) -> tuple[process_records.ProcessRecord | None, int]:
    """The recorded emulator and its port. A record from before process records (`pid port`) keeps its port,
    but its pid proves nothing, so that process is never signalled."""
    path = state_dir / RECORD
    if not path.is_file():
        return None, 0
    text = path.read_text()
    try:
        data = json.loads(text)
    except ValueError:
        parts = text.split()
        return None, int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else 0
    port = data.get("port") if isinstance(data, dict) else 0
    return process_records.ProcessRecord.from_dict(data), port if isinstance(port, int) else 0


def running_endpoint(state_dir: Path) -> str | None:
    """The endpoint of the emulator `state_dir` keeps running, or None (nothing is started)."""
    record, port = _read_record(state_dir)
    if record is not None and process_records.is_running(record) and answers(port, timeout=0.5):
        return f"http://{HOST}:{port}"
    return None


def ensure_running(state_dir: Path) -> AwsEmulator:
    """The emulator recorded in `state_dir`, or a new one started detached and recorded there."""
    record, port = _read_record(state_dir)
    if record is not None and process_records.is_running(record) and answers(port, timeout=0.5):
        return AwsEmulator(f"http://{HOST}:{port}", record.pid, fresh=False)
    # The stack's AWS provider keeps the endpoint in its state (a refresh reads with it), so a restarted
    # emulator must come back on the same port for the engine to see that its objects are gone.
    if port and not port_free(port):
        raise AwsEmulatorError(
            f"the AWS emulator's port {port} is taken by another process; free it, or start the rehearsal "
            "afresh with `tenantctl rehearse --destroy`"
        )
    port = port or free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    log = (state_dir / "aws-emulator.log").open("ab")
    process = subprocess.Popen(
        [*_server_command(), "-H", HOST, "-p", str(port)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    started = process_records.record_of(process.pid)
    # Recorded before anything waits on it: a run killed from here on leaves an emulator its state folder owns.
    if started is not None:
        _write_record(state_dir, started, port)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers(port, timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AwsEmulatorError(f"moto_server did not start on {HOST}:{port}; see {state_dir / 'aws-emulator.log'}")
        time.sleep(0.1)
    return AwsEmulator(f"http://{HOST}:{port}", process.pid, fresh=True)


def stop(state_dir: Path) -> bool:
    """Stop the state folder's emulator if it is still the process that was recorded; True when none of
    it is left running. A pid that now belongs to another process is left alone."""
    record, port = _read_record(state_dir)
    if record is None:
        return True
    gone = process_records.stop(record, group=True)
    deadline = time.monotonic() + 10
    while gone and port and answers(port, timeout=0.5) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The record stays: a later start reuses its port (see ensure_running).
    return gone


def _write_record(state_dir: Path, record: process_records.ProcessRecord, port: int) -> None:
    path = state_dir / RECORD
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({**record.as_dict(), "port": port}))
    temporary.replace(path)
