-- The application's database contract, as this project relies on it: the tenant tables, their
-- row-level security, the set_tenant_context() helper, the role that owns them and the two roles
-- that work inside them. What holds once this file has run (tests/tenancy/test_app_schema.py checks each):
--   * every tenant table is owned by app_owner, a NOLOGIN role that is neither superuser nor BYPASSRLS;
--     with FORCE ROW LEVEL SECURITY the owner is bound by the policies too, so nothing the owner runs
--     (set_tenant_context, a view, a SECURITY DEFINER function) can read past them;
--   * every table with a tenant_id column has RLS enabled and forced, and one policy that admits a row
--     only when tenant_id equals app.current_tenant_id; an unset, NULL or empty context admits none;
--   * app_user and tenant_provisioner can log in, are not superuser or BYPASSRLS, own nothing, and hold
--     no TRUNCATE, REFERENCES or TRIGGER privilege on a tenant table (TRUNCATE ignores RLS);
--   * set_tenant_context() refuses an unknown tenant and sets the context for the current transaction only;
--   * tenant_configs.suspended_at is NULL for an active tenant; a suspended tenant's webhooks are refused;
--   * tenant_configs.webhook_next_signing_secret_encrypted, when set, is a second signing secret accepted
--     beside the current one (a rotation's overlap);
--   * tenant_configs.provisioning_owner names the Pulumi resource that manages a row, so a resource deletes
--     a row only while it still owns it (a rename, an alias or another stack may have adopted it).
--
-- In production the application's migrations own all of this; this file is for local clusters
-- and tests (tenancy.app_schema.ensure_schema loads it). It is safe to re-run: objects are
-- created only when missing, security settings and grants are re-asserted, nothing is dropped.
-- Load it in one transaction, e.g.
--   psql --single-transaction -v ON_ERROR_STOP=1 -f db/app_schema.sql "$DATABASE_URL"
-- Roles are cluster-wide and carry no password here: local clusters use trust authentication,
-- and production passwords are managed outside this project.

-- Everything below lives in schema public, where set_tenant_context() looks for it.
SET search_path = public, pg_temp;

-- Roles ---------------------------------------------------------------------------------------
-- app_owner owns the tenant tables and cannot log in; the other two log in and own nothing.

DO $$
DECLARE
    spec record;
BEGIN
    FOR spec IN SELECT * FROM (VALUES ('app_owner', 'NOLOGIN'), ('app_user', 'LOGIN'),
                                      ('tenant_provisioner', 'LOGIN')) AS r(name, login)
    LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = spec.name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I %s NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE',
                               spec.name, spec.login);
            EXCEPTION
                -- Another database of the same cluster created it concurrently.
                WHEN duplicate_object OR unique_violation THEN NULL;
            END;
        END IF;
    END LOOP;
END
$$;

-- Tables (gen_random_uuid() is core since PostgreSQL 13: no pgcrypto) ------------------------------

CREATE TABLE IF NOT EXISTS tenant_configs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL UNIQUE,
    name varchar(255) NOT NULL,
    servicedesk_url varchar(500) NOT NULL,
    servicedesk_api_key_encrypted text NOT NULL,
    webhook_signing_secret_encrypted text NOT NULL,
    enhancement_preferences jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Added after the first release: re-running this file upgrades an existing table.
ALTER TABLE tenant_configs ADD COLUMN IF NOT EXISTS provisioning_owner text;
-- A client's own LLM API key (Fernet, like the others); NULL: the application uses the platform's key.
ALTER TABLE tenant_configs ADD COLUMN IF NOT EXISTS llm_api_key_encrypted text;
-- Suspension (tenant file `state: suspended`): the application refuses a suspended tenant's webhooks (HTTP 423).
-- NULL for every existing row: adding the column suspends nobody.
ALTER TABLE tenant_configs ADD COLUMN IF NOT EXISTS suspended_at timestamptz;
-- Signing-secret rotation: while it is set, a webhook signed with this secret (Fernet, like the current one) is
-- accepted as well as one signed with webhook_signing_secret_encrypted. NULL: no rotation under way.
ALTER TABLE tenant_configs ADD COLUMN IF NOT EXISTS webhook_next_signing_secret_encrypted text;
COMMENT ON COLUMN tenant_configs.suspended_at IS
    'When the tenant was suspended; NULL while it is active. The application refuses its webhooks (423).';
COMMENT ON COLUMN tenant_configs.webhook_next_signing_secret_encrypted IS
    'The next signing secret during a rotation (Fernet); a webhook signed with either secret is accepted.';
COMMENT ON COLUMN tenant_configs.provisioning_owner IS
    'Token of the Pulumi resource that manages this row; NULL for a row made by hand. Deletes compare it.';

-- History has no foreign key to tenant_configs: it may outlive the tenant's config row.
-- Every column but tenant_id has a default, so a row needs only its tenant (the RLS canary relies on it).
CREATE TABLE IF NOT EXISTS enhancement_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL,
    ticket_id text NOT NULL DEFAULT 'probe',
    status text NOT NULL DEFAULT 'pending',
    details jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS enhancement_history_tenant_id_idx ON enhancement_history (tenant_id);

CREATE TABLE IF NOT EXISTS ticket_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL,
    ticket_id text NOT NULL DEFAULT 'probe',
    subject text NOT NULL DEFAULT '',
    details jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ticket_history_tenant_id_idx ON ticket_history (tenant_id);

CREATE TABLE IF NOT EXISTS system_inventory (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL,
    hostname text NOT NULL DEFAULT 'probe',
    details jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS system_inventory_tenant_id_idx ON system_inventory (tenant_id);

-- Which environment provisions this database (fleet rule 1): one row at most. The first environment that
-- writes a tenant row claims it; another environment's writes are refused (fleet/environment_id.py).
CREATE TABLE IF NOT EXISTS tenantctl_environments (
    environment_id uuid PRIMARY KEY,
    name text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    single_row boolean NOT NULL DEFAULT true UNIQUE CHECK (single_row)
);
COMMENT ON TABLE tenantctl_environments IS
    'The environment (tenantctl) that provisions this database; one row. Another environment is refused.';

-- Ownership: a NOLOGIN role, never a superuser (a superuser bypasses RLS even when it is forced) ------

ALTER TABLE tenant_configs OWNER TO app_owner;
ALTER TABLE enhancement_history OWNER TO app_owner;
ALTER TABLE ticket_history OWNER TO app_owner;
ALTER TABLE system_inventory OWNER TO app_owner;
ALTER TABLE tenantctl_environments OWNER TO app_owner;

-- Row-level security --------------------------------------------------------------------------
-- FORCE makes the policies bind the tables' owner too. An unset or empty app.current_tenant_id
-- compares with NULL, so a session without a tenant context sees and writes no rows.

ALTER TABLE tenant_configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_configs FORCE ROW LEVEL SECURITY;
ALTER TABLE enhancement_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE enhancement_history FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_history FORCE ROW LEVEL SECURITY;
ALTER TABLE system_inventory ENABLE ROW LEVEL SECURITY;
ALTER TABLE system_inventory FORCE ROW LEVEL SECURITY;

DO $$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['tenant_configs', 'enhancement_history', 'ticket_history', 'system_inventory'] LOOP
        IF NOT EXISTS (
            SELECT FROM pg_policy
            WHERE polrelid = format('public.%I', tbl)::regclass AND polname = 'tenant_isolation'
        ) THEN
            EXECUTE format(
                'CREATE POLICY tenant_isolation ON public.%I AS PERMISSIVE FOR ALL TO PUBLIC '
                'USING (tenant_id = nullif(current_setting(''app.current_tenant_id'', true), '''')::uuid) '
                'WITH CHECK (tenant_id = nullif(current_setting(''app.current_tenant_id'', true), '''')::uuid)',
                tbl
            );
        END IF;
    END LOOP;
END
$$;

-- set_tenant_context() ------------------------------------------------------------------------

-- The context is transaction-local on purpose: applications reach the database through connection
-- pools (PgBouncer in transaction mode, driver pools), where the next transaction on the same server
-- connection may belong to another tenant. A session-level setting would outlive the request that made
-- it and hand that tenant's rows to the next one; a transaction-local one ends with the transaction.
-- So callers run set_tenant_context() first in every transaction that touches tenant data.
CREATE OR REPLACE FUNCTION set_tenant_context(p_tenant_id uuid)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'set_tenant_context: tenant id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- The function runs as app_owner, which FORCE ROW LEVEL SECURITY binds like everyone else, so the
    -- existence check can only see the row once the context names the candidate tenant. If the tenant is
    -- unknown, the exception undoes the setting and the caller's previous context stands.
    PERFORM set_config('app.current_tenant_id', p_tenant_id::text, true);
    IF NOT EXISTS (SELECT FROM tenant_configs WHERE tenant_id = p_tenant_id) THEN
        RAISE EXCEPTION 'unknown tenant %', p_tenant_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'No tenant_configs row has this tenant_id: provision the tenant first.';
    END IF;
END
$$;

ALTER FUNCTION set_tenant_context(uuid) OWNER TO app_owner;
REVOKE ALL ON FUNCTION set_tenant_context(uuid) FROM PUBLIC;

-- Grants --------------------------------------------------------------------------------------

GRANT USAGE ON SCHEMA public TO app_user, tenant_provisioner;
GRANT EXECUTE ON FUNCTION set_tenant_context(uuid) TO app_user, tenant_provisioner;

GRANT SELECT, INSERT, UPDATE, DELETE
    ON tenant_configs, enhancement_history, ticket_history, system_inventory
    TO app_user;
GRANT USAGE ON SEQUENCE enhancement_history_id_seq, ticket_history_id_seq, system_inventory_id_seq TO app_user;

-- The provisioner writes tenant rows and purges a tenant's history on offboarding, always inside RLS
-- (it sets app.current_tenant_id to the tenant it is working on).
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_configs TO tenant_provisioner;
GRANT SELECT, DELETE ON enhancement_history, ticket_history, system_inventory TO tenant_provisioner;
-- The provisioner claims the database for its environment (and `rehearse --destroy` gives it up); the
-- application only reads which environment that is.
GRANT SELECT, INSERT, DELETE ON tenantctl_environments TO tenant_provisioner;
GRANT SELECT ON tenantctl_environments TO app_user;
REVOKE UPDATE, TRUNCATE, REFERENCES, TRIGGER ON tenantctl_environments FROM PUBLIC, app_user, tenant_provisioner;

-- TRUNCATE ignores row-level security, REFERENCES lets a role probe another tenant's keys through a
-- foreign key, and TRIGGER runs the role's code on other tenants' rows: none of them for these roles.
REVOKE TRUNCATE, REFERENCES, TRIGGER
    ON tenant_configs, enhancement_history, ticket_history, system_inventory
    FROM PUBLIC, app_user, tenant_provisioner;
