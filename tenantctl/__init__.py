"""tenantctl: the operator CLI, and only the CLI: one thin module per command group over the `fleet`,
`checks`, `services` and `tenancy` packages. Nothing imports it."""
