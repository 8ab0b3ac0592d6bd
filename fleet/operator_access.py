"""The RBAC of the operator's workspaces: each rendered Stack's own ServiceAccount, and what it may read.

Every Stack (fleet.operator_manifests) runs its workspace as `<service account prefix>-<stack object>`:
- a ServiceAccount of its own, so that one tenant's workspace token is no other's;
- a Role and RoleBinding that let it `get` only the Secrets its own Stack names (the shared `env_secrets`,
  the git token, and its own `<stack object>-secrets`), by name: no list, no watch, no other Secret;
- a ClusterRoleBinding to `system:auth-delegator`, which the operator requires of every workspace account
  (the workspace's agent checks the operator's token with TokenReview).
The workspace pod gets its envRefs from the kubelet; the Role is the most its token can read on its own.
"""

from __future__ import annotations

from fleet.operator_manifests import OperatorSource, referenced_secrets

RBAC = "rbac.authorization.k8s.io/v1"
AUTH_DELEGATOR = "system:auth-delegator"


def render_workspace_access(stacks: list[dict], source: OperatorSource) -> list[dict]:
    """For each rendered Stack: its ServiceAccount, Role, RoleBinding and auth-delegator ClusterRoleBinding."""
    objects = []
    for stack in stacks:
        account = stack["spec"]["serviceAccountName"]
        labels = stack["metadata"]["labels"]
        metadata = {"name": account, "namespace": source.namespace, "labels": labels}
        subject = {"kind": "ServiceAccount", "name": account, "namespace": source.namespace}
        objects.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata})
        secrets = referenced_secrets(stack)
        if secrets:
            objects.append({"apiVersion": RBAC, "kind": "Role", "metadata": metadata,
                            "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": secrets,
                                       "verbs": ["get"]}]})
            objects.append({"apiVersion": RBAC, "kind": "RoleBinding", "metadata": metadata,
                            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
                            "subjects": [subject]})
        objects.append({"apiVersion": RBAC, "kind": "ClusterRoleBinding",
                        "metadata": {"name": f"{source.namespace}-{account}", "labels": labels},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                    "name": AUTH_DELEGATOR},
                        "subjects": [subject]})
    return objects
