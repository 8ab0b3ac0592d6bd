"""Crash tests: tenantctl killed at an engine event of a scenario, then run once more, must converge.

Each kill point is a scenario, a stack, the n-th engine event of that stack's run (the Automation API's
event stream; tenantctl.stack_run.FAULT_ENV), and the signal that tenantctl receives there. After the
killed run and one re-run:
- the re-run exits 0, and the run after it changes nothing;
- the AWS stand-in holds exactly one live KMS key, one alias and one secret per tenant;
- every tenant's row and history are intact;
- no process of the killed run is alive (they carry the fault variable in their environment);
- nothing either run printed holds a secret.

`make test` runs the bounded sweep below; TENANT_FAULT_SWEEP=full (the scheduled workflow) runs every event
number up to TENANT_FAULT_MAX_EVENT with each signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tenantctl import aws_emulator
from tenantctl.rehearsal import STACK, STATE_FILE, RehearsalState
from tenantctl.stack_run import FAULT_ENV
from tests.conftest import ROOT

SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT")
# One kill point per scenario, each with another signal: `make test` stays within its time budget (rule 8).
BOUNDED = [("first-up", "globex", 12, "SIGKILL"), ("edit", "globex", 8, "SIGINT"),
           ("rename", "globex-inc", 10, "SIGTERM")]


def _points() -> list[tuple[str, str, int, str]]:
    if os.environ.get("TENANT_FAULT_SWEEP") != "full":
        return BOUNDED
    last = int(os.environ.get("TENANT_FAULT_MAX_EVENT", "60"))
    targets = {"first-up": "globex", "edit": "globex", "rename": "globex-inc"}
    return [(scenario, slug, n, sig) for scenario, slug in targets.items() for n in range(1, last + 1)
            for sig in SIGNALS]


def _run(rehearsal, app_db, fault: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tenantctl", "rehearse", "--json", "--tenants-dir", str(rehearsal.tenants_dir),
               "--database-url", rehearsal.database_url, "--app-database-url", app_db.app_dsn,
               "--state-dir", str(rehearsal.state_base)]
    env = {**os.environ, **({FAULT_ENV: fault} if fault else {})}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
                          start_new_session=True)


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


def _prepare(scenario: str, rehearsal, app_db, tenants_dir: Path) -> dict[str, str]:
    """The scenario's starting point; returns the slugs and tenant_ids it ends with."""
    ids = {"acme": "20ab6862-0914-44a5-8827-42ff80980e24", "globex": "c5ad57d3-7689-4bb8-8876-51f571580a7e"}
    if scenario == "first-up":
        return ids
    assert rehearsal.up().ok
    for tenant_id in ids.values():
        app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (tenant_id,))
    text = (tenants_dir / "globex.yaml").read_text()
    if scenario == "edit":
        (tenants_dir / "globex.yaml").write_text(text.replace("Globex IT Services", "Globex IT Services Ltd"))
        return ids
    (tenants_dir / "globex.yaml").unlink()
    (tenants_dir / "globex-inc.yaml").write_text(text.replace("slug: globex", "slug: globex-inc")
                                                 + "previous_slugs: [globex]\n")
    return {"acme": ids["acme"], "globex-inc": ids["globex"]}


@pytest.mark.parametrize(("scenario", "slug", "event", "sig"), _points(),
                         ids=[f"{s}-{slug}-event{n}-{sig}" for s, slug, n, sig in _points()])
def test_a_killed_run_converges_with_one_rerun(rehearsal, app_db, tenants_dir, scenario, slug, event, sig):
    tenant_ids = _prepare(scenario, rehearsal, app_db, tenants_dir)
    history_before = app_db.history_row_count()

    killed = _run(rehearsal, app_db, fault=f"{STACK}.{slug}:{event}:{sig}")
    emulator = json.loads((rehearsal.state_dir / "aws-emulator").read_text())["pid"]
    deadline = time.monotonic() + 60
    while _processes_with(FAULT_ENV, {emulator}) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _processes_with(FAULT_ENV, {emulator})
    for pid in left:  # never leave them to the next test, but fail for them below
        os.kill(pid, signal.SIGKILL)
    again = _run(rehearsal, app_db)
    settled = _run(rehearsal, app_db)

    assert killed.returncode != 0, "the kill point was never reached: choose an earlier event"
    assert not left, f"processes of the killed run still alive: {left}"
    assert again.returncode == 0, (again.stderr[-2000:], again.stdout[-2000:])
    assert json.loads(settled.stdout)["changes"] == 0, settled.stdout[-2000:]
    arn = rehearsal.stack(f"{STACK}.{next(iter(tenant_ids))}").outputs()["tenant"].value["kms_key_arn"]
    objects = _aws_objects(rehearsal, tenant_ids, region=arn.split(":")[3])
    assert objects == dict.fromkeys(tenant_ids, (1, 1, 1)), objects
    rows = {str(r[0]) for r in app_db.execute("SELECT tenant_id FROM tenant_configs")}
    assert rows == set(tenant_ids.values()) and app_db.history_row_count() == history_before
    state = RehearsalState.load(rehearsal.state_dir / STATE_FILE)
    printed = killed.stdout + killed.stderr + again.stdout + again.stderr
    for value in state.environment.get("secrets", {}).values():
        assert value not in printed
