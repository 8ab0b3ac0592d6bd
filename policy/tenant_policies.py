"""The tenant-onboarding CrossGuard policies, importable without starting a policy pack.

Owns eight policies (collected in `POLICIES`, which `__main__.py` turns into the pack):
- `premium-namespace-isolation` (stack): every premium tenant namespace has a ResourceQuota, a LimitRange
  and a default-deny NetworkPolicy in the same stack;
- `kms-key-rotation-enabled`: every KMS key rotates;
- `tenant-objects-in-tenant-namespace`: a Kubernetes object labelled with a tenant slug lives in that
  tenant's namespace (premium) or in the shared namespace (basic);
- `kubernetes-secret-data-is-secret`: a Kubernetes Secret's `data`/`stringData` is a Pulumi secret;
- `no-allow-all-network-policy`: no tenant NetworkPolicy rule admits every source or destination, or every
  namespace (it would undo the default deny beside it);
- `no-binding-to-every-service-account`: no RoleBinding grants to system:serviceaccounts (or authenticated,
  unauthenticated) groups;
- `restricted-pod-security`: a premium tenant namespace enforces the `restricted` Pod Security level;
- `credentials-secret-uses-tenant-key`: a Secrets Manager secret names its KMS key (the tenant's own).

Secretness. The engine sends every analyzer its properties with secrets still marked (the 4dabf18193...
envelope), but pulumi-policy's `Analyze`/`AnalyzeStack` deserialize them with `proxy_secrets=False`,
which drops the mark: a validation cannot tell a secret from a plain value (pulumi/pulumi-policy#241,
open; true of the pinned 1.21.0). Only `Remediate` keeps the mark, as `pulumi_policy.Secret` wrappers.
`analyze_with_secrets()` makes validations see that same representation, and `__main__.py` calls it
before starting the pack. The secret policy fails closed when it was not called (or a pulumi-policy
upgrade moved the name it patches): it cannot tell a secret from a plain value, so it reports that. The other
policies read values through `plain()`, so they work with and without it.

The pack runs in its own virtualenv with only pulumi and pulumi-policy (see `__main__.py`), so it
cannot import `components`; the few names it shares with `components/naming.py` are repeated below,
and tests/policy checks that they agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi.runtime
import pulumi_policy.policy as _servicer_module
from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY
from pulumi_policy.deserialize import deserialize_properties as _stock_deserialize_properties
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

# Shared with components/naming.py (kept in sync by tests/policy).
PROJECT = "tenant-onboarding"
LABEL_PREFIX = "tenants.ai-agents.io"
SLUG_LABEL = f"{LABEL_PREFIX}/slug"
TIER_LABEL = f"{LABEL_PREFIX}/tier"
PREMIUM, BASIC = "premium", "basic"
# Same default as `sharedNamespace` in Pulumi.yaml and components/settings.py.
DEFAULT_SHARED_NAMESPACE = "production"
SHARED_NAMESPACE_STACK_KEY = f"{PROJECT}:sharedNamespace"
# Where Kubernetes puts a namespaced object that names no namespace and whose provider sets none.
KUBERNETES_DEFAULT_NAMESPACE = "default"

NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"
RESOURCE_QUOTA_TYPE = "kubernetes:core/v1:ResourceQuota"
LIMIT_RANGE_TYPE = "kubernetes:core/v1:LimitRange"
NETWORK_POLICY_TYPE = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
K8S_SECRET_TYPE = "kubernetes:core/v1:Secret"  # noqa: S105 (a type token, not a password)
KMS_KEY_TYPE = "aws:kms/key:Key"
SM_SECRET_TYPE = "aws:secretsmanager/secret:Secret"  # noqa: S105 (a type token)
ROLE_BINDING_TYPES = ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
                      "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
EVERYONE_GROUPS = ("system:serviceaccounts", "system:authenticated", "system:unauthenticated")
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"

# Kinds that have no namespace; every other Kubernetes kind is namespaced.
CLUSTER_SCOPED_KINDS = frozenset({
    "APIService", "CertificateSigningRequest", "ClusterRole", "ClusterRoleBinding", "ClusterTrustBundle",
    "ComponentStatus", "CSIDriver", "CSINode", "CustomResourceDefinition", "FlowSchema", "IngressClass",
    "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "MutatingWebhookConfiguration", "Namespace",
    "Node", "PersistentVolume", "PriorityClass", "PriorityLevelConfiguration", "RuntimeClass", "StorageClass",
    "StorageVersionMigration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration", "VolumeAttachment", "VolumeAttributesClass",
})

_UNKNOWNS = frozenset({
    UNKNOWN_ARCHIVE_VALUE, UNKNOWN_ARRAY_VALUE, UNKNOWN_ASSET_VALUE, UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE, UNKNOWN_OBJECT_VALUE, UNKNOWN_STRING_VALUE,
})


# --- how secrets reach a validation ---------------------------------------------------------------


def deserialize_keeping_secrets(props: dict[str, Any], proxy_secrets: bool = False) -> dict[str, Any]:
    """pulumi-policy's `deserialize_properties`, except that a secret stays a `pulumi_policy.Secret`.

    With `proxy_secrets=True` (the Remediate path, which already keeps secrets) it defers to the stock
    function unchanged. A secret whose value is unknown during preview stays a secret (its secretness is
    known); reading its value through `plain()` raises `UnknownValueError`, as the analyzer's proxy does.
    """
    if proxy_secrets:
        return _stock_deserialize_properties(props, True)
    return {key: _keep_secrets(value) for key, value in props.items()}


def _keep_secrets(value: Any) -> Any:
    if isinstance(value, list):
        return [_keep_secrets(item) for item in value]
    if isinstance(value, dict):
        signature = value.get(SPECIAL_SIG_KEY)
        if signature == SPECIAL_SECRET_SIG:
            return Secret(_keep_secrets(value.get("value")))
        if signature is not None:  # an asset or archive: the stock decoding applies
            return _stock_deserialize_properties({"value": value})["value"]
        return {key: _keep_secrets(item) for key, item in value.items()}
    return value


def analyze_with_secrets() -> None:
    """Make the running analyzer hand validations secrets as `pulumi_policy.Secret` (see the docstring).

    pulumi-policy has no option for this, so it swaps the name its analyzer module deserializes with;
    call it once, before `PolicyPack(...)`. If that name is gone (an upgrade), the pack refuses to start:
    a preview then fails instead of passing without the secret checks.
    """
    if not callable(getattr(_servicer_module, "deserialize_properties", None)):
        raise RuntimeError("pulumi-policy no longer deserializes through pulumi_policy.policy.deserialize_properties:"
                           " secretness cannot be kept visible; update tenant_policies.analyze_with_secrets")
    _servicer_module.deserialize_properties = deserialize_keeping_secrets


def secrets_visible() -> bool:
    """Whether validations in this process receive secrets as `pulumi_policy.Secret` wrappers."""
    return _servicer_module.deserialize_properties is deserialize_keeping_secrets


def _is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in _UNKNOWNS


def _reveal(value: Any, path: Sequence[Any]) -> Any:
    """The value inside any `Secret` layers; `UnknownValueError` if it is not known yet (preview)."""
    while isinstance(value, Secret):
        value = value.value
    if _is_unknown(value):
        raise UnknownValueError(value, [str(key) for key in path])
    return value


def plain(value: Any, path: Sequence[Any] = ()) -> Any:
    """The value with every `pulumi_policy.Secret` unwrapped, for checks that do not care about secretness."""
    value = _reveal(value, path)
    if isinstance(value, Mapping):
        return {key: plain(value[key], [*path, key]) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(item, [*path, index]) for index, item in enumerate(value)]
    return value


def _field(props: Mapping[str, Any], *path: str) -> Any:
    """props[path[0]][path[1]]..., secrets unwrapped, or None where the path stops.

    Only the path and the value at its end are read, so an unknown value elsewhere in the resource does
    not stop the check during preview.
    """
    value: Any = props
    for depth, key in enumerate(path):
        value = _reveal(value, path[:depth])
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return plain(value, path)


# --- shared reading of Kubernetes objects ---------------------------------------------------------


def tenant_namespace(slug: str) -> str:
    return f"tenant-{slug}"


def _kind(resource_type: str) -> str:
    return resource_type.rsplit(":", 1)[-1]


def _labels(props: Mapping[str, Any]) -> dict[str, Any]:
    labels = _field(props, "metadata", "labels")
    return labels if isinstance(labels, dict) else {}


def _describe(kind: str, props: Mapping[str, Any], resource_name: str) -> str:
    """`Role 'tenant-acme-reader' (Pulumi resource 'acme-reader-role')`: what an operator greps for."""
    object_name = _field(props, "metadata", "name")
    if object_name and object_name != resource_name:
        return f"{kind} {object_name!r} (Pulumi resource {resource_name!r})"
    return f"{kind} {resource_name!r}"


def _tenant_of(props: Mapping[str, Any]) -> str:
    slug = _labels(props).get(SLUG_LABEL)
    return f"tenant {slug!r}" if slug else "an unlabelled tenant"


# --- 1. premium namespaces are isolated -----------------------------------------------------------


def _selects_every_pod(selector: Any) -> bool:
    if not isinstance(selector, dict):
        return False
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def default_deny_problem(spec: Any) -> str | None:
    """Why a NetworkPolicy spec is not a default deny of all ingress and egress, or None if it is one."""
    if not isinstance(spec, dict):
        return "it has no spec"
    if not _selects_every_pod(spec.get("podSelector")):
        return "its podSelector does not select every pod (it must be {})"
    policy_types = set(spec.get("policyTypes") or [])
    missing_types = [t for t in ("Ingress", "Egress") if t not in policy_types]
    if missing_types:
        return f"its policyTypes lack {' and '.join(missing_types)}"
    allowing = [key for key in ("ingress", "egress") if spec.get(key)]
    if allowing:
        return f"it has {' and '.join(allowing)} rules, which allow traffic (a default deny has none)"
    return None


def _in_namespace(resources: list[PolicyResource], resource_type: str, namespace: str) -> list[PolicyResource]:
    return [
        r for r in resources
        if r.resource_type == resource_type and _field(r.props, "metadata", "namespace") == namespace
    ]


def validate_premium_namespace_isolation(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for namespace in args.resources:
        if namespace.resource_type != NAMESPACE_TYPE or _labels(namespace.props).get(TIER_LABEL) != PREMIUM:
            continue
        name = _field(namespace.props, "metadata", "name") or namespace.name
        subject = f"premium namespace {name!r} of {_tenant_of(namespace.props)} (Pulumi resource {namespace.name!r})"
        for resource_type, what in ((RESOURCE_QUOTA_TYPE, "ResourceQuota"), (LIMIT_RANGE_TYPE, "LimitRange")):
            if not _in_namespace(args.resources, resource_type, name):
                report_violation(
                    f"{subject} has no {what} in this stack; add one with metadata.namespace {name!r} "
                    f"(TenantStack creates it for every premium tenant).",
                    namespace.urn,
                )
        policies = _in_namespace(args.resources, NETWORK_POLICY_TYPE, name)
        problems = {
            _field(p.props, "metadata", "name") or p.name: default_deny_problem(_field(p.props, "spec"))
            for p in policies
        }
        if any(problem is None for problem in problems.values()):
            continue
        near_misses = "; ".join(f"NetworkPolicy {n!r}: {problem}" for n, problem in sorted(problems.items()))
        report_violation(
            f"{subject} has no default-deny NetworkPolicy: it needs one with podSelector {{}}, policyTypes "
            f"[Ingress, Egress] and no ingress or egress rules"
            + (f" ({near_misses})." if near_misses else " (it has no NetworkPolicy at all)."),
            namespace.urn,
        )


premium_namespace_isolation = StackValidationPolicy(
    name="premium-namespace-isolation",
    description=(
        "Every premium tenant namespace has, in the same stack, a ResourceQuota, a LimitRange and a default-deny "
        "NetworkPolicy (podSelector {}, policyTypes Ingress and Egress, no rules)."
    ),
    validate=validate_premium_namespace_isolation,
    severity=Severity.HIGH,
    remediation_steps="Create the namespace with TenantStack, which renders all three; do not delete them.",
)


# --- 2. KMS keys rotate ---------------------------------------------------------------------------


def validate_kms_key_rotation(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != KMS_KEY_TYPE:
        return
    rotation = _field(args.props, "enableKeyRotation")
    if rotation is True:
        return
    tags = _field(args.props, "tags")
    slug = tags.get("slug") if isinstance(tags, dict) else None
    owner = f" of tenant {slug!r}" if slug else ""
    shown = "unset" if rotation is None else repr(rotation)
    report_violation(
        f"KMS key {args.name!r}{owner} has enableKeyRotation {shown}; "
        f"create it with enable_key_rotation=True so AWS rotates its key material yearly."
    )


kms_key_rotation_enabled = ResourceValidationPolicy(
    name="kms-key-rotation-enabled",
    description="KMS keys have automatic key rotation enabled (enableKeyRotation: true).",
    validate=validate_kms_key_rotation,
    severity=Severity.HIGH,
    remediation_steps="Pass enable_key_rotation=True to aws.kms.Key.",
)


# --- 3. tenant objects stay in their tenant's namespace -------------------------------------------


def shared_namespace(policy_config: Mapping[str, Any]) -> str:
    """The namespace of basic tenants: this policy's config, else the stack's config, else `production`.

    The policy config schema declares no default on purpose: the engine fills schema defaults in before
    the pack sees its config, which would hide the stack's own `sharedNamespace`.
    """
    configured = policy_config.get("sharedNamespace")
    if configured:
        return str(configured)
    from_stack = pulumi.runtime.get_config(SHARED_NAMESPACE_STACK_KEY)
    return str(from_stack) if from_stack else DEFAULT_SHARED_NAMESPACE


def expected_namespace(tier: Any, slug: str, shared: str) -> str | None:
    if tier == PREMIUM:
        return tenant_namespace(slug)
    if tier == BASIC:
        return shared
    return None


def validate_tenant_object_namespace(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    kind = _kind(args.resource_type)
    if not args.resource_type.startswith("kubernetes:") or kind in CLUSTER_SCOPED_KINDS:
        return
    labels = _labels(args.props)
    slug = labels.get(SLUG_LABEL)
    if not slug:
        return
    tier = labels.get(TIER_LABEL)
    subject = f"{_describe(kind, args.props, args.name)} of tenant {slug!r}"
    expected = expected_namespace(tier, slug, shared_namespace(args.get_config()))
    if expected is None:
        report_violation(
            f"{subject} has {TIER_LABEL} {tier!r}, so its namespace cannot be checked; "
            f"label it {PREMIUM!r} or {BASIC!r} like the tenant file's tier."
        )
        return
    namespace = _field(args.props, "metadata", "namespace")
    where = f"namespace {namespace!r}"
    if not namespace:
        provider_namespace = _field(args.provider.props, "namespace") if args.provider is not None else None
        namespace = provider_namespace or KUBERNETES_DEFAULT_NAMESPACE
        where = f"no metadata.namespace, so it lands in {namespace!r}"
    if namespace != expected:
        report_violation(
            f"{subject} ({tier}) has {where}; {tier} tenants' objects belong in {expected!r}. "
            f"Set metadata.namespace to {expected!r}."
        )


tenant_objects_in_tenant_namespace = ResourceValidationPolicy(
    name="tenant-objects-in-tenant-namespace",
    description=(
        f"A namespaced Kubernetes object labelled {SLUG_LABEL}: <slug> lives in tenant-<slug> when its tier is "
        f"premium, and in the shared namespace when it is basic."
    ),
    validate=validate_tenant_object_namespace,
    config_schema=PolicyConfigSchema(properties={
        "sharedNamespace": {
            "type": "string",
            "minLength": 1,
            "description": (
                f"Namespace of basic-tier tenants. When unset: the stack's {SHARED_NAMESPACE_STACK_KEY}, "
                f"else {DEFAULT_SHARED_NAMESPACE!r}."
            ),
        },
    }),
    severity=Severity.HIGH,
    remediation_steps="Set metadata.namespace to the tenant's namespace (premium) or the shared one (basic).",
)


# --- 4. Kubernetes Secret data is a Pulumi secret -------------------------------------------------


def plain_paths(value: Any, path: str) -> list[str]:
    """Where `value` holds something that is not a secret: none if it is one, or if every entry is one."""
    if isinstance(value, Secret) or value is None:
        return []
    if isinstance(value, Mapping) and value:
        return [p for key in sorted(value) for p in plain_paths(value[key], f"{path}.{key}")]
    if isinstance(value, Mapping):  # an empty map holds nothing
        return []
    return [path]


_SECRETS_INVISIBLE = (
    "secretness is invisible here: this analyzer unwraps secrets before validations run; start the pack "
    "with tenant_policies.analyze_with_secrets() (policy/__main__.py does)"
)


def validate_secret_data_is_secret(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != K8S_SECRET_TYPE:
        return
    if not secrets_visible():
        report_violation(f"{_describe('Secret', args.props, args.name)} cannot be checked: {_SECRETS_INVISIBLE}")
        return
    # Read the raw mapping: the analyzer's unknown-checking proxy returns the Secret wrappers as they are.
    exposed = [p for key in ("data", "stringData") if key in args.props for p in plain_paths(args.props[key], key)]
    if not exposed:
        return
    report_violation(
        f"{_describe('Secret', args.props, args.name)} of {_tenant_of(args.props)} sets {', '.join(exposed)} from "
        f"values that are not Pulumi secrets, so the engine keeps and shows them as plain text (state, diffs); "
        f"pass them through pulumi.Output.secret(...) or read them with config.require_secret(...)."
    )


kubernetes_secret_data_is_secret = ResourceValidationPolicy(
    name="kubernetes-secret-data-is-secret",
    description="A Kubernetes Secret's data and stringData come from Pulumi secrets, never from plain values.",
    validate=validate_secret_data_is_secret,
    severity=Severity.CRITICAL,
    remediation_steps="Wrap the values with pulumi.Output.secret(...) or read them with config.require_secret(...).",
)


# --- 5. no NetworkPolicy rule that lets everything in or out ------------------------------------


def _open_peers(rules: Any, direction: str) -> list[str]:
    """Why rules of one direction admit everything: a rule without peers, or a peer of every namespace."""
    found = []
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        peers = rule.get("from" if direction == "ingress" else "to") if isinstance(rule, dict) else None
        if not peers:
            found.append(f"{direction}[{index}] has no {'from' if direction == 'ingress' else 'to'}: every "
                         f"{'source' if direction == 'ingress' else 'destination'}")
            continue
        for peer in peers:
            if not isinstance(peer, dict):
                continue
            if "namespaceSelector" in peer and _selects_every_pod(peer["namespaceSelector"]) \
                    and _selects_every_pod(peer.get("podSelector", {})):
                found.append(f"{direction}[{index}] admits every pod of every namespace (namespaceSelector {{}})")
            elif isinstance(peer.get("ipBlock"), dict) and peer["ipBlock"].get("cidr") in ("0.0.0.0/0", "::/0"):
                found.append(f"{direction}[{index}] admits every address ({peer['ipBlock']['cidr']})")
    return found


def validate_no_allow_all_network_policy(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != NETWORK_POLICY_TYPE or not _labels(args.props).get(SLUG_LABEL):
        return
    spec = _field(args.props, "spec")
    if not isinstance(spec, dict):
        return
    problems = _open_peers(spec.get("ingress"), "ingress") + _open_peers(spec.get("egress"), "egress")
    if problems:
        report_violation(
            f"{_describe('NetworkPolicy', args.props, args.name)} of {_tenant_of(args.props)} opens the tenant's "
            f"namespace: {'; '.join(problems)}. NetworkPolicies add up, so this undoes the default deny; "
            "name the namespaces (and pods) that may connect."
        )


no_allow_all_network_policy = ResourceValidationPolicy(
    name="no-allow-all-network-policy",
    description="No tenant NetworkPolicy rule admits every source, destination or namespace.",
    validate=validate_no_allow_all_network_policy,
    severity=Severity.HIGH,
    remediation_steps="Give each rule from/to peers naming specific namespaces (and pods).",
)


# --- 6. no RoleBinding to every service account -----------------------------------------------------


def validate_no_binding_to_everyone(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in ROLE_BINDING_TYPES:
        return
    subjects = _field(args.props, "subjects")
    for subject in subjects if isinstance(subjects, list) else []:
        name = subject.get("name") if isinstance(subject, dict) else None
        if isinstance(name, str) and name.startswith(EVERYONE_GROUPS):
            report_violation(
                f"{_describe(_kind(args.resource_type), args.props, args.name)} binds the group {name!r}: every "
                "service account (or user) it covers, of every tenant, gets the role. Bind the tenant's own "
                "ServiceAccount instead."
            )


no_binding_to_every_service_account = ResourceValidationPolicy(
    name="no-binding-to-every-service-account",
    description="No RoleBinding or ClusterRoleBinding names the system:serviceaccounts, authenticated or "
                "unauthenticated groups.",
    validate=validate_no_binding_to_everyone,
    severity=Severity.CRITICAL,
    remediation_steps="Bind the tenant's ServiceAccount by name.",
)


# --- 7. premium namespaces enforce the restricted Pod Security level --------------------------------


def validate_restricted_pod_security(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != NAMESPACE_TYPE or _labels(args.props).get(TIER_LABEL) != PREMIUM:
        return
    level = _labels(args.props).get(ENFORCE_LABEL)
    if level != "restricted":
        shown = "no" if level is None else repr(level)
        report_violation(
            f"premium namespace {_field(args.props, 'metadata', 'name')!r} of {_tenant_of(args.props)} has {shown} "
            f"{ENFORCE_LABEL} label; it must be 'restricted' (privileged pods could reach the node and other tenants)."
        )


restricted_pod_security = ResourceValidationPolicy(
    name="restricted-pod-security",
    description=f"A premium tenant namespace is labelled {ENFORCE_LABEL}: restricted.",
    validate=validate_restricted_pod_security,
    severity=Severity.HIGH,
    remediation_steps="Keep the Pod Security labels TenantStack renders.",
)


# --- 8. tenant credentials are encrypted with the tenant's own key ----------------------------------


def validate_secret_uses_tenant_key(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != SM_SECRET_TYPE:
        return
    try:
        key = _field(args.props, "kmsKeyId")
    except UnknownValueError:
        return  # the tenant's key is created in the same run: known only after it exists
    if not key:
        tags = _field(args.props, "tags")
        slug = tags.get("slug") if isinstance(tags, dict) else None
        report_violation(
            f"Secrets Manager secret {args.name!r}{f' of tenant {slug!r}' if slug else ''} names no kmsKeyId, so AWS "
            "encrypts it with the account's default key, shared by every tenant; pass the tenant's KMS key ARN."
        )


credentials_secret_uses_tenant_key = ResourceValidationPolicy(
    name="credentials-secret-uses-tenant-key",
    description="A Secrets Manager secret is encrypted with a named KMS key (the tenant's), not the account default.",
    validate=validate_secret_uses_tenant_key,
    severity=Severity.HIGH,
    remediation_steps="Pass kms_key_id=<the tenant's aws.kms.Key>.arn.",
)


POLICIES = [
    premium_namespace_isolation,
    kms_key_rotation_enabled,
    tenant_objects_in_tenant_namespace,
    kubernetes_secret_data_is_secret,
    no_allow_all_network_policy,
    no_binding_to_every_service_account,
    restricted_pod_security,
    credentials_secret_uses_tenant_key,
]
