"""What one tenant stack's no-change `up` costs in Pulumi CLI processes, as `tenantctl` runs it (issue 22, item 4).

Each CLI call is a Go process that starts and loads the stack from the backend: on this machine class 0.3-1 s each.
The test runs `tenantctl rehearse --only globex --force` (the real engine, the rehearsal's file backend) with
tenantctl's process and every stack's worker process (`fleet.stack_run.run`, in a spawned process of its own as
`tenantctl` runs it) using a wrapper of the `pulumi` binary that logs each CLI process's parent and arguments and
runs the real one. One tenant, three engine runs (the first `up` creates the stacks, the second is measured, the
third skips the stack: the digest the measured one recorded is right).

What the cut calls leave in place is asserted too: the no-change `up` changes nothing, reports its outputs and
the checks' verdicts, and records the applied digest and the deployed commit on the stack, as before.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from fleet import desired_state, engine, stack_identity
from fleet.desired_state import COMMIT_TAG, DIGEST_TAG
from fleet.rehearse import rehearsal_sources
from tests.conftest import ROOT

STACK = "rehearsal.globex"
# The engine's `up` itself, and at most one config read (the rehearsal sets the tenant's secrets: whether they
# are set already is asked of the CLI, which decrypts; the stack file holds only their ciphertext).
BOUND = 2

WRAPPER = """#!/bin/sh
printf '%s\\t%s\\n' "$PPID" "$*" >> {log}
exec {real} "$@"
"""


def _counting(wrapper: str) -> None:
    """A worker's initializer: every CLI process of this worker is the counting wrapper."""
    engine.pulumi_binary = lambda _root: Path(wrapper)


def counting_pool(wrapper: Path):
    from fleet.stack_run import _SessionPool

    def pool(concurrency: int):
        return _SessionPool(max_workers=max(1, concurrency), mp_context=multiprocessing.get_context("spawn"),
                            max_tasks_per_child=1, initializer=_counting, initargs=(str(wrapper),))

    return pool


def calls_of_stack(log: Path, stack: str) -> list[str]:
    """The CLI calls of the worker that ran `stack` (the wrapper's lines whose parent is that worker; tenantctl's own
    process, this one, reads every stack's tags before the run)."""
    lines = [line.split("\t", 1) for line in log.read_text(encoding="utf-8").splitlines() if "\t" in line]
    workers = {parent for parent, args in lines if str(os.getpid()) != parent
               and (f"--stack {stack} " in f"{args} " or args.endswith(f" {stack}"))}
    assert len(workers) == 1, f"expected one worker process for {stack}, found {sorted(workers)}: {lines}"
    return [args for parent, args in lines if parent in workers]


def test_a_no_change_up_of_a_tenant_stack_costs_at_most_two_cli_calls(rehearsal, tmp_path, monkeypatch):
    (rehearsal.tenants_dir / "acme.yaml").unlink()  # one tenant (basic): the platform stack and its stack
    # The same commit for every run of the test (a commit made meanwhile in this checkout would be recorded anew).
    monkeypatch.setattr(desired_state, "deployed_commit", lambda _root: "0" * 40)
    assert rehearsal.up().ok

    log = tmp_path / "cli-calls.log"
    wrapper = tmp_path / "counting" / "bin" / "pulumi"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(WRAPPER.format(log=log, real=engine.pulumi_binary(ROOT)), encoding="utf-8")
    wrapper.chmod(0o755)
    # tenantctl's own process uses the same binary as its workers (it asks the CLI's version once for all of them).
    monkeypatch.delenv("TENANTCTL_PULUMI_VERSION", raising=False)  # engine.KNOWN_VERSION
    monkeypatch.setattr(engine, "pulumi_binary", lambda _root: wrapper)
    monkeypatch.setattr("fleet.rollout.process_pool", counting_pool(wrapper))

    result = rehearsal.up(only={"globex"})
    [globex] = [t for t in result.tenants if t.slug == "globex"]
    assert result.ok and globex.status != "skipped", [t.as_dict() for t in result.tenants]
    assert sum(n for op, n in globex.counts.items() if op != "unchanged") == 0, globex.counts
    assert globex.checks and all(globex.checks.values()), globex.checks  # the outputs were read

    calls = calls_of_stack(log, STACK)
    assert len(calls) <= BOUND, (f"a no-change up of {STACK} through fleet.stack_run.run made {len(calls)} Pulumi "
                                 f"CLI calls (bound {BOUND}):\n" + "\n".join(f"  pulumi {c}" for c in calls))

    # tenantctl's own process read each stack's identity from the backend's folder, no CLI process per stack (at
    # 1,000 stacks that was most of a no-change release), and what it read is what the CLI says.
    own = [args for parent, args in (line.split("\t", 1) for line in log.read_text(encoding="utf-8").splitlines()
                                     if "\t" in line) if parent == str(os.getpid())]
    assert not [args for args in own if args.startswith("stack tag ls")], own
    # What the up records is there as before: the digest of what it applied, the commit, no error.
    tags = rehearsal.stack(STACK).list_tags()
    with rehearsal_sources(rehearsal.tenants_dir, rehearsal.database_url, rehearsal.state_base) as (spec_for, _s, _u):
        read = stack_identity.read_identities(spec_for("rehearsal", None).backend, [STACK])[STACK]
    assert read.tags == tags and read.tenant_id == tags[stack_identity.TAG_TENANT_ID], (read, tags)
    assert tags.get(DIGEST_TAG, "").startswith("v") and tags.get(COMMIT_TAG) == "0" * 40, tags
    assert "tenant:last-error" not in tags, tags
    skipped = rehearsal.up(force=False, only={"globex"})
    assert [t.status for t in skipped.tenants if t.slug == "globex"] == ["skipped"], \
        [t.as_dict() for t in skipped.tenants]
