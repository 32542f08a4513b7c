#!/usr/bin/env bash
# `annals serve` and `annals keys add` end to end: run by CTest as
#   bash serve_cli_test.sh /path/to/annals
# It writes a demo database (which prints a key for tenant acme and writes its hash to
# <db>.keys), starts `annals serve` on port 0 of 127.0.0.1, reads the real port from the line it
# prints, asks it over HTTP (curl) for /healthz and a /v1 page with the demo key (200) and with a
# wrong key (401), stops it with SIGTERM and with SIGINT (exit 0, and the port is closed
# afterwards), and checks that bad --listen values, a missing or malformed keys file, a bad
# --threads and a missing database are refused with the exit code and a message naming the
# value, without creating anything. Needs bash, coreutils and curl.
set -u

ANNALS=${1:?usage: serve_cli_test.sh /path/to/annals}
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
failures=0
checks=0

pass() { checks=$((checks + 1)); }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL  $1"; }
expect_in() {  # FILE TEXT WHAT
  if grep -qF -- "$2" "$1"; then pass; else fail "$3: '$2' not in: $(head -c 600 "$1")"; fi
}

if ! command -v curl >/dev/null; then
  echo "FAIL  curl is needed (apt-get install curl)"
  exit 1
fi

# get PATH [KEY]: prints the HTTP status; the body goes to $WORK/body. 000: no connection.
get() {
  local auth=()
  [ $# -ge 2 ] && auth=(-H "Authorization: Bearer $2")
  curl -s -m 10 -o "$WORK/body" -w '%{http_code}' "${auth[@]}" "http://127.0.0.1:$PORT$1"
}

# start_server ARGS...: starts `annals serve` in the background and waits (bounded) for the line
# saying where it listens; sets SERVER_PID and PORT.
start_server() {
  : >"$WORK/serve.out"
  "$ANNALS" serve "$@" >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 300); do
    PORT=$(sed -n 's|^annals serve: listening on http://127\.0\.0\.1:\([0-9]*\)/ .*|\1|p' \
      "$WORK/serve.out")
    [ -n "$PORT" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  fail "annals serve did not say where it listens; stdout: $(cat "$WORK/serve.out") stderr: $(cat "$WORK/serve.err")"
  exit 1
}

# stop_server SIGNAL: sends it, expects exit 0 (bounded wait) and the port closed.
stop_server() {
  kill "-$1" "$SERVER_PID"
  local code=""
  for _ in $(seq 200); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID"
      code=$?
      break
    fi
    sleep 0.05
  done
  if [ -z "$code" ]; then
    fail "annals serve did not exit within 10 s of SIG$1"
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
  elif [ "$code" -eq 0 ]; then pass; else fail "annals serve exited $code after SIG$1: $(cat "$WORK/serve.err")"; fi
  SERVER_PID=""
  expect_in "$WORK/serve.out" "annals serve: stopped on SIG$1" "serve says it stopped"
  local status
  status=$(get /healthz)
  if [ "$status" = "000" ]; then pass; else fail "port $PORT still answers ($status) after SIG$1"; fi
}

DB="$WORK/demo.db"
echo "== demo prints a key and the serve command"
if ! "$ANNALS" demo --db "$DB" --runs 30 >"$WORK/demo.out" 2>"$WORK/err"; then
  echo "FAIL  the demo database could not be written:"; cat "$WORK/err"; exit 1
fi
KEY=$(grep -o 'ak_[A-Za-z0-9_-]\{43\}' "$WORK/demo.out" | tail -n 1)
if [ -n "$KEY" ]; then pass; else fail "the demo printed no key: $(cat "$WORK/demo.out")"; fi
expect_in "$WORK/demo.out" "serve --db $DB --keys $DB.keys --listen 127.0.0.1:8080" \
  "the demo prints the serve command"
expect_in "$WORK/demo.out" "http://127.0.0.1:8080/" "the demo prints the URL"
if [ "$(stat -c %a "$DB.keys")" = 600 ]; then pass; else fail "keys file mode $(stat -c %a "$DB.keys")"; fi
if grep -qE '^acme [0-9a-f]{64}$' "$DB.keys" && ! grep -qF "$KEY" "$DB.keys"; then pass; else
  fail "the keys file should hold acme's hash, not the key: $(cat "$DB.keys")"; fi

echo "== keys add"
if "$ANNALS" keys add --keys "$WORK/k2" --tenant beta >"$WORK/out" 2>"$WORK/err"; then pass; else
  fail "keys add: $(cat "$WORK/err")"; fi
BETA_KEY=$(cat "$WORK/out")
if [[ "$BETA_KEY" =~ ^ak_[A-Za-z0-9_-]{43}$ ]]; then pass; else fail "keys add printed '$BETA_KEY'"; fi
if [ "$(stat -c %a "$WORK/k2")" = 600 ]; then pass; else fail "new keys file mode $(stat -c %a "$WORK/k2")"; fi
"$ANNALS" keys add --keys "$DB.keys" --tenant beta >"$WORK/out2" 2>"$WORK/err" || fail "keys add to the demo's file"
BETA_KEY=$(cat "$WORK/out2")
if [ "$(grep -c . "$DB.keys")" = 2 ]; then pass; else fail "the keys file should have 2 lines: $(cat "$DB.keys")"; fi
cp "$DB.keys" "$WORK/keys.before"
if "$ANNALS" keys add --keys "$DB.keys" --tenant "bad tenant" >/dev/null 2>"$WORK/err"; then
  fail "keys add took a bad tenant id"
else
  expect_in "$WORK/err" "bad tenant" "keys add names the bad tenant"
fi
printf 'acme not-a-hash\n' >"$WORK/bad.keys"
"$ANNALS" keys add --keys "$WORK/bad.keys" --tenant acme >/dev/null 2>"$WORK/err"
code=$?
if [ $code -eq 2 ]; then pass; else fail "keys add to a malformed file: exit $code, expected 2"; fi
expect_in "$WORK/err" "not-a-hash" "keys add names the malformed line"
if [ "$(cat "$WORK/bad.keys")" = "acme not-a-hash" ]; then pass; else fail "the malformed file was changed"; fi
if cmp -s "$DB.keys" "$WORK/keys.before"; then pass; else fail "a refused keys add changed the file"; fi

echo "== serve on port 0, SIGTERM"
start_server --db "$DB" --keys "$DB.keys" --listen 127.0.0.1:0 --threads 2
expect_in "$WORK/serve.out" "(store sqlite:$DB, 2 keys for 2 tenants)" "the listening line"
if grep -q warning "$WORK/serve.err"; then fail "a warning on loopback: $(cat "$WORK/serve.err")"; else pass; fi
status=$(get /healthz)
if [ "$status" = 200 ]; then pass; else fail "/healthz: $status $(cat "$WORK/body")"; fi
expect_in "$WORK/body" '"status":"ok"' "/healthz body"
status=$(get "/v1/apps/support-bot/workflow-runs?limit=5" "$KEY")
if [ "$status" = 200 ]; then pass; else fail "/v1 with the demo key: $status $(cat "$WORK/body")"; fi
expect_in "$WORK/body" '"tenant_id":"acme"' "the page holds acme's runs"
status=$(get "/v1/apps/support-bot/workflow-runs?limit=5" "ak_wrongwrongwrongwrongwrongwrongwrongwrongwro")
if [ "$status" = 401 ]; then pass; else fail "/v1 with a wrong key: $status"; fi
expect_in "$WORK/body" '"code":"unauthorized"' "a wrong key is unauthorized"
status=$(get "/v1/apps/support-bot/workflow-runs?limit=5")
if [ "$status" = 401 ]; then pass; else fail "/v1 without a key: $status"; fi
status=$(get "/v1/apps/support-bot/workflow-runs?limit=5" "$BETA_KEY")
if [ "$status" = 200 ]; then pass; else fail "/v1 with beta's key: $status"; fi
if grep -qF '"tenant_id":"acme"' "$WORK/body"; then fail "beta's key shows acme's runs"; else pass; fi
# Another server on the same port: a store error naming the address.
"$ANNALS" serve --db "$DB" --keys "$DB.keys" --listen "127.0.0.1:$PORT" >/dev/null 2>"$WORK/err"
code=$?
if [ $code -eq 3 ]; then pass; else fail "a port in use: exit $code, expected 3"; fi
expect_in "$WORK/err" "127.0.0.1:$PORT" "a port in use is named"
stop_server TERM

echo "== SIGINT"
start_server --uri "sqlite:$DB" --keys "$DB.keys" --listen 127.0.0.1:0
status=$(get /healthz)
if [ "$status" = 200 ]; then pass; else fail "/healthz (--uri): $status"; fi
stop_server INT

echo "== a signal as soon as the line is printed still stops it gracefully"
start_server --db "$DB" --keys "$DB.keys" --listen 127.0.0.1:0
stop_server TERM

echo "== bad usage: exit 2, the value named, nothing created"
# bad NAME EXIT TEXT ARGS...
bad() {
  local name=$1 expected=$2 text=$3
  shift 3
  "$ANNALS" "$@" >"$WORK/out" 2>"$WORK/err"
  local code=$?
  if [ $code -eq "$expected" ]; then pass; else fail "$name: exit $code, expected $expected ($(cat "$WORK/err"))"; fi
  expect_in "$WORK/err" "$text" "$name: stderr names the value"
  if [ -s "$WORK/out" ]; then fail "$name: printed on stdout: $(cat "$WORK/out")"; else pass; fi
}
K=(--keys "$DB.keys")
bad "listen without a port" 2 "'127.0.0.1'" serve --db "$DB" "${K[@]}" --listen 127.0.0.1
bad "listen port too big" 2 "70000" serve --db "$DB" "${K[@]}" --listen 127.0.0.1:70000
bad "listen port not a number" 2 "'8o80'" serve --db "$DB" "${K[@]}" --listen 127.0.0.1:8o80
bad "listen port negative" 2 "'-1'" serve --db "$DB" "${K[@]}" --listen=127.0.0.1:-1
bad "listen empty port" 2 "no port" serve --db "$DB" "${K[@]}" --listen 127.0.0.1:
bad "listen host name" 2 "'localhost'" serve --db "$DB" "${K[@]}" --listen localhost:8080
bad "listen bad IPv4" 2 "'127.0.0.256'" serve --db "$DB" "${K[@]}" --listen 127.0.0.256:8080
bad "listen IPv6 without brackets" 2 "brackets" serve --db "$DB" "${K[@]}" --listen ::1:8080
bad "listen bad IPv6" 2 "'::g'" serve --db "$DB" "${K[@]}" --listen "[::g]:8080"
bad "listen missing" 2 "--listen" serve --db "$DB" "${K[@]}"
bad "keys missing" 2 "--keys" serve --db "$DB" --listen 127.0.0.1:0
bad "keys file missing" 2 "$WORK/nope.keys" serve --db "$DB" --keys "$WORK/nope.keys" --listen 127.0.0.1:0
bad "keys file malformed" 2 "bad.keys:1" serve --db "$DB" --keys "$WORK/bad.keys" --listen 127.0.0.1:0
bad "threads 0" 2 "0" serve --db "$DB" "${K[@]}" --listen 127.0.0.1:0 --threads 0
bad "threads 65" 2 "65" serve --db "$DB" "${K[@]}" --listen 127.0.0.1:0 --threads 65
bad "db and uri" 2 "--uri" serve --db "$DB" --uri "sqlite:$DB" "${K[@]}" --listen 127.0.0.1:0
bad "no database" 3 "$WORK/none.db" serve --db "$WORK/none.db" "${K[@]}" --listen 127.0.0.1:0
if [ -e "$WORK/none.db" ]; then fail "serve created a database"; else pass; fi
# A non-loopback address is warned about before it is bound (192.0.2.1 is TEST-NET-1, not on
# this machine, so the bind fails and nothing listens on a real interface).
bad "non-loopback address" 3 "192.0.2.1" serve --db "$DB" "${K[@]}" --listen 192.0.2.1:0
expect_in "$WORK/err" "warning: listening on 192.0.2.1, not loopback: API keys are sent in cleartext HTTP" \
  "a non-loopback address is warned about"
bad "keys add without tenant" 2 "--tenant" keys add --keys "$WORK/k3"
if [ -e "$WORK/k3" ]; then fail "a refused keys add created the file"; else pass; fi

echo "serve_cli_test: $checks checks, $failures failures"
[ "$failures" -eq 0 ]
