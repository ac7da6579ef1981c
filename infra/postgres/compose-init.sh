#!/usr/bin/env bash
# Docker Compose: the postgres image runs this once, on an empty data directory. The same
# roles.sql the local stack applies, with the passwords from the Docker secrets.
set -euo pipefail
secret() { cat "/run/secrets/$1"; }
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v database="$MIGRATE_DATABASE" \
  -v migrate_user="$MIGRATE_USER" -v migrate_password="$(secret migrate_password)" \
  -v app_user="$DB_USER" -v app_password="$(secret db_password)" \
  -v backup_user="$BACKUP_USER" -v backup_password="$(secret backup_password)" \
  -v monitor_user="$MONITOR_USER" -v monitor_password="$(secret monitor_password)" \
  -f /botstack/roles.sql
