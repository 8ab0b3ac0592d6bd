"""TenantStack: everything one MSP client gets, from one tenant file.

Creates, all parented to the component and named from the slug:
- a random webhook signing secret per version in use: the current one, and during a rotation
  (`webhook.rotation`) the next one too (`tenancy.signing_rotation` says which);
- a per-tenant KMS key (rotation on, 30-day deletion window) and its alias `alias/tenant-<slug>`;
- a Secrets Manager secret encrypted with that key, holding the API key and signing secret (14-day recovery
  window);
- a Kubernetes Secret `tenant-<slug>-credentials` in the tenant's namespace (premium) or the shared one (basic);
- premium only: the namespace with Pod Security labels, quota, limit range, network policies and RBAC;
- with database settings: the `tenant_configs` row and the post-deploy OnboardingCheck;
- its alert rules, a PrometheusRule in its namespace (premium) or the monitoring namespace (basic), and its
  Grafana dashboard, a ConfigMap in the monitoring namespace (docs/observability.md). The row depends on
  them like on every other object of the tenant, so a refused removal leaves the tenant's monitoring too.

A renamed tenant (`previous_slugs` in its file) passes aliases to this component: children are named
from the component's name, so the engine moves every one of them to the new name instead of
recreating it; only the objects whose physical name comes from the slug (alias, secret, namespace,
Kubernetes objects) are replaced, and the signing secret, KMS key and `tenant_configs` row stay.

Guards in the engine. What holds the tenant's data is guarded by the engine itself, so that no `pulumi destroy`,
no removal inferred from a missing file and no accidental replacement can delete it:
- the KMS key, the `tenant_configs` row and a premium tenant's namespace are `protect`ed: the engine refuses any
  plan that would delete or replace them, loudly, before it changes anything;
- the Secrets Manager secret is `retain_on_delete` instead, because its physical name comes from the slug: a
  rename (`previous_slugs`) replaces it, and `protect` would make the engine refuse every rename. Retained, the
  replaced secret stays in AWS (an operator deletes it once the rename is proven), and nothing is lost.
Only offboarding lifts them (the stack's `offboarding: true`, docs/operations.md): the program then declares the
same resources without guards, so the offboarding's own destroy schedules their deletion. The one other lift is a
reviewed tier downgrade's, on the premium namespace alone and after its volume check (fleet.tier_change, in the
state before the `up`): every other child is named the same in both tiers, so a tier change keeps it.

Signing secrets are not guarded: each version is its own `RandomPassword` (`<name>-webhook-signing-secret-v<N>`,
its keepers the version, so nothing replaces one), and retiring a version after a rotation deletes its resource,
which `protect` would refuse. Deleting one removes it from the state only: the secret in use lives on in the row,
Secrets Manager and the Kubernetes Secret. The current version's resource aliases the single unversioned name of
earlier releases, so the first `up` of this release moves that secret to its versioned name instead of replacing it.

Suspension (`state: suspended`) changes three things and deletes nothing: the row's `suspended_at` (the application
refuses the tenant's webhooks), a premium namespace's quota (`pods: 0`: no new pod is admitted) and what the
post-deploy check expects (a refused signed webhook, and the quota admitting no pod).

The secret's recovery window (14 days) is shorter than the key's deletion window (30 days): a secret restored on
the last day of its window can still be decrypted by its key. A key and secret restored by `tenantctl restore`
are adopted by the next `up` (the stack's `adopt` config) rather than created again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import naming
from components.dynamic.onboarding_check import OnboardingCheck, OnboardingCheckArgs
from components.dynamic.tenant_config_row import TenantConfigRow, TenantConfigRowArgs
from components.isolation_manifests import Manifest, render_premium_isolation
from components.observability.dashboard import render_dashboard_configmap
from components.observability.rules import render_prometheus_rule
from components.settings import DatabaseSettings, TenantEnvironment
from tenancy.model import Tenant, Tier
from tenancy.signing_rotation import signing_phase

SIGNING_SECRET_LENGTH = 48
KMS_DELETION_WINDOW_DAYS = 30
SECRET_RECOVERY_WINDOW_DAYS = 14

_K8S_KINDS = {
    "Namespace": lambda name, b, o: k8s.core.v1.Namespace(name, metadata=b["metadata"], opts=o),
    "ResourceQuota": lambda name, b, o: k8s.core.v1.ResourceQuota(name, metadata=b["metadata"], spec=b["spec"], opts=o),
    "LimitRange": lambda name, b, o: k8s.core.v1.LimitRange(name, metadata=b["metadata"], spec=b["spec"], opts=o),
    "NetworkPolicy": lambda name, b, o: k8s.networking.v1.NetworkPolicy(
        name, metadata=b["metadata"], spec=b["spec"], opts=o
    ),
    "ServiceAccount": lambda name, b, o: k8s.core.v1.ServiceAccount(
        name, metadata=b["metadata"], automount_service_account_token=b["automountServiceAccountToken"], opts=o
    ),
    "Role": lambda name, b, o: k8s.rbac.v1.Role(name, metadata=b["metadata"], rules=b["rules"], opts=o),
    "RoleBinding": lambda name, b, o: k8s.rbac.v1.RoleBinding(
        name, metadata=b["metadata"], role_ref=b["roleRef"], subjects=b["subjects"], opts=o
    ),
}


@dataclass
class TenantStackArgs:
    tenant: Tenant
    servicedesk_api_key: pulumi.Input[str]
    settings: TenantEnvironment
    database: DatabaseSettings | None = None
    # A few other tenants of the stack, whose contexts and signing secret the post-deploy check probes.
    peer_tenant_ids: list[str] = field(default_factory=list)
    # The client's own LLM API key, when it brings one (tenant file `llm`); else the platform's is used.
    llm_api_key: pulumi.Input[str] | None = None


class TenantStack(pulumi.ComponentResource):
    tenant_id: pulumi.Output[str]
    namespace: pulumi.Output[str]
    webhook_url: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    secret_arn: pulumi.Output[str]
    checks: pulumi.Output[dict | None]
    checked_at: pulumi.Output[str | None]

    def __init__(self, name: str, args: TenantStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(naming.TENANT_STACK_TYPE, name, None, opts)
        tenant, settings = args.tenant, args.settings
        tenant_id = str(tenant.tenant_id)
        labels = naming.tenant_labels(tenant.slug, tenant_id, tenant.tier.value)
        tags = {"tenant_id": tenant_id, "slug": tenant.slug, "tier": tenant.tier.value, "managed-by": "pulumi"}
        api_key = pulumi.Output.secret(args.servicedesk_api_key)
        guarded = not settings.offboarding

        phase = signing_phase(tenant)
        if phase.deadline_passed:
            pulumi.log.info(f"tenant {tenant.slug}: the signing-secret overlap ended at "
                            f"{tenant.webhook.rotation.overlap_until.isoformat()}; retiring the old secret and "
                            f"keeping version {phase.current_version} (write it with `tenantctl rotate-signing-secret "
                            f"{tenant.slug} --finish`)")
        signing_secret = self._signing_secret(name, phase.current_version, current=True)
        next_secret = (self._signing_secret(name, phase.next_version, current=False) if phase.overlapping else None)

        # What the application reads for this tenant, in Secrets Manager and in its Kubernetes Secret.
        credentials: dict[str, pulumi.Input[str]] = {"SERVICEDESK_API_KEY": api_key,
                                                     "WEBHOOK_SECRET": signing_secret.result}
        if next_secret is not None:
            # What `tenantctl handoff --reveal` gives the client's admin during a rotation.
            credentials["WEBHOOK_SECRET_NEXT"] = next_secret.result
        if args.llm_api_key is not None:
            credentials["LLM_API_KEY"] = pulumi.Output.secret(args.llm_api_key)

        kms_key = aws.kms.Key(
            f"{name}-kms-key",
            description=f"Tenant {tenant.slug} ({tenant_id}) credentials",
            enable_key_rotation=True,
            deletion_window_in_days=KMS_DELETION_WINDOW_DAYS,
            # `stack` and `tenant_id` find an interrupted create's key again (fleet.pending_operations).
            tags={**tags, "stack": pulumi.get_stack()},
            opts=self._child(protect=guarded, **_adopting(settings.adopt.kms_key_id, "deletionWindowInDays")),
        )
        kms_alias = aws.kms.Alias(
            f"{name}-kms-alias", name=naming.kms_alias_name(tenant.slug), target_key_id=kms_key.key_id,
            opts=self._child(),
        )
        credentials_secret = aws.secretsmanager.Secret(
            f"{name}-credentials",
            name=naming.secretsmanager_name(tenant.slug),
            description=f"ServiceDesk Plus API key and webhook signing secret of tenant {tenant.slug}",
            kms_key_id=kms_key.arn,
            recovery_window_in_days=SECRET_RECOVERY_WINDOW_DAYS,
            tags=tags,
            opts=self._child(retain_on_delete=guarded,
                             **_adopting(settings.adopt.secret_arn, "recoveryWindowInDays")),
        )
        secret_version = aws.secretsmanager.SecretVersion(
            f"{name}-credentials-version",
            secret_id=credentials_secret.id,
            secret_string=pulumi.Output.secret(pulumi.Output.json_dumps(credentials)),
            opts=self._child(),
        )

        isolation: list[pulumi.Resource] = []
        quota_pods: pulumi.Input[str | None] = None
        if tenant.tier is Tier.PREMIUM:
            isolation = self._premium_isolation(name, tenant, labels, settings)
            # What the engine holds for the quota it applied (or rendered), for the post-deploy check.
            quota_pods = next(r for r in isolation if isinstance(r, k8s.core.v1.ResourceQuota)).spec.apply(
                _pods_of)
            namespace = naming.namespace_name(tenant.slug)  # created first: the Secret depends on `isolation`
        else:
            namespace = settings.shared_namespace

        k8s_secret = k8s.core.v1.Secret(
            f"{name}-k8s-credentials",
            metadata={
                "name": naming.credentials_secret_name(tenant.slug),
                "namespace": namespace,
                "labels": labels,
            },
            type="Opaque",
            string_data=pulumi.Output.secret(credentials),
            opts=self._child(depends_on=isolation),
        )

        monitoring = self._observability(name, tenant, settings.monitoring_namespace, isolation[:1])

        webhook_url = pulumi.Output.from_input(settings.webhook_base_url).apply(
            lambda base: naming.webhook_url(base, tenant_id))
        check = None
        if args.database is not None:
            check = self._database_and_checks(
                name, tenant, args, signing_secret.result, next_secret.result if next_secret else None, quota_pods,
                webhook_url,
                ready=[kms_key, kms_alias, credentials_secret, secret_version, k8s_secret, *isolation, *monitoring],
            )

        self.tenant_id = pulumi.Output.from_input(tenant_id)
        self.namespace = pulumi.Output.from_input(namespace)
        self.webhook_url = webhook_url
        self.kms_key_arn = kms_key.arn
        self.secret_arn = credentials_secret.arn
        # The post-deploy check's verdict per check, for the stack's outputs (details stay in its state).
        self.checks = check.report.apply(_check_verdicts) if check is not None else pulumi.Output.from_input(None)
        self.checked_at = check.checked_at if check is not None else pulumi.Output.from_input(None)
        self.register_outputs({
            "tenant_id": self.tenant_id,
            "namespace": self.namespace,
            "webhook_url": self.webhook_url,
            "kms_key_arn": self.kms_key_arn,
            "secret_arn": self.secret_arn,
            "checks": self.checks,
            "checked_at": self.checked_at,
        })

    def _child(self, **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def _signing_secret(self, name: str, version: int, *, current: bool) -> random.RandomPassword:
        """Version `version` of the webhook signing secret. The current one answers to the unversioned name of
        earlier releases too (an alias), so that secret moves to its versioned name and is not replaced."""
        return random.RandomPassword(
            f"{name}-webhook-signing-secret-v{version}",
            length=SIGNING_SECRET_LENGTH,
            special=False,
            upper=True,
            lower=True,
            numeric=True,
            min_upper=4,
            min_lower=4,
            min_numeric=4,
            keepers={"signing_secret_version": str(version)},
            opts=self._child(aliases=[pulumi.Alias(name=f"{name}-webhook-signing-secret")] if current else None),
        )

    def _premium_isolation(
        self, name: str, tenant: Tenant, labels: dict[str, str], settings: TenantEnvironment
    ) -> list[pulumi.Resource]:
        manifests = render_premium_isolation(
            tenant.slug, labels, tenant.effective_resources, settings.ingress_namespace, settings.monitoring_namespace,
            suspended=tenant.suspended,
        )
        namespace_manifest, namespaced = manifests[0], manifests[1:]
        namespace = self._k8s(name, namespace_manifest, self._child(protect=not settings.offboarding))
        return [namespace, *(self._k8s(name, m, self._child(depends_on=[namespace])) for m in namespaced)]

    def _observability(self, name: str, tenant: Tenant, monitoring_namespace: pulumi.Input[str],
                       namespace: list[pulumi.Resource]) -> list[pulumi.Resource]:
        """The tenant's PrometheusRule and dashboard ConfigMap: `namespace` is a premium tenant's namespace,
        where its rules live."""
        rule = render_prometheus_rule(tenant, monitoring_namespace)
        rules = k8s.apiextensions.CustomResource(
            f"{name}-alert-rules", api_version=rule["apiVersion"], kind=rule["kind"], metadata=rule["metadata"],
            spec=rule["spec"], opts=self._child(depends_on=namespace),
        )
        dashboard = render_dashboard_configmap(tenant, monitoring_namespace)
        board = k8s.core.v1.ConfigMap(
            f"{name}-dashboard", metadata=dashboard["metadata"], data=dashboard["data"], opts=self._child(),
        )
        return [rules, board]

    @staticmethod
    def _k8s(name: str, manifest: Manifest, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
        return _K8S_KINDS[manifest.kind](f"{name}-{manifest.suffix}", manifest.body, opts)

    def _database_and_checks(
        self,
        name: str,
        tenant: Tenant,
        args: TenantStackArgs,
        signing_secret: pulumi.Output[str],
        next_signing_secret: pulumi.Output[str] | None,
        quota_pods: pulumi.Input[str | None],
        webhook_url: pulumi.Output[str],
        ready: list[pulumi.Resource],
    ) -> OnboardingCheck | None:
        database = args.database
        row = TenantConfigRow(
            f"{name}-tenant-config",
            TenantConfigRowArgs(
                tenant_id=str(tenant.tenant_id),
                name=tenant.name,
                servicedesk_url=tenant.servicedesk.url,
                enhancement_preferences=tenant.enhancement_preferences.model_dump(mode="json"),
                servicedesk_api_key=pulumi.Output.secret(args.servicedesk_api_key),
                llm_api_key=pulumi.Output.secret(args.llm_api_key) if args.llm_api_key is not None else None,
                webhook_signing_secret=signing_secret,
                webhook_next_signing_secret=next_signing_secret,
                suspended=tenant.suspended,
                fernet_key=database.fernet_key,
                database_url=database.provisioner_url,
                purge_on_delete=tenant.offboarding.purge_data or tenant.slug in args.settings.purge_slugs,
                environment_id=database.environment_id,
                # Only beside an id: a stack whose environment records none gets no new input, so no update.
                environment_name=pulumi.Output.from_input(database.environment_id).apply(
                    lambda known: naming.split_stack_name(pulumi.get_stack())[0] if known else None),
            ),
            # The engine deletes dependents first: with every other object of the tenant a dependency of the
            # row, removing a tenant starts with the row's guarded delete, and a refusal (history, no purge)
            # stops the removal before a key, secret or namespace is gone.
            opts=self._child(depends_on=ready, protect=not args.settings.offboarding),
        )
        if not args.settings.run_checks:
            return None
        return OnboardingCheck(
            f"{name}-onboarding-check",
            OnboardingCheckArgs(
                tenant_id=str(tenant.tenant_id),
                slug=tenant.slug,
                webhook_url=webhook_url,
                signing_secret=signing_secret,
                next_signing_secret=next_signing_secret,
                suspended=tenant.suspended,
                quota_pods=quota_pods,
                app_database_url=database.app_url,
                row_revision=row.revision,
                peer_tenant_ids=args.peer_tenant_ids,
                fernet_key=database.fernet_key,
                nonce=args.settings.checks_nonce,
            ),
            opts=self._child(depends_on=[row, *ready]),
        )


def _adopting(aws_id: str | None, unreadable: str) -> dict:
    """Import options for an object `tenantctl restore` took back. AWS cannot say the window it was created with,
    so that one field is left out of the import's comparison (the next `up` records the declared window)."""
    return {"import_": aws_id, "ignore_changes": [unreadable]} if aws_id else {}


def _pods_of(spec) -> str | None:
    """`spec.hard.pods` of a ResourceQuota's output (a typed spec, or a plain dict under some engines)."""
    hard = spec.get("hard") if isinstance(spec, dict) else getattr(spec, "hard", None)
    pods = hard.get("pods") if isinstance(hard, dict) else None
    return None if pods is None else str(pods)


def _check_verdicts(report: dict | None) -> dict | None:
    if not isinstance(report, dict):
        return None
    return {name: bool(result.get("ok")) for name, result in (report.get("checks") or {}).items()}
