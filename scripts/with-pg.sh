#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server: scripts/with-pg.sh COMMAND [ARGS...]
#
# Starts PostgreSQL (Debian's package, the newest installed version) as the postgres user in a
# fresh temp directory, listening only on a unix socket there, creates the database annals_test,
# exports ANNALS_TEST_PG (a libpq connection string to it) for the command, and stops the server
# and removes the directory on every way out (the command's end, an error, Ctrl-C). The exit
# status is the command's.
#
# Without a server to start (not root, or PostgreSQL not installed) it runs the command anyway
# and says so on stderr: the PostgreSQL tests then skip (outside CI) or fail (CI set). When
# ANNALS_TEST_PG is already set, the command runs against that server.
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: scripts/with-pg.sh COMMAND [ARGS...]" >&2
  exit 2
fi

if [ -n "${ANNALS_TEST_PG:-}" ]; then
  echo "with-pg: ANNALS_TEST_PG is already set; using that server" >&2
  exec "$@"
fi

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
reason=""
if [ "$(id -u)" -ne 0 ]; then
  reason="not running as root (the server runs as the postgres user)"
elif [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ] || [ ! -x "$pgbin/pg_ctl" ]; then
  reason="PostgreSQL is not installed (Debian package postgresql-15)"
elif ! id postgres >/dev/null 2>&1; then
  reason="there is no postgres user"
fi
if [ -n "$reason" ]; then
  echo "with-pg: no PostgreSQL server: $reason; running without one (PostgreSQL tests skip)" >&2
  exec "$@"
fi

pgtmp=$(mktemp -d)  # short path: a unix socket path is limited to ~100 bytes
chown postgres:postgres "$pgtmp"
as_pg() { (cd "$pgtmp" && runuser -u postgres -- "$@"); }
stop_server() {
  if [ -f "$pgtmp/data/postmaster.pid" ]; then
    as_pg "$pgbin/pg_ctl" -D "$pgtmp/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$pgtmp"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail_start() {
  echo "with-pg: could not start PostgreSQL: $1" >&2
  [ -f "$pgtmp/server.log" ] && tail -n 20 "$pgtmp/server.log" >&2
  exit 1
}
as_pg "$pgbin/initdb" -D "$pgtmp/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
  >"$pgtmp/initdb.log" 2>&1 || { cat "$pgtmp/initdb.log" >&2; fail_start "initdb failed"; }
as_pg "$pgbin/pg_ctl" -D "$pgtmp/data" -l "$pgtmp/server.log" -w -t 30 \
  -o "-c listen_addresses='' -k $pgtmp -p 5432 -c fsync=off" start >/dev/null ||
  fail_start "pg_ctl start failed"
runuser -u postgres -- "$pgbin/createdb" -h "$pgtmp" -p 5432 annals_test ||
  fail_start "createdb annals_test failed"

export ANNALS_TEST_PG="host=$pgtmp port=5432 user=postgres dbname=annals_test"
echo "with-pg: PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') at $pgtmp;" \
  "ANNALS_TEST_PG=\"$ANNALS_TEST_PG\"" >&2
status=0
"$@" || status=$?
exit "$status"
