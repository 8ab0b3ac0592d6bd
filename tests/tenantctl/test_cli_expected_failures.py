"""Every tenantctl command answers an expected failure with a one-line error and a non-zero exit, never a traceback.

The commands are enumerated from the typer app, so a new command without a failure scenario fails
`test_every_command_has_a_failure_scenario`. The failures are cheap: no engine run happens (unreachable
ports, no backend login, an empty state folder, a held lock file, a broken tenant file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import re
import shutil
import subprocess

import pytest
import typer
from typer.testing import CliRunner

from fleet import environment_lock as lock
from tenantctl.cli import app
from tests.tenant_text import tenant_yaml

runner = CliRunner()
SECRET = "s3cr3t-pw"  # noqa: S105 (a test value that must never be printed)
DEAD_DB = f"postgresql://tenant_provisioner:{SECRET}@127.0.0.1:1/app"
DEAD_APP_DB = f"postgresql://app_user:{SECRET}@127.0.0.1:1/app"
FERNET = "x" * 43 + "="

# (command, failure, arguments); {T} the tenants folder, {B} a broken one, {S} an empty state folder, {O} a folder.
SCENARIOS = [
    ("validate", "bad input", ["validate", "--tenants-dir", "{B}"]),
    ("new", "bad input", ["new", "Bad_Slug", "--name", "X", "--tier", "basic", "--servicedesk-url",
                          "https://x.example.com", "--admin-email", "a@x.example.com", "--tenants-dir", "{T}"]),
    ("schema", "bad input", ["schema", "--write", "--tenants-dir", "{O}/missing"]),
    ("plan", "bad input", ["plan", "--tenants-dir", "{B}"]),
    ("handoff", "bad input", ["handoff", "nosuch", "--tenants-dir", "{T}"]),
    ("rotate-signing-secret", "bad input", ["rotate-signing-secret", "acme", "--env", "prod",
                                            "--tenants-dir", "{B}"]),
    ("handoff", "no state", ["handoff", "acme", "--rehearsal", "--state-dir", "{S}", "--tenants-dir", "{T}"]),
    ("destroy", "no login", ["destroy", "acme", "--env", "prod", "--yes", "--without-export", "--tenants-dir", "{T}"]),
    ("destroy", "no state", ["destroy", "acme", "--rehearsal", "--state-dir", "{S}", "--yes", "--without-export",
                             "--tenants-dir", "{T}"]),
    ("destroy", "held lock", ["destroy", "acme", "--env", "dev", "--yes", "--without-export", "--tenants-dir", "{T}"]),
    ("destroy", "unreachable service", ["destroy", "acme", "--env", "dev", "--database-url", DEAD_DB,
                                        "--tenants-dir", "{T}"]),
    ("export", "unreachable service", ["export", "acme", "--env", "dev", "--database-url", DEAD_DB, "--recipient",
                                       "{O}/operator.pub", "--out", "{O}/acme.export", "--tenants-dir", "{T}"]),
    ("export", "no state", ["export", "acme", "--rehearsal", "--state-dir", "{S}", "--recipient", "{O}/operator.pub",
                            "--out", "{O}/acme.export", "--tenants-dir", "{T}"]),
    ("export", "bad input", ["export", "acme", "--recipient", "{O}/operator.pub", "--out", "{O}/acme.export",
                             "--tenants-dir", "{B}"]),
    ("export", "bad key", ["export", "acme", "--recipient", "{O}/Pulumi.yaml", "--out", "{O}/acme.export",
                           "--tenants-dir", "{T}"]),
    ("import", "bad export", ["import", "{O}/Pulumi.yaml", "--identity", "{O}/operator.key", "--env", "dev",
                             "--tenants-dir", "{T}"]),
    ("restore", "no login", ["restore", "acme", "--env", "prod", "--tenants-dir", "{T}"]),
    ("restore", "no state", ["restore", "acme", "--rehearsal", "--state-dir", "{S}", "--tenants-dir", "{T}"]),
    ("preview", "no login", ["preview", "--env", "prod", "--tenants-dir", "{T}"]),
    ("preview", "unreachable backend", ["preview", "--env", "prod", "--tenants-dir", "{T}"]),
    ("preview", "bad input", ["preview", "--env", "dev", "--tenants-dir", "{B}"]),
    ("preview", "no state", ["preview", "--rehearsal", "--state-dir", "{S}", "--tenants-dir", "{T}"]),
    ("up", "no login", ["up", "--env", "prod", "--tenants-dir", "{T}"]),
    ("up", "held lock", ["up", "--env", "dev", "--tenants-dir", "{T}"]),
    ("up", "bad input", ["up", "--env", "dev", "--tenants-dir", "{B}"]),
    ("up", "no state", ["up", "--rehearsal", "--state-dir", "{S}", "--tenants-dir", "{T}"]),
    ("migrate-stacks", "no login", ["migrate-stacks", "--env", "prod", "--tenants-dir", "{T}"]),
    ("migrate-stacks", "held lock", ["migrate-stacks", "--env", "dev", "--tenants-dir", "{T}"]),
    ("migrate-stacks", "no state", ["migrate-stacks", "--rehearsal", "--state-dir", "{S}", "--tenants-dir", "{T}"]),
    ("unlock", "held lock", ["unlock", "--env", "dev", "--tenants-dir", "{T}"]),
    ("render-operator", "bad input", ["render-operator", "--out", "{O}/ops", "--repo", "https://example.com/r.git",
                                      "--namespace", "ns", "--service-account", "sa",
                                      "--commit", "0123456789abcdef0123456789abcdef01234567",
                                      "--backend", "file:///tmp/x", "--tenants-dir", "{B}"]),
    ("status", "no login", ["status", "--env", "prod", "--tenants-dir", "{T}"]),
    ("status", "unreachable backend", ["status", "--env", "prod", "--tenants-dir", "{T}"]),
    ("status", "no state", ["status", "--rehearsal", "--state-dir", "{S}", "--tenants-dir", "{T}"]),
    ("status", "unreachable service", ["status", "--env", "dev", "--database-url", DEAD_DB, "--tenants-dir", "{T}"]),
    ("verify", "unreachable service", ["verify", "acme", "--database-url", DEAD_DB, "--app-database-url",
                                       DEAD_APP_DB, "--fernet-key", FERNET, "--tenants-dir", "{T}", "--env", "dev"]),
    ("verify", "no state", ["verify", "acme", "--rehearsal", "--state-dir", "{S}", "--tenants-dir", "{T}"]),
    ("verify", "bad input", ["verify", "--all", "--checks", "rls", "--app-database-url", DEAD_APP_DB,
                             "--tenants-dir", "{B}"]),
    ("rehearse", "held lock", ["rehearse", "--state-dir", "{S}", "--tenants-dir", "{T}"]),
    ("rehearse", "bad input", ["rehearse", "--state-dir", "{S}", "--tenants-dir", "{B}"]),
    ("rehearse", "unreachable service", ["rehearse", "--state-dir", "{S}", "--database-url", DEAD_DB,
                                         "--tenants-dir", "{T}"]),
]


def test_every_command_has_a_failure_scenario():
    commands = set(typer.main.get_command(app).commands)
    assert commands == {command for command, _failure, _args in SCENARIOS}


@pytest.fixture
def project(tmp_path, repo_root, monkeypatch):
    (tmp_path / "tenants").mkdir()
    acme = tenant_yaml("acme", tenant_id="20ab6862-0914-44a5-8827-42ff80980e24")
    (tmp_path / "tenants" / "acme.yaml").write_text(acme)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "acme.yaml").write_text(tenant_yaml("acme").replace("tier: premium", "tier: gold"))
    (tmp_path / "state").mkdir()
    _operator_key(tmp_path)
    shutil.copy(repo_root / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / ".venv").symlink_to(repo_root / ".venv")  # the engine `make setup` built
    (tmp_path / "stacks").mkdir()
    shutil.copy(repo_root / "stacks" / "Pulumi.dev.yaml", tmp_path / "stacks" / "Pulumi.dev.yaml")
    monkeypatch.setenv("PULUMI_BACKEND_URL", (tmp_path / "backend").as_uri())
    monkeypatch.delenv("PULUMI_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("TENANT_DATABASE_URL", raising=False)
    monkeypatch.delenv("APP_DATABASE_URL", raising=False)
    monkeypatch.setenv("PULUMI_SKIP_UPDATE_CHECK", "true")
    return tmp_path


def _operator_key(folder) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate()
    (folder / "operator.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (folder / "operator.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def _arrange(failure: str, project, monkeypatch, stack: contextlib.ExitStack) -> None:
    if failure == "no login":
        monkeypatch.delenv("PULUMI_BACKEND_URL")
        monkeypatch.setenv("PULUMI_HOME", str(project / "pulumi-home"))  # no credentials of this machine
    elif failure == "unreachable backend":
        monkeypatch.setenv("PULUMI_BACKEND_URL", "http://127.0.0.1:1")
        monkeypatch.setenv("PULUMI_ACCESS_TOKEN", "pul-" + "0" * 40)
    elif failure == "held lock":
        child = subprocess.Popen(["sleep", "60"])
        stack.callback(child.wait)
        stack.callback(child.kill)
        holder = dataclasses.replace(lock.this_process("up"), pid=child.pid, session=None,
                                     start_ticks=lock.process_start_ticks(child.pid), token="other-run")  # noqa: S106
        path = lock.lock_path(project / "backend" / ".tenantctl", "dev")
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(dataclasses.asdict(holder)))
        # and the rehearsal's state folder, held by another rehearsal
        (project / "state" / "embedded").mkdir()
        held = stack.enter_context((project / "state" / "embedded" / ".lock").open("w"))
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.parametrize(("command", "failure", "args"), SCENARIOS, ids=[f"{c}: {f}" for c, f, _a in SCENARIOS])
def test_an_expected_failure_is_one_line_without_a_traceback(project, monkeypatch, command, failure, args):
    words = [a.format(T=project / "tenants", B=project / "broken", S=project / "state", O=project) for a in args]
    monkeypatch.chdir(project)
    with contextlib.ExitStack() as stack:
        _arrange(failure, project, monkeypatch, stack)
        result = runner.invoke(app, words)
    shown = result.stdout + result.stderr
    assert result.exit_code not in (0, None), shown
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in shown
    assert SECRET not in shown
    errors = [line for line in shown.splitlines() if re.match(r"^(error|\S+:\d+: )", line)]
    assert errors, shown
    assert all(len(line) < 400 for line in errors), shown
    if failure == "bad input" and command not in ("new", "schema", "handoff"):
        assert re.search(r"acme\.yaml:\d+", shown), shown  # located in the file


def test_debug_shows_the_traceback(project, monkeypatch):
    monkeypatch.delenv("PULUMI_BACKEND_URL")
    monkeypatch.setenv("PULUMI_HOME", str(project / "pulumi-home"))
    monkeypatch.chdir(project)
    result = runner.invoke(app, ["--debug", "status", "--env", "prod", "--tenants-dir", str(project / "tenants")])
    assert result.exit_code not in (0, None)
    assert "Traceback (most recent call last)" in result.stderr
