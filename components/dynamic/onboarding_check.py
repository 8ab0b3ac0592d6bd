"""OnboardingCheck: the post-deploy proof that a tenant is really onboarded, as a dynamic resource.

It runs after the tenant's row, secrets and namespace exist: a signed probe webhook must be
accepted and unsigned, wrongly signed and peer-signed ones refused, and RLS must isolate the tenant
from other tenants (a made-up one and up to a few real peers). A failure fails `pulumi up` with a
report naming each failed check. It runs again whenever the tenant's row revision, webhook URL,
application database URL or signing secret changes, or when the stack's `checksNonce` changes; a
changed list of peers alone does not re-run it, so onboarding one tenant never re-checks the fleet.
The checks themselves live in `checks`, shared with `tenantctl verify`.

Phases of the tenant's life: during a signing-secret rotation the next secret must be accepted too; when an update
follows a rotation, every secret the previous check accepted and that is no longer deployed (the retired one) must
be refused; while the tenant is suspended its signed probe must be refused with 423 and, for a premium tenant, the
ResourceQuota the engine applied (or rendered, in the rehearsal) must allow no pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

ALL_CHECKS = ("webhook", "rls")
TRIGGERS = ("tenant_id", "webhook_url", "app_database_url", "row_revision", "nonce", "checks")


@dataclass
class OnboardingCheckArgs:
    tenant_id: pulumi.Input[str]
    slug: pulumi.Input[str]
    webhook_url: pulumi.Input[str]
    signing_secret: pulumi.Input[str]
    app_database_url: pulumi.Input[str]
    row_revision: pulumi.Input[str]
    # Real other tenants to probe isolation against, and the key to read one's signing secret with.
    peer_tenant_ids: pulumi.Input[list[str]] | None = None
    fernet_key: pulumi.Input[str] | None = None
    nonce: pulumi.Input[str] = "0"
    checks: pulumi.Input[list[str]] | None = None
    timeout_seconds: pulumi.Input[float] = 30.0
    # During a rotation: the next signing secret, which must be accepted too.
    next_signing_secret: pulumi.Input[str] | None = None
    # The tenant file's `state: suspended`, and a premium namespace's quota of pods as the engine holds it.
    suspended: pulumi.Input[bool] = False
    quota_pods: pulumi.Input[str] | None = None


SUSPENDED_QUOTA = "kubernetes_suspended_no_pod"


def run_onboarding_checks(props: dict[str, Any]):
    """Run the selected checks and return the combined report (never raises for a failed check)."""
    from checks.report import CheckReport
    from checks.rls import run_rls_checks
    from checks.webhook import run_webhook_checks
    from tenancy.signing_secrets import first_peer_secret

    selected = props.get("checks") or list(ALL_CHECKS)
    peers = [str(peer) for peer in props.get("peer_tenant_ids") or []]
    results = []
    if "webhook" in selected:
        peer_secret = props.get("peer_signing_secret")
        if peer_secret is None and props.get("fernet_key") and peers:
            peer_secret = first_peer_secret(props["app_database_url"], peers, props["fernet_key"])
        results += run_webhook_checks(
            props["webhook_url"], props["signing_secret"], props["tenant_id"], peer_signing_secret=peer_secret,
            next_signing_secret=props.get("next_signing_secret"),
            retired_signing_secrets=props.get("retired_signing_secrets") or (),
            suspended=bool(props.get("suspended")), timeout=float(props.get("timeout_seconds") or 30.0),
        ).results
    if props.get("suspended") and props.get("quota_pods") is not None:
        results.append(_suspended_quota(str(props["quota_pods"]), str(props.get("slug"))))
    if "rls" in selected:
        results += run_rls_checks(props["app_database_url"], props["tenant_id"], peer_tenant_ids=peers).results
    return CheckReport(results)


def _suspended_quota(pods: str, slug: str):
    from checks.report import CheckResult

    if pods == "0":
        return CheckResult(SUSPENDED_QUOTA, True, (
            f"tenant {slug} is suspended: the ResourceQuota the engine applied to its namespace allows 0 pods (the "
            "quota as deployed, or as rendered where no API server is configured; against a live API server "
            "`checks.kubernetes_isolation` proves the refusal by a server-side dry-run)"))
    return CheckResult(SUSPENDED_QUOTA, False, (
        f"tenant {slug} is suspended, but the ResourceQuota the engine applied to its namespace allows {pods} pods"))


def _retired(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    """Secrets the previous check deployed that are deployed no more: a finished rotation's old secret."""
    live = {news.get("signing_secret"), news.get("next_signing_secret")}
    return [secret for secret in (olds.get("signing_secret"), olds.get("next_signing_secret"))
            if isinstance(secret, str) and secret not in live]


class OnboardingCheckProvider(ResourceProvider):
    def _run(self, props: dict[str, Any], retired: list[str] | None = None) -> dict[str, Any]:
        from checks.report import CheckFailed

        report = run_onboarding_checks({**props, "retired_signing_secrets": retired or []})
        if not report.ok:
            raise CheckFailed(report, title=f"onboarding checks failed for tenant {props.get('slug')}")
        outs = dict(props)
        outs["report"] = report.as_dict()
        outs["checked_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        return outs

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        from tenancy import credentials

        changed = [key for key in TRIGGERS if news.get(key) != olds.get(key)]
        old_fp, new_fp = olds.get("signing_secret_fingerprint"), None
        if isinstance(news.get("signing_secret"), str):
            new_fp = credentials.sign_body(news["signing_secret"], b"onboarding-check-fingerprint")
        if new_fp is None or new_fp != old_fp:
            changed.append("signing_secret")
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        import uuid

        return CreateResult(f"check-{uuid.uuid4()}", _with_fingerprint(self._run(props)))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(_with_fingerprint(self._run(news, _retired(olds, news))))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # A check owns nothing outside Pulumi's state.
        return None


def _with_fingerprint(outs: dict[str, Any]) -> dict[str, Any]:
    from tenancy import credentials

    # Lets diff notice a rotated signing secret without keeping the secret in clear anywhere.
    outs["signing_secret_fingerprint"] = credentials.sign_body(outs["signing_secret"], b"onboarding-check-fingerprint")
    return outs


class OnboardingCheck(Resource, module="tenant-onboarding", name="OnboardingCheck"):
    """Outputs: `report` ({ok, checks}) and `checked_at`."""

    report: pulumi.Output[dict]
    checked_at: pulumi.Output[str]

    def __init__(self, name: str, args: OnboardingCheckArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {**vars(args), "report": None, "checked_at": None, "signing_secret_fingerprint": None}
        secret_opts = pulumi.ResourceOptions(
            additional_secret_outputs=["signing_secret", "next_signing_secret", "app_database_url", "fernet_key"]
        )
        super().__init__(OnboardingCheckProvider(), name, props, pulumi.ResourceOptions.merge(secret_opts, opts))
