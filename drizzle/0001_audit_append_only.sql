-- The audit tables are append-only in the database: the application's role may add rows, never
-- rewrite or remove them. Default privileges (ops/postgres/roles.sql) give app_write UPDATE and DELETE
-- on every new table, so they are taken back here, right after the tables exist. Where the
-- least-privilege roles are not installed (embedded PGlite, a bare test database) this does nothing.
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_write') THEN
    REVOKE UPDATE, DELETE, TRUNCATE ON TABLE "decision_events", "auth_events" FROM app_write;
  END IF;
END $$;
