"""Crash tests: tenantctl killed at an engine event of a scenario, or at a random time, then run once more, must
converge.

The scenarios: a first `rehearse` of two tenants, an edit, a rename, an offboarding (`tenantctl destroy globex
--rehearsal --yes`), a migration from the single-stack layout (`migrate`, through tests/e2e/single_stack.py:
`tenantctl migrate-stacks` has no `--rehearsal` yet), a tier downgrade (acme premium -> basic: its namespace's
guard is lifted for the run and put back if it fails) and a signing-secret rotation (`tenantctl
rotate-signing-secret globex`, then the `rehearse` that applies it: a new secret version, the row holding both).
A kill point is a scenario, a stack, the n-th engine event of that stack's run in that process (the Automation
API's event stream; fleet.stack_run.FAULT_ENV) or a delay after the start, and the signal that tenantctl
receives there. After the killed run and one re-run:
- the re-run exits 0 (it skips what is proven unchanged, as an operator's would), and the run after it changes
  nothing, by the engine's own summary of that run (`rehearse --force`: every stack runs, rule 7);
- the AWS stand-in holds exactly one live KMS key, one alias and one secret per live tenant (none live for an
  offboarded one: scheduled for deletion within their windows);
- every live tenant's row and history are intact; an offboarded tenant's row is gone and its stack tombstoned;
- no process of the killed run is alive (they carry the fault variable in their environment);
- nothing either run printed holds a secret.

`make test` runs the bounded sweep below; TENANT_FAULT_SWEEP=full (the scheduled workflow) runs every event
number up to TENANT_FAULT_MAX_EVENT with each signal, and TENANT_FAULT_RANDOM kills per scenario at random times
drawn from TENANT_FAULT_SEED (in each test's id); TENANT_FAULT_SCENARIOS picks some scenarios only. A kill point
the run never reached (its run has fewer events, or ended before the timer) is skipped, not counted: the summary
reports how many kill points each scenario covered.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from fleet import engine
from fleet.rehearsal import STACK, STATE_FILE, RehearsalState
from fleet.stack_run import FAULT_ENV
from services import aws_emulator
from tests.conftest import ROOT

SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT")
# The stack whose engine events are counted, per scenario ("" for the platform stack).
TARGETS = {"first-up": "globex", "edit": "globex", "rename": "globex-inc", "offboarding": "globex",
           "migration": "", "downgrade": "acme", "rotation": "globex"}
# `make test` stays within its time budget (rule 8) with three kill points: the first `up` of two stacks at once,
# an offboarding and a migration, the paths whose recovery is our code's and not the engine's. The full sweep
# (TENANT_FAULT_SWEEP=full: make test-long, the weekly workflow) adds the edit, the rename, the downgrade and the
# rotation, every event and every signal. The migration's event kill falls in its platform `up`, after the state
# moves (which emit no engine events; the random-time kills of the full sweep reach them).
BOUNDED = [("first-up", 12, "SIGKILL"), ("offboarding", 6, "SIGTERM"), ("migration", 4, "SIGKILL")]
# How long each scenario's killed run lasts here, roughly: the random kills fall within it.
RANDOM_WINDOW_S = {"first-up": 90.0, "edit": 40.0, "rename": 60.0, "offboarding": 40.0, "migration": 60.0,
                   "downgrade": 40.0, "rotation": 40.0}


def _points() -> list[tuple[str, int | float, str]]:
    """(scenario, event number (int) or seconds after the start (float), signal)."""
    if os.environ.get("TENANT_FAULT_SWEEP") != "full":
        return BOUNDED
    last = int(os.environ.get("TENANT_FAULT_MAX_EVENT", "60"))
    # TENANT_FAULT_SCENARIOS (comma-separated) shards the sweep: the scheduled workflow runs one job per scenario.
    wanted = os.environ.get("TENANT_FAULT_SCENARIOS", "").split(",") if os.environ.get("TENANT_FAULT_SCENARIOS") \
        else list(TARGETS)
    points: list[tuple[str, int | float, str]] = []
    for scenario in TARGETS:
        draw = random.Random(f"{_seed()}:{scenario}")  # noqa: S311 (kill times, not secrets)
        if scenario in wanted:
            points += [(scenario, n, sig) for n in range(1, last + 1) for sig in SIGNALS]
            points += [(scenario, round(draw.uniform(1.0, RANDOM_WINDOW_S[scenario]), 2), draw.choice(SIGNALS))
                       for _ in range(int(os.environ.get("TENANT_FAULT_RANDOM", "5")))]
    return points


def _seed() -> int:
    # Fixed unless given: every xdist worker must collect the same points.
    return int(os.environ.get("TENANT_FAULT_SEED", "19"))


def _point_id(scenario: str, at: int | float, sig: str) -> str:
    when = f"event{at}" if isinstance(at, int) else f"seed{_seed()}-at{at}s"
    return f"{scenario}-{TARGETS[scenario] or 'platform'}-{when}-{sig}"


def _rehearse(rehearsal, app_db) -> list[str]:
    return [sys.executable, "-m", "tenantctl", "rehearse", "--json", "--tenants-dir", str(rehearsal.tenants_dir),
            "--database-url", rehearsal.database_url, "--app-database-url", app_db.app_dsn,
            "--state-dir", str(rehearsal.state_base)]


def _destroy(rehearsal, app_db) -> list[str]:
    return [sys.executable, "-m", "tenantctl", "destroy", "globex", "--rehearsal", "--yes", "--without-export",
            "--tenants-dir", str(rehearsal.tenants_dir), "--database-url", rehearsal.database_url,
            "--state-dir", str(rehearsal.state_base)]


def _migrate(rehearsal, app_db) -> list[str]:
    return [sys.executable, "-m", "tests.e2e.single_stack", str(rehearsal.tenants_dir), str(rehearsal.state_base),
            rehearsal.database_url, app_db.app_dsn]


def _run(command: list[str], app_db, at: int | float | None = None, sig: str = "SIGKILL",
         stack: str = "") -> subprocess.CompletedProcess:
    """The command, killed at the n-th engine event of `stack` (`at` an int) or `at` seconds after its start."""
    env = {**os.environ, "TENANT_FERNET_KEY": app_db.fernet_key}
    if isinstance(at, int):
        env[FAULT_ENV] = f"{stack}:{at}:{sig}"
    elif at is not None:
        env[FAULT_ENV] = f"timer:{at}:{sig}"  # names no stack: only marks the run's processes
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, start_new_session=True)
    if isinstance(at, float):
        try:
            process.wait(timeout=at)
        except subprocess.TimeoutExpired:
            process.send_signal(getattr(signal, sig))
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _processes_with(variable: str, kept: set[int]) -> list[int]:
    """Live processes whose environment holds `variable` (every process a killed run started inherits it),
    but for `kept`: the AWS emulator, which belongs to the state folder, not to the run (rule 6)."""
    found = []
    needle = variable.encode() + b"="
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and int(entry.name) not in kept and any(
                item.startswith(needle) for item in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def _aws_objects(rehearsal, tenant_ids: dict[str, str], region: str) -> dict[str, tuple[int, int, int]]:
    """Per tenant: live KMS keys tagged with its id, its aliases and its live secrets."""
    endpoint = aws_emulator.ensure_running(rehearsal.state_dir).endpoint
    client = lambda service: boto3.client(service, endpoint_url=endpoint, region_name=region,  # noqa: E731
                                          aws_access_key_id="test", aws_secret_access_key="test")  # noqa: S106
    kms, sm = client("kms"), client("secretsmanager")
    keys: dict[str, int] = {}
    for key in kms.list_keys()["Keys"]:
        if kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion":
            continue
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])}
        keys[tags.get("tenant_id", "")] = keys.get(tags.get("tenant_id", ""), 0) + 1
    aliases = [a["AliasName"] for a in kms.list_aliases()["Aliases"] if a["AliasName"].startswith("alias/tenant-")]
    secrets = [s["Name"] for s in sm.list_secrets()["SecretList"] if not s.get("DeletedDate")]
    return {slug: (keys.get(tenant_id, 0), sum(a == f"alias/tenant-{slug}" for a in aliases),
                   sum(n == f"tenants/{slug}/credentials" for n in secrets))
            for slug, tenant_id in tenant_ids.items()}


IDS = {"acme": "20ab6862-0914-44a5-8827-42ff80980e24", "globex": "c5ad57d3-7689-4bb8-8876-51f571580a7e"}


def _prepare(scenario: str, rehearsal, app_db, tenants_dir: Path) -> dict[str, str]:
    """The scenario's starting point; returns the slugs and tenant_ids it ends with, live."""
    if scenario == "first-up":
        return dict(IDS)
    if scenario == "migration":
        from tenancy.loader import require_tenants
        from tests.e2e.single_stack import single_stack_up

        single_stack_up(rehearsal, app_db, require_tenants(tenants_dir))
    else:
        assert rehearsal.up().ok
    for slug, tenant_id in IDS.items():
        if scenario != "offboarding" or slug != "globex":  # offboarding refuses a tenant with history (no purge)
            app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (tenant_id,))
    text = (tenants_dir / "globex.yaml").read_text()
    if scenario == "offboarding":
        return {"acme": IDS["acme"]}
    if scenario == "downgrade":
        # Rendered objects: no cluster to list the namespace's claims on, so the loss is named for all of them.
        acme = tenants_dir / "acme.yaml"
        acme.write_text(_basic(acme.read_text()) + "tier_change:\n  accept_volume_loss: ['*']\n")
        return dict(IDS)
    if scenario == "rotation":
        rotated = subprocess.run([sys.executable, "-m", "tenantctl", "rotate-signing-secret", "globex", "--rehearsal",
                                  "--tenants-dir", str(tenants_dir), "--state-dir", str(rehearsal.state_base)],
                                 cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert rotated.returncode == 0, rotated.stderr
        return dict(IDS)
    if scenario in ("edit", "migration"):
        if scenario == "edit":
            (tenants_dir / "globex.yaml").write_text(text.replace("Globex IT Services", "Globex IT Services Ltd"))
        return dict(IDS)
    (tenants_dir / "globex.yaml").unlink()
    (tenants_dir / "globex-inc.yaml").write_text(text.replace("slug: globex", "slug: globex-inc")
                                                 + "previous_slugs: [globex]\n")
    return {"acme": IDS["acme"], "globex-inc": IDS["globex"]}


def _basic(text: str) -> str:
    """A premium tenant file made basic: its tier, without the premium-only namespace resources."""
    text = text.replace("tier: premium", "tier: basic")
    return text.split("resources:  # namespace ResourceQuota")[0] + text.split("  pods: 20\n")[1]


def _command(scenario: str):
    return {"offboarding": _destroy, "migration": _migrate}.get(scenario, _rehearse)


def _settle(scenario: str, rehearsal, app_db, tenants_dir: Path) -> int:
    """The run after the re-run: how many changes the engine reports for it."""
    if scenario == "migration":
        settled = _run(_migrate(rehearsal, app_db), app_db)
        result = json.loads(settled.stdout)
        assert settled.returncode == 0 and result["moves"] == [], settled.stdout[-2000:]
        return result["platform"]["created"] + result["platform"]["updated"] + result["platform"]["deleted"]
    if scenario == "offboarding":
        (tenants_dir / "globex.yaml").unlink()  # the file goes in the same change: globex is a tombstone now
    # --force: every stack runs, so "changes nothing" is the engine's own word, never a digest's (rule 7).
    settled = _run([*_rehearse(rehearsal, app_db), "--force"], app_db)
    assert settled.returncode == 0, settled.stdout[-2000:]
    return json.loads(settled.stdout)["changes"]


@pytest.mark.parametrize(("scenario", "at", "sig"), _points(), ids=[_point_id(*point) for point in _points()])
def test_a_killed_run_converges_with_one_rerun(rehearsal, app_db, tenants_dir, scenario, at, sig, record_property):
    live = _prepare(scenario, rehearsal, app_db, tenants_dir)
    history_before = app_db.history_row_count()
    command = _command(scenario)(rehearsal, app_db)
    stack = f"{STACK}.{TARGETS[scenario]}" if TARGETS[scenario] else STACK

    killed = _run(command, app_db, at, sig, stack)
    if killed.returncode == 0:
        if os.environ.get("TENANT_FAULT_SWEEP") == "full":
            pytest.skip("the run ended before this kill point: not a kill point of this scenario")
        pytest.fail("the kill point was never reached: choose an earlier event")
    emulator = json.loads((rehearsal.state_dir / "aws-emulator").read_text())["pid"]
    deadline = time.monotonic() + 60
    while _processes_with(FAULT_ENV, {emulator}) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _processes_with(FAULT_ENV, {emulator})
    for pid in left:  # never leave them to the next test, but fail for them below
        os.kill(pid, signal.SIGKILL)
    again = _run(command, app_db)
    changes = _settle(scenario, rehearsal, app_db, tenants_dir)

    assert not left, f"processes of the killed run still alive: {left}"
    assert again.returncode == 0, (again.stderr[-2000:], again.stdout[-2000:])
    assert changes == 0, f"the run after the re-run changed {changes} resource(s)"
    resources = engine.export_state(rehearsal.stack(f"{STACK}.acme"))["deployment"]["resources"]
    arn = next(r["outputs"]["arn"] for r in resources if r["type"] == "aws:kms/key:Key")
    every = {**live, **({"globex": IDS["globex"]} if scenario == "offboarding" else {})}
    objects = _aws_objects(rehearsal, every, region=arn.split(":")[3])
    assert objects == {slug: (1, 1, 1) if slug in live else (0, 0, 0) for slug in every}, objects
    rows = {str(r[0]) for r in app_db.execute("SELECT tenant_id FROM tenant_configs")}
    assert rows == set(live.values()) and app_db.history_row_count() == history_before
    if scenario == "offboarding":
        globex = rehearsal.stack(f"{STACK}.globex")
        assert "tenant:offboarded-at" in globex.list_tags() and "offboarding" not in str(globex.get_all_config())
    if scenario == "migration":
        from fleet.upgrade_guard import tenant_stacks_in

        assert tenant_stacks_in(engine.export_state(rehearsal.stack(STACK))) == []
    state = RehearsalState.load(rehearsal.state_dir / STATE_FILE)
    printed = killed.stdout + killed.stderr + again.stdout + again.stderr
    for value in state.environment.get("secrets", {}).values():
        assert value not in printed
    record_property("kill_point", scenario)
