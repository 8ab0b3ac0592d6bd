"""Explicit AWS and Kubernetes providers when the stack points at local endpoints (the dev stack).

With no `awsEndpoint`/`kubeContext`/`kubeconfig`/`kubernetesRenderDir` in config the default providers are used,
which read the ambient credentials (OIDC role in CI, `aws:region` from config) and kubeconfig.
`kubeconfig` (a path) applies with that file: the rehearsal's local API server (fleet.rehearsal_cluster).
`kubernetesRenderDir` writes every Kubernetes object as YAML into that folder instead of applying it:
manifests for a GitOps tool to apply, or a rehearsal begun before it had an API server.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.settings import ProviderSettings

# Local AWS emulators (moto) accept any credentials; these are their documented placeholders.
LOCAL_AWS_ACCESS_KEY = "test"
LOCAL_AWS_SECRET_KEY = "test"  # noqa: S105 (not a secret: a local emulator's placeholder)


def stack_providers(settings: ProviderSettings, aws_resources: bool = True) -> dict[str, pulumi.ProviderResource]:
    providers: dict[str, pulumi.ProviderResource] = {}
    if settings.aws_endpoint and aws_resources:
        endpoint = settings.aws_endpoint
        providers["aws"] = aws.Provider(
            "aws-local",
            region=aws.config.region or "us-east-1",
            access_key=LOCAL_AWS_ACCESS_KEY,
            secret_key=pulumi.Output.secret(LOCAL_AWS_SECRET_KEY),
            skip_credentials_validation=True,
            skip_requesting_account_id=True,
            skip_metadata_api_check=True,
            endpoints=[{"kms": endpoint, "secretsmanager": endpoint, "sts": endpoint, "iam": endpoint}],
        )
    if settings.kubernetes_render_dir:
        providers["kubernetes"] = k8s.Provider("kubernetes-render",
                                               render_yaml_to_directory=settings.kubernetes_render_dir)
    elif settings.kube_context or settings.kubeconfig:
        providers["kubernetes"] = k8s.Provider("kubernetes-local", context=settings.kube_context,
                                               kubeconfig=settings.kubeconfig)
    return providers
