"""Pulumi components of the tenant onboarding program."""
