-- Arbiter's least-privilege roles, for the database this runs in.
--   app_read   SELECT on every application table
--   app_write  app_read + INSERT/UPDATE/DELETE (the running service); the audit tables
--              decision_events and auth_events are INSERT-only
--   app_admin  owns the schema: DDL and migrations
-- Group roles only (NOLOGIN); login roles join them (see logins.sql). Run as a superuser or the
-- database owner, once per database and again after restoring or migrating as another role: every
-- statement is idempotent, and it only creates and grants, never drops.

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_read') THEN CREATE ROLE app_read NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_write') THEN CREATE ROLE app_write NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_admin') THEN CREATE ROLE app_admin NOLOGIN; END IF;
END $$;

GRANT app_read TO app_write;

DO $$
BEGIN
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO app_read, app_admin', current_database());
  -- Drizzle's migrator creates its own schema ("drizzle") on first run.
  EXECUTE format('GRANT CREATE ON DATABASE %I TO app_admin', current_database());
END $$;

CREATE SCHEMA IF NOT EXISTS drizzle AUTHORIZATION app_admin;
GRANT USAGE, CREATE ON SCHEMA public TO app_admin;
GRANT USAGE, CREATE ON SCHEMA drizzle TO app_admin;
GRANT USAGE ON SCHEMA public, drizzle TO app_read;

-- Tables that already exist (created before this ran, or by another role) move to app_admin, so
-- later migrations, which run as app_admin, may alter them.
DO $$
DECLARE
  item record;
BEGIN
  FOR item IN
    SELECT c.oid::regclass AS name, c.relkind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('public', 'drizzle') AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
       AND pg_get_userbyid(c.relowner) <> 'app_admin'
       AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i') AND c.relkind = 'S')
  LOOP
    EXECUTE format(CASE item.relkind WHEN 'S' THEN 'ALTER SEQUENCE %s OWNER TO app_admin'
                                     WHEN 'v' THEN 'ALTER VIEW %s OWNER TO app_admin'
                                     WHEN 'm' THEN 'ALTER MATERIALIZED VIEW %s OWNER TO app_admin'
                                     ELSE 'ALTER TABLE %s OWNER TO app_admin' END, item.name);
  END LOOP;
END $$;

-- Existing objects.
GRANT SELECT ON ALL TABLES IN SCHEMA public, drizzle TO app_read;
GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_write;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app_write;

-- Objects app_admin creates from now on (that is, every migration).
ALTER DEFAULT PRIVILEGES FOR ROLE app_admin IN SCHEMA public GRANT SELECT ON TABLES TO app_read;
ALTER DEFAULT PRIVILEGES FOR ROLE app_admin IN SCHEMA drizzle GRANT SELECT ON TABLES TO app_read;
ALTER DEFAULT PRIVILEGES FOR ROLE app_admin IN SCHEMA public GRANT INSERT, UPDATE, DELETE ON TABLES TO app_write;
ALTER DEFAULT PRIVILEGES FOR ROLE app_admin IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO app_write;

-- Append-only audit (the migration 0001_audit_append_only does the same for tables it creates later).
DO $$
BEGIN
  IF to_regclass('public.decision_events') IS NOT NULL THEN
    REVOKE UPDATE, DELETE, TRUNCATE ON TABLE public.decision_events FROM app_write;
  END IF;
  IF to_regclass('public.auth_events') IS NOT NULL THEN
    REVOKE UPDATE, DELETE, TRUNCATE ON TABLE public.auth_events FROM app_write;
  END IF;
END $$;
