"""`tenantctl new` writes a valid file once, with a fresh UUID, and prints the next steps."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from tenancy.loader import load_tenants
from tenantctl.cli import app

runner = CliRunner()
CLIENT = ["--servicedesk-url", "https://alpha.sdpondemand.com", "--admin-email", "it@alpha-msp.example"]


def test_new_premium_tenant_validates(tmp_path):
    result = runner.invoke(app, ["new", "initech", "--name", 'Initech "IT"', "--tier", "premium",
                                 "--tenants-dir", str(tmp_path), *CLIENT])
    assert result.exit_code == 0, result.stdout + result.stderr
    loaded = load_tenants(tenants_dir=tmp_path)
    assert loaded.ok, loaded.problems
    [tenant] = [t.tenant for t in loaded.tenants]
    assert tenant.name == 'Initech "IT"' and tenant.tier.value == "premium"
    assert "pulumi config set --secret initech-servicedesk-api-key" in result.stdout
    assert "pull request" in result.stdout


def test_new_gives_each_tenant_its_own_uuid(tmp_path):
    for slug in ("alpha", "bravo"):
        args = ["new", slug, "--name", slug, "--tier", "basic", "--tenants-dir", str(tmp_path), *CLIENT]
        assert runner.invoke(app, args).exit_code == 0
    ids = {re.search(r"tenant_id: (\S+)", p.read_text()).group(1) for p in tmp_path.glob("*.yaml")}
    assert len(ids) == 2


def test_new_refuses_to_overwrite(tmp_path):
    args = ["new", "alpha", "--name", "A", "--tier", "basic", "--tenants-dir", str(tmp_path), *CLIENT]
    assert runner.invoke(app, args).exit_code == 0
    before = (tmp_path / "alpha.yaml").read_text()
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert (tmp_path / "alpha.yaml").read_text() == before


def test_new_rejects_bad_slug_and_http_url(tmp_path):
    bad_slug = ["new", "Bad_Slug", "--name", "x", "--tier", "basic", "--tenants-dir", str(tmp_path), *CLIENT]
    assert runner.invoke(app, bad_slug).exit_code == 1
    result = runner.invoke(app, ["new", "alpha", "--name", "x", "--tier", "basic", "--servicedesk-url",
                                 "http://sd.example.com", "--admin-email", "it@alpha-msp.example",
                                 "--tenants-dir", str(tmp_path)])
    assert result.exit_code == 1 and "https" in result.stderr
    assert list(tmp_path.glob("*.yaml")) == []


def test_new_needs_the_clients_url_and_email_rather_than_writing_placeholders(tmp_path):
    result = runner.invoke(app, ["new", "alpha", "--name", "A", "--tier", "basic", "--tenants-dir", str(tmp_path)])

    assert result.exit_code == 2 and "--servicedesk-url" in result.stderr
    assert not (tmp_path / "alpha.yaml").exists()


def test_schema_write_into_a_missing_folder_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["schema", "--write", "--tenants-dir", str(tmp_path / "missing")])

    assert result.exit_code == 1 and "is not a folder" in result.stderr
