"""tenantctl: the operator CLI for tenant onboarding as code, and the library the Pulumi program shares."""
