"""LocalKubeApiServer: a real etcd, API server and controller-manager, and a premium tenant's rendered isolation
applied to it for real. The server, not our reading of the manifests, says what RBAC, Pod Security admission and
the ResourceQuota allow; each check is also shown to see a cluster broken on purpose.

One server for the module (it takes seconds to start, and `make test` is at its budget); every test that breaks
something does it on a tenant of its own, so no test depends on another's order.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from components import naming
from components.isolation_manifests import render_premium_isolation
from services import process_records
from services.kube_apiserver import PROCESS_RECORD, KubeApiServerError, LocalKubeApiServer
from tenancy.loader import load_tenants
from tenancy.model import Resources
from tests.conftest import ROOT

pytestmark = pytest.mark.xdist_group("kube-apiserver")

OTHER_TENANT_ID = "0b6f4c1e-6f3a-4d7e-9a55-3c2d1e0f9a88"
SETTLE_S = 30.0  # the authorizer reads bindings through an informer, the controller-manager acts within seconds


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> Iterator[LocalKubeApiServer]:
    server = LocalKubeApiServer(root=tmp_path_factory.mktemp("kube") / "control-plane")
    with server:
        yield server
    server.destroy()


def premium_manifests(slug: str, tenant_id: str = OTHER_TENANT_ID, cpu: str = "2", memory: str = "4Gi") -> list[dict]:
    """A premium tenant's rendered isolation: acme's own file, or another tenant shaped like it."""
    acme = load_tenants([ROOT / "tenants" / "acme.yaml"]).by_slug()["acme"]
    tenant_id = str(acme.tenant_id) if slug == "acme" else tenant_id
    resources = Resources(cpu=cpu, memory=memory, pods=acme.effective_resources.pods)
    labels = naming.tenant_labels(slug, tenant_id, "premium")
    return [m.body for m in render_premium_isolation(slug, labels, resources, "ingress-nginx", "monitoring")]


def onboard(kube: LocalKubeApiServer, slug: str, **shape: str) -> list[dict]:
    """Apply a premium tenant's isolation for real, and wait until the cluster enforces it (the controller-manager
    has given the namespace its `default` ServiceAccount and the quota its status)."""
    manifests = premium_manifests(slug, **shape)
    for manifest in manifests:
        reply = kube.apply(manifest)
        assert reply.ok, f"{manifest['kind']} {manifest['metadata']['name']}: {reply.status} {reply.message}"
    namespace = naming.namespace_name(slug)
    quota = next(m for m in manifests if m["kind"] == "ResourceQuota")
    eventually(lambda: kube.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default").ok,
               f"the default ServiceAccount of {namespace}")
    eventually(lambda: bool(kube.get(quota).body.get("status", {}).get("hard")), f"the status of {namespace}'s quota")
    return manifests


def eventually(condition: Callable[[], bool], what: str, timeout_s: float = SETTLE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f}s: {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def acme(kube: LocalKubeApiServer) -> list[dict]:
    return onboard(kube, "acme")


@pytest.fixture(scope="module")
def initech(kube: LocalKubeApiServer) -> list[dict]:
    return onboard(kube, "initech")


# What the checks prove -----------------------------------------------------------------------------------------

def account(slug: str) -> str:
    return f"system:serviceaccount:{naming.namespace_name(slug)}:{naming.service_account_name(slug)}"


def isolation_violations(kube: LocalKubeApiServer, slug: str, other: str) -> list[str]:
    """What a SubjectAccessReview matrix finds wrong with `slug`'s service account: it must read its own
    credentials and configmaps, and nothing of `other`'s, nothing cluster-wide, no other secret of its own."""
    user, own, theirs = account(slug), naming.namespace_name(slug), naming.namespace_name(other)
    must = [
        ("get", "secrets", own, naming.credentials_secret_name(slug)),
        ("list", "configmaps", own, ""),
    ]
    must_not = [
        ("list", "secrets", own, ""),
        ("get", "secrets", own, "some-other-secret"),
        ("create", "pods", own, ""),
        ("get", "secrets", theirs, naming.credentials_secret_name(other)),
        ("list", "configmaps", theirs, ""),
        ("list", "secrets", "", ""),
        ("list", "namespaces", "", ""),
        ("create", "clusterrolebindings", "", ""),
    ]

    def allowed(verb: str, resource: str, namespace: str, name: str) -> bool:
        group = "rbac.authorization.k8s.io" if resource.startswith("cluster") else ""
        return kube.can_i(user, verb, resource, namespace=namespace, name=name, group=group)

    def said(verb: str, resource: str, namespace: str, name: str) -> str:
        where = f"in {namespace}" if namespace else "cluster-wide"
        return " ".join(part for part in (verb, resource, name, where) if part)

    return ([f"cannot {said(*ask)}" for ask in must if not allowed(*ask)]
            + [f"can {said(*ask)}" for ask in must_not if allowed(*ask)])


def pod(name: str, namespace: str, *, privileged: bool = False, cpu: str = "100m", memory: str = "128Mi") -> dict:
    """A pod that the restricted Pod Security level admits, unless `privileged`."""
    security = ({"privileged": True} if privileged else {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
        "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}})
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{
            "name": "app", "image": "registry.example/app:1", "securityContext": security,
            "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}},
        }]},
    }


# (a) the server accepts the tenant's objects -------------------------------------------------------------------

def test_the_server_stores_every_object_of_a_premium_tenants_isolation(kube, acme):
    kinds = sorted(m["kind"] for m in acme)
    assert kinds == ["LimitRange", "Namespace", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy",
                     "ResourceQuota", "Role", "RoleBinding", "ServiceAccount"]
    for manifest in acme:
        stored = kube.get(manifest)
        assert stored.ok, f"{manifest['kind']} {manifest['metadata']['name']}: {stored.message}"
        assert manifest["metadata"]["labels"].items() <= stored.body["metadata"]["labels"].items()
    quota = next(m for m in acme if m["kind"] == "ResourceQuota")
    assert kube.get(quota).body["status"]["hard"]["limits.cpu"] == "2"
    deny = next(m for m in acme if m["metadata"]["name"] == "default-deny-all")
    assert kube.get(deny).body["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_applying_the_same_manifests_again_changes_nothing(kube, acme):
    before = {m["metadata"]["name"]: kube.get(m).body["metadata"]["resourceVersion"] for m in acme}
    for manifest in acme:
        assert kube.apply(manifest).ok
    assert {m["metadata"]["name"]: kube.get(m).body["metadata"]["resourceVersion"] for m in acme} == before


# (b) RBAC: its own namespace, nothing else ---------------------------------------------------------------------

def test_a_tenants_account_acts_only_in_its_own_namespace(kube, acme, initech):
    assert isolation_violations(kube, "acme", "initech") == []
    assert isolation_violations(kube, "initech", "acme") == []


def test_the_access_matrix_sees_an_account_bound_to_cluster_admin(kube):
    onboard(kube, "rooted")
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "rooted-is-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": naming.service_account_name("rooted"),
                      "namespace": naming.namespace_name("rooted")}],
    }
    assert kube.apply(binding).ok
    try:
        eventually(lambda: "can list namespaces cluster-wide" in isolation_violations(kube, "rooted", "acme"),
                   "the cluster-admin binding seen")
        assert "can get secrets tenant-acme-credentials in tenant-acme" in isolation_violations(kube, "rooted", "acme")
    finally:
        assert kube.delete(binding).ok


def test_the_access_matrix_sees_a_binding_into_another_tenants_namespace(kube, acme):
    onboard(kube, "snoop")
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "snoop-reads-acme", "namespace": naming.namespace_name("acme")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": naming.reader_role_name("acme")},
        "subjects": [{"kind": "ServiceAccount", "name": naming.service_account_name("snoop"),
                      "namespace": naming.namespace_name("snoop")}],
    }
    assert kube.apply(binding).ok
    try:
        eventually(lambda: isolation_violations(kube, "snoop", "acme") == [
            "can get secrets tenant-acme-credentials in tenant-acme", "can list configmaps in tenant-acme"],
            "the cross-tenant binding seen")
    finally:
        assert kube.delete(binding).ok


# (c) Pod Security admission ------------------------------------------------------------------------------------

def test_pod_security_rejects_a_privileged_pod_in_a_premium_namespace(kube, acme):
    refused = kube.create(pod("privileged", "tenant-acme", privileged=True), dry_run=True)
    assert refused.status == 403, refused.body
    assert 'violates PodSecurity "restricted:latest"' in refused.message
    assert "privileged" in refused.message
    assert kube.create(pod("restricted", "tenant-acme"), dry_run=True).ok  # the refusal is about privilege


def test_a_namespace_relaxed_to_privileged_admits_the_privileged_pod(kube):
    namespace = next(m for m in onboard(kube, "relaxed") if m["kind"] == "Namespace")
    namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"
    assert kube.apply(namespace).ok
    assert kube.create(pod("privileged", "tenant-relaxed", privileged=True), dry_run=True).ok


# (d) the ResourceQuota -----------------------------------------------------------------------------------------

def test_the_quota_rejects_a_pod_over_it(kube, acme):
    refused = kube.create(pod("oversized", "tenant-acme", cpu="3", memory="1Gi"), dry_run=True)
    assert refused.status == 403, refused.body
    assert "exceeded quota: tenant-acme-quota" in refused.message
    assert kube.create(pod("fits", "tenant-acme", cpu="1", memory="1Gi"), dry_run=True).ok


def test_a_quota_raised_past_the_tier_admits_the_oversized_pod(kube):
    onboard(kube, "raised", cpu="8", memory="16Gi")
    assert kube.create(pod("oversized", "tenant-raised", cpu="3", memory="1Gi"), dry_run=True).ok


def test_a_dry_run_stores_nothing(kube, acme):
    assert kube.create(pod("fits", "tenant-acme"), dry_run=True).ok
    assert kube.request("GET", "/api/v1/namespaces/tenant-acme/pods").body["items"] == []


# The service itself --------------------------------------------------------------------------------------------

def test_a_later_start_on_the_same_root_ends_what_a_dead_run_left_and_serves_its_objects(kube, acme, initech):
    left = kube.pids  # as if the run that started them had been killed: only their record is left
    with LocalKubeApiServer(root=kube.root) as successor:
        assert not any(process_records.start_ticks(pid) for pid in left.values())
        assert set(successor.pids.values()).isdisjoint(left.values())
        assert successor.get(acme[0]).ok
        assert isolation_violations(successor, "acme", "initech") == []
        assert json.loads((kube.root / PROCESS_RECORD).read_text()).keys() == successor.pids.keys()
    assert not (kube.root / PROCESS_RECORD).exists()
    kube.stop()  # nothing of its own is left to stop, and the successor's record was never its to drop
    kube.start()  # a plain restart, on the same etcd data, for the tests after this one
    assert kube.get(acme[0]).ok


def test_the_kubeconfig_reaches_the_server(kube):
    config = json.loads(kube.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == kube.server
    assert Path(config["users"][0]["user"]["client-key"]).is_file()


def test_every_process_is_recorded_with_its_start_time(kube):
    recorded = json.loads((kube.root / PROCESS_RECORD).read_text())
    assert set(recorded) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    for name, data in recorded.items():
        record = process_records.ProcessRecord.from_dict(data)
        assert record is not None and process_records.is_running(record), name
        assert kube.pids[name] == record.pid


def test_a_missing_binary_says_make_setup_builds_it(tmp_path):
    (tmp_path / "etcd").write_text("")
    (tmp_path / "etcd").chmod(0o755)
    with pytest.raises(KubeApiServerError, match=r"kube-apiserver not found in .*`make setup` builds it"):
        LocalKubeApiServer(tmp_path).start()


def test_stop_recorded_leaves_a_process_that_is_not_the_recorded_one(tmp_path):
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        record = process_records.record_of(stranger.pid)
        assert record is not None
        forged = {"etcd": {**record.as_dict(), "started_ticks": record.started_ticks - 1}}
        (tmp_path / PROCESS_RECORD).write_text(json.dumps(forged))
        assert LocalKubeApiServer.stop_recorded(tmp_path) == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_the_control_plane_versions_match_the_go_module_pins():
    """engine/versions.env is the one place the versions are named; engine/kube and engine/etcd require them."""
    versions = dict(line.split("=", 1) for line in (ROOT / "engine" / "versions.env").read_text().splitlines()
                    if line and not line.startswith("#"))

    def required(module_dir: str, module: str) -> str:
        found = re.search(rf"^\s*(?:require )?{re.escape(module)} (v\S+)", (ROOT / "engine" / module_dir / "go.mod")
                          .read_text(), re.MULTILINE)
        assert found, f"engine/{module_dir}/go.mod does not require {module}"
        return found.group(1)

    assert required("kube", "k8s.io/kubernetes") == f"v{versions['KUBE_VERSION']}"
    assert required("etcd", "go.etcd.io/etcd/server/v3") == f"v{versions['ETCD_VERSION']}"
    staging = "v0." + versions["KUBE_VERSION"].split(".", 1)[1]
    replaced = [line.split("=>")[1].split() for line in (ROOT / "engine" / "kube" / "go.mod").read_text()
                .splitlines() if "=>" in line]
    assert len(replaced) == 31 and all(version == staging for _module, version in replaced)
