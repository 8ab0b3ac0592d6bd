"""Kubernetes isolation checks: proof, from the API server itself, that a tenant's workload reaches only its own.

What the server is asked, for a premium tenant (a namespace of its own):
- `kubernetes_account_access`: a SubjectAccessReview matrix for the tenant's service account. It must be able to
  read its own credentials Secret and its namespace's ConfigMaps, which is what its workload needs. It must be
  refused everything else the matrix asks: another Secret, pods, tokens, RBAC objects or the namespace itself in
  its own namespace; any Secret, ConfigMap or pod in another tenant's namespace or the shared one; anything
  cluster-wide. The authorizer answers over every binding there is, so "no binding grants it more" is its word,
  and a grant it should not make is reported with the binding the review names as its reason.
- `kubernetes_pod_security`: a server-side dry-run of a privileged pod in the namespace, which Pod Security
  admission must refuse at the restricted level.
- `kubernetes_quota`: dry-runs of a pod just over the tier's CPU and of one just over its memory, which the
  namespace's ResourceQuota must refuse (a quota missing, or raised past the tier, admits them). The pod-count
  limit is not probed: one dry-run is one pod.
- `kubernetes_suspended_no_pod` (a suspended tenant only): a dry-run of a small pod that fits the tier, which the
  namespace's quota (`pods: 0` while suspended) must refuse.
- `kubernetes_default_deny`: the default-deny NetworkPolicy is stored, selects every pod and allows no traffic,
  and no other policy of the namespace opens it to every peer. The server stores a NetworkPolicy; only a network
  plugin enforces it, and the result says so rather than claim it.
For a basic tenant (its Secret in the shared namespace): `kubernetes_shared_account_access`, a matrix for the
shared workload's service account, which must read the tenant's Secret and nothing in any premium namespace or
cluster-wide.

Nothing here changes the cluster: pods are sent with `dryRun=All` only, and a SubjectAccessReview is a question
the server answers without storing it. The identity the checks run as needs no more than that, and `get`/`list`
on NetworkPolicies (`kubernetes_checker_access.yaml` beside this file; docs/security.md). A failure is a failed
result whose detail names the tenant, what failed and why, never an exception.

The names the checks look for are the ones the program renders: `components.isolation_manifests` builds each
tenant's `KubernetesTenant` with the same naming functions as the manifests. The API client is anything with the
`KubernetesApi` shape (`services.kube_apiserver.LocalKubeApiServer`, or its `as_user(...)` for another identity).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from checks.peers import peer_tenant_ids
from checks.report import CheckReport, CheckResult
from tenancy.model import Resources, Tier

ACCOUNT_ACCESS = "kubernetes_account_access"
POD_SECURITY = "kubernetes_pod_security"
QUOTA = "kubernetes_quota"
DEFAULT_DENY = "kubernetes_default_deny"
SHARED_ACCOUNT_ACCESS = "kubernetes_shared_account_access"
SUSPENDED_NO_POD = "kubernetes_suspended_no_pod"
PREMIUM_CHECKS = (ACCOUNT_ACCESS, POD_SECURITY, QUOTA, DEFAULT_DENY)
BASIC_CHECKS = (SHARED_ACCOUNT_ACCESS,)

RBAC = "rbac.authorization.k8s.io"
NETWORKING = "networking.k8s.io"
REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
DRY_RUN = {"dryRun": "All"}
PROBE_LABELS = {"app.kubernetes.io/managed-by": "tenantctl-kubernetes-checks"}
PROBE_IMAGE = "registry.k8s.io/pause:3.10"  # never pulled: a dry-run pod is admitted, not scheduled
RESTRICTED_REFUSAL = 'violates PodSecurity "restricted'
QUOTA_REFUSAL = "exceeded quota"
# The least a cluster grants the identity that runs these checks (docs/security.md).
CHECKER_ACCESS = Path(__file__).with_name("kubernetes_checker_access.yaml")
ENFORCEMENT = ("The API server stores and admits NetworkPolicies; enforcing them needs a network plugin that "
               "implements NetworkPolicy, which this check does not prove.")
SHOWN_PER_CHECK = 8  # violations listed in a detail; the rest are counted
MEBIBYTE = 2**20
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$")
_SCALE = {
    **{suffix: Decimal(10) ** power for suffix, power in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18),
                                                             strict=True)},
    **{suffix: Decimal(2) ** (10 * power) for power, suffix in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
}


# What the checks are given ---------------------------------------------------------------------------------------

class ApiReply(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> dict: ...


class KubernetesApi(Protocol):
    """One HTTPS request to the API server as the identity the checks run as; the reply's JSON body as a dict."""

    def request(self, method: str, path: str, body: dict | None = None, *,
                query: dict[str, str] | None = None) -> ApiReply: ...


@dataclass(frozen=True)
class KubernetesTenant:
    """What the program renders in the cluster for one tenant, as the checks look for it
    (`components.isolation_manifests.kubernetes_check_tenant` builds it)."""

    slug: str
    tenant_id: str
    tier: Tier
    namespace: str  # its own (premium) or the shared one (basic)
    credentials_secret: str
    service_account: str | None = None  # premium: the account its workload runs as
    quota: Resources | None = None  # premium: what its ResourceQuota must hold it to
    default_deny_policy: str | None = None  # premium
    suspended: bool = False  # premium: its quota must admit no pod

    @property
    def premium(self) -> bool:
        return self.tier is Tier.PREMIUM

    @property
    def shown(self) -> str:
        return f"tenant {self.slug} ({self.tier.value})"


@dataclass(frozen=True)
class SharedWorkload:
    """The application's workload in the shared namespace, which serves the basic tenants: its service account
    must read their Secrets there. The program does not render it; whoever deploys the application names it."""

    namespace: str
    service_account: str


class _Unanswered(Exception):
    """The server gave no usable answer (unreachable, or it refused the question itself)."""


# Entry points ----------------------------------------------------------------------------------------------------

def run_kubernetes_checks(api: KubernetesApi, tenant: KubernetesTenant, peers: Iterable[KubernetesTenant] = (),
                          shared: SharedWorkload | None = None) -> CheckReport:
    """Every Kubernetes check of `tenant`'s tier. `peers` are the other tenants whose namespaces and Secrets its
    account must not reach (`run_fleet_kubernetes_checks` gives every other tenant, or the nearest few)."""
    others = [peer for peer in peers if peer.slug != tenant.slug]
    if tenant.premium:
        checks: list[tuple[str, Callable[[], CheckResult]]] = [
            (ACCOUNT_ACCESS, lambda: _account_access(api, tenant, others, shared)),
            (POD_SECURITY, lambda: _pod_security(api, tenant)),
            (QUOTA, lambda: _quota(api, tenant)),
            (DEFAULT_DENY, lambda: _default_deny(api, tenant)),
        ]
        if tenant.suspended:
            checks.append((SUSPENDED_NO_POD, lambda: _suspended_no_pod(api, tenant)))
    else:
        checks = [(SHARED_ACCOUNT_ACCESS, lambda: _shared_account_access(api, tenant, others, shared))]
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except _Unanswered as exc:
            results.append(CheckResult(name, False, f"{tenant.shown}: {exc}"))
        except Exception as exc:  # a client's own error (unreachable server, bad certificate): a result, not a crash
            results.append(CheckResult(name, False, f"{tenant.shown}: the API server could not be asked: "
                                                    f"{type(exc).__name__}: {exc}"))
    return CheckReport(results)


def run_fleet_kubernetes_checks(api: KubernetesApi, tenants: Sequence[KubernetesTenant],
                                shared: SharedWorkload | None = None,
                                peer_count: int | None = None) -> dict[str, CheckReport]:
    """Every tenant's checks, by slug. Each tenant's account is probed against every other tenant, or with
    `peer_count`, against the next few in tenant_id order (`checks.peers`, as the RLS checks choose theirs)."""
    by_id = {tenant.tenant_id: tenant for tenant in tenants}
    reports = {}
    for tenant in tenants:
        if peer_count is None:
            peers = [other for other in tenants if other.slug != tenant.slug]
        else:
            peers = [by_id[peer] for peer in peer_tenant_ids(by_id, tenant.tenant_id, count=peer_count)]
        reports[tenant.slug] = run_kubernetes_checks(api, tenant, peers, shared)
    return reports


# The access matrix -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ask:
    """One SubjectAccessReview's question: may the subject `verb` this `resource` (here, or cluster-wide)?"""

    verb: str
    resource: str
    namespace: str = ""  # "": cluster-wide, or a cluster-scoped object named by `name`
    name: str = ""
    group: str = ""
    subresource: str = ""
    whose: str = ""  # whose namespace it is, for the message

    def __str__(self) -> str:
        if self.verb == "*" and self.resource == "*":
            return "do anything to anything (verb, resource and API group *) cluster-wide"
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        where = (f"in {self.namespace}" + (f" ({self.whose})" if self.whose else "") if self.namespace
                 else "" if self.name else "cluster-wide")
        return " ".join(part for part in (self.verb, what, self.name, where) if part)

    def attributes(self) -> dict[str, str]:
        return {"verb": self.verb, "resource": self.resource, "group": self.group, "subresource": self.subresource,
                "namespace": self.namespace, "name": self.name}


@dataclass(frozen=True)
class Subject:
    """A service account as the authorizer sees it: its user name and the groups every account is in."""

    namespace: str
    name: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> list[str]:
        return ["system:serviceaccounts", f"system:serviceaccounts:{self.namespace}", "system:authenticated"]


def review(api: KubernetesApi, subject: Subject, ask: Ask) -> tuple[bool, str]:
    """What the authorizer answers: (allowed, its reason, e.g. the binding that allows it)."""
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": subject.user, "groups": subject.groups, "resourceAttributes": ask.attributes()}}
    reply = api.request("POST", REVIEWS, body)
    if not 200 <= reply.status < 300:
        raise _Unanswered(f"the API server refused a SubjectAccessReview ({reply.status}): {_message(reply)}; the "
                          "identity running the checks needs `create` on subjectaccessreviews (docs/security.md)")
    status = reply.body.get("status") or {}
    reason = str(status.get("reason") or status.get("evaluationError") or "").removeprefix("RBAC: ")
    return bool(status.get("allowed")), reason


def access_violations(api: KubernetesApi, subject: Subject, must: Iterable[Ask], must_not: Iterable[Ask]) -> list[str]:
    """Every ask the subject is refused but needs (`cannot ...`) or is allowed but must not have (`can ...`),
    each with the authorizer's reason when it gives one."""
    found = []
    for ask, wanted in [*((ask, True) for ask in must), *((ask, False) for ask in must_not)]:
        allowed, reason = review(api, subject, ask)
        if allowed != wanted:
            found.append(f"{'can' if allowed else 'cannot'} {ask}" + (f": {reason}" if reason else ""))
    return found


# Cluster-wide: a ClusterRoleBinding to cluster-admin, or to anything that reads or escalates across namespaces.
CLUSTER_WIDE = (
    Ask("*", "*", group="*"),
    Ask("list", "secrets"), Ask("list", "configmaps"), Ask("list", "namespaces"), Ask("create", "namespaces"),
    Ask("list", "nodes"), Ask("create", "pods"),
    Ask("create", "clusterrolebindings", group=RBAC), Ask("bind", "clusterroles", group=RBAC),
    Ask("escalate", "clusterroles", group=RBAC), Ask("impersonate", "users"), Ask("impersonate", "serviceaccounts"),
    Ask("create", "certificatesigningrequests", group="certificates.k8s.io"),
)


def premium_account_asks(tenant: KubernetesTenant, peers: Iterable[KubernetesTenant],
                         shared: SharedWorkload | None = None) -> tuple[list[Ask], list[Ask]]:
    """What a premium tenant's account must be able to do, and what it must not: the matrix."""
    own, secret, account = tenant.namespace, tenant.credentials_secret, tenant.service_account or ""
    must = [Ask("get", "secrets", own, secret), Ask("get", "configmaps", own), Ask("list", "configmaps", own),
            Ask("watch", "configmaps", own)]
    must_not = [
        *CLUSTER_WIDE,
        Ask("list", "secrets", own), Ask("watch", "secrets", own), Ask("get", "secrets", own, "any-other-secret"),
        Ask("create", "secrets", own), Ask("update", "secrets", own, secret), Ask("delete", "secrets", own, secret),
        Ask("create", "configmaps", own), Ask("update", "configmaps", own), Ask("delete", "configmaps", own),
        Ask("create", "pods", own), Ask("create", "pods", own, subresource="exec"),
        Ask("create", "deployments", own, group="apps"),
        Ask("create", "serviceaccounts", own, account, subresource="token"),
        Ask("create", "roles", own, group=RBAC), Ask("create", "rolebindings", own, group=RBAC),
        Ask("update", "resourcequotas", own), Ask("delete", "networkpolicies", own, group=NETWORKING),
        Ask("update", "namespaces", name=own), Ask("delete", "namespaces", name=own),
    ]
    shared_namespaces = {shared.namespace} if shared else set()
    for peer in peers:
        if peer.premium:
            must_not += _foreign_namespace(peer.namespace, f"tenant {peer.slug}'s namespace",
                                           peer.credentials_secret)
        else:
            shared_namespaces.add(peer.namespace)
            must_not.append(Ask("get", "secrets", peer.namespace, peer.credentials_secret,
                                whose=f"tenant {peer.slug}'s Secret in the shared namespace"))
    for namespace in sorted(shared_namespaces - {own}):
        must_not += _foreign_namespace(namespace, "the shared namespace")
    return must, must_not


def shared_account_asks(tenant: KubernetesTenant, peers: Iterable[KubernetesTenant],
                        shared: SharedWorkload) -> tuple[list[Ask], list[Ask]]:
    """What the shared workload's account must be able to do for a basic tenant, and what it must not."""
    must = [Ask("get", "secrets", shared.namespace, tenant.credentials_secret, whose="the shared namespace")]
    must_not = list(CLUSTER_WIDE)
    for peer in peers:
        if peer.premium:
            must_not += _foreign_namespace(peer.namespace, f"tenant {peer.slug}'s namespace", peer.credentials_secret)
    return must, must_not


def _foreign_namespace(namespace: str, whose: str, secret: str | None = None) -> list[Ask]:
    asks = [Ask("get", "secrets", namespace, secret, whose=whose)] if secret else []
    return [*asks, Ask("list", "secrets", namespace, whose=whose), Ask("list", "configmaps", namespace, whose=whose),
            Ask("create", "pods", namespace, whose=whose)]


def _account_access(api: KubernetesApi, tenant: KubernetesTenant, peers: list[KubernetesTenant],
                    shared: SharedWorkload | None) -> CheckResult:
    if not tenant.service_account:
        return CheckResult(ACCOUNT_ACCESS, False, f"{tenant.shown}: no service account to check was given")
    subject = Subject(tenant.namespace, tenant.service_account)
    must, must_not = premium_account_asks(tenant, peers, shared)
    return _matrix_result(api, ACCOUNT_ACCESS, tenant, f"its service account {subject.user}", subject, must,
                          must_not)


def _shared_account_access(api: KubernetesApi, tenant: KubernetesTenant, peers: list[KubernetesTenant],
                           shared: SharedWorkload | None) -> CheckResult:
    if shared is None:
        return CheckResult(SHARED_ACCOUNT_ACCESS, False, (
            f"{tenant.shown}: which service account the shared workload in {tenant.namespace} runs as was not "
            "given, so what it can read is unproven"))
    subject = Subject(shared.namespace, shared.service_account)
    must, must_not = shared_account_asks(tenant, peers, shared)
    return _matrix_result(api, SHARED_ACCOUNT_ACCESS, tenant, f"the shared workload's service account {subject.user}",
                          subject, must, must_not)


def _matrix_result(api: KubernetesApi, name: str, tenant: KubernetesTenant, who: str, subject: Subject,
                   must: list[Ask], must_not: list[Ask]) -> CheckResult:
    found = access_violations(api, subject, must, must_not)
    asked = len(must) + len(must_not)
    if not found:
        return CheckResult(name, True, (
            f"{tenant.shown}: {who} may do the {len(must)} things its workload needs and is refused the other "
            f"{len(must_not)} the matrix asks (SubjectAccessReviews)"))
    shown = found[:SHOWN_PER_CHECK] + ([f"and {len(found) - SHOWN_PER_CHECK} more"]
                                       if len(found) > SHOWN_PER_CHECK else [])
    return CheckResult(name, False, "\n".join([
        f"{tenant.shown}: {who} is not held to its own ({len(found)} of {asked} SubjectAccessReviews answered "
        "otherwise):", *shown]))


# Admission: Pod Security and the quota, by server-side dry-run ---------------------------------------------------

def probe_pod(name: str, tenant: KubernetesTenant, *, privileged: bool = False, cpu: str = "10m",
              memory: str = "16Mi") -> dict:
    """A pod of the tenant's workload that the restricted Pod Security level admits, unless `privileged`."""
    container_security = {"privileged": True} if privileged else {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    spec: dict = {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "probe", "image": PROBE_IMAGE, "securityContext": container_security,
            "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}},
        }],
    }
    if tenant.service_account:
        spec["serviceAccountName"] = tenant.service_account
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": tenant.namespace, "labels": dict(PROBE_LABELS)}, "spec": spec}


def dry_run_pod(api: KubernetesApi, pod: dict) -> ApiReply:
    """Send `pod` through authorization and every admission plugin, storing nothing (`dryRun=All`)."""
    namespace = quote(pod["metadata"]["namespace"], safe="")
    return api.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod, query=dict(DRY_RUN))


def _pod_security(api: KubernetesApi, tenant: KubernetesTenant) -> CheckResult:
    reply = dry_run_pod(api, probe_pod("tenantctl-probe-privileged", tenant, privileged=True))
    where = f"in {tenant.namespace}"
    if _ok(reply):
        return CheckResult(POD_SECURITY, False, (
            f"{tenant.shown}: a privileged pod was admitted {where} (server-side dry-run): Pod Security admission "
            "does not enforce the restricted level there; the namespace's pod-security.kubernetes.io/enforce label "
            "must be `restricted`"))
    message = _message(reply)
    if RESTRICTED_REFUSAL in message:
        return CheckResult(POD_SECURITY, True, (
            f"{tenant.shown}: Pod Security admission refused a privileged pod {where} (server-side dry-run): "
            f"{_first_line(message)}"))
    if "violates PodSecurity" in message:
        return CheckResult(POD_SECURITY, False, (
            f"{tenant.shown}: a privileged pod {where} was refused below the restricted level, so a pod that only "
            f"the restricted level refuses would be admitted: {_first_line(message)}"))
    return CheckResult(POD_SECURITY, False, (
        f"{tenant.shown}: the privileged probe pod {where} was refused ({reply.status}), but not by Pod Security "
        f"admission, which is left unproven: {_first_line(message)}"))


def _quota(api: KubernetesApi, tenant: KubernetesTenant) -> CheckResult:
    quota = tenant.quota
    if quota is None or quota.cpu is None or quota.memory is None:
        return CheckResult(QUOTA, False, f"{tenant.shown}: the tier's CPU and memory quota were not given")
    try:
        over_cpu, over_memory = just_over_cpu(quota.cpu), just_over_memory(quota.memory)
    except ValueError as exc:
        return CheckResult(QUOTA, False, f"{tenant.shown}: {exc}")
    probes = [("cpu", over_cpu, quota.cpu, probe_pod("tenantctl-probe-over-cpu", tenant, cpu=over_cpu)),
              ("memory", over_memory, quota.memory,
               probe_pod("tenantctl-probe-over-memory", tenant, memory=over_memory))]
    problems, refusals = [], []
    for resource, asked, allowed, pod in probes:
        reply = dry_run_pod(api, pod)
        if _ok(reply):
            problems.append(f"a pod asking {resource} {asked} (the tier allows {allowed}) was admitted in "
                            f"{tenant.namespace}: its ResourceQuota is missing or above the tier")
        elif QUOTA_REFUSAL in _message(reply):
            refusals.append(f"{resource} {asked}")
        else:
            problems.append(f"a pod asking {resource} {asked} was refused ({reply.status}), but not by a quota, "
                            f"which is left unproven: {_first_line(_message(reply))}")
    if problems:
        return CheckResult(QUOTA, False, f"{tenant.shown}: " + "; ".join(problems))
    return CheckResult(QUOTA, True, (
        f"{tenant.shown}: the quota in {tenant.namespace} refused pods just over the tier (cpu {quota.cpu}, memory "
        f"{quota.memory}): {' and '.join(refusals)} (server-side dry-runs)"))


def _suspended_no_pod(api: KubernetesApi, tenant: KubernetesTenant) -> CheckResult:
    reply = dry_run_pod(api, probe_pod("tenantctl-probe-suspended", tenant))
    where = f"in {tenant.namespace}"
    if _ok(reply):
        return CheckResult(SUSPENDED_NO_POD, False, (
            f"{tenant.shown} is suspended, but a small pod was admitted {where} (server-side dry-run): its "
            "ResourceQuota must allow 0 pods while it is suspended"))
    message = _message(reply)
    if QUOTA_REFUSAL in message:
        return CheckResult(SUSPENDED_NO_POD, True, (
            f"{tenant.shown} is suspended: its quota refused a small pod {where} (server-side dry-run): "
            f"{_first_line(message)}"))
    return CheckResult(SUSPENDED_NO_POD, False, (
        f"{tenant.shown} is suspended: a small pod {where} was refused ({reply.status}), but not by its quota, "
        f"which is left unproven: {_first_line(message)}"))


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity (`500m`, `2`, `4Gi`, `1e3`) as a number; ValueError if it is not one."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number) * (Decimal(10) ** int(exponent[1:]) if exponent else _SCALE.get(suffix or "", 1))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from None
    return value


def just_over_cpu(quota: str) -> str:
    """One millicore more than `quota`: the smallest CPU request the quota must refuse."""
    return f"{math.ceil(parse_quantity(quota) * 1000) + 1}m"


def just_over_memory(quota: str) -> str:
    """One mebibyte more than `quota`: a memory request the quota must refuse."""
    total = math.ceil(parse_quantity(quota)) + MEBIBYTE
    return f"{total // MEBIBYTE}Mi" if total % MEBIBYTE == 0 else str(total)


# NetworkPolicies -------------------------------------------------------------------------------------------------

def _default_deny(api: KubernetesApi, tenant: KubernetesTenant) -> CheckResult:
    name, namespace = tenant.default_deny_policy, tenant.namespace
    if not name:
        return CheckResult(DEFAULT_DENY, False, f"{tenant.shown}: no default-deny policy name was given")
    reply = api.request("GET", f"/apis/{NETWORKING}/v1/namespaces/{quote(namespace, safe='')}/networkpolicies")
    if not _ok(reply):
        raise _Unanswered(f"the NetworkPolicies of {namespace} could not be listed ({reply.status}): "
                          f"{_message(reply)}; the identity running the checks needs `list` on networkpolicies")
    policies = {item.get("metadata", {}).get("name"): item for item in reply.body.get("items") or []}
    deny = policies.get(name)
    if deny is None:
        return CheckResult(DEFAULT_DENY, False, (
            f"{tenant.shown}: no NetworkPolicy {name} in {namespace}: nothing denies its pods' traffic by default, "
            f"so they are open to and from every pod of the cluster. {ENFORCEMENT}"))
    problems = [f"{name} {problem}" for problem in _deny_problems(deny.get("spec") or {})]
    problems += [f"{other} {opening}" for other, policy in sorted(policies.items())
                 for opening in open_rules(policy.get("spec") or {})]
    if problems:
        return CheckResult(DEFAULT_DENY, False, f"{tenant.shown}: in {namespace}, " + "; ".join(problems)
                           + f". {ENFORCEMENT}")
    return CheckResult(DEFAULT_DENY, True, (
        f"{tenant.shown}: NetworkPolicy {name} in {namespace} selects every pod and allows no traffic in or out; "
        f"none of its {len(policies)} policies opens it to every peer. {ENFORCEMENT}"))


def _deny_problems(spec: dict) -> list[str]:
    problems = []
    selector = spec.get("podSelector")
    if selector is None or any(selector.get(key) for key in ("matchLabels", "matchExpressions")):
        problems.append(f"selects only the pods matching {selector}, not every pod")
    missing = [kind for kind in ("Ingress", "Egress") if kind not in (spec.get("policyTypes") or [])]
    if missing:
        problems.append(f"does not deny {' or '.join(kind.lower() for kind in missing)} (policyTypes "
                        f"{spec.get('policyTypes')})")
    for direction in ("ingress", "egress"):
        if spec.get(direction):
            problems.append(f"allows {direction} ({len(spec[direction])} rule(s)), so it denies nothing by itself")
    return problems


def open_rules(spec: dict) -> list[str]:
    """How a policy opens its pods to every peer: a rule on every port with no peer, or with a peer that matches
    every pod of every namespace or every address (NetworkPolicies add up: one such rule undoes the deny)."""
    found = []
    for direction, peers_key, preposition in (("ingress", "from", "from"), ("egress", "to", "to")):
        for rule in spec.get(direction) or []:
            if rule.get("ports"):
                continue
            peers = rule.get(peers_key) or []
            if not peers or any(_matches_everything(peer) for peer in peers):
                found.append(f"allows {direction} {preposition} every peer on every port")
    return found


def _matches_everything(peer: dict) -> bool:
    block = peer.get("ipBlock") or {}
    if block.get("cidr") in ("0.0.0.0/0", "::/0") and not block.get("except"):
        return True
    namespaces, pods = peer.get("namespaceSelector"), peer.get("podSelector")
    return namespaces is not None and not _selects_some(namespaces) and (pods is None or not _selects_some(pods))


def _selects_some(selector: dict) -> bool:
    return any(selector.get(key) for key in ("matchLabels", "matchExpressions"))


# Replies ---------------------------------------------------------------------------------------------------------

def _ok(reply: ApiReply) -> bool:
    return 200 <= reply.status < 300


def _message(reply: ApiReply) -> str:
    return str((reply.body or {}).get("message") or f"HTTP {reply.status}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
