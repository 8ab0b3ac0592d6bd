"""A run's session is ended engine first: its plugins are the engine's to stop (rule 6, issue 19)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from services import run_sessions

# A stand-in for a plugin: it says when it is interrupted, as a provider aborting its in-flight operation would.
PLUGIN = """
import signal, sys, time
log = sys.argv[1]
def interrupted(*_):
    open(log, "a").write("plugin interrupted\\n")
    sys.exit(0)
signal.signal(signal.SIGINT, interrupted)
signal.signal(signal.SIGTERM, interrupted)
open(log, "a").write("plugin ready\\n")
while True:
    time.sleep(0.05)
"""

# A stand-in for the Pulumi CLI: on SIGINT it takes a moment to record its plugin's in-flight operation, then
# exits, leaving the plugin behind (as a CLI cut short would).
ENGINE = """
import signal, subprocess, sys, time
log = sys.argv[1]
plugin = subprocess.Popen([sys.executable, "-c", sys.argv[2], log])
def cancelled(*_):
    time.sleep(0.5)
    open(log, "a").write("engine recorded its operations\\n")
    sys.exit(0)
signal.signal(signal.SIGINT, cancelled)
while True:
    time.sleep(0.05)
"""


def _wait_for(path: Path, line: str) -> None:
    deadline = time.monotonic() + 30
    while line not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"never saw {line!r}"
        time.sleep(0.05)


def test_the_engine_is_ended_before_its_plugins_and_nothing_of_the_session_remains(tmp_path):
    log = tmp_path / "log"
    engine = subprocess.Popen([sys.executable, "-c", ENGINE, str(log), PLUGIN], start_new_session=True)
    try:
        _wait_for(log, "plugin ready")
        assert [r.pid for r in run_sessions.engine_processes(engine.pid, None)] == [engine.pid]

        run_sessions.stop_session(engine.pid, None, grace_s=5.0)

        assert log.read_text().splitlines() == ["plugin ready", "engine recorded its operations",
                                                "plugin interrupted"]
        assert run_sessions.session_members(engine.pid, None) == []
    finally:
        for member in run_sessions.session_members(engine.pid, None):
            subprocess.run(["kill", "-9", str(member.pid)], check=False)
        engine.wait(timeout=10)
