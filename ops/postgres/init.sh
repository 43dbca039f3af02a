#!/usr/bin/env bash
# First start of the postgres container (docker-entrypoint-initdb.d): least-privilege group roles,
# then the two logins Arbiter uses, with passwords from the environment (the .env file).
set -euo pipefail
: "${ARBITER_DB_PASSWORD:?set ARBITER_DB_PASSWORD}" "${ARBITER_MIGRATOR_PASSWORD:?set ARBITER_MIGRATOR_PASSWORD}"
psql=(psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB")
"${psql[@]}" -f /arbiter/postgres/roles.sql
"${psql[@]}" \
  -v app_user=arbiter_app -v app_password="$ARBITER_DB_PASSWORD" \
  -v migrator_user=arbiter_migrator -v migrator_password="$ARBITER_MIGRATOR_PASSWORD" \
  -f /arbiter/postgres/logins.sql
