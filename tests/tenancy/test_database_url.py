"""Database URLs are parsed once at the edge: clear errors without the password, verified TLS off this machine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tenancy.database_url import DatabaseUrlError, parse_database_url

PASSWORD = "hunter2-s3cret"  # noqa: S105 (a test value)


@pytest.mark.parametrize("url", [
    f"app_user:{PASSWORD}@db.internal/app",  # missing scheme
    f"postgresql://app_user:{PASSWORD} with space@db.example.com/app?sslmode=verify-full",
    f"postgresql://app_user:{PASSWORD}@db.example.com:notaport/app?sslmode=verify-full",
])
def test_a_malformed_url_is_a_clear_error_without_the_password(url):
    with pytest.raises(DatabaseUrlError) as raised:
        parse_database_url(url)

    assert PASSWORD not in str(raised.value)


@pytest.mark.parametrize("query", ["", "?sslmode=prefer", "?sslmode=require", "?sslmode=disable"])
def test_a_remote_database_must_verify_the_server(query):
    url = f"postgresql://app_user:{PASSWORD}@db.example.com:5432/app{query}"

    with pytest.raises(DatabaseUrlError, match="does not verify the server") as raised:
        parse_database_url(url)

    assert PASSWORD not in str(raised.value)
    assert parse_database_url(url, allow_unverified=True) == url


@pytest.mark.parametrize("url", [
    "postgresql://app_user@127.0.0.1:5432/app", "postgresql://app_user@localhost/app",
    "postgresql://app_user@[::1]:5432/app", "postgresql://app_user@db.example.com/app?sslmode=verify-full",
    "postgresql://app_user@db.example.com/app?sslmode=verify-ca&sslrootcert=/etc/ca.pem",
])
def test_loopback_or_verified_urls_pass(url):
    assert parse_database_url(url) == url


@pytest.mark.parametrize("command", [
    ["verify", "acme", "--checks", "rls", "--database-url"],
    ["destroy", "acme", "--database-url"],
    ["rehearse", "--database-url"],
])
def test_commands_refuse_a_bad_url_before_connecting(repo_root, command):
    url = f"app_user:{PASSWORD}@db.internal/app"
    result = subprocess.run([sys.executable, "-m", "tenantctl", *command, url], cwd=repo_root,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "must start with postgresql://" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_the_program_refuses_an_unverified_remote_database(repo_root, tenants_dir):
    from fleet.mock_runtime import ProgramError, run_program
    from fleet.plan import plan_config

    config, secret_keys = plan_config(repo_root, tenants_dir, "dev", ["acme-servicedesk-api-key",
                                                                       "globex-servicedesk-api-key"])
    config["tenant-onboarding:databaseUrl"] = f"postgresql://tenant_provisioner:{PASSWORD}@db.example.com/app"
    config["tenant-onboarding:appDatabaseUrl"] = "postgresql://app_user@127.0.0.1/app"

    with pytest.raises(ProgramError) as raised:
        run_program(repo_root, "dev", config, secret_keys)

    assert "databaseUrl connects to db.example.com" in str(raised.value)
    assert PASSWORD not in str(raised.value)
    config["tenant-onboarding:allowUnverifiedDatabaseTls"] = "true"
    assert run_program(repo_root, "dev", config, secret_keys).resources


@pytest.mark.parametrize("dsn", [
    f"postgresql://tenant_provisioner:{PASSWORD}@127.0.0.1:5432/app?sslmode=disable",
    "host=/var/run/postgresql port=5433 dbname=app user=tenant_provisioner",
    "postgresql://tenant_provisioner@[::1]:5432/app",
])
def test_the_derived_app_url_is_a_url_that_passes_the_same_check(dsn):
    from psycopg.conninfo import conninfo_to_dict

    from tenancy.db import with_user

    url = with_user(dsn, "app_user")

    assert parse_database_url(url) == url and PASSWORD not in url
    original, derived = conninfo_to_dict(dsn), conninfo_to_dict(url)
    assert derived["user"] == "app_user" and derived["dbname"] == original["dbname"]
    assert derived.get("host") == original.get("host") and derived.get("port") == original.get("port")
