"""`__main__.py` itself: it refuses to register anything on invalid tenant files or missing secrets."""

from __future__ import annotations

import pytest

from tenantctl.mock_runtime import ProgramError, run_program
from tenantctl.plan import plan_config
from tests.tenantctl.tenant_text import tenant_yaml


def config_for(root, tenants_dir, drop: str | None = None):
    names = ["acme-servicedesk-api-key", "globex-servicedesk-api-key"]
    config, secret_keys = plan_config(root, tenants_dir, "dev", names)
    if drop:
        config.pop(f"tenant-onboarding:{drop}")
    return config, secret_keys


def test_invalid_tenant_file_stops_program_before_any_resource(repo_root, tenants_dir):
    (tenants_dir / "broken.yaml").write_text(tenant_yaml("broken").replace("https://", "http://"))
    config, secret_keys = config_for(repo_root, tenants_dir)
    with pytest.raises(ProgramError, match="error\\(s\\) in tenant files"):
        run_program(repo_root, "dev", config, secret_keys)


def test_missing_secret_config_names_the_command(repo_root, tenants_dir):
    config, secret_keys = config_for(repo_root, tenants_dir, drop="globex-servicedesk-api-key")
    with pytest.raises(ProgramError) as info:
        run_program(repo_root, "dev", config, secret_keys)
    assert "pulumi config set --secret globex-servicedesk-api-key" in str(info.value)


def test_insecure_webhook_base_url_is_refused(repo_root, tenants_dir):
    config, secret_keys = config_for(repo_root, tenants_dir)
    config["tenant-onboarding:webhookBaseUrl"] = "http://api.example.com"
    with pytest.raises(ProgramError, match="must be https"):
        run_program(repo_root, "dev", config, secret_keys)


def test_run_checks_false_leaves_out_the_check(repo_root, tenants_dir):
    config, secret_keys = config_for(repo_root, tenants_dir)
    config["tenant-onboarding:runChecks"] = "false"
    run = run_program(repo_root, "dev", config, secret_keys)
    types = {r.type for r in run.resources}
    assert "pulumi-python:dynamic/tenant-onboarding:TenantConfigRow" in types
    assert "pulumi-python:dynamic/tenant-onboarding:OnboardingCheck" not in types


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
    from tenantctl.engine import engine_environment

    env = engine_environment(repo_root, {})
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["PULUMI_IGNORE_AMBIENT_PLUGINS"] == "true"


def test_an_empty_tenants_folder_stops_the_program_unless_allowed(repo_root, tmp_path):
    empty = tmp_path / "tenants"
    empty.mkdir()
    config, secret_keys = plan_config(repo_root, empty, "dev", [])

    with pytest.raises(ProgramError, match="would remove every tenant"):
        run_program(repo_root, "dev", config, secret_keys)
    config["tenant-onboarding:allowNoTenants"] = "true"
    assert run_program(repo_root, "dev", config, secret_keys).resources == []


def test_a_servicedesk_host_that_resolves_to_a_private_address_stops_the_program(repo_root, tenants_dir, monkeypatch):
    import socket

    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "acme.sdpondemand.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    config, secret_keys = config_for(repo_root, tenants_dir)
    with pytest.raises(ProgramError) as raised:
        run_program(repo_root, "dev", config, secret_keys)
    assert "acme.sdpondemand.com resolves to a private or reserved address (10.0.0.7)" in str(raised.value)


def test_a_host_that_does_not_resolve_here_is_not_an_error():
    from tenantctl.host_checks import resolved_non_public

    assert resolved_non_public(["no-such-host.invalid"], budget=2) == {}
