"""ScheduledVerification: a CronJob that runs every tenant's onboarding checks and pushes the probe series.

Optional, in the platform stack (`verificationSchedule`, `verificationImage`, `pushgatewayUrl`,
`verificationDatabaseCidrs`): the job runs `tenantctl verify --all --format prometheus --pushgateway ...`
from an image of this repository (its tenant files and stack files at the deployed commit), so
`tenant_probe_success` is fresh between deployments and the "verification failing" alert of every tenant
has something to read.

It holds the fleet's strongest secrets (the provisioner URL and the Fernet key), so it gets only what it uses:
- a namespace of its own, enforcing Pod Security "restricted";
- a ServiceAccount of its own with no API token mounted, and no Role: the checks never call the Kubernetes API;
- a NetworkPolicy: no ingress; egress only to DNS, the database (its CIDRs and port), the Pushgateway's
  namespace and port, and the ingress controller on the webhook URL's port (the checks reach the app there);
- an image pinned by digest (a tag-only image is refused before anything is registered);
- a non-root, read-only, capability-less container;
- its secrets from a Secret of its own namespace, mounted read-only (0440) as files, never in the environment.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components.settings import SettingsError
from tenancy import secret_files

SCHEDULED_VERIFICATION_TYPE = "tenant-onboarding:index:ScheduledVerification"
JOB_NAME = "tenant-verification"
DEFAULT_NAMESPACE = "tenant-verification"
SECRETS_MOUNT = "/run/secrets/tenant-verification"
RUN_AS = 65532  # the distroless "nonroot" user: any non-zero id the image can run as
LABELS = {"app.kubernetes.io/name": JOB_NAME, "app.kubernetes.io/part-of": "ai-agents",
          "app.kubernetes.io/managed-by": "pulumi"}
RESTRICTED_NAMESPACE_LABELS = {f"pod-security.kubernetes.io/{mode}": "restricted"
                               for mode in ("enforce", "audit", "warn")}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# <registry>/<path>[:tag]@sha256:<64 hex>: the digest, not the tag, decides what runs.
DIGEST_PINNED = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\.[a-z0-9-]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+"
                           r"(?::[\w][\w.-]{0,127})?@sha256:[0-9a-f]{64}$")
SERVICE_HOST = re.compile(r"^(?P<service>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
                          r"(?:\.svc(?:\.cluster\.local)?)?$")


@dataclass(frozen=True)
class VerificationSettings:
    """The job's plain settings, checked before any resource is registered (SettingsError says what to fix)."""

    schedule: str
    image: str
    pushgateway_url: str
    database_cidrs: tuple[str, ...]
    database_port: int = 5432
    namespace: str = DEFAULT_NAMESPACE
    pushgateway_namespace: str = field(init=False)
    pushgateway_port: int = field(init=False)

    def __post_init__(self) -> None:
        if not DIGEST_PINNED.match(self.image):
            raise SettingsError(
                f"verificationImage {self.image!r} must be pinned by digest (<registry>/<name>@sha256:<64 hex>): a "
                "tag can be moved to other code, which would then run with the fleet's database and Fernet key")
        parts = urlsplit(self.pushgateway_url)
        host = SERVICE_HOST.match(parts.hostname or "")
        if parts.scheme not in ("http", "https") or host is None:
            raise SettingsError(
                f"pushgatewayUrl {self.pushgateway_url!r} must name an in-cluster service, "
                "http://<service>.<namespace>[.svc]:<port>: the job's NetworkPolicy allows egress to that "
                "namespace only")
        object.__setattr__(self, "pushgateway_namespace", host["namespace"])
        object.__setattr__(self, "pushgateway_port", parts.port or (443 if parts.scheme == "https" else 80))
        if not self.database_cidrs:
            raise SettingsError("verificationDatabaseCidrs is required with verificationSchedule: the database's "
                                "address range (for example 10.0.12.0/24), the only one the job may reach")
        for cidr in self.database_cidrs:
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise SettingsError(f"verificationDatabaseCidrs: {cidr!r} is not a CIDR") from None
            if network.prefixlen == 0:
                raise SettingsError(f"verificationDatabaseCidrs: {cidr!r} is every address; name the database's range")
        if not 0 < self.database_port < 65536:
            raise SettingsError(f"verificationDatabasePort {self.database_port} is not a port")


def read_verification_settings(config: pulumi.Config) -> VerificationSettings | None:
    """None when no schedule is set (no job)."""
    schedule = config.get("verificationSchedule")
    if not schedule:
        return None
    cidrs = tuple(c.strip() for c in (config.get("verificationDatabaseCidrs") or "").split(",") if c.strip())
    return VerificationSettings(schedule=schedule, image=config.require("verificationImage"),
                                pushgateway_url=config.require("pushgatewayUrl"), database_cidrs=cidrs,
                                database_port=config.get_int("verificationDatabasePort") or 5432,
                                namespace=config.get("verificationNamespace") or DEFAULT_NAMESPACE)


@dataclass
class ScheduledVerificationArgs:
    env: str
    settings: VerificationSettings
    ingress_namespace: str
    webhook_port: int
    database_url: pulumi.Input[str]
    app_database_url: pulumi.Input[str]
    fernet_key: pulumi.Input[str]


def verification_command(env: str) -> list[str]:
    return ["python", "-m", "tenantctl", "verify", "--all", "--env", env, "--format", "prometheus",
            "--secrets-dir", SECRETS_MOUNT]


def egress_rules(args: ScheduledVerificationArgs) -> list[dict]:
    """DNS, the database, the Pushgateway and the app (through the ingress controller): nothing else."""
    settings = args.settings

    def namespace(name: str) -> dict:
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}

    return [
        {"to": [{**namespace("kube-system"), "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [{"ipBlock": {"cidr": cidr}} for cidr in settings.database_cidrs],
         "ports": [{"protocol": "TCP", "port": settings.database_port}]},
        {"to": [namespace(settings.pushgateway_namespace)],
         "ports": [{"protocol": "TCP", "port": settings.pushgateway_port}]},
        {"to": [namespace(args.ingress_namespace)], "ports": [{"protocol": "TCP", "port": args.webhook_port}]},
    ]


class ScheduledVerification(pulumi.ComponentResource):
    def __init__(self, name: str, args: ScheduledVerificationArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(SCHEDULED_VERIFICATION_TYPE, name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": settings.namespace, "labels": {**LABELS, **RESTRICTED_NAMESPACE_LABELS}},
            opts=child,
        )
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata={"name": JOB_NAME, "namespace": namespace.metadata.name, "labels": LABELS},
            automount_service_account_token=False,
            opts=in_namespace,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-egress",
            metadata={"name": JOB_NAME, "namespace": namespace.metadata.name, "labels": LABELS},
            spec={"podSelector": {"matchLabels": LABELS}, "policyTypes": ["Ingress", "Egress"], "ingress": [],
                  "egress": egress_rules(args)},
            opts=in_namespace,
        )
        secret = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": f"{JOB_NAME}-credentials", "namespace": namespace.metadata.name, "labels": LABELS},
            type="Opaque",
            string_data=pulumi.Output.secret({
                secret_files.DATABASE_URL: args.database_url,
                secret_files.APP_DATABASE_URL: args.app_database_url,
                secret_files.FERNET_KEY: args.fernet_key,
            }),
            opts=in_namespace,
        )
        container = {
            "name": "verify",
            "image": settings.image,
            "command": verification_command(args.env),
            "securityContext": RESTRICTED_CONTAINER,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            # The checks write nothing to disk; Python's caches go to memory. The Pushgateway URL is no secret.
            "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                    {"name": "TENANT_PUSHGATEWAY_URL", "value": settings.pushgateway_url}],
            "volumeMounts": [{"name": "credentials", "mountPath": SECRETS_MOUNT, "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 (a private emptyDir)
        }
        self.cron_job = k8s.batch.v1.CronJob(
            f"{name}-cronjob",
            metadata={"name": JOB_NAME, "namespace": namespace.metadata.name, "labels": LABELS},
            spec={
                "schedule": settings.schedule,
                # One run at a time: a slow run is not stacked on by the next.
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {"spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": 1800,
                    "template": {
                        "metadata": {"labels": LABELS},
                        "spec": {
                            "restartPolicy": "Never",
                            "serviceAccountName": account.metadata.name,
                            "automountServiceAccountToken": False,
                            "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
                                                "fsGroup": RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [container],
                            "volumes": [
                                {"name": "credentials", "secret": {"secretName": secret.metadata.name,
                                                                   "defaultMode": 0o440}},
                                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                            ],
                        },
                    },
                }},
            },
            opts=in_namespace,
        )
        self.register_outputs({"cron_job": self.cron_job.metadata.name, "namespace": namespace.metadata.name})
