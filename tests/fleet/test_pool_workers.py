"""The run's worker processes die with it (fleet rule 6): a tenantctl process killed by SIGKILL leaves no idle
pool worker behind. An idle worker of a ProcessPoolExecutor waits on a pipe whose other end it holds itself, so
without a watch of its own it would wait forever, and hold the output pipes of whoever started the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from tests.conftest import ROOT

RUN = textwrap.dedent("""
    import json, sys, time
    from fleet.stack_run import process_pool

    if __name__ == "__main__":
        pool = process_pool(2)
        first = pool.submit(__import__("os").getpid)  # one worker busy, then gone (one job each); another idle
        pids = [first.result()]
        second = pool.submit(__import__("os").getpid)
        pids.append(second.result())
        time.sleep(1)  # the replacement workers start
        print(json.dumps({"workers": sorted(set(pids) | set(pool._processes))}), flush=True)
        time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_run_leaves_no_idle_pool_worker(tmp_path):
    run = subprocess.Popen([sys.executable, "-c", RUN], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        workers = json.loads(run.stdout.readline())["workers"]
        idle = [pid for pid in workers if _alive(pid)]
        assert idle, f"no idle worker to watch: {workers}"
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in idle) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in idle if _alive(pid)]
    finally:
        run.kill()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not left, f"pool workers of the killed run still alive: {left}"
