"""Entry point of the tenant-onboarding policy pack, run by `pulumi preview --policy-pack policy`.

The CLI starts it with this directory on sys.path (hence `import tenant_policies`, not `policy.`), in
the virtualenv named in PulumiPolicy.yaml. `PolicyPack(...)` serves the analyzer and never returns, so
it is built here only; the policies themselves live in tenant_policies.py, where tests import them.
"""

from pulumi_policy import EnforcementLevel, PolicyPack
from tenant_policies import POLICIES, analyze_with_secrets

# Before the pack starts: validations must see which values are secrets (see tenant_policies).
analyze_with_secrets()

PolicyPack(
    name="tenant-onboarding",
    policies=POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Tenant isolation, KMS rotation and secret handling rules for tenant-onboarding stacks.",
)
