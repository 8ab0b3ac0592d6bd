"""`tenantctl handoff`: what a client's ServiceDesk Plus admin needs, as Markdown, without the secret.

The signing secret is only ever revealed by a command an authorized operator runs with their own
AWS credentials (KMS-audited), or with `--reveal`, which runs that command. During a signing-secret rotation the
secret revealed is the new one (`WEBHOOK_SECRET_NEXT`), the one the client's admin must save; the old one is
accepted until the rotation's deadline.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from components import naming
from tenancy.model import Tenant, Tier
from tenancy.signing_rotation import signing_phase

SIGNATURE_HEADER = "X-ServiceDesk-Signature"


class HandoffError(Exception):
    pass


def reveal_command(tenant: Tenant, region: str | None = None, endpoint: str | None = None) -> list[str]:
    """The aws CLI call that reads the tenant's secret: in the region of its stack (the secret exists there only),
    and at `endpoint` where AWS is a local stand-in (the rehearsal's)."""
    return [
        "aws", "secretsmanager", "get-secret-value",
        "--secret-id", naming.secretsmanager_name(tenant.slug),
        *(["--region", region] if region else []),
        *(["--endpoint-url", endpoint] if endpoint else []),
        "--query", "SecretString", "--output", "text",
    ]


def secret_field(tenant: Tenant) -> str:
    """The field of the tenant's credentials that holds the secret its admin must save: the next one during a
    rotation's overlap, else the current one."""
    return "WEBHOOK_SECRET_NEXT" if signing_phase(tenant).overlapping else "WEBHOOK_SECRET"


def kubectl_reveal_command(tenant: Tenant, shared_namespace: str) -> str:
    namespace = naming.namespace_name(tenant.slug) if tenant.tier is Tier.PREMIUM else shared_namespace
    return (
        f"kubectl get secret {naming.credentials_secret_name(tenant.slug)} -n {namespace} "
        f"-o jsonpath='{{.data.{secret_field(tenant)}}}' | base64 -d"
    )


def _lifecycle_lines(tenant: Tenant) -> list[str]:
    phase = signing_phase(tenant)
    lines = []
    if tenant.suspended:
        lines += ["**This tenant is suspended**: its webhooks are refused (HTTP 423) until its tenant file says "
                  "`state: active` again and `up` has run.", ""]
    if phase.overlapping:
        until = phase.overlap_until.strftime("%Y-%m-%d %H:%M UTC")
        lines += [f"**Signing-secret rotation under way** (version {phase.current_version} -> {phase.next_version}): "
                  f"the secret to send is the new one. Webhooks signed with the old or the new secret are accepted "
                  f"until {until}; after that, or once `tenantctl rotate-signing-secret {tenant.slug} --finish` is "
                  "applied, only the new one is.", ""]
    return lines


def render_handoff(tenant: Tenant, env: str, webhook_base_url: str, shared_namespace: str,
                   region: str | None = None, endpoint: str | None = None, env_option: str | None = None) -> str:
    """The handoff of the tenant's stack <env>.<slug>; `env_option` is how a command names the environment
    (`--env prod`, or `--rehearsal`)."""
    url = naming.webhook_url(webhook_base_url, str(tenant.tenant_id))
    prefs = tenant.enhancement_preferences
    extract = f"python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{secret_field(tenant)}\"])'"
    reveal = " ".join(reveal_command(tenant, region, endpoint)) + " | " + extract
    option = env_option or f"--env {env}"
    return "\n".join([
        f"## Handoff: {tenant.name} (`{tenant.slug}`, stack `{naming.tenant_stack_name(env, tenant.slug)}`)",
        "",
        f"- Tenant ID: `{tenant.tenant_id}`",
        f"- Tier: {tenant.tier.value}",
        f"- Admin contact: {tenant.contacts.admin_email}",
        "",
        "### ServiceDesk Plus webhook (Admin > Automation > Webhooks > Add New Webhook)",
        "",
        "| setting | value |",
        "|---|---|",
        f"| URL | `{url}` |",
        "| Method | `POST` |",
        "| Content type | `application/json` |",
        f"| Header | `{SIGNATURE_HEADER}`: hex HMAC-SHA256 of the raw request body, keyed with the signing secret |",
        "| Trigger | Ticket created |",
        f"| Rate limit | {prefs.rate_limits.webhooks_per_minute} webhooks per minute |",
        "",
        "### Signing secret",
        "",
        *_lifecycle_lines(tenant),
        "Not shown here. An authorized operator (IAM access to the tenant's secret and KMS key) reveals it with:",
        "",
        "```sh",
        reveal,
        "```",
        "",
        f"or from the cluster: `{kubectl_reveal_command(tenant, shared_namespace)}`,",
        f"or `tenantctl handoff {tenant.slug} {option} --reveal`.",
        f"Send it to {tenant.contacts.admin_email} over the agreed secure channel, never by plain email or chat.",
        "",
        f"Verify after the client saves the webhook: `tenantctl verify {tenant.slug} {option}`.",
        "",
    ])


def reveal_signing_secret(tenant: Tenant, region: str | None = None, endpoint: str | None = None,
                          env: dict[str, str] | None = None) -> str:
    if shutil.which("aws") is None:
        raise HandoffError("the aws CLI is not installed; run the command above where it is, with your own credentials")
    try:
        result = subprocess.run(reveal_command(tenant, region, endpoint), capture_output=True, text=True, check=True,
                                timeout=60, env=env)
    except subprocess.CalledProcessError as exc:
        raise HandoffError(f"aws secretsmanager refused: {exc.stderr.strip().splitlines()[-1:] or exc}") from None
    except subprocess.TimeoutExpired:
        raise HandoffError("aws secretsmanager did not answer within 60 s") from None
    field = secret_field(tenant)
    try:
        return json.loads(result.stdout)[field]
    except (ValueError, KeyError, TypeError):
        pending = (" (the rotation is not applied yet: run `tenantctl up` for it first)"
                   if field.endswith("NEXT") else "")
        raise HandoffError(f"the tenant's secret does not hold a {field} field{pending}") from None
