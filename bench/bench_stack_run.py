"""One tenant stack's no-change `up` through `fleet.stack_run.run`, timed, against another checkout's code (issue 22,
item 4: before and after a change, interleaved in one session).

One rehearsal (the real engine, file backend, PostgreSQL, moto) creates the platform stack and one generated basic
tenant. Then each round runs that stack's no-change `up` once with each code tree, in a fresh Python process as
`tenantctl` runs a stack (a spawned worker): the job is the one `tenantctl up --force` builds (`StackJob` with the
run's digest inputs and commit, and, where the tree's `StackJob` has it, the skip plan's desired digest), made in the
parent before the timing. Reported per tree: the median wall time of the process (spawn, imports, the run) and of
`run()` alone, and the ratio. The project root (the program, the engine, the policy pack) is this checkout for both
trees: only the Python code of the tree under test differs (`--before` is put first on its process's path).

    git archive BASE | tar -x -C /tmp/before
    .venv/bin/python bench/bench_stack_run.py --before /tmp/before [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import pickle, sys, time
started = time.perf_counter()
code, payload = sys.argv[1], sys.argv[2]
sys.path.insert(0, code)
from dataclasses import fields
from fleet import stack_run
from fleet.rehearsal import LocalServices, RehearsalState, STATE_FILE, spec_maker
from fleet.skipping import FORCED
with open(payload, "rb") as handle:
    given = pickle.load(handle)
state = RehearsalState.load(given["state_dir"] / STATE_FILE)
spec_for = spec_maker(given["root"], given["tenants_dir"], state, given["state_dir"],
                      LocalServices("", "", "", given["aws_endpoint"]))
spec = spec_for(given["stack"], given["tenant"])
extra = {"desired": given["desired"]} if "desired" in {f.name for f in fields(stack_run.StackJob)} else {}
job = stack_run.StackJob(spec, "up", shared=given["shared"], commit=given["commit"], reason=FORCED, **extra)
entered = time.perf_counter()
outcome = stack_run.run(job)
done = time.perf_counter()
changes = sum(n for op, n in outcome.summary.items() if op != "same")
print("RESULT " + repr({"ok": outcome.ok, "changes": changes, "errors": outcome.errors[:1],
                        "run_s": done - entered, "imports_s": entered - started}))
"""


def setup(work: Path):
    from bench.generate import generate
    from fleet.rehearse import _state_dir, run_rehearse
    from services.localpg import LocalPostgres

    tenants_dir = work / "tenants"
    generate(1, tenants_dir)  # bench-00001: basic
    postgres = LocalPostgres(base_dir=work)
    postgres.start()
    postgres.create_database("stackrun")
    postgres.load_schema("stackrun")
    url = postgres.dsn(user="tenant_provisioner", dbname="stackrun")
    state_base = work / "state"
    first = run_rehearse(tenants_dir, url, None, False, state_base=state_base)
    if not first.ok:
        postgres.stop()
        raise SystemExit(f"the rehearsal failed: {first.errors[:3]} {[(t.slug, t.errors[:1]) for t in first.tenants]}")
    return postgres, tenants_dir, _state_dir(state_base, url)


def job_inputs(tenants_dir: Path, state_dir: Path) -> dict:
    """What `tenantctl up --force` hands the stack's job, computed once, outside the timing."""
    from fleet import desired_state
    from fleet.rehearsal import STACK, STATE_FILE, LocalServices, RehearsalState, spec_maker
    from services import aws_emulator
    from tenancy.loader import require_tenants

    [tenant] = require_tenants(tenants_dir)
    aws = aws_emulator.ensure_running(state_dir)
    state = RehearsalState.load(state_dir / STATE_FILE)
    spec_for = spec_maker(ROOT, tenants_dir, state, state_dir, LocalServices("", "", "", aws.endpoint))
    backend = spec_for(STACK, None).backend
    key = desired_state.environment_key(backend, STACK)
    shared, why = desired_state.shared_or_why(ROOT, STACK, spec_for, key)
    if shared is None:
        raise SystemExit(f"no digest inputs: {why}")
    desired = desired_state.desired_digests(ROOT, STACK, [tenant], spec_for, shared, 1)[tenant.slug]
    return {"root": ROOT, "tenants_dir": tenants_dir, "state_dir": state_dir, "aws_endpoint": aws.endpoint,
            "stack": f"{STACK}.{tenant.slug}", "tenant": tenant, "shared": shared,
            "commit": desired_state.deployed_commit(ROOT), "desired": desired}


def timed(code: Path, payload: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WORKER, str(code), str(payload)], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(code)})
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{code}: the run failed: {done.stderr[-2000:]}")
    result = eval(lines[-1].removeprefix("RESULT "))  # noqa: S307 (our own worker's repr of a dict of numbers)
    if not result["ok"] or result["changes"]:
        raise SystemExit(f"{code}: not a clean no-change up: {result}")
    return {**result, "wall_s": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout's root (its code is timed)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from services import aws_emulator

    trees = {"before": args.before.resolve(), "after": ROOT}
    samples: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="bench-stack-run-") as folder:
        work = Path(folder)
        os.chmod(work, 0o755)  # noqa: S103 (the postgres OS user must reach the cluster directory)
        postgres, tenants_dir, state_dir = setup(work)
        try:
            payload = work / "job.pickle"
            payload.write_bytes(pickle.dumps(job_inputs(tenants_dir, state_dir)))
            for code in trees.values():  # untimed: each tree's first run records what it records
                timed(code, payload)
            for number in range(args.rounds):
                order = list(trees.items()) if number % 2 == 0 else list(reversed(trees.items()))
                for name, code in order:
                    sample = timed(code, payload)
                    samples[name].append(sample)
                    print(f"round {number + 1} {name}: wall {sample['wall_s']:.2f} s, run {sample['run_s']:.2f} s",
                          file=sys.stderr, flush=True)
        finally:
            aws_emulator.stop(state_dir)
            postgres.stop()
    medians = {name: {key: round(statistics.median(s[key] for s in runs), 2) for key in ("wall_s", "run_s")}
               for name, runs in samples.items()}
    report = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": os.getloadavg(),
              "rounds": args.rounds, "medians": medians,
              "ratio_wall": round(medians["after"]["wall_s"] / medians["before"]["wall_s"], 2),
              "ratio_run": round(medians["after"]["run_s"] / medians["before"]["run_s"], 2),
              "samples": {name: [{k: round(v, 2) if isinstance(v, float) else v for k, v in s.items()} for s in runs]
                          for name, runs in samples.items()}}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
