#!/usr/bin/env bash
# Makes a PostgreSQL 15 reachable at $PGHOST:$PGPORT with role and database "callrouter" (password "callrouter").
# Already reachable: nothing to do. Otherwise initialise a cluster in $CALLROUTER_PGDATA (as the "postgres" OS user:
# initdb refuses to run as root) and start it with pg_ctl.
#   infra/postgres.sh         start if needed
#   infra/postgres.sh stop    stop the cluster this script started (tests use it to take the database away)
#   infra/postgres.sh start   start it again
set -euo pipefail
host="${PGHOST:-localhost}"
port="${PGPORT:-5432}"
data="${CALLROUTER_PGDATA:-/var/lib/callrouter/pgdata}"
bin="${PG_BIN:-/usr/lib/postgresql/15/bin}"
os_user="${PG_OS_USER:-postgres}"

as_pg() { runuser -u "$os_user" -- "$@"; }
reachable() { pg_isready -q -h "$host" -p "$port" >/dev/null 2>&1; }
pg_ctl_() { as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -o "-p $port -k /tmp" -w -t 60 "$@"; }

case "${1:-ensure}" in
  stop)  pg_ctl_ stop -m fast >/dev/null; echo "postgres: stopped"; exit 0 ;;
  start) pg_ctl_ start >/dev/null; echo "postgres: started"; exit 0 ;;
  ensure) ;;
  *) echo "usage: $0 [ensure|start|stop]" >&2; exit 2 ;;
esac

if reachable; then
  echo "postgres: already reachable at $host:$port"
  exit 0
fi
if [ "$host" != "localhost" ] && [ "$host" != "127.0.0.1" ]; then
  echo "postgres: $host:$port is not reachable and is not local; start it there" >&2
  exit 1
fi
if [ ! -x "$bin/initdb" ]; then
  echo "postgres: installing the Debian package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql-15 >/dev/null
fi

if [ ! -s "$data/PG_VERSION" ]; then
  echo "postgres: initialising a cluster in $data"
  mkdir -p "$data"
  chown -R "$os_user" "$(dirname "$data")"
  chmod 700 "$data"
  as_pg "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  cat >>"$data/postgresql.conf" <<EOF
listen_addresses = 'localhost'
max_connections = 200
shared_buffers = 256MB
EOF
fi
pg_ctl_ start >/dev/null
for _ in $(seq 1 30); do reachable && break; sleep 1; done
reachable || { echo "postgres: did not come up; see $data/server.log" >&2; exit 1; }

as_pg psql -h /tmp -p "$port" -U postgres -q -v ON_ERROR_STOP=1 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'callrouter') THEN
    CREATE ROLE callrouter LOGIN CREATEDB PASSWORD 'callrouter';
  END IF;
END $$;
SELECT 'CREATE DATABASE callrouter OWNER callrouter' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'callrouter')\gexec
SQL
echo "postgres: running at $host:$port (database callrouter, user callrouter; data in $data)"
