"""ScheduledVerification: a CronJob that runs every tenant's onboarding checks and pushes the probe series.

Optional, in the platform stack (`verificationSchedule`, `verificationImage`, `pushgatewayUrl`): the
job runs `tenantctl verify --all --format prometheus --pushgateway ...` from an image of this repository
(its tenant files and stack files at the deployed commit), so `tenant_probe_success` is fresh between
deployments and the "verification failing" alert of every tenant has something to read. Its database
URLs and Fernet key come from a Secret made from the platform stack's secret config.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

SCHEDULED_VERIFICATION_TYPE = "tenant-onboarding:index:ScheduledVerification"
JOB_NAME = "tenant-verification"
LABELS = {"app.kubernetes.io/name": JOB_NAME, "app.kubernetes.io/part-of": "ai-agents",
          "app.kubernetes.io/managed-by": "pulumi"}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass
class ScheduledVerificationArgs:
    env: str
    namespace: pulumi.Input[str]
    schedule: str
    image: str
    pushgateway_url: str
    database_url: pulumi.Input[str]
    app_database_url: pulumi.Input[str]
    fernet_key: pulumi.Input[str]


def verification_command(env: str) -> list[str]:
    return ["python", "-m", "tenantctl", "verify", "--all", "--env", env, "--format", "prometheus"]


class ScheduledVerification(pulumi.ComponentResource):
    def __init__(self, name: str, args: ScheduledVerificationArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(SCHEDULED_VERIFICATION_TYPE, name, None, opts)
        secret = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": f"{JOB_NAME}-credentials", "namespace": args.namespace, "labels": LABELS},
            type="Opaque",
            string_data=pulumi.Output.secret({
                "TENANT_DATABASE_URL": args.database_url,
                "APP_DATABASE_URL": args.app_database_url,
                "TENANT_FERNET_KEY": args.fernet_key,
                "TENANT_PUSHGATEWAY_URL": args.pushgateway_url,
            }),
            opts=pulumi.ResourceOptions(parent=self),
        )
        container = {
            "name": "verify",
            "image": args.image,
            "command": verification_command(args.env),
            "envFrom": [{"secretRef": {"name": secret.metadata.name}}],
            "securityContext": RESTRICTED_CONTAINER,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            # The checks write nothing to disk; Python's caches go to memory.
            "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
        }
        self.cron_job = k8s.batch.v1.CronJob(
            f"{name}-cronjob",
            metadata={"name": JOB_NAME, "namespace": args.namespace, "labels": LABELS},
            spec={
                "schedule": args.schedule,
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
                            "automountServiceAccountToken": False,
                            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [container],
                        },
                    },
                }},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"cron_job": self.cron_job.metadata.name})
