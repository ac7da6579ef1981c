#!/usr/bin/env bash
# Docker Compose: the postgres image runs this once, on an empty data directory. The same
# roles.sql the local stack applies, with the passwords from the environment.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v database="$MIGRATE_DATABASE" \
  -v migrate_user="$MIGRATE_USER" -v migrate_password="$MIGRATE_PASSWORD" \
  -v app_user="$DB_USER" -v app_password="$DB_PASSWORD" \
  -v backup_user="$BACKUP_USER" -v backup_password="$BACKUP_PASSWORD" \
  -v monitor_user="$MONITOR_USER" -v monitor_password="$MONITOR_PASSWORD" \
  -f /botstack/roles.sql
