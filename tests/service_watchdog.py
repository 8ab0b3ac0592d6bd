"""The local services a test run started die with it, even when the run is killed (fleet rule 6).

A test process (pytest, or one xdist worker) starts throwaway PostgreSQL clusters, AWS emulators and Kubernetes
control planes, each in a session of its own so that a signal to the test's process group cannot tear it down
halfway. Fixtures stop them on the way out, but a SIGKILLed or lost run runs no fixture. So each test process
starts one watchdog, in a session of its own, that waits for that process to end and then stops what the run
recorded starting:

- every AWS emulator (`aws-emulator` record) and Kubernetes control plane (`processes.json`) under the run's
  temporary folder, where the rehearsals and control planes of tests keep their state;
- every PostgreSQL cluster listed in the run's roots file (clusters live in /dev/shm, outside that folder), and
  its directory, which is memory.

Only recorded processes that are still the recorded ones are signalled (services/process_records.py): a service
someone else started, or a pid reused since, is never touched. A run that ends normally has stopped everything
already, and the watchdog finds nothing to do.

    python -m tests.service_watchdog OWNER_PID OWNER_START_TICKS RUN_DIR
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOTS_FILE = ".postgres-roots"  # in the run's folder: one cluster root per line
POLL_S = 1.0


def start(run_dir: Path) -> subprocess.Popen:
    """The watchdog of this process, for what it starts under `run_dir`."""
    from services import process_records

    me = process_records.record_of(os.getpid())
    assert me is not None
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.service_watchdog", str(me.pid), str(me.started_ticks), str(run_dir)],
        cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, "PYTHONPATH": str(root)},
    )


def note_postgres_root(run_dir: Path, root: Path) -> None:
    """Written before the cluster is needed: a run killed from here on leaves a cluster its watchdog stops."""
    with (run_dir / ROOTS_FILE).open("a") as roots:
        roots.write(f"{root}\n")


def wait_for_exit(pid: int, started_ticks: int) -> None:
    from services import process_records

    def alive() -> bool:
        return process_records.start_ticks(pid) == started_ticks

    try:
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):
        handle = None
    if handle is not None and alive():  # the pidfd is of the recorded process, not of a later one
        select.select([handle], [], [])
        os.close(handle)
        return
    while alive():
        time.sleep(POLL_S)


def stop_left_services(run_dir: Path) -> list[str]:
    """Stop what the run recorded starting and is still running; what was stopped, for the log."""
    from services import aws_emulator
    from services.kube_apiserver import PROCESS_RECORD, LocalKubeApiServer
    from services.localpg import LocalPostgres

    stopped = []
    # Symbolic links are not followed: tests link the project's folders (and .venv) into their copies.
    for folder, _dirs, files in os.walk(run_dir):
        here = Path(folder)
        if aws_emulator.RECORD in files and aws_emulator.running_endpoint(here):
            aws_emulator.stop(here)
            stopped.append(f"aws emulator {here}")
        if PROCESS_RECORD in files:
            with contextlib.suppress(Exception):
                if LocalKubeApiServer.stop_recorded(here):
                    stopped.append(f"control plane {here}")
    roots = run_dir / ROOTS_FILE
    for line in roots.read_text().splitlines() if roots.is_file() else []:
        root = Path(line.strip())
        if not line.strip() or not root.is_dir():
            continue
        with contextlib.suppress(Exception):
            if LocalPostgres.stop_recorded(root):
                stopped.append(f"postgres {root}")
        shutil.rmtree(root, ignore_errors=True)
    return stopped


def main(argv: list[str]) -> int:
    pid, ticks, run_dir = int(argv[0]), int(argv[1]), Path(argv[2])
    wait_for_exit(pid, ticks)
    stop_left_services(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
