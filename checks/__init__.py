"""Post-deploy onboarding checks, shared by the OnboardingCheck dynamic provider and `tenantctl verify`.

Each check is a plain function of strings and UUIDs that opens its own connections and returns a
`CheckReport`; a failed check is a failed result in the report, never an exception.
"""

from checks.report import CheckFailed, CheckReport, CheckResult

__all__ = ["CheckFailed", "CheckReport", "CheckResult"]
