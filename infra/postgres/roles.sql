-- Roles and database of the bot stack, applied by a superuser with plain psql:
--
--   psql -v database=botstack -v migrate_user=migrator -v migrate_password=... \
--        -v app_user=app -v app_password=... -v backup_user=backup -v backup_password=... \
--        -v monitor_user=monitor -v monitor_password=... -f infra/postgres/roles.sql
--
-- Idempotent: creates what is missing and (re)sets passwords, attributes and grants, so it runs
-- on every start of the local stack and as the Docker Compose postgres init script.
\set ON_ERROR_STOP on
\set QUIET on

SELECT :{?database} AND :{?migrate_user} AND :{?migrate_password} AND :{?app_user}
   AND :{?app_password} AND :{?backup_user} AND :{?backup_password} AND :{?monitor_user}
   AND :{?monitor_password} AS roles_sql_variables_set
\gset
\if :roles_sql_variables_set
\else
  DO $$ BEGIN RAISE EXCEPTION 'roles.sql needs the psql variables database, migrate_user, '
    'migrate_password, app_user, app_password, backup_user, backup_password, monitor_user and '
    'monitor_password (-v name=value)';
  END $$;
\endif

-- The migration role owns the database, hence its public schema, and may create the trusted
-- extensions the schema uses (btree_gist, pg_trgm).
SELECT format('CREATE ROLE %I', :'migrate_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'migrate_user')
\gexec
ALTER ROLE :"migrate_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
  NOBYPASSRLS PASSWORD :'migrate_password';

-- The services' role: reads and writes rows; its table grants come from the migrations.
SELECT format('CREATE ROLE %I', :'app_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user')
\gexec
ALTER ROLE :"app_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
  NOBYPASSRLS PASSWORD :'app_password';

-- The backup role streams base backups and WAL.
SELECT format('CREATE ROLE %I', :'backup_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'backup_user')
\gexec
ALTER ROLE :"backup_user" WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE
  NOBYPASSRLS PASSWORD :'backup_password';

-- The monitoring role (postgres_exporter): the statistics views and settings, no table data.
SELECT format('CREATE ROLE %I', :'monitor_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'monitor_user')
\gexec
ALTER ROLE :"monitor_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
  NOBYPASSRLS PASSWORD :'monitor_password';
GRANT pg_monitor TO :"monitor_user";

SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'migrate_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database')
\gexec
ALTER DATABASE :"database" OWNER TO :"migrate_user";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO :"app_user", :"backup_user", :"monitor_user";

-- The backup role reads every table for logical dumps (pg_dump).
GRANT pg_read_all_data TO :"backup_user";

-- The backup service closes the current WAL segment before a restore or drill, so that "latest"
-- includes every commit up to that moment. Function privileges live in each database.
\connect :"database"
GRANT EXECUTE ON FUNCTION pg_switch_wal() TO :"backup_user";
-- After a restart it checkpoints once, or archive_timeout waits for the first timed checkpoint
-- (services/backup/live.py: arm_archive_timeout).
GRANT EXECUTE ON FUNCTION pg_control_checkpoint() TO :"backup_user";
GRANT pg_checkpoint TO :"backup_user";
-- The slowest statements for `botstack stats`; readable in full by pg_monitor (pg_read_all_stats).
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
