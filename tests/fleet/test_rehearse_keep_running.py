"""What `tenantctl rehearse --keep-running` prints about how to reach what it left running: the kubeconfig and the
database, never a password (rule 6)."""

from __future__ import annotations

from types import SimpleNamespace

from fleet.rehearsal import LocalServices
from fleet.rehearse import RunningServices, _kept_running, _kept_running_lines


def test_a_given_database_is_described_without_its_password(tmp_path):
    services = LocalServices("postgresql://provisioner:s3cret-pw@db.internal:5433/app?sslmode=verify-full",
                             "postgresql://app_user@db.internal:5433/app", "http://127.0.0.1:1", "http://127.0.0.1:2",
                             str(tmp_path / "kubeconfig"))
    reach = _kept_running(tmp_path, RunningServices(services, False, None, kube=SimpleNamespace()))
    text = "\n".join(_kept_running_lines(reach)) + repr(reach)
    assert "s3cret-pw" not in text
    assert reach == {"kubeconfig": str(tmp_path / "kubeconfig"), "database": "provisioner@db.internal:5433/app",
                     "aws_endpoint": "http://127.0.0.1:2"}
    assert f"kubectl --kubeconfig {tmp_path / 'kubeconfig'} get namespaces" in text


def test_the_embedded_database_is_given_as_a_psql_url(tmp_path):
    services = LocalServices("postgresql://tenant_provisioner@127.0.0.1:5/app", "x", "http://127.0.0.1:1",
                             "http://127.0.0.1:2")
    embedded = SimpleNamespace(dsn=lambda dbname: f"postgresql://postgres@127.0.0.1:5/{dbname}")
    reach = _kept_running(tmp_path, RunningServices(services, False, embedded, kube=None))
    assert reach == {"database_url": "postgresql://postgres@127.0.0.1:5/app", "aws_endpoint": "http://127.0.0.1:2"}
    assert _kept_running_lines(reach)[0] == "  database: psql 'postgresql://postgres@127.0.0.1:5/app'"
