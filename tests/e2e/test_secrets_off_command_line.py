"""No secret's plaintext is ever an argument of a `pulumi` process (any user of the machine reads argv: ps,
/proc/<pid>/cmdline). A shim first on the engine's path logs the argv of every `pulumi` process the real code
starts, then runs the real CLI; no `up` runs, so these stay fast."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from components.naming import PROJECT
from fleet import engine
from fleet.rehearsal import STACK, LocalServices, RehearsalState, spec_maker
from tenancy.loader import require_tenants
from tests.conftest import ROOT


@pytest.fixture
def argv_log(tmp_path, monkeypatch) -> Path:
    """Every `pulumi` the engine runs (the Automation API's and tenantctl's own) goes through the shim."""
    real = engine.pulumi_binary(ROOT)
    log = tmp_path / "pulumi-argv.log"
    shim = tmp_path / "shim" / "bin" / "pulumi"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done >> "{log}"\necho --- >> "{log}"\n'
                    f'exec "{real}" "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setattr(engine, "pulumi_binary", lambda _root: shim)
    return log


def _commands(log: Path) -> list[str]:
    return [c for c in log.read_text().split("---\n") if c.strip()] if log.is_file() else []


def test_the_rehearsal_stacks_get_their_secrets_without_a_command_line_holding_one(argv_log, tenants_dir,
                                                                                    tmp_path):
    password = f"pw-{uuid.uuid4()}"
    services = LocalServices(database_url=f"postgresql://tenant_provisioner:{password}@127.0.0.1:5432/app",
                             app_database_url=f"postgresql://app:{password}-app@127.0.0.1:5432/app",
                             webhook_base_url="http://127.0.0.1:1", aws_endpoint="http://127.0.0.1:2")
    state = RehearsalState(tmp_path / "state" / "rehearsal.json")
    spec_for = spec_maker(ROOT, tenants_dir, state, tmp_path / "state", services)
    acme = next(t for t in require_tenants(tenants_dir) if t.slug == "acme")

    platform = engine.open_stack(spec_for(STACK, None))
    tenant = engine.open_stack(spec_for(f"{STACK}.acme", acme))

    secrets = [password, *state.environment["secrets"].values()]
    commands = _commands(argv_log)
    assert any("config" in c for c in commands)  # the shim saw the config calls
    leaked = [c.splitlines()[:4] for c in commands if any(s in c for s in secrets)]
    assert not leaked, f"secret plaintext on a pulumi command line: {leaked}"
    stored = platform.get_all_config()  # stdout, not argv
    assert stored[f"{PROJECT}:databaseUrl"].secret and password in stored[f"{PROJECT}:databaseUrl"].value
    [key] = acme.secret_names
    assert tenant.get_all_config()[f"{PROJECT}:{key}"].value == state.environment["secrets"][key]


def test_a_stack_opened_again_with_the_same_settings_writes_no_config(argv_log, tenants_dir, tmp_path):
    services = LocalServices(database_url="postgresql://tenant_provisioner:pw-1@127.0.0.1:5432/app",
                             app_database_url="postgresql://app:pw-2@127.0.0.1:5432/app",
                             webhook_base_url="http://127.0.0.1:1", aws_endpoint="http://127.0.0.1:2")
    state = RehearsalState(tmp_path / "state" / "rehearsal.json")
    spec_for = spec_maker(ROOT, tenants_dir, state, tmp_path / "state", services)
    engine.open_stack(spec_for(STACK, None))
    argv_log.unlink()

    again = engine.open_stack(spec_for(STACK, None))

    assert not [c for c in _commands(argv_log) if c.startswith("--non-interactive\nconfig\nset")]
    assert again.get_all_config()[f"{PROJECT}:databaseUrl"].value == services.database_url


def test_migrate_stacks_copies_secrets_without_a_command_line_holding_one(argv_log, tmp_path):
    from fleet.migrate_stacks import _copy_config

    acme = next(t for t in require_tenants(ROOT / "tenants") if t.slug == "acme")
    [key] = acme.secret_names
    secret = f"acme-key-{uuid.uuid4()}"
    backend = engine.Backend(project_root=ROOT, backend_dir=tmp_path / "backend", work_dir=tmp_path / "work",
                             passphrase="migrate-test")  # noqa: S106 (a throwaway local passphrase)
    source = engine.open_stack(engine.StackSpec(backend, "prod", secrets={key: secret}))
    dest = engine.open_stack(engine.StackSpec(backend, "prod.acme"))

    _copy_config(source, dest, acme)

    assert not [c for c in _commands(argv_log) if secret in c]
    stored = dest.get_all_config()[f"{PROJECT}:{key}"]
    assert (stored.value, stored.secret) == (secret, True)
    assert secret not in (tmp_path / "work" / "Pulumi.prod.acme.yaml").read_text()
