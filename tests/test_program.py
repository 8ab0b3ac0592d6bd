"""`__main__.py` itself: the stack's name picks the platform or one tenant, and bad input registers nothing."""

from __future__ import annotations

import pytest

from fleet.mock_runtime import ProgramError, Secret
from tests.program_runs import run_stack, stack_config
from tests.tenant_text import tenant_yaml

TENANT_TYPE = "tenant-onboarding:index:TenantStack"


def test_a_tenant_stack_declares_exactly_its_own_tenant(repo_root, tenants_dir):
    config, secret_keys = stack_config(repo_root, tenants_dir)
    run = run_stack(repo_root, "dev.globex", config, secret_keys)

    assert [r.name for r in run.resources if r.type == TENANT_TYPE] == ["globex"]
    assert all(r.name.startswith("globex") for r in run.resources if r.parent_name)
    assert run.exports["tenant"]["slug"] == "globex"
    assert run.exports["tenant"]["webhook_url"].startswith("https://api.example.com/webhook/servicedesk?tenant_id=")


def test_the_platform_stack_exports_what_tenants_share_with_secrets_kept_secret(repo_root, tenants_dir):
    config, secret_keys = stack_config(repo_root, tenants_dir)
    run = run_stack(repo_root, "dev", config, secret_keys)

    assert not [r for r in run.resources if r.type == TENANT_TYPE]
    [namespace] = [r for r in run.resources if r.type == "kubernetes:core/v1:Namespace"]
    assert namespace.inputs["metadata"]["name"] == "production"
    assert all(isinstance(run.exports[k], Secret) for k in ("databaseUrl", "appDatabaseUrl", "fernetKey"))
    assert run.exports["sharedNamespace"] == "production" and run.exports["checksNonce"] == "0"


def test_the_platform_secrets_reach_the_tenant_as_secrets(repo_root, tenants_dir):
    config, secret_keys = stack_config(repo_root, tenants_dir)
    run = run_stack(repo_root, "dev.acme", config, secret_keys)

    [row] = [r for r in run.resources if r.type.endswith(":TenantConfigRow")]
    [check] = [r for r in run.resources if r.type.endswith(":OnboardingCheck")]
    assert isinstance(row.inputs["database_url"], Secret) and isinstance(row.inputs["fernet_key"], Secret)
    assert isinstance(check.inputs["app_database_url"], Secret)


def test_invalid_tenant_file_stops_program_before_any_resource(repo_root, tenants_dir):
    (tenants_dir / "broken.yaml").write_text(tenant_yaml("broken").replace("https://", "http://"))
    config, secret_keys = stack_config(repo_root, tenants_dir)
    with pytest.raises(ProgramError, match="error\\(s\\) in tenant files"):
        run_stack(repo_root, "dev.acme", config, secret_keys)


def test_missing_secret_config_names_the_command(repo_root, tenants_dir):
    config, secret_keys = stack_config(repo_root, tenants_dir, drop="globex-servicedesk-api-key")
    with pytest.raises(ProgramError) as info:
        run_stack(repo_root, "dev.globex", config, secret_keys)
    command = "pulumi config set --secret globex-servicedesk-api-key --stack dev.globex (it asks for the value)"
    assert command in str(info.value)


@pytest.mark.parametrize(("env", "option"), [("dev", "--env dev"), ("rehearsal", "--rehearsal")])
def test_a_tenant_stack_without_its_tenant_file_says_how_it_goes_away(repo_root, tenants_dir, env, option):
    """Only by name (fleet rule 3: an orphan is never destroyed), with the command of its own environment."""
    config, secret_keys = stack_config(repo_root, tenants_dir)
    with pytest.raises(ProgramError) as info:
        run_stack(repo_root, f"{env}.initech", config, secret_keys)
    assert "has no tenant file for it" in str(info.value)
    assert f"`tenantctl destroy initech {option} --yes`" in str(info.value)


def test_insecure_webhook_base_url_is_refused(repo_root, tenants_dir):
    config, secret_keys = stack_config(repo_root, tenants_dir, webhookBaseUrl="http://api.example.com")
    with pytest.raises(ProgramError, match="must be https"):
        run_stack(repo_root, "dev", config, secret_keys)


def test_run_checks_false_leaves_out_the_check(repo_root, tenants_dir):
    config, secret_keys = stack_config(repo_root, tenants_dir, runChecks="false")
    run = run_stack(repo_root, "dev.acme", config, secret_keys)
    types = {r.type for r in run.resources}
    assert "pulumi-python:dynamic/tenant-onboarding:TenantConfigRow" in types
    assert "pulumi-python:dynamic/tenant-onboarding:OnboardingCheck" not in types


def test_purge_data_config_marks_the_row_for_purge(repo_root, tenants_dir):
    def purge(config_value):
        extra = {"purgeData": config_value} if config_value else {}
        config, secret_keys = stack_config(repo_root, tenants_dir, **extra)
        run = run_stack(repo_root, "dev.acme", config, secret_keys)
        return [r.inputs["purge_on_delete"] for r in run.resources if r.type.endswith(":TenantConfigRow")]

    assert purge('{"acme": true}') == [True]
    assert purge('{"globex": true}') == [False] and purge(None) == [False]


def test_engine_versions_match_the_python_sdk_pins(repo_root):
    """engine/build.sh builds the provider versions the SDKs in requirements.txt ask the engine for."""
    versions = dict(line.split("=", 1) for line in (repo_root / "engine" / "versions.env").read_text().splitlines()
                    if line and not line.startswith("#"))
    pins = dict(line.split("==", 1) for line in (repo_root / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert versions["PULUMI_SDK_VERSION"] == pins["pulumi"]
    assert versions["KUBERNETES_VERSION"] == pins["pulumi-kubernetes"]
    assert versions["RANDOM_VERSION"] == pins["pulumi-random"]


def test_every_engine_process_is_told_not_to_download(repo_root):
    from fleet.engine import engine_environment

    env = engine_environment(repo_root, {})
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["PULUMI_IGNORE_AMBIENT_PLUGINS"] == "true"


def test_an_empty_tenants_folder_stops_a_tenant_stack(repo_root, tmp_path):
    empty = tmp_path / "tenants"
    empty.mkdir()
    config, secret_keys = stack_config(repo_root, empty)
    with pytest.raises(ProgramError, match="no tenant files"):
        run_stack(repo_root, "dev.acme", config, secret_keys)


def test_a_servicedesk_host_that_resolves_to_a_private_address_stops_the_program(repo_root, tenants_dir, monkeypatch):
    import socket

    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "acme.sdpondemand.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    config, secret_keys = stack_config(repo_root, tenants_dir)
    with pytest.raises(ProgramError) as raised:
        run_stack(repo_root, "dev.acme", config, secret_keys)
    assert "acme.sdpondemand.com resolves to a private or reserved address (10.0.0.7)" in str(raised.value)


def test_a_host_that_does_not_resolve_here_is_not_an_error():
    from checks.host import resolved_non_public

    assert resolved_non_public(["no-such-host.invalid"], budget=2) == {}


def test_the_scheduled_verification_cronjob_runs_a_real_command(repo_root, tenants_dir):
    """Its least privilege: tests/components/test_scheduled_verification.py."""
    import click
    import typer

    from tenantctl.cli import app
    from tests.components.test_scheduled_verification import SCHEDULED

    config, secret_keys = stack_config(repo_root, tenants_dir, **SCHEDULED)
    run = run_stack(repo_root, "dev", config, secret_keys)
    [cron] = [r for r in run.resources if r.type == "kubernetes:batch/v1:CronJob"]
    pod = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert cron.inputs["spec"]["concurrencyPolicy"] == "Forbid"
    command = pod["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "tenantctl"]
    group = typer.main.get_command(app)
    verify = group.get_command(click.Context(group), command[3])
    verify.make_context(command[3], command[4:])  # the job's command line parses: no typo to find at 3 a.m.


def test_without_a_schedule_there_is_no_cronjob(repo_root, tenants_dir):
    config, secret_keys = stack_config(repo_root, tenants_dir)
    run = run_stack(repo_root, "dev", config, secret_keys)
    assert not [r for r in run.resources if r.type == "kubernetes:batch/v1:CronJob"]
