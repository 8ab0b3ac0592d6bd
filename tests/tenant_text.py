"""Builders for tenant file text used across tests."""

from __future__ import annotations

import uuid


def tenant_yaml(slug: str = "acme", tier: str = "premium", tenant_id: str | None = None, extra: str = "") -> str:
    return (
        f"tenant_id: {tenant_id or uuid.uuid4()}\n"
        f"slug: {slug}\n"
        f"name: {slug.title()} MSP\n"
        f"tier: {tier}\n"
        "servicedesk:\n"
        f"  url: https://{slug}.sdpondemand.com\n"
        f"  api_key_secret: {slug}-servicedesk-api-key\n"
        "contacts:\n"
        f"  admin_email: admin@{slug}.example.com\n"
        f"{extra}"
    )
