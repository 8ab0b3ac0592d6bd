"""The rehearsal's Kubernetes cluster: the local control plane its stacks apply to, and the set-up a production
cluster has before the program runs.

The control plane (services.kube_apiserver: etcd, kube-apiserver, kube-controller-manager on loopback) lives in
the state folder's `kube/` (certificates, etcd data, logs, the record of its processes). A run starts it and
stops it again; the next run restarts it on its etcd data, on the same port while that is free. With
`tenantctl rehearse --keep-running` it is left running, and a later run uses it as it is (fleet rule 1) until
`tenantctl rehearse --stop`. The admin's kubeconfig (system:masters) is written to the state folder's
`kubeconfig`: the stacks' Kubernetes provider applies with it (stack config `kubeconfig`), and an operator can
look with `kubectl --kubeconfig .rehearsal/embedded/kubeconfig get ns`.

The cluster set-up, applied by every run (server-side apply, so a second run changes nothing), is what the
program expects a production cluster to have and does not create itself:
- the monitoring and ingress namespaces (the tenants' dashboards and basic tenants' PrometheusRules live in the
  monitoring one; the NetworkPolicies name both);
- the PrometheusRule CRD, a stand-in for the prometheus-operator's (`cluster_setup/prometheusrule-crd.yaml` says
  what it does not check);
- the Kubernetes checks' identity (`checks/kubernetes_checker_access.yaml`: create SubjectAccessReviews, dry-run
  pods in premium namespaces, read NetworkPolicies) with a client certificate of its own, which `verify
  --rehearsal` runs the checks as;
- once the platform stack has made the shared namespace: the shared workload's ServiceAccount there, with a Role
  that reads the namespace's Secrets, as the application's deployment has (the program does not render it).

A state folder whose stacks were rendered to files (a rehearsal begun before it had an API server) keeps
rendering: moving its objects into a cluster would replace its protected namespaces. `tenantctl rehearse
--destroy` and a new rehearsal apply for real.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ruamel.yaml import YAML

from checks.kubernetes_isolation import CHECKER_ACCESS, SharedWorkload
from services.kube_apiserver import KubeApiServerError, LocalKubeApiServer, kubeconfig_text

KUBE_DIR = "kube"
KUBECONFIG = "kubeconfig"
MODE_KEY = "kubernetes"  # in the rehearsal's state: how its stacks' Kubernetes objects are handled
API_SERVER, RENDERED = "api-server", "rendered"
CHECKER = "tenantctl-kubernetes-checker"  # the user checks/kubernetes_checker_access.yaml binds
SHARED_WORKLOAD_ACCOUNT = "servicedesk-enhancer"
FIELD_MANAGER = "tenantctl-cluster-setup"
SET_UP_DIR = Path(__file__).with_name("cluster_setup")
PROMETHEUS_RULE_CRD = SET_UP_DIR / "prometheusrule-crd.yaml"
SET_UP_LABELS = {"app.kubernetes.io/part-of": "ai-agents", "app.kubernetes.io/component": "rehearsal-cluster-setup"}


class ClusterError(Exception):
    """The rehearsal's cluster could not be started or set up; the message says what to fix."""


def kubernetes_mode(state_dir: Path, environment: dict) -> str:
    """`api-server`, or `rendered` for a state folder whose stacks already rendered their objects to files."""
    recorded = environment.get(MODE_KEY)
    if recorded in (API_SERVER, RENDERED):
        return recorded
    manifests = state_dir / "manifests"
    return RENDERED if manifests.is_dir() and any(manifests.rglob("*.yaml")) else API_SERVER


def control_plane_for(state_dir: Path) -> LocalKubeApiServer:
    return LocalKubeApiServer(root=state_dir / KUBE_DIR)


@contextlib.contextmanager
def running_cluster(state_dir: Path, say: Callable[[str], None], *, keep_running: bool = False,
                    namespaces: tuple[str, ...] = (), set_up_cluster: bool = True) -> Iterator[LocalKubeApiServer]:
    """The state folder's control plane for the while: the one kept running if there is one (left running), else
    started (its etcd data kept) and stopped on the way out, unless `keep_running`. Its kubeconfig is written to the
    state folder, and with `set_up_cluster` (a run that applies) it is set up (`set_up`) before it is handed out; a
    command that only reads (status, verify) finds it as the last rehearsal left it."""
    kube = control_plane_for(state_dir)
    # etcd keeps the tenants' Kubernetes Secrets (the rehearsal's generated values) unencrypted: private folder.
    (state_dir / KUBE_DIR).mkdir(parents=True, exist_ok=True)
    (state_dir / KUBE_DIR).chmod(0o700)
    try:
        if kube.adopt():
            say(f"Kubernetes API server (kept running) on {kube.server}")
        else:
            say("starting a local Kubernetes API server (etcd, kube-apiserver, kube-controller-manager)")
            kube.start()
            say(f"Kubernetes API server on {kube.server}")
        write_kubeconfig(state_dir, kube)
        if set_up_cluster:
            set_up(kube, namespaces)
    except KubeApiServerError as exc:
        kube.stop()
        raise ClusterError(str(exc)) from None
    except BaseException:
        kube.stop()
        raise
    try:
        yield kube
    finally:
        if keep_running and not kube.adopted:
            kube.leave_running()
        else:
            kube.stop()  # an adopted one is only let go


def write_kubeconfig(state_dir: Path, kube: LocalKubeApiServer) -> Path:
    """The admin's kubeconfig in the state folder (0600: it names the admin's key), atomically."""
    path = state_dir / KUBECONFIG
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(kubeconfig_text(kube.server, kube.root / "pki", "admin"))
    temporary.replace(path)
    return path


def _apply(kube: LocalKubeApiServer, manifest: dict) -> None:
    reply = kube.apply(manifest, field_manager=FIELD_MANAGER)
    if not reply.ok:
        raise KubeApiServerError(f"cluster set-up: {manifest['kind']} {manifest['metadata']['name']!r} was refused "
                                 f"({reply.status}): {reply.message}")


def _documents(path: Path) -> list[dict]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")) if doc]


def set_up(kube: LocalKubeApiServer, namespaces: tuple[str, ...]) -> None:
    """What a production cluster has before the program runs (the module's docstring lists it)."""
    for name in namespaces:
        _apply(kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": SET_UP_LABELS}})
    crd = _documents(PROMETHEUS_RULE_CRD)[0]
    kube.install_crds([crd])
    spec = crd["spec"]
    _until_served(kube, f"/apis/{spec['group']}/{spec['versions'][0]['name']}/{spec['names']['plural']}")
    for manifest in _documents(CHECKER_ACCESS):
        _apply(kube, manifest)
    if not (kube.root / "pki" / f"{CHECKER}.crt").is_file():
        kube.issue_client_certificate(CHECKER)


def _until_served(kube: LocalKubeApiServer, path: str, timeout_s: float = 60.0) -> None:
    """An established CRD's objects are served once their storage is ready (until then: 429, "storage is
    (re)initializing")."""
    deadline = time.monotonic() + timeout_s
    while not (reply := kube.request("GET", path)).ok:
        if time.monotonic() > deadline:
            raise KubeApiServerError(f"cluster set-up: {path} not served within {timeout_s:.0f}s ({reply.status}: "
                                     f"{reply.message})")
        time.sleep(0.2)


def shared_workload(kube: LocalKubeApiServer, shared_namespace: str) -> SharedWorkload | None:
    """The shared workload's ServiceAccount in the shared namespace, with a Role reading its Secrets (as the
    application's deployment has), applied once the namespace exists; None while it does not (no platform stack
    yet)."""
    if not kube.request("GET", f"/api/v1/namespaces/{shared_namespace}").ok:
        return None
    rbac = "rbac.authorization.k8s.io"
    name, role = SHARED_WORKLOAD_ACCOUNT, f"{SHARED_WORKLOAD_ACCOUNT}-reads-secrets"
    metadata = {"namespace": shared_namespace, "labels": SET_UP_LABELS}
    for manifest in (
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, **metadata},
         "automountServiceAccountToken": False},
        {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": role, **metadata},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": {"name": role, **metadata},
         "roleRef": {"apiGroup": rbac, "kind": "Role", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": shared_namespace}]},
    ):
        _apply(kube, manifest)
    return SharedWorkload(shared_namespace, name)


def stop_kept(state_dir: Path) -> list[str]:
    """`tenantctl rehearse --stop`: the control plane the state folder recorded, stopped if it still runs."""
    try:
        return LocalKubeApiServer.stop_recorded(state_dir / KUBE_DIR)
    except KubeApiServerError as exc:
        raise ClusterError(str(exc)) from None


def destroy(state_dir: Path) -> None:
    """`tenantctl rehearse --destroy`: the control plane stopped, its certificates and etcd data deleted."""
    control_plane_for(state_dir).destroy()
    (state_dir / KUBECONFIG).unlink(missing_ok=True)
