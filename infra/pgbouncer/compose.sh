#!/bin/sh
# compose.yaml's PgBouncer: writes its ini (where it listens, the server, the auth file, and
# the pooling settings of pooling.ini, the local stack's, included) and its auth file from the
# Docker secret into /tmp (the root filesystem is read-only), then runs PgBouncer in its place.
set -eu
umask 077
dir=/tmp/pgbouncer
mkdir -p "$dir"
# userlist.txt quotes a name and a password in "..." with a " written as "".
password=$(sed 's/"/""/g' /run/secrets/db_password)
printf '"%s" "%s"\n' "$DB_USER" "$password" > "$dir/userlist.txt"
cat > "$dir/pgbouncer.ini" <<INI
[databases]
$DB_NAME = host=postgres port=5432 dbname=$DB_NAME

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
unix_socket_dir =
auth_file = $dir/userlist.txt
stats_users = $DB_USER

%include /botstack/pooling.ini
INI
exec pgbouncer "$dir/pgbouncer.ini"
