-- Login roles for Arbiter, members of the group roles from roles.sql. Run with psql:
--   psql -v ON_ERROR_STOP=1 -v app_user=arbiter_app -v app_password=... \
--        -v migrator_user=arbiter_migrator -v migrator_password=... -f ops/postgres/logins.sql
-- Idempotent: existing logins keep their name and get the given password again.
SELECT format('CREATE ROLE %I LOGIN', :'app_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'migrator_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'migrator_user') \gexec

SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'app_user', :'app_password') WHERE :'app_password' <> '' \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'migrator_user', :'migrator_password') WHERE :'migrator_password' <> '' \gexec

-- The service writes rows; it can neither change the schema nor rewrite the audit tables.
SELECT format('GRANT app_write TO %I', :'app_user') \gexec
-- Migrations run as app_admin itself (not merely as a member), so the tables they create are owned by
-- app_admin and pick up its default privileges.
SELECT format('GRANT app_admin TO %I', :'migrator_user') \gexec
SELECT format('ALTER ROLE %I SET role = %L', :'migrator_user', 'app_admin') \gexec
