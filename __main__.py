"""The Pulumi program. The stack's name says which half runs:

- `<env>` (for example `prod`): the platform stack, what every tenant of the environment shares;
- `<env>.<slug>` (for example `prod.acme`): the tenant stack of `tenants/<slug>.yaml`.

`tenantctl up --env prod` runs the platform stack and then the tenant stacks in waves; each can also
be run alone with `pulumi up --stack prod.acme`.
"""

import pulumi

from components.naming import split_stack_name
from program import platform, tenant

env, slug = split_stack_name(pulumi.get_stack())
if slug is None:
    platform.main()
else:
    tenant.main(env, slug)
