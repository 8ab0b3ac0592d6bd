"""ProvisionerAccess: the `tenant_provisioner` database role and its grants, managed with pulumi-postgresql.

The role is the onboarding platform's own (the application's migrations own the tables and
`app_user`), so a stack can let Pulumi create it (`manageProvisionerRole: true`). It gets exactly
the privileges db/app_schema.sql grants it for local use: it works inside RLS, never bypasses it.
The program then connects the TenantConfigRows with this role and its generated password.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_postgresql as postgresql
import pulumi_random as random

from tenancy.app_schema import ENVIRONMENTS_TABLE, HISTORY_TABLES, PROVISIONER_ROLE, TENANT_CONFIGS

PROVISIONER_ACCESS_TYPE = "tenant-onboarding:index:ProvisionerAccess"
# (object_type, objects, privileges) in schema public; kept equal to db/app_schema.sql by a test.
PROVISIONER_GRANTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("schema", (), ("USAGE",)),
    ("function", ("set_tenant_context",), ("EXECUTE",)),
    ("table", (TENANT_CONFIGS,), ("SELECT", "INSERT", "UPDATE", "DELETE")),
    ("table", HISTORY_TABLES, ("SELECT", "DELETE")),
    # The database's one environment (fleet rule 1): claimed on the first write, given up by `rehearse --destroy`.
    ("table", (ENVIRONMENTS_TABLE,), ("SELECT", "INSERT", "DELETE")),
)


@dataclass
class ProvisionerAccessArgs:
    database: str
    host: str
    port: int = 5432
    sslmode: str | None = None


class ProvisionerAccess(pulumi.ComponentResource):
    database_url: pulumi.Output[str]

    def __init__(self, name: str, args: ProvisionerAccessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(PROVISIONER_ACCESS_TYPE, name, None, opts)
        password = random.RandomPassword(
            f"{name}-password", length=40, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        role = postgresql.Role(
            f"{name}-role",
            name=PROVISIONER_ROLE,
            login=True,
            password=password.result,
            superuser=False,
            bypass_row_level_security=False,
            create_database=False,
            create_role=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        for index, (object_type, objects, privileges) in enumerate(PROVISIONER_GRANTS):
            postgresql.Grant(
                f"{name}-grant-{object_type}-{index}",
                database=args.database,
                role=role.name,
                schema="public",
                object_type=object_type,
                objects=list(objects),
                privileges=list(privileges),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[role]),
            )
        query = f"?sslmode={args.sslmode}" if args.sslmode else ""
        self.database_url = pulumi.Output.secret(pulumi.Output.all(role.name, password.result).apply(
            lambda values: f"postgresql://{quote(values[0])}:{quote(values[1], safe='')}@{args.host}:{args.port}/"
            f"{quote(args.database)}{query}"
        ))
        self.register_outputs({"database_url": self.database_url})
