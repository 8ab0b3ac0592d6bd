"""The Pulumi program's two halves: the platform stack `<env>` and a tenant stack `<env>.<slug>`."""
