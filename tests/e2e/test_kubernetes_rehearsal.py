"""The rehearsal applies its tenants to a real Kubernetes API server of its own (fleet.rehearsal_cluster), and what
it applied is proven through that server: `tenantctl verify --rehearsal` runs the Kubernetes isolation checks and
fails on each way of breaking a tenant's isolation; `tenantctl status --refresh` sees a kubectl-style edit, and
`rehearse --refresh` puts it back.

One rehearsal for the whole module (an engine run of two tenants is most of its time): it is kept running
(`keep_running`), each break is made with the admin's identity, checked, and undone before the next.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner

from fleet import rehearsal_cluster
from services.kube_apiserver import LocalKubeApiServer
from tenantctl.cli import app
from tests.e2e.conftest import Rehearsal
from tests.kube_cluster import eventually

pytestmark = [pytest.mark.xdist_group("kube-apiserver"), pytest.mark.kubernetes_api]

runner = CliRunner()
RBAC = "rbac.authorization.k8s.io"
NAMESPACE = "tenant-acme"
QUOTA = f"/api/v1/namespaces/{NAMESPACE}/resourcequotas/tenant-acme-quota"
DENY = f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies/default-deny-all"
SHARED = "production"


@pytest.fixture
def kept(rehearsal: Rehearsal) -> Iterator[tuple[Rehearsal, LocalKubeApiServer]]:
    """acme (premium) and globex (basic) applied by a rehearsal that leaves its API server running, and that
    server as its admin."""
    result = rehearsal.up(keep_running=True)
    assert result.ok, result.errors + [e for t in result.tenants for e in t.errors]
    kube = rehearsal_cluster.control_plane_for(rehearsal.state_dir)
    assert kube.adopt(), "--keep-running left no API server running"
    try:
        yield rehearsal, kube
    finally:
        kube.stop()  # lets go: the fixture's teardown stops it (rehearsal_cluster.stop_kept)


def verify(rehearsal: Rehearsal, *extra: str) -> tuple[int, dict[str, str]]:
    """`tenantctl verify acme --rehearsal --checks kubernetes --json`: its exit code and each failed check's detail."""
    result = runner.invoke(app, ["verify", "acme", "--rehearsal", "--checks", "kubernetes", "--json", *extra,
                                 "--state-dir", str(rehearsal.state_base), "--database-url", rehearsal.database_url,
                                 "--app-database-url", rehearsal.app_db.app_dsn,
                                 "--tenants-dir", str(rehearsal.tenants_dir)])
    report = json.loads(result.stdout)
    return result.exit_code, {name: check["detail"] for name, check in report["checks"].items() if not check["ok"]}


def fails_only(rehearsal: Rehearsal, check: str, what: str) -> str:
    """Wait until verify fails with exit 1 on `check` alone (the authorizer and the quota controller act within
    moments of an edit), and return its detail."""
    seen: dict[str, str] = {}

    def failed() -> bool:
        code, failures = verify(rehearsal)
        seen.clear()
        seen.update(failures)
        return code == 1 and set(failures) == {check}

    eventually(failed, f"{what}: verify fails {check} alone (last seen: {seen})")
    return seen[check]


def passes(rehearsal: Rehearsal, what: str) -> None:
    eventually(lambda: verify(rehearsal) == (0, {}), f"verify passes again after {what} was undone")


def ok(reply) -> None:
    assert reply.ok, f"{reply.status}: {reply.message}"


def patch(kube: LocalKubeApiServer, path: str, body: dict, manager: str = "kubectl-patch") -> None:
    """A merge patch as `kubectl patch --type merge` (or `kubectl label`: `manager`) sends it."""
    ok(kube.request("PATCH", path, body, content_type="application/merge-patch+json",
                    query={"fieldManager": manager}))


def recreate(kube: LocalKubeApiServer, path: str) -> Callable[[], None]:
    """Delete the object at `path`, and return how to put it back as it was (as `kubectl get -o yaml` then
    `kubectl create` would)."""
    stored = kube.request("GET", path)
    ok(stored)
    body = stored.body
    body["metadata"] = {key: value for key, value in body["metadata"].items()
                        if key in ("name", "namespace", "labels", "annotations")}
    body.pop("status", None)
    ok(kube.request("DELETE", path))
    return lambda: ok(kube.request("POST", path.rsplit("/", 1)[0], body))


def test_verify_rehearsal_fails_on_each_break_of_kubernetes_isolation_and_status_sees_the_drift(kept):
    rehearsal, kube = kept
    assert verify(rehearsal) == (0, {})  # as the rehearsal applied it, through the checker identity

    # A tenant's service account bound to cluster-admin.
    binding = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "acme-is-admin"},
               "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"kind": "ServiceAccount", "name": "tenant-acme", "namespace": NAMESPACE}]}
    ok(kube.apply(binding))
    assert "ClusterRoleBinding \"acme-is-admin\"" in fails_only(rehearsal, "kubernetes_account_access",
                                                                "acme bound to cluster-admin")
    ok(kube.delete(binding))
    passes(rehearsal, "the cluster-admin binding")

    # The namespace's Pod Security label relaxed to privileged.
    patch(kube, f"/api/v1/namespaces/{NAMESPACE}",
          {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}, manager="kubectl-label")
    assert "a privileged pod was admitted" in fails_only(rehearsal, "kubernetes_pod_security", "PSA privileged")
    patch(kube, f"/api/v1/namespaces/{NAMESPACE}",
          {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}, manager="kubectl-label")
    passes(rehearsal, "the privileged label")

    # The quota raised past the tier, then removed.
    hard = kube.request("GET", QUOTA).body["spec"]["hard"]
    patch(kube, QUOTA, {"spec": {"hard": {"requests.cpu": "8", "limits.cpu": "8"}}})
    assert "admitted" in fails_only(rehearsal, "kubernetes_quota", "quota raised")
    patch(kube, QUOTA, {"spec": {"hard": hard}})
    passes(rehearsal, "the raised quota")
    put_back = recreate(kube, QUOTA)
    assert "missing or above the tier" in fails_only(rehearsal, "kubernetes_quota", "quota removed")
    put_back()
    passes(rehearsal, "the removed quota")

    # The default-deny NetworkPolicy deleted.
    put_back = recreate(kube, DENY)
    assert "no NetworkPolicy default-deny-all" in fails_only(rehearsal, "kubernetes_default_deny", "deny deleted")
    put_back()
    passes(rehearsal, "the deleted default-deny policy")

    # A RoleBinding that lets acme read globex's Secret (basic: in the shared namespace).
    reader = [{"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": "read-all", "namespace": SHARED},
               "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]},
              {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
               "metadata": {"name": "acme-reads", "namespace": SHARED},
               "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "read-all"},
               "subjects": [{"kind": "ServiceAccount", "name": "tenant-acme", "namespace": NAMESPACE}]}]
    for manifest in reader:
        ok(kube.apply(manifest))
    assert "can get secrets tenant-globex-credentials in production" in fails_only(
        rehearsal, "kubernetes_account_access", "acme reads globex's Secret")
    for manifest in reader:
        ok(kube.delete(manifest))
    passes(rehearsal, "the cross-tenant RoleBinding")

    # Drift, for real: a kubectl-style edit is seen by `status --refresh` and put back by `rehearse --refresh`.
    patch(kube, QUOTA, {"spec": {"hard": {"requests.cpu": "8", "limits.cpu": "8"}}})
    recreate(kube, DENY)
    patch(kube, f"/api/v1/namespaces/{NAMESPACE}", {"metadata": {"labels": {"tenants.ai-agents.io/tier": "basic"}}},
          manager="kubectl-label")
    status = runner.invoke(app, ["status", "--rehearsal", "--refresh", "--json", "--state-dir",
                                 str(rehearsal.state_base), "--database-url", rehearsal.database_url,
                                 "--tenants-dir", str(rehearsal.tenants_dir)])
    drift = {t["tenant"]: (t["drift"], t["problems"]) for t in json.loads(status.stdout)["tenants"]}
    # Every object compared: no "rendered Kubernetes objects not compared" any more.
    assert drift == {"acme": ("DRIFTED", ["drift DRIFTED: 1 delete, 2 update"]), "globex": ("IN_SYNC", [])}, drift
    assert status.exit_code == 1
    result = rehearsal.up(refresh=True, force=False, only={"acme"})
    assert result.ok, result.errors + [e for t in result.tenants for e in t.errors]
    assert [t.drift for t in result.tenants if t.slug == "acme"] == [{"delete": 1, "update": 2}]
    assert kube.request("GET", QUOTA).body["spec"]["hard"] == hard
    assert kube.request("GET", DENY).ok
    assert kube.request("GET", f"/api/v1/namespaces/{NAMESPACE}").body["metadata"]["labels"][
        "tenants.ai-agents.io/tier"] == "premium"
    passes(rehearsal, "rehearse --refresh")
