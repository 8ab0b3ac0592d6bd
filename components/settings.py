"""Stack-wide settings, read once from Pulumi config and checked before any resource is registered."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the tenant_configs row lives and how the post-deploy check connects (all secrets)."""

    provisioner_url: pulumi.Output[str]
    app_url: pulumi.Output[str]
    fernet_key: pulumi.Output[str]


@dataclass(frozen=True)
class StackSettings:
    tenants_dir: str
    shared_namespace: str
    ingress_namespace: str
    monitoring_namespace: str
    webhook_base_url: str
    run_checks: bool
    checks_nonce: str
    aws_endpoint: str | None
    kube_context: str | None
    # Write Kubernetes objects as YAML here instead of applying them (no cluster; or for a GitOps tool).
    kubernetes_render_dir: str | None = None
    # Slugs whose history `tenantctl destroy --purge-data` asked to purge (`purgeData.<slug>: true`).
    purge_slugs: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        parts = urlsplit(self.webhook_base_url)
        loopback = parts.hostname in LOOPBACK_HOSTS
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise SettingsError(
                f"webhookBaseUrl {self.webhook_base_url!r} must be https (http is allowed only on loopback)"
            )
        if self.kubernetes_render_dir and self.kube_context:
            raise SettingsError("set kubernetesRenderDir or kubeContext, not both: rendered objects are not applied")
        if self.aws_endpoint:
            endpoint = urlsplit(self.aws_endpoint)
            if endpoint.hostname not in LOOPBACK_HOSTS:
                raise SettingsError(f"awsEndpoint {self.aws_endpoint!r} must be a loopback URL (a local AWS emulator)")


def read_settings(config: pulumi.Config | None = None) -> StackSettings:
    config = config or pulumi.Config()
    return StackSettings(
        tenants_dir=config.get("tenantsDir") or "tenants",
        shared_namespace=config.get("sharedNamespace") or "production",
        ingress_namespace=config.get("ingressNamespace") or "ingress-nginx",
        monitoring_namespace=config.get("monitoringNamespace") or "monitoring",
        webhook_base_url=config.get("webhookBaseUrl") or "https://api.ai-agents.production",
        run_checks=config.get_bool("runChecks") if config.get("runChecks") is not None else True,
        checks_nonce=config.get("checksNonce") or "0",
        aws_endpoint=config.get("awsEndpoint"),
        kube_context=config.get("kubeContext"),
        kubernetes_render_dir=config.get("kubernetesRenderDir"),
        purge_slugs=_purge_slugs(config.get_object("purgeData")),
    )


def _purge_slugs(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
        raise SettingsError("purgeData must map tenant slugs to true or false "
                            "(`tenantctl destroy --purge-data` sets it)")
    return frozenset(slug for slug, purge in value.items() if purge)


DATABASE_KEYS = ("databaseUrl", "appDatabaseUrl", "fernetKey")


def missing_secret_keys(config: pulumi.Config, names: list[str]) -> list[str]:
    return [name for name in names if config.get(name) is None]


def check_database_urls(config: pulumi.Config, keys: list[str]) -> None:
    """Every database URL of the stack, parsed and checked up front (SettingsError names them all, no password)."""
    from tenantctl.database_url import DatabaseUrlError, parse_database_url

    allow = config.get_bool("allowUnverifiedDatabaseTls") or False
    problems = []
    for key in keys:
        value = config.get(key)  # plain only for this check; the program uses require_secret
        if value is None:
            continue
        try:
            parse_database_url(value, what=key, allow_unverified=allow)
        except DatabaseUrlError as exc:
            problems.append(str(exc))
    if problems:
        raise SettingsError("\n".join(problems))


def read_database_settings(
    config: pulumi.Config, provisioner_url: pulumi.Output[str] | None = None
) -> DatabaseSettings:
    return DatabaseSettings(
        provisioner_url=provisioner_url if provisioner_url is not None else config.require_secret("databaseUrl"),
        app_url=config.require_secret("appDatabaseUrl"),
        fernet_key=config.require_secret("fernetKey"),
    )
