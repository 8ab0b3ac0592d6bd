"""The rehearsal's Kubernetes cluster (fleet.rehearsal_cluster): which state folders get an API server, how a run
holds it (started and stopped, or kept running and then used as it is), and its set-up. One real control plane
for the tests that need it; the end-to-end proof is tests/e2e/test_kubernetes_rehearsal.py."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fleet import rehearsal_cluster
from fleet.rehearsal_cluster import API_SERVER, CHECKER, RENDERED, ClusterError, kubernetes_mode, running_cluster
from services import process_records
from services.kube_apiserver import PROCESS_RECORD
from tenantctl.cli import app

pytestmark = pytest.mark.xdist_group("kube-apiserver")


def test_a_new_state_folder_applies_to_an_api_server_and_a_rendered_one_keeps_rendering(tmp_path):
    assert kubernetes_mode(tmp_path, {}) == API_SERVER
    (tmp_path / "manifests" / "1-manifest").mkdir(parents=True)
    (tmp_path / "manifests" / "1-manifest" / "v1-namespace-tenant-acme.yaml").write_text("kind: Namespace\n")
    assert kubernetes_mode(tmp_path, {}) == RENDERED  # its namespaces are protected: never moved by a provider swap
    assert kubernetes_mode(tmp_path, {"kubernetes": API_SERVER}) == API_SERVER  # what the state recorded wins


def test_missing_binaries_fail_with_how_to_build_them(tmp_path, monkeypatch):
    monkeypatch.setattr("services.kube_apiserver.default_bin_dir", lambda: tmp_path / "empty-bin")
    with pytest.raises(ClusterError, match=r"etcd not found in .*: `make setup` builds it"):
        with running_cluster(tmp_path / "state", lambda _line: None):
            pass


def recorded_pids(state_dir) -> list[int]:
    import json

    records = json.loads((state_dir / "kube" / PROCESS_RECORD).read_text())
    return [record["pid"] for record in records.values()]


def test_kept_running_is_used_as_it_is_by_the_next_run_and_stopped_by_stop(tmp_path):
    state_dir, said = tmp_path / "state", []
    with running_cluster(state_dir, said.append, keep_running=True, namespaces=("monitoring",)) as kube:
        server = kube.server
        # Set up as a production cluster is: the PrometheusRule CRD served, and the checker can ask, not read.
        assert kube.request("GET", "/apis/monitoring.coreos.com/v1/prometheusrules").ok
        checker = kube.as_user(CHECKER)
        assert checker.request("GET", "/api/v1/namespaces/monitoring/secrets").status == 403
        assert kube.can_i(CHECKER, "create", "subjectaccessreviews", group="authorization.k8s.io")
    pids = recorded_pids(state_dir)
    assert all(process_records.start_ticks(pid) is not None for pid in pids)  # left running
    assert (state_dir / "kubeconfig").stat().st_mode & 0o777 == 0o600
    assert (state_dir / "kube").stat().st_mode & 0o777 == 0o700  # etcd holds the tenants' Secrets unencrypted

    with running_cluster(state_dir, said.append, namespaces=("monitoring",)) as kube:
        assert kube.server == server and kube.adopted
    assert "Kubernetes API server (kept running) on " + server in said
    assert all(process_records.start_ticks(pid) is not None for pid in pids)  # a run that found it left it up

    stopped = CliRunner().invoke(app, ["rehearse", "--stop", "--state-dir", str(state_dir.parent)])
    assert stopped.exit_code == 0, stopped.output
    assert "state: stopped its Kubernetes API server" in stopped.stderr
    assert all(process_records.start_ticks(pid) is None for pid in pids)
    assert rehearsal_cluster.stop_kept(state_dir) == []  # nothing left to stop

    # Not kept: started on the same etcd data and port, and stopped with the run.
    with running_cluster(state_dir, said.append) as kube:
        assert kube.server == server and not kube.adopted
        assert kube.request("GET", "/api/v1/namespaces/monitoring").ok  # its etcd data kept
        pids = recorded_pids(state_dir)
    assert all(process_records.start_ticks(pid) is None for pid in pids)

    # A run killed before it could stop its control plane (nothing marked it kept): the next run stops it and
    # starts its own (fleet rule 2), rather than taking it for one kept running.
    killed = rehearsal_cluster.control_plane_for(state_dir).start()
    left = recorded_pids(state_dir)
    with running_cluster(state_dir, said.append) as kube:
        assert not kube.adopted
        assert all(process_records.start_ticks(pid) is None for pid in left)
    killed.stop()  # (the test's own handle: those processes are gone already)
    rehearsal_cluster.destroy(state_dir)
    assert not (state_dir / "kube").exists() and not (state_dir / "kubeconfig").exists()
