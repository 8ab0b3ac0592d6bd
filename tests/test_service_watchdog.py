"""A killed test run leaves no service running (tests/service_watchdog.py): what it started dies with it, and
nothing else does."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from services import aws_emulator, process_records
from services.localpg import LocalPostgres
from tests.conftest import ROOT
from tests.pgfixtures import cluster_base_dir

# A test process as pytest is one: its watchdog (unless told not to), then an AWS emulator in its folder and a
# PostgreSQL cluster in memory, noted in its folder; it says their pids and waits to be killed.
TEST_PROCESS = """
import json, sys, time
from pathlib import Path
from services import aws_emulator
from services.localpg import LocalPostgres
from tests.service_watchdog import note_postgres_root, start

run, cluster_root, watched = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "watched"
if watched:
    start(run)
emulator = aws_emulator.ensure_running(run / "deep" / "state")
pids = {"emulator": emulator.pid}
if cluster_root.name != "-":
    note_postgres_root(run, cluster_root)
    pids["postgres"] = LocalPostgres(root=cluster_root).start().pid
print(json.dumps(pids), flush=True)
time.sleep(600)
"""


def start_test_process(run: Path, cluster_root: Path | None, watched: bool) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen(
        [sys.executable, "-c", TEST_PROCESS, str(run), str(cluster_root or "-"), "watched" if watched else "bare"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"the test process failed to start its services (exit {process.wait()})"
    return process, {name: process_records.record_of(pid) for name, pid in json.loads(line).items()}


def gone_within(records: dict, seconds: float) -> dict:
    """The records of those still running after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = {name: r for name, r in records.items() if r is not None and process_records.is_running(r)}
        if not left:
            return {}
        time.sleep(0.2)
    return left


def test_a_killed_run_leaves_no_service_it_started_and_stops_no_other(tmp_path):
    bystander = tmp_path / "someone-else"
    other = aws_emulator.ensure_running(bystander)  # another run's emulator, outside this run's folder
    cluster_root = Path(tempfile.mkdtemp(prefix="localpg-", dir=cluster_base_dir()))
    run = tmp_path / "run"
    run.mkdir()
    try:
        process, records = start_test_process(run, cluster_root, watched=True)
        assert all(records.values()), records
        process.send_signal(signal.SIGKILL)
        process.wait()

        assert gone_within(records, 30) == {}, "the killed run's services are still running"
        assert not cluster_root.exists(), "the killed run's cluster directory (memory) is still there"
        assert aws_emulator.running_endpoint(bystander) == other.endpoint, "another run's emulator was stopped"
    finally:
        aws_emulator.stop(bystander)
        aws_emulator.stop(run / "deep" / "state")
        LocalPostgres.stop_recorded(cluster_root)
        shutil.rmtree(cluster_root, ignore_errors=True)


def test_without_its_watchdog_a_killed_run_leaves_its_services_running(tmp_path):
    """The control: what the watchdog is for happens without it (the test above would catch its loss)."""
    run = tmp_path / "run"
    run.mkdir()
    try:
        process, records = start_test_process(run, None, watched=False)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert gone_within(records, 3) == records
    finally:
        aws_emulator.stop(run / "deep" / "state")
