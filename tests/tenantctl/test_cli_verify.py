"""`tenantctl verify`: the OnboardingCheck's checks from the command line, exit 0 on pass and 1 on failure."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from services.receiver import WebhookReceiver
from tenantctl.cli import app
from tests.tenant_text import tenant_yaml

runner = CliRunner()


@pytest.fixture
def onboarded(app_db, tmp_path, repo_root):
    tenant = app_db.add_tenant()
    tenants_dir = tmp_path / "tenants"
    tenants_dir.mkdir()
    (tenants_dir / "acme.yaml").write_text(tenant_yaml("acme", tenant_id=str(tenant.tenant_id)))
    shutil.copy(repo_root / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(repo_root / "stacks", tmp_path / "stacks")
    with WebhookReceiver(app_db.app_dsn, app_db.fernet_key) as receiver:
        yield app_db, tenants_dir, receiver


def args(app_db, tenants_dir, receiver, *extra):
    return ["verify", "acme", "--tenants-dir", str(tenants_dir), "--database-url", app_db.provisioner_dsn,
            "--app-database-url", app_db.app_dsn, "--fernet-key", app_db.fernet_key,
            "--webhook-url", receiver.webhook_url(_tenant_id(tenants_dir)), *extra]


def _tenant_id(tenants_dir):
    from tenancy.loader import parse_tenant_file

    return str(parse_tenant_file(tenants_dir / "acme.yaml")[0].tenant_id)


def test_passing_tenant_exits_zero(onboarded):
    app_db, tenants_dir, receiver = onboarded
    result = runner.invoke(app, args(app_db, tenants_dir, receiver))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "all 10 checks passed" in result.stdout


def test_broken_isolation_exits_one_with_report(onboarded):
    app_db, tenants_dir, receiver = onboarded
    app_db.execute("CREATE POLICY leak ON enhancement_history USING (true)")
    result = runner.invoke(app, args(app_db, tenants_dir, receiver, "--checks", "rls"))
    assert result.exit_code == 1
    assert "FAIL  cross_tenant_isolation" in result.stdout and "enhancement_history" in result.stdout


def test_json_report(onboarded):
    app_db, tenants_dir, receiver = onboarded
    result = runner.invoke(app, args(app_db, tenants_dir, receiver, "--json", "--checks", "webhook"))
    report = json.loads(result.stdout)
    assert report["ok"] is True and set(report["checks"]) == {
        "webhook_signed_probe_accepted", "webhook_unsigned_refused", "webhook_wrong_signature_refused"}


def _add_peer(app_db, tenants_dir):
    peer = app_db.add_tenant(name="Globex")
    (tenants_dir / "globex.yaml").write_text(tenant_yaml("globex", tenant_id=str(peer.tenant_id)))
    return peer


def test_a_peer_in_the_registry_is_probed_with_its_real_secret(onboarded):
    app_db, tenants_dir, receiver = onboarded
    _add_peer(app_db, tenants_dir)
    result = runner.invoke(app, args(app_db, tenants_dir, receiver, "--json"))
    report = json.loads(result.stdout)
    assert result.exit_code == 0, result.stdout
    assert report["checks"]["webhook_peer_secret_refused"]["ok"] is True
    assert "1 real one" in report["checks"]["cross_tenant_isolation"]["detail"]


def test_a_receiver_that_accepts_a_peers_secret_fails_verify(onboarded, monkeypatch):
    from tenancy import credentials

    app_db, tenants_dir, receiver = onboarded
    peer = _add_peer(app_db, tenants_dir)
    honest = receiver._verify

    def accepts_any_tenants_secret(query, signature, body):  # the bug: any known tenant's secret will do
        if signature and credentials.signature_matches(peer.signing_secret, body, signature):
            return 202, {"status": "accepted"}
        return honest(query, signature, body)

    monkeypatch.setattr(receiver, "_verify", accepts_any_tenants_secret)
    result = runner.invoke(app, args(app_db, tenants_dir, receiver, "--json", "--checks", "webhook"))
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["checks"]["webhook_peer_secret_refused"]["ok"] is False
    assert peer.signing_secret not in result.stdout


def test_wrong_fernet_key_is_a_clear_error(onboarded):
    from cryptography.fernet import Fernet

    app_db, tenants_dir, receiver = onboarded
    bad = [a if a != app_db.fernet_key else Fernet.generate_key().decode() for a in args(app_db, tenants_dir, receiver)]
    result = runner.invoke(app, bad)
    assert result.exit_code == 1 and "cannot be decrypted" in result.stderr


def test_unknown_check_is_rejected(onboarded):
    app_db, tenants_dir, receiver = onboarded
    result = runner.invoke(app, args(app_db, tenants_dir, receiver, "--checks", "dns"))
    assert result.exit_code == 1 and "unknown check(s): dns" in result.stderr


def test_unknown_tenant(tmp_path):
    result = runner.invoke(app, ["verify", "nobody", "--tenants-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no tenant file" in result.stderr


def test_database_without_the_schema_is_a_clear_error(onboarded, local_pg):
    app_db, tenants_dir, receiver = onboarded
    empty = f"verify_empty_{app_db.name[-8:]}"
    local_pg.create_database(empty)
    try:
        bare = [a if a != app_db.provisioner_dsn else local_pg.dsn(dbname=empty)
                for a in args(app_db, tenants_dir, receiver, "--checks", "webhook")]
        result = runner.invoke(app, bare)
        assert result.exit_code == 1 and "reading tenant_configs on" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        local_pg.drop_database(empty)


def test_a_provisioner_url_with_a_password_does_not_stand_in_for_app_user(onboarded):
    app_db, tenants_dir, receiver = onboarded
    with_password = app_db.provisioner_dsn.replace("tenant_provisioner@", "tenant_provisioner:s3cret-pw@")
    result = runner.invoke(app, ["verify", "acme", "--tenants-dir", str(tenants_dir), "--checks", "rls",
                                 "--database-url", with_password])
    assert result.exit_code == 1 and "give --app-database-url" in result.stderr
    assert "s3cret-pw" not in result.stdout + result.stderr


def _all_args(app_db, tenants_dir, *extra):
    return ["verify", "--all", "--tenants-dir", str(tenants_dir), "--database-url", app_db.provisioner_dsn,
            "--app-database-url", app_db.app_dsn, "--fernet-key", app_db.fernet_key, *extra]


def _probe_series(text: str) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.labels["slug"], s.labels["check"]): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "tenant_probe_success"}


def _point_stack_at(tenants_dir, receiver):
    """The platform stack file's webhookBaseUrl: `verify --all` derives every tenant's URL from it."""
    (tenants_dir.parent / "stacks" / "Pulumi.prod.yaml").write_text(
        f"config:\n  tenant-onboarding:webhookBaseUrl: {receiver.base_url}\n")


def test_verify_all_prints_one_probe_series_per_tenant_and_check(onboarded):
    app_db, tenants_dir, receiver = onboarded
    _point_stack_at(tenants_dir, receiver)
    (tenants_dir / "initech.yaml").write_text(tenant_yaml("initech", tier="basic"))  # a file, but no row yet

    result = runner.invoke(app, _all_args(app_db, tenants_dir, "--format", "prometheus"))
    series = _probe_series(result.stdout)

    assert result.exit_code == 1  # initech cannot be verified
    assert {check for slug, check in series if slug == "acme"} >= {"webhook_signed_probe_accepted",
                                                                     "cross_tenant_isolation"}
    assert all(value == 1 for (slug, _check), value in series.items() if slug == "acme")
    assert series[("initech", "setup")] == 0
    assert "tenant_probe_duration_seconds{" in result.stdout and app_db.fernet_key not in result.stdout


def test_verify_all_pushes_the_series_to_a_pushgateway(onboarded):
    import http.server
    import threading

    app_db, tenants_dir, receiver = onboarded
    _point_stack_at(tenants_dir, receiver)
    received: list[tuple[str, str, bytes]] = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802 (http.server's method name)
            received.append((self.command, self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = runner.invoke(app, _all_args(app_db, tenants_dir, "--pushgateway",
                                              f"http://127.0.0.1:{server.server_port}"))
    finally:
        server.shutdown()

    assert result.exit_code == 0, result.stdout + result.stderr
    [(method, path, body)] = received
    assert method == "PUT" and path == "/metrics/job/tenant-verification"
    assert _probe_series(body.decode())[("acme", "webhook_signed_probe_accepted")] == 1


def test_an_unreachable_pushgateway_is_a_clear_error_without_its_credentials(onboarded):
    app_db, tenants_dir, receiver = onboarded
    _point_stack_at(tenants_dir, receiver)
    result = runner.invoke(app, _all_args(app_db, tenants_dir, "--pushgateway", "http://ops:hunter2@127.0.0.1:9"))
    assert result.exit_code == 1
    assert "could not push to the Pushgateway http://127.0.0.1:9" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_a_slug_and_all_together_are_refused(onboarded):
    app_db, tenants_dir, _receiver = onboarded
    result = runner.invoke(app, ["verify", "acme", "--all", "--tenants-dir", str(tenants_dir)])
    assert result.exit_code == 1 and "a tenant slug or --all" in result.stderr
