"""`tenantctl handoff`: what a client's ServiceDesk Plus admin needs, as Markdown, without the secret.

The signing secret is only ever revealed by a command an authorized operator runs with their own
AWS credentials (KMS-audited), or with `--reveal`, which runs that command.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from components import naming
from tenancy.model import Tenant, Tier

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


def kubectl_reveal_command(tenant: Tenant, shared_namespace: str) -> str:
    namespace = naming.namespace_name(tenant.slug) if tenant.tier is Tier.PREMIUM else shared_namespace
    return (
        f"kubectl get secret {naming.credentials_secret_name(tenant.slug)} -n {namespace} "
        "-o jsonpath='{.data.WEBHOOK_SECRET}' | base64 -d"
    )


def render_handoff(tenant: Tenant, env: str, webhook_base_url: str, shared_namespace: str,
                   region: str | None = None, endpoint: str | None = None, env_option: str | None = None) -> str:
    """The handoff of the tenant's stack <env>.<slug>; `env_option` is how a command names the environment
    (`--env prod`, or `--rehearsal`)."""
    url = naming.webhook_url(webhook_base_url, str(tenant.tenant_id))
    prefs = tenant.enhancement_preferences
    extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"WEBHOOK_SECRET\"])'"
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
    try:
        return json.loads(result.stdout)["WEBHOOK_SECRET"]
    except (ValueError, KeyError, TypeError):
        raise HandoffError("the tenant's secret does not hold a WEBHOOK_SECRET field") from None
