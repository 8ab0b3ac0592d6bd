"""LocalKubeApiServer: a real etcd, API server and controller-manager, and a premium tenant's rendered isolation
applied to it for real. The server, not our reading of the manifests, says what RBAC, Pod Security admission and
the ResourceQuota allow. How each Kubernetes check sees a cluster broken on purpose is in
tests/checks/test_kubernetes_isolation.py, with a server of its own.

One server for the module (it takes seconds to start, and `make test` is at its budget).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from checks.kubernetes_isolation import KubernetesTenant, Subject, access_violations, premium_account_asks, probe_pod
from components.isolation_manifests import kubernetes_check_tenant
from components.settings import PlatformSettings
from fleet.operator_render import render_operator_files
from services import process_records
from services.kube_apiserver import PROCESS_RECORD, KubeApiServerError, LocalKubeApiServer
from tenancy.model import Tier
from tests.conftest import ROOT
from tests.fleet.test_operator_manifests import STAND_IN_STACK_CRD, self_managed_source
from tests.kube_cluster import make_tenant, onboard, repo_tenant

pytestmark = pytest.mark.xdist_group("kube-apiserver")


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> Iterator[LocalKubeApiServer]:
    server = LocalKubeApiServer(root=tmp_path_factory.mktemp("kube") / "control-plane")
    with server:
        yield server
    server.destroy()


@pytest.fixture(scope="module")
def acme(kube: LocalKubeApiServer) -> list[dict]:
    return onboard(kube, repo_tenant("acme"))


@pytest.fixture(scope="module")
def initech(kube: LocalKubeApiServer) -> list[dict]:
    return onboard(kube, make_tenant("initech"))


def isolation_violations(kube: LocalKubeApiServer, slug: str, other: str) -> list[str]:
    """What the checks' SubjectAccessReview matrix (checks.kubernetes_isolation) finds wrong with `slug`'s
    service account, with `other` as the tenant whose namespace it must not reach."""
    shared = PlatformSettings().shared_namespace
    tenant, peer = (kubernetes_check_tenant(repo_tenant(s) if s == "acme" else make_tenant(s), shared)
                    for s in (slug, other))
    assert tenant.service_account is not None
    return access_violations(kube, Subject(tenant.namespace, tenant.service_account),
                             *premium_account_asks(tenant, [peer]))


def pod(name: str, namespace: str, *, privileged: bool = False, cpu: str = "100m", memory: str = "128Mi") -> dict:
    """The checks' probe pod (admitted by the restricted Pod Security level unless `privileged`) in `namespace`."""
    anyone = KubernetesTenant(slug="", tenant_id="", tier=Tier.PREMIUM, namespace=namespace, credentials_secret="")
    return probe_pod(name, anyone, privileged=privileged, cpu=cpu, memory=memory)


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


# (c) Pod Security admission ------------------------------------------------------------------------------------

def test_pod_security_rejects_a_privileged_pod_in_a_premium_namespace(kube, acme):
    refused = kube.create(pod("privileged", "tenant-acme", privileged=True), dry_run=True)
    assert refused.status == 403, refused.body
    assert 'violates PodSecurity "restricted:latest"' in refused.message
    assert "privileged" in refused.message
    assert kube.create(pod("restricted", "tenant-acme"), dry_run=True).ok  # the refusal is about privilege


# (d) the ResourceQuota -----------------------------------------------------------------------------------------

def test_the_quota_rejects_a_pod_over_it(kube, acme):
    refused = kube.create(pod("oversized", "tenant-acme", cpu="3", memory="1Gi"), dry_run=True)
    assert refused.status == 403, refused.body
    assert "exceeded quota: tenant-acme-quota" in refused.message
    assert kube.create(pod("fits", "tenant-acme", cpu="1", memory="1Gi"), dry_run=True).ok


def test_a_dry_run_stores_nothing(kube, acme):
    assert kube.create(pod("fits", "tenant-acme"), dry_run=True).ok
    assert kube.request("GET", "/api/v1/namespaces/tenant-acme/pods").body["items"] == []


# (e) the operator's objects, against its CRDs on the server ----------------------------------------------------
# The real CRDs when `make operator-crds` fetched them (the operator's Go module is not served here: 403), else the
# stand-in that tests/fleet/test_operator_manifests.py proves the offline validator with.
REAL_OPERATOR_CRDS = ROOT / ".venv" / "operator-crds"
OPERATOR_NAMESPACE = self_managed_source().namespace


def operator_crds() -> tuple[str, list[dict]]:
    """(where they come from, the CRD documents)."""
    folder = REAL_OPERATOR_CRDS if any(REAL_OPERATOR_CRDS.glob("*.yaml")) else None
    texts = [path.read_text() for path in sorted(folder.glob("*.yaml"))] if folder else [STAND_IN_STACK_CRD]
    crds = []
    for document in (doc for text in texts for doc in YAML(typ="safe").load_all(text)):
        if isinstance(document, dict):
            items = document.get("items") or [] if document.get("kind", "").endswith("List") else [document]
            crds += [item for item in items if item.get("kind") == "CustomResourceDefinition"]
    return (str(folder) if folder else "the stand-in Stack CRD"), crds


@pytest.fixture(scope="module")
def operator_objects(kube: LocalKubeApiServer, tmp_path_factory) -> list[dict]:
    """`tenantctl render-operator`'s files for tenants/, read back, with the CRDs installed and the namespace
    there (a dry-run into a namespace that does not exist is refused for that alone)."""
    _source, crds = operator_crds()
    kube.install_crds(crds)
    assert kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}).ok
    result = render_operator_files(ROOT / "tenants", "prod", tmp_path_factory.mktemp("operator"),
                                   self_managed_source(), crds_dir=None)
    return [YAML(typ="safe").load(path.read_text()) for path in result.written]


def refusal(kube: LocalKubeApiServer, manifest: dict) -> str | None:
    """Why a server-side dry-run apply refuses `manifest`, or None when the server takes it."""
    reply = kube.apply(manifest, dry_run=True)
    return None if reply.ok else f"{manifest['kind']} {manifest['metadata']['name']}: {reply.status} {reply.message}"


def test_the_server_takes_every_object_render_operator_writes(kube, operator_objects):
    source, _crds = operator_crds()
    kinds = {obj["kind"] for obj in operator_objects}
    assert kinds == {"Stack", "ServiceAccount", "Role", "RoleBinding", "ClusterRoleBinding"}
    refused = [why for why in map(lambda obj: refusal(kube, obj), operator_objects) if why]
    assert refused == [], f"against {source}"
    assert kube.request("GET", f"/apis/pulumi.com/v1/namespaces/{OPERATOR_NAMESPACE}/stacks").body["items"] == []


def _set(path: str, value: object) -> Callable[[dict], None]:
    *parents, last = path.split(".")

    def mutate(obj: dict) -> None:
        for key in parents:
            obj = obj[key]
        obj[last] = value
    return mutate


@pytest.mark.parametrize(("mutate", "because"), [
    pytest.param(_set("spec.destroyOnFinalise", True), "destroyOnFinalise", id="unknown-field"),
    pytest.param(_set("apiVersion", "pulumi.com/v9"), "404", id="unserved-version"),
    pytest.param(_set("spec.resyncFrequencySeconds", "600"), "resyncFrequencySeconds", id="string-for-integer"),
    pytest.param(_set("spec.workspaceReclaimPolicy", "Keep"), "workspaceReclaimPolicy", id="not-in-enum"),
    pytest.param(_set("metadata.name", "s" * 43), "no more than 42 characters", id="name-too-long-for-cel"),
])
def test_the_server_refuses_a_broken_stack(kube, operator_objects, mutate, because):
    stack = copy.deepcopy(next(obj for obj in operator_objects if obj["kind"] == "Stack"))
    mutate(stack)
    why = refusal(kube, stack)
    assert why is not None and because in why, why


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
