"""Per-tenant observability as code: the metric contract, alert rules and a Grafana dashboard per tenant.

Pure rendering (no resources are registered here): `TenantStack` wraps the objects in Pulumi resources,
`tenantctl plan --out` writes them, and tests/observability checks them with promtool and the Grafana
library. See docs/observability.md.
"""
