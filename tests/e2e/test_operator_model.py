"""A model-based test of the fleet under operator actions, on the real engine and the rehearsal's services.

Hypothesis draws sequences of what operators do to tenant files and environments (the catalogue below);
after every step the invariant must hold:
- every tenant not explicitly offboarded keeps its row (same tenant_id and created_at), its history, its
  KMS key, its Secrets Manager secret and its stack, recorded under its tenant_id;
- every refused action ended non-zero, with a message that names what and why;
- nothing the run printed holds a secret.

`make test` runs a bounded profile (TENANT_MODEL_EXAMPLES x TENANT_MODEL_STEPS, default 1 x 4) and a fixed walk
of the actions no dedicated test covers; the scheduled workflow runs a longer profile and the whole walk
(TENANT_MODEL_WALK=full). Each example gets its own database, state folder and AWS emulator.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import boto3
import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fleet.migrate_stacks import migrate
from fleet.rehearsal import STACK, STATE_FILE, RehearsalState, spec_maker
from fleet.rehearse import RehearseFailure, _state_dir, existing_stack, run_rehearse
from services import aws_emulator
from tenancy.app_schema import APP_ROLE, PROVISIONER_ROLE, TENANT_VARIABLE
from tenancy.loader import require_tenants
from tests.conftest import EXAMPLE_TENANTS, ROOT
from tests.e2e.single_stack import services, single_stack_up
from tests.tenant_text import tenant_yaml

EXAMPLES = int(os.environ.get("TENANT_MODEL_EXAMPLES", "1"))
STEPS = int(os.environ.get("TENANT_MODEL_STEPS", "4"))
SLUGS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]

# Every action the catalogue draws from, and whether the run must succeed or be refused.
CATALOGUE = {
    "add": "ok", "edit": "ok", "rename_with_previous_slugs": "ok", "rename_without_previous_slugs": "refused",
    "tier_up": "ok", "tenant_id_change": "refused", "remove_a_file": "orphan", "partial_checkout": "refused",
    "other_tenants_folder": "refused", "explicit_destroy": "ok", "restore_within_the_window": "ok",
    "two_environments_on_one_database": "refused", "up_on_an_unmigrated_environment": "refused",
    "migrate_twice": "ok",
}


@dataclass
class ModelTenant:
    tenant_id: str
    slug: str
    tier: str
    name: str
    previous: list[str] = field(default_factory=list)
    key: str = ""  # the api_key_secret name: fixed at onboarding, kept across renames

    def text(self) -> str:
        extra = f"previous_slugs: [{', '.join(self.previous)}]\n" if self.previous else ""
        return (tenant_yaml(self.slug, tier=self.tier, tenant_id=self.tenant_id, extra=extra)
                .replace(f"name: {self.slug.title()} MSP", f"name: {self.name}")
                .replace(f"api_key_secret: {self.slug}-servicedesk-api-key", f"api_key_secret: {self.key}"))


@dataclass
class Outcome:
    ok: bool
    messages: list[str]


class Environment:
    """One rehearsal environment: its tenant files, state folder and database."""

    def __init__(self, base: Path, database: dict) -> None:
        self.base = base
        self.tenants_dir = base / "tenants"
        self.tenants_dir.mkdir(parents=True)
        self.state_base = base / "state"
        self.database = database
        self.printed: list[str] = []

    def write(self, tenants: list[ModelTenant], folder: Path | None = None) -> None:
        folder = folder or self.tenants_dir
        for path in folder.glob("*.yaml"):
            path.unlink()
        for tenant in tenants:
            (folder / f"{tenant.slug}.yaml").write_text(tenant.text())

    def up(self, folder: Path | None = None) -> Outcome:
        try:
            result = run_rehearse(folder or self.tenants_dir, self.database["provisioner"], self.database["app"], False,
                                  progress=self.printed.append, state_base=self.state_base)
        except RehearseFailure as exc:
            self.printed += [str(exc), *exc.details]
            return Outcome(False, [str(exc), *exc.details])
        messages = [*result.errors, *(e for t in result.tenants for e in t.errors)]
        self.printed += messages
        self.printed.append(repr(result.as_dict()))
        return Outcome(result.ok, messages)

    @property
    def state_dir(self) -> Path:
        return _state_dir(self.state_base, self.database["provisioner"])

    def secrets(self) -> list[str]:
        state = RehearsalState.load(self.state_dir / STATE_FILE)
        return [v for v in state.environment.get("secrets", {}).values() if len(v) >= 16]


def make_machine(local_pg, template: str, tmp_root: Path):
    class FleetModel(RuleBasedStateMachine):
        @initialize(first=st.sampled_from(["basic", "premium"]))
        def onboard_two(self, first: str) -> None:
            name = f"model_{uuid.uuid4().hex[:12]}"
            local_pg.create_database(name, template=template)
            self.db_name = name
            from cryptography.fernet import Fernet

            self.fernet = Fernet.generate_key().decode()
            self.superuser = local_pg.dsn(dbname=name)
            self.env = Environment(tmp_root / name, {"provisioner": local_pg.dsn(PROVISIONER_ROLE, name),
                                                     "app": local_pg.dsn(APP_ROLE, name)})
            state = RehearsalState.load(self.env.state_dir / STATE_FILE)
            state.secret("fernetKey", lambda: self.fernet)
            state.save()
            self.free = list(SLUGS)
            self.tenants: dict[str, ModelTenant] = {}
            self.offboarded: dict[str, ModelTenant] = {}
            self.legacy = None
            self.legacy_migrated = False
            self.created_at: dict[str, object] = {}
            for tier in (first, "basic"):
                self._new_tenant(tier)
            self.env.write(list(self.tenants.values()))
            outcome = self.env.up()
            assert outcome.ok, outcome.messages
            self._record()

        def teardown(self) -> None:
            if getattr(self, "legacy", None) is not None:
                legacy, db, _tenants = self.legacy
                aws_emulator.stop(legacy.state_dir)
                local_pg.drop_database(db.name)
            env = getattr(self, "env", None)
            if env is not None:
                aws_emulator.stop(env.state_dir)
                local_pg.drop_database(self.db_name)
                shutil.rmtree(env.base, ignore_errors=True)

        # --- helpers ---------------------------------------------------------------------------------------

        def _new_tenant(self, tier: str) -> ModelTenant:
            slug = self.free.pop(0)
            tenant = ModelTenant(str(uuid.uuid4()), slug, tier, f"{slug.title()} MSP",
                                 key=f"{slug}-servicedesk-api-key")
            self.tenants[tenant.tenant_id] = tenant
            return tenant

        def _sql(self, statement: str, params=()) -> list[tuple]:
            with psycopg.connect(self.superuser, autocommit=True) as conn:
                cursor = conn.execute(statement, params)
                return cursor.fetchall() if cursor.description else []

        def _record(self) -> None:
            for tenant_id in self.tenants:
                if tenant_id not in self.created_at:
                    with psycopg.connect(self.superuser) as conn:
                        conn.execute("SELECT set_config(%s, %s, true)", (TENANT_VARIABLE, tenant_id))
                        conn.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (tenant_id,))
                    self.created_at[tenant_id] = self._sql(
                        "SELECT created_at FROM tenant_configs WHERE tenant_id = %s", (tenant_id,))[0][0]

        def _refused(self, outcome: Outcome, *words: str) -> None:
            assert not outcome.ok, "the action was not refused"
            text = " ".join(outcome.messages)
            assert all(word in text for word in words), (words, outcome.messages)

        def _aws(self, service: str, arn: str):
            """A client of the rehearsal's AWS emulator, in the region the ARN names."""
            endpoint = aws_emulator.ensure_running(self.env.state_dir).endpoint
            return boto3.client(service, endpoint_url=endpoint, region_name=arn.split(":")[3],
                                aws_access_key_id="test", aws_secret_access_key="test")  # noqa: S106

        def _restore_files(self) -> None:
            self.env.write(list(self.tenants.values()))

        # --- the catalogue -------------------------------------------------------------------------------

        @precondition(lambda self: len(self.free) > 0 and len(self.tenants) < 4)
        @rule(tier=st.sampled_from(["basic", "premium"]))
        def add(self, tier: str) -> None:
            self._new_tenant(tier)
            self._restore_files()
            outcome = self.env.up()
            assert outcome.ok, outcome.messages
            self._record()

        @rule(data=st.data())
        def edit(self, data) -> None:
            tenant = data.draw(st.sampled_from(sorted(self.tenants.values(), key=lambda t: t.slug)))
            tenant.name = f"{tenant.name.split(' (')[0]} ({uuid.uuid4().hex[:4]})"
            self._restore_files()
            outcome = self.env.up()
            assert outcome.ok, outcome.messages

        @precondition(lambda self: len(self.free) > 0 and any(t.tier == "basic" for t in self.tenants.values()))
        @rule(data=st.data())
        def rename_with_previous_slugs(self, data) -> None:
            basic = sorted((t for t in self.tenants.values() if t.tier == "basic"), key=lambda t: t.slug)
            tenant = data.draw(st.sampled_from(basic))
            tenant.previous = [*tenant.previous, tenant.slug]
            tenant.slug = self.free.pop(0)
            self._restore_files()
            outcome = self.env.up()
            assert outcome.ok, outcome.messages

        @precondition(lambda self: len(self.free) > 0)
        @rule(data=st.data())
        def rename_without_previous_slugs(self, data) -> None:
            tenant = data.draw(st.sampled_from(sorted(self.tenants.values(), key=lambda t: t.slug)))
            forgetful = ModelTenant(tenant.tenant_id, self.free[0], tenant.tier, tenant.name,
                                    key=f"{self.free[0]}-servicedesk-api-key")
            self.env.write([forgetful if t is tenant else t for t in self.tenants.values()])
            outcome = self.env.up()
            self._refused(outcome, tenant.tenant_id, "previous_slugs")
            self._restore_files()

        @precondition(lambda self: any(t.tier == "basic" for t in self.tenants.values()))
        @rule(data=st.data())
        def tier_up(self, data) -> None:
            basic = sorted((t for t in self.tenants.values() if t.tier == "basic"), key=lambda t: t.slug)
            tenant = data.draw(st.sampled_from(basic))
            tenant.tier = "premium"
            self._restore_files()
            outcome = self.env.up()
            assert outcome.ok, outcome.messages

        @rule(data=st.data())
        def tenant_id_change(self, data) -> None:
            tenant = data.draw(st.sampled_from(sorted(self.tenants.values(), key=lambda t: t.slug)))
            new_id = str(uuid.uuid4())
            changed = ModelTenant(new_id, tenant.slug, tenant.tier, tenant.name, list(tenant.previous), tenant.key)
            self.env.write([changed if t is tenant else t for t in self.tenants.values()])
            outcome = self.env.up()
            self._refused(outcome, tenant.tenant_id, new_id)
            self._restore_files()

        @rule(data=st.data())
        def remove_a_file(self, data) -> None:
            tenant = data.draw(st.sampled_from(sorted(self.tenants.values(), key=lambda t: t.slug)))
            (self.env.tenants_dir / f"{tenant.slug}.yaml").unlink()
            outcome = self.env.up()
            self._refused(outcome, f"{STACK}.{tenant.slug}", "orphan")
            self._restore_files()

        @precondition(lambda self: len(self.tenants) >= 2)
        @rule(data=st.data())
        def partial_checkout(self, data) -> None:
            ordered = sorted(self.tenants.values(), key=lambda t: t.slug)
            hidden = data.draw(st.lists(st.sampled_from(ordered), min_size=2, max_size=len(ordered), unique=True))
            for tenant in hidden:
                (self.env.tenants_dir / f"{tenant.slug}.yaml").unlink()
            if len(hidden) == len(ordered):
                outcome = self.env.up()
                self._refused(outcome)  # an empty folder: the loader refuses
            else:
                outcome = self.env.up()
                self._refused(outcome, "--max-removals", *(f"{STACK}.{t.slug}" for t in hidden))
            self._restore_files()

        @rule()
        def other_tenants_folder(self) -> None:
            other = self.env.base / "other-tenants"
            other.mkdir(exist_ok=True)
            newcomer = ModelTenant(str(uuid.uuid4()), "zulu", "basic", "Zulu MSP", key="zulu-servicedesk-api-key")
            self.env.write([newcomer], other)
            outcome = self.env.up(other)
            self._refused(outcome, "--max-removals")

        @precondition(lambda self: len(self.tenants) >= 2)
        @rule(data=st.data())
        def explicit_destroy(self, data) -> None:
            tenant = data.draw(st.sampled_from(sorted(self.tenants.values(), key=lambda t: t.slug)))
            result = self._tenantctl("destroy", tenant.slug, "--purge-data", "--yes", "--without-export")
            assert result.returncode == 0, result.stderr[-2000:]
            del self.tenants[tenant.tenant_id]
            self.offboarded[tenant.tenant_id] = tenant
            self._restore_files()
            assert self._sql("SELECT count(*) FROM tenant_configs WHERE tenant_id = %s", (tenant.tenant_id,)) == [(0,)]

        @precondition(lambda self: bool(self.offboarded))
        @rule(data=st.data())
        def restore_within_the_window(self, data) -> None:
            tenant = data.draw(st.sampled_from(sorted(self.offboarded.values(), key=lambda t: t.slug)))
            result = self._tenantctl("restore", tenant.slug)
            assert result.returncode == 0, result.stderr[-2000:]
            del self.offboarded[tenant.tenant_id]
            self.tenants[tenant.tenant_id] = tenant
            self.created_at.pop(tenant.tenant_id, None)  # its row was purged with its history: a new one
            self._restore_files()
            outcome = self.env.up()
            assert outcome.ok, outcome.messages
            self._record()

        @rule()
        def two_environments_on_one_database(self) -> None:
            other = Environment(self.env.base / "second-environment", self.env.database)
            self.env.write(list(self.tenants.values()), other.tenants_dir)
            outcome = other.up()
            self.env.printed += other.printed
            aws_emulator.stop(other.state_dir)
            self._refused(outcome, "belongs to environment")

        @precondition(lambda self: not self.legacy_migrated)
        @rule()
        def up_on_an_unmigrated_environment(self) -> None:
            legacy, db, _tenants = self._legacy()
            rows = self._legacy_rows()
            try:
                run_rehearse(legacy.tenants_dir, legacy.database_url, db.app_dsn, False, state_base=legacy.state_base,
                             progress=self.env.printed.append)
            except RehearseFailure as exc:
                self.env.printed.append(str(exc))
                assert "tenantctl migrate-stacks" in str(exc) and "acme, globex" in str(exc), str(exc)
            else:
                raise AssertionError("an up of an unmigrated environment was not refused")
            assert self._legacy_rows() == rows

        @rule()
        def migrate_twice(self) -> None:
            legacy, db, tenants = self._legacy()
            rows = self._legacy_rows()
            with services(legacy, db) as (state, running):
                spec_for = spec_maker(ROOT, legacy.tenants_dir, state, legacy.state_dir, running)
                first = migrate(STACK, tenants, spec_for, dry_run=False, say=self.env.printed.append)
                second = migrate(STACK, tenants, spec_for, dry_run=False, say=self.env.printed.append)
            assert first.ok and second.ok, (first.as_dict(), second.as_dict())
            assert not second.moves or all(m.note for m in second.moves)
            assert self._legacy_rows() == rows
            self.legacy_migrated = True

        def _legacy(self):
            """An environment of the single-stack layout (tests/e2e/single_stack.py), made once per example."""
            if self.legacy is None:
                from cryptography.fernet import Fernet

                name = f"legacy_{uuid.uuid4().hex[:12]}"
                local_pg.create_database(name, template=template)
                base = tmp_root / name
                (base / "tenants").mkdir(parents=True)
                for path in EXAMPLE_TENANTS:
                    shutil.copy(path, base / "tenants" / path.name)
                db = SimpleNamespace(name=name, app_dsn=local_pg.dsn(APP_ROLE, name),
                                     fernet_key=Fernet.generate_key().decode(),
                                     superuser=local_pg.dsn(dbname=name))
                legacy = SimpleNamespace(state_base=base / "state", tenants_dir=base / "tenants",
                                         database_url=local_pg.dsn(PROVISIONER_ROLE, name))
                legacy.state_dir = _state_dir(legacy.state_base, legacy.database_url)
                state = RehearsalState.load(legacy.state_dir / STATE_FILE)
                state.secret("fernetKey", lambda: db.fernet_key)
                tenants = require_tenants(legacy.tenants_dir)
                single_stack_up(legacy, db, tenants)
                self.legacy = (legacy, db, tenants)
            return self.legacy

        def _legacy_rows(self) -> list[tuple]:
            _legacy, db, _tenants = self._legacy()
            with psycopg.connect(db.superuser, autocommit=True) as conn:
                return conn.execute("SELECT tenant_id, created_at FROM tenant_configs ORDER BY tenant_id").fetchall()

        def _tenantctl(self, *args: str) -> subprocess.CompletedProcess:
            result = subprocess.run(
                [sys.executable, "-m", "tenantctl", *args, "--rehearsal", "--state-dir", str(self.env.state_base),
                 "--database-url", self.env.database["provisioner"], "--tenants-dir", str(self.env.tenants_dir)],
                cwd=ROOT, capture_output=True, text=True, timeout=600)
            self.env.printed += [result.stdout, result.stderr]
            return result

        # --- what must always hold ------------------------------------------------------------------------

        @invariant()
        def every_tenant_keeps_its_row_history_key_secret_and_stack(self) -> None:
            if not hasattr(self, "env"):
                return
            for tenant_id, tenant in self.tenants.items():
                rows = self._sql("SELECT created_at FROM tenant_configs WHERE tenant_id = %s", (tenant_id,))
                assert rows == [(self.created_at[tenant_id],)], f"{tenant.slug}: row lost or recreated"
                history = self._sql("SELECT count(*) FROM ticket_history WHERE tenant_id = %s", (tenant_id,))
                assert history == [(1,)], f"{tenant.slug}: history lost"
                stack = existing_stack(self.env.tenants_dir, self.env.database["provisioner"], self.env.state_base,
                                       f"{STACK}.{tenant.slug}")
                assert stack.get_tag("tenant:id") == tenant_id
                exported = stack.outputs()["tenant"].value
                key = self._aws("kms", exported["kms_key_arn"]).describe_key(KeyId=exported["kms_key_arn"])
                assert key["KeyMetadata"]["KeyState"] == "Enabled", f"{tenant.slug}: KMS key not enabled"
                secret = self._aws("secretsmanager", exported["secret_arn"]).describe_secret(
                    SecretId=exported["secret_arn"])
                assert "DeletedDate" not in secret, f"{tenant.slug}: secret scheduled for deletion"

        @invariant()
        def nothing_printed_a_secret(self) -> None:
            if not hasattr(self, "env"):
                return
            printed = "\n".join(self.env.printed)
            for value in self.env.secrets():
                assert value not in printed

    return FleetModel


@pytest.mark.xdist_group("operator-model")
def test_no_operator_action_loses_a_tenant(local_pg, app_template, tmp_path):
    machine = make_machine(local_pg, app_template, tmp_path)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize=False,
        suppress_health_check=list(HealthCheck), database=None))


def test_the_catalogue_names_every_rule():
    machine = make_machine(None, "", Path("."))
    rules = {name for name, value in vars(machine).items() if hasattr(value, "hypothesis_stateful_rule")}
    assert set(CATALOGUE) == rules


class _FirstChoice:
    """Draws the first element of what a rule samples (the first two, for a list): a fixed walk of the catalogue."""

    def draw(self, strategy):
        strategy = getattr(strategy, "wrapped_strategy", strategy)
        if hasattr(strategy, "element_strategy"):
            return list(strategy.element_strategy.elements[:2])
        return strategy.elements[0]


# Actions that a dedicated end-to-end test proves in `make test`, named here: the bounded walk leaves them to it
# (rule 8's budget), and TENANT_MODEL_WALK=full (make test-long, the weekly workflow) walks them too.
COVERED_BY = {
    "rename_with_previous_slugs":
        "test_engine::test_a_database_url_change_and_a_rename_keep_the_row_history_and_signing_secret",
    "tenant_id_change": "test_fleet_safety::test_a_changed_tenant_id_is_refused_and_changes_nothing",
    "remove_a_file": "test_fleet_safety::test_a_missing_file_leaves_an_orphan_and_another_folder_is_refused",
    "other_tenants_folder": "test_fleet_safety::test_a_missing_file_leaves_an_orphan_and_another_folder_is_refused",
    "two_environments_on_one_database":
        "test_environment_claim::test_a_second_environment_on_the_same_database_is_refused_and_changes_no_row",
    "explicit_destroy":
        "test_offboarding::test_tenantctl_destroy_offboards_one_tenant_keeps_a_tombstone_and_restore_takes_it_back",
    "restore_within_the_window":
        "test_offboarding::test_tenantctl_destroy_offboards_one_tenant_keeps_a_tombstone_and_restore_takes_it_back",
    "up_on_an_unmigrated_environment":
        "test_migration_safety::test_up_and_preview_refuse_an_unmigrated_environment_and_migrate_stacks_runs_again_safely",
    "migrate_twice":
        "test_migration_safety::test_up_and_preview_refuse_an_unmigrated_environment_and_migrate_stacks_runs_again_safely",
}
FULL_WALK = os.environ.get("TENANT_MODEL_WALK") == "full"


def test_every_action_the_bounded_walk_leaves_out_names_a_test_that_exists():
    import importlib

    for action, named in COVERED_BY.items():
        module, _, function = named.partition("::")
        test = getattr(importlib.import_module(f"tests.e2e.{module}"), function, None)
        assert action in CATALOGUE and callable(test), named


@pytest.mark.xdist_group("operator-model")
def test_every_action_of_the_catalogue_runs_once_and_the_invariant_holds(local_pg, app_template, tmp_path):
    """Random draws may leave an action out of the bounded profile; this walk runs each one (in `make test`, each
    that no dedicated test covers: COVERED_BY), in an order where each is possible, and checks the invariant after
    every step."""
    machine = make_machine(local_pg, app_template, tmp_path)()
    data = _FirstChoice()
    walk = [("add", {"tier": "premium"}), ("edit", {"data": data}), ("rename_with_previous_slugs", {"data": data}),
            ("rename_without_previous_slugs", {"data": data}), ("tier_up", {"data": data}),
            ("tenant_id_change", {"data": data}), ("remove_a_file", {"data": data}),
            ("partial_checkout", {"data": data}), ("other_tenants_folder", {}),
            ("two_environments_on_one_database", {}), ("explicit_destroy", {"data": data}),
            ("restore_within_the_window", {"data": data}), ("up_on_an_unmigrated_environment", {}),
            ("migrate_twice", {})]
    assert {name for name, _ in walk} == set(CATALOGUE)
    if not FULL_WALK:
        walk = [(name, arguments) for name, arguments in walk if name not in COVERED_BY]
    try:
        machine.onboard_two(first="basic")
        for name, arguments in walk:
            getattr(machine, name)(**arguments)
            machine.every_tenant_keeps_its_row_history_key_secret_and_stack()
            machine.nothing_printed_a_secret()
    finally:
        machine.teardown()
