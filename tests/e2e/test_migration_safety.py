"""Upgrading from the single stack is safe, on the real engine (issue 18, item 5).

Each test starts from an install older than `migrate-stacks` (`tests/e2e/single_stack.py`: every
TenantStack in the one `rehearsal` stack) with the two example tenants.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from components.naming import TENANT_STACK_TYPE
from fleet import engine
from fleet.engine import engine_environment
from fleet.migrate_stacks import migrate, replacing
from fleet.rehearsal import STACK, STATE_FILE, RehearsalState, spec_maker
from fleet.rehearse import RehearseFailure
from fleet.rollout import TAG_TENANT_ID
from fleet.stack_run import StackJob, run
from fleet.upgrade_guard import tenant_stacks_in, unmigrated_tenants
from tenancy.loader import require_tenants
from tests.conftest import ROOT
from tests.e2e.conftest import linked_project
from tests.e2e.single_stack import services, single_stack_up

ROWS = "SELECT tenant_id, updated_at, webhook_signing_secret_encrypted FROM tenant_configs ORDER BY tenant_id"


def _state(backend: engine.Backend, name: str) -> dict:
    return engine.export_state(engine.open_stack(engine.StackSpec(backend, name), create=False))


def _subtree(state: dict, slug: str) -> dict[str, str | None]:
    """A tenant's TenantStack and its descendants, by URN without the stack's name, with each one's cloud id."""
    resources = state["deployment"]["resources"]
    top = next(r["urn"] for r in resources if r["type"] == TENANT_STACK_TYPE and r["urn"].endswith(f"::{slug}"))
    found, frontier = {top}, {top}
    while frontier:
        frontier = {r["urn"] for r in resources if r.get("parent") in frontier}
        found |= frontier
    return {r["urn"].split("::", 1)[1]: r.get("id") for r in resources if r["urn"] in found}


def test_up_and_preview_refuse_an_unmigrated_environment_and_migrate_stacks_runs_again_safely(
        rehearsal, app_db, tmp_path):
    tenants = require_tenants(rehearsal.tenants_dir)
    acme, globex = sorted(tenants, key=lambda t: t.slug)
    single_stack_up(rehearsal, app_db, tenants)
    rows = app_db.execute(ROWS)

    # The rehearsal's own up and preview, on the environment as it is.
    refusals = []
    for attempt in (rehearsal.up, rehearsal.preview):
        with pytest.raises(RehearseFailure) as refused:
            attempt()
        refusals.append(str(refused.value))
    # `tenantctl up|preview --env rehearsal` of a project whose backend (`pulumi login`) holds that stack.
    passphrase = RehearsalState.load(rehearsal.state_dir / STATE_FILE).environment["secrets"]["passphrase"]
    env = engine_environment(ROOT, {"PULUMI_BACKEND_URL": (rehearsal.state_dir / "backend").as_uri(),
                                    "PULUMI_CONFIG_PASSPHRASE": passphrase})
    project = linked_project(tmp_path, rehearsal.tenants_dir)
    cli = [subprocess.run([sys.executable, "-m", "tenantctl", operation, "--env", STACK], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300) for operation in ("up", "preview")]

    with services(rehearsal, app_db) as (state, running):
        spec_for = spec_maker(ROOT, rehearsal.tenants_dir, state, rehearsal.state_dir, running)
        backend = spec_for(STACK, None).backend
        unrefused = tenant_stacks_in(_state(backend, STACK))
        # A first migration stopped after it created globex's stack, before it moved anything into it.
        engine.open_stack(spec_for(f"{STACK}.globex", globex))
        # ... and is run again from a checkout without globex's file: globex cannot move.
        partial = migrate(STACK, [acme], spec_for, dry_run=False)
        after_partial = tenant_stacks_in(_state(backend, STACK))
        complete = migrate(STACK, tenants, spec_for, dry_run=False)
    # Once more, as an operator runs it on the rehearsal (its services started by the command itself).
    rerun = subprocess.run([sys.executable, "-m", "tenantctl", "migrate-stacks", "--rehearsal", "--state-dir",
                            str(rehearsal.state_base), "--database-url", rehearsal.database_url, "--tenants-dir",
                            str(rehearsal.tenants_dir), "--json"], cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    again = json.loads(rerun.stdout)
    left = unmigrated_tenants(engine.StackSpec(backend, STACK))

    # The rehearsal's own runs name the rehearsal's migrate command; a project's stack `rehearsal` its own.
    rehearsal_command = (f"tenantctl migrate-stacks --rehearsal --state-dir {rehearsal.state_base} "
                         "--database-url <the rehearsal's database URL>")
    for message in refusals:
        assert "acme, globex" in message and f"run `{rehearsal_command}` first" in message, message
    for message in (result.stderr for result in cli):
        assert "acme, globex" in message and f"tenantctl migrate-stacks --env {STACK}" in message, message
    assert all(result.returncode == 1 for result in cli)
    assert all(len(result.stderr.strip().splitlines()) == 1 for result in cli), [r.stderr for r in cli]
    assert unrefused == ["acme", "globex"]  # nothing ran on the platform stack
    # globex is left in the `rehearsal` stack, so the platform program is not applied there.
    assert not partial.ok and partial.platform is None
    assert any("globex" in error for error in partial.errors), partial.errors
    assert [(m.slug, m.note is None) for m in partial.moves] == [("acme", True), ("globex", False)]
    assert after_partial == ["globex"]
    # The full checkout moves globex into the stack that already existed, empty and tagged for it.
    assert complete.ok, complete.as_dict()
    assert [(m.slug, m.note, m.resume) for m in complete.moves] == [("globex", None, False)]
    assert sorted(p.stack for p in complete.previews) == [f"{STACK}.acme", f"{STACK}.globex"]
    assert all(p.ok and not replacing(p) for p in complete.previews)
    # Run once more: nothing to move, the platform stack holds no tenant, and its up deletes nothing.
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert again["ok"] and again["moves"] == [] and again["previews"] == [] and again["env"] == STACK
    platform = again["platform"]
    assert platform["status"] != "failed" and platform["replaced"] == platform["deleted"] == 0, platform
    assert not {"create", "delete", "replace"} & set(platform["summary"]), platform
    assert left == []
    assert app_db.execute(ROWS) == rows


def test_an_interrupted_state_move_is_completed_by_running_migrate_stacks_again(rehearsal, app_db, tmp_path):
    tenants = require_tenants(rehearsal.tenants_dir)
    globex = next(t for t in tenants if t.slug == "globex")
    single_stack_up(rehearsal, app_db, tenants)
    rows = app_db.execute(ROWS)

    with services(rehearsal, app_db) as (state, running):
        spec_for = spec_maker(ROOT, rehearsal.tenants_dir, state, rehearsal.state_dir, running)
        backend = spec_for(STACK, None).backend
        source = engine.open_stack(engine.StackSpec(backend, STACK), create=False)
        before = engine.export_state(source)
        first = migrate(STACK, tenants, spec_for, dry_run=False)
        # What an interrupted `pulumi state move` leaves: the destinations written, the source not yet.
        checkpoint = tmp_path / "before.json"
        checkpoint.write_text(json.dumps(before))
        workspace = source.workspace
        workspace.pulumi_command.run(["stack", "import", "--stack", STACK, "--file", str(checkpoint)],
                                     workspace.work_dir, workspace.env_vars)
        halfway = {t.slug: (tenant_stacks_in(_state(backend, STACK)),
                            tenant_stacks_in(_state(backend, f"{STACK}.{t.slug}"))) for t in tenants}
        # A destination that belongs to another tenant_id is refused; the source keeps that tenant.
        destination = engine.open_stack(engine.StackSpec(backend, f"{STACK}.globex"), create=False)
        destination.set_tag(TAG_TENANT_ID, str(uuid.uuid4()))
        refused = migrate(STACK, tenants, spec_for, dry_run=False)
        after_refusal = tenant_stacks_in(_state(backend, STACK))
        destination.set_tag(TAG_TENANT_ID, str(globex.tenant_id))
        resumed = migrate(STACK, tenants, spec_for, dry_run=False)
        after = {name: _state(backend, name) for name in (STACK, f"{STACK}.acme", f"{STACK}.globex")}
        # The cloud's own word: every AWS object each tenant stack tracks is still there.
        refreshed = [run(StackJob(spec_for(f"{STACK}.{t.slug}", t), "refresh", refresh_types="aws:")) for t in tenants]

    assert first.ok, first.as_dict()
    assert halfway == {"acme": (["acme", "globex"], ["acme"]), "globex": (["acme", "globex"], ["globex"])}
    assert not refused.ok and refused.platform is None
    assert [(m.slug, m.resume, m.note is None) for m in refused.moves] == [("acme", True, True),
                                                                            ("globex", False, False)]
    assert any("globex" in e and str(globex.tenant_id) in e for e in refused.errors), refused.errors
    assert after_refusal == ["globex"]
    assert resumed.ok, resumed.as_dict()
    assert [(m.slug, m.resume) for m in resumed.moves] == [("globex", True)]
    assert tenant_stacks_in(after[STACK]) == []
    for tenant in tenants:
        moved = _subtree(after[f"{STACK}.{tenant.slug}"], tenant.slug)
        assert moved == _subtree(before, tenant.slug)  # every resource, by URN and cloud id
        assert len(moved) >= 10  # the component and its children, not an empty shell
    # Nothing of a tenant was deleted: not by the platform's up, not by the resume, not in the cloud.
    assert resumed.platform.ok
    assert [(u.rsplit("::", 1)[-1], op) for u, op in replacing(resumed.platform).items()] == [
        ("shared-namespace", "create")]
    assert all(p.ok and not replacing(p) for p in resumed.previews) and len(resumed.previews) == 2
    assert all(o.ok and not o.summary.get("delete") for o in refreshed), [o.as_dict() for o in refreshed]
    assert app_db.execute(ROWS) == rows


# A copied secret never on a command line: tests/e2e/test_secrets_off_command_line.py
