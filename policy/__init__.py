"""The tenant-onboarding policy pack.

The Pulumi CLI runs this directory with `runpy.run_path`, which never imports this file; it is here so
`policy.tenant_policies` resolves to this directory from the repository root (tests), whatever else on
sys.path is called `policy`.
"""
