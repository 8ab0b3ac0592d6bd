"""`tenantctl up` on a project as an operator has it: its stack files, a `pulumi login` backend, the real CLI.

The project is this one (linked), with its own `stacks/` and `tenants/`; the backend is a local folder
given as PULUMI_BACKEND_URL, secrets use the passphrase provider; stacks and their config are made with
the `pulumi` commands the runbook gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fleet.engine import engine_environment, pulumi_binary
from services import aws_emulator
from services.receiver import WebhookReceiver
from tests.conftest import ROOT
from tests.e2e.conftest import linked_project
from tests.tenant_text import tenant_yaml

PASSPHRASE = "tenantctl-up-test"  # noqa: S105 (a throwaway local passphrase)


@pytest.fixture
def project(tmp_path, tenants_dir):
    return linked_project(tmp_path, tenants_dir)


def test_tenantctl_up_runs_a_stack_per_tenant_isolates_a_failure_and_offboards_only_a_removal(project, app_db,
                                                                                              tmp_path):
    env = engine_environment(ROOT, {"PULUMI_BACKEND_URL": (tmp_path / "backend").as_uri(),
                                    "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE})
    (tmp_path / "backend").mkdir()
    pulumi = str(pulumi_binary(ROOT))

    def run(*args, check=True):
        result = subprocess.run([pulumi, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 or not check, result.stderr
        return result

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=project,
                       check=True, capture_output=True)

    def tenantctl(*args):
        return subprocess.run([sys.executable, "-m", "tenantctl", *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=600)

    aws = aws_emulator.ensure_running(tmp_path / "aws")
    manifests = tmp_path / "manifests"
    try:
        with WebhookReceiver(app_db.app_dsn, app_db.fernet_key) as receiver:
            run("stack", "init", "test", "--secrets-provider", "passphrase")
            for key, value in (("webhookBaseUrl", receiver.base_url), ("kubernetesRenderDir", str(manifests))):
                run("config", "set", key, value, "--stack", "test")
            for key, value in (("databaseUrl", app_db.provisioner_dsn), ("appDatabaseUrl", app_db.app_dsn),
                               ("fernetKey", app_db.fernet_key)):
                run("config", "set", "--secret", key, value, "--stack", "test")
            for slug in ("acme", "globex"):
                run("stack", "init", f"test.{slug}", "--secrets-provider", "passphrase")
                for key, value in (("aws:region", "us-east-1"), ("awsEndpoint", aws.endpoint),
                                   ("kubernetesRenderDir", str(manifests))):
                    run("config", "set", key, value, "--stack", f"test.{slug}")
            run("config", "set", "--secret", "acme-servicedesk-api-key", "acme-key-1", "--stack", "test.acme")

            first = tenantctl("up", "--env", "test", "--json")
            run("config", "set", "--secret", "globex-servicedesk-api-key", "globex-key-1", "--stack", "test.globex")
            second = tenantctl("up", "--env", "test", "--json")
            git("init", "-q", "-b", "main")
            git("add", "-A")
            git("commit", "-qm", "two tenants")
            # Another tenants folder: both stacks would be orphans, above the bound; nothing runs.
            (project / "elsewhere").mkdir()
            (project / "elsewhere" / "initech.yaml").write_text(tenant_yaml("initech", tier="basic"))
            elsewhere = tenantctl("up", "--env", "test", "--tenants-dir", "elsewhere", "--json")
            (project / "tenants" / "globex.yaml").unlink()
            # Missing from the checkout only: an orphan, left alone (exit 1), never destroyed.
            orphan = tenantctl("up", "--env", "test", "--json", "--changed-since", "HEAD")
            git("commit", "-qam", "offboard globex")
            # No recorded export of globex: its removal is refused (exit 1), nothing offboarded.
            unexported = tenantctl("up", "--env", "test", "--json", "--changed-since", "HEAD~1")
            third = tenantctl("up", "--env", "test", "--json", "--changed-since", "HEAD~1", "--without-export")
            stacks = json.loads(run("stack", "ls", "--json").stdout)
            tags = json.loads(run("stack", "tag", "ls", "--json", "--stack", "test.globex").stdout)
    finally:
        aws_emulator.stop(tmp_path / "aws")

    report = json.loads(first.stdout)
    outcomes = {o["stack"]: o for o in report["tenants"]}
    assert first.returncode == 1 and report["platform"]["status"] == "ok", report["platform"]["errors"]
    assert report["waves"] == [["acme", "globex"]]
    # globex's missing key fails globex alone; acme, in the same wave, is created and checked.
    assert outcomes["test.globex"]["status"] == "failed"
    assert any("pulumi config set --secret globex-servicedesk-api-key" in e for e in outcomes["test.globex"]["errors"])
    assert outcomes["test.acme"]["status"] == "ok" and outcomes["test.acme"]["created"] >= 20
    assert outcomes["test.acme"]["outputs"]["tenant"]["checks"] and all(
        outcomes["test.acme"]["outputs"]["tenant"]["checks"].values())

    again = {o["stack"]: o for o in json.loads(second.stdout)["tenants"]}
    assert second.returncode == 0, [(o["stack"], o["errors"]) for o in json.loads(second.stdout)["tenants"]]
    assert again["test.acme"]["created"] == again["test.acme"]["updated"] == again["test.acme"]["deleted"] == 0
    assert again["test.acme"]["replaced"] == 0
    assert again["test.globex"]["created"] >= 8

    assert elsewhere.returncode == 1 and "refused before anything ran" in json.dumps(json.loads(elsewhere.stdout))
    assert "test.acme" in elsewhere.stdout and "test.globex" in elsewhere.stdout
    left = json.loads(orphan.stdout)
    assert orphan.returncode == 1 and left["orphans"] == ["test.globex"] and left["removed"] == []

    refused = json.loads(unexported.stdout)
    assert unexported.returncode == 1 and [o["status"] for o in refused["removed"]] == ["failed"]
    assert "tenantctl export globex --env test" in refused["removed"][0]["errors"][0]

    removal = json.loads(third.stdout)
    assert third.returncode == 0, third.stdout
    assert [o["stack"] for o in removal["removed"]] == ["test.globex"] and removal["removed"][0]["deleted"] >= 8
    # Offboarded, not erased: the stack stays as a tombstone with its history.
    assert sorted(s["name"] for s in stacks) == ["test", "test.acme", "test.globex"]
    assert "tenant:offboarded-at" in tags and tags["tenant:id"] == "c5ad57d3-7689-4bb8-8876-51f571580a7e"
    assert [str(r[0]) for r in app_db.execute("SELECT tenant_id FROM tenant_configs")] == [
        "20ab6862-0914-44a5-8827-42ff80980e24"]
    assert os.environ.get("PULUMI_CONFIG_PASSPHRASE") != PASSPHRASE  # nothing leaked into this process
