#!/usr/bin/env bash
# End-to-end tests of the annals program on PostgreSQL: run by CTest as
#   bash pg_cli_test.sh /path/to/annals [CONNINFO]
# CONNINFO (default: $ANNALS_TEST_PG) is a libpq connection string -- keyword string or
# postgresql:// URI -- to a server where the script may create schemas; each part of the test
# works in a fresh schema of its own (URI option options=-csearch_path=NAME), dropped at the end.
# Without a connection string, or when the server cannot be reached, the script prints why and
# exits 77 (CTest: skipped), except when CI is set, where that is a failure.
#
# What it checks: every command against PostgreSQL (demo, stats, runs, rebuild, verify with
# checkpoints, replay, export, import, purge); that reading commands never create a store; that
# no output shows the password; the round trip demo into SQLite -> export -> import into
# PostgreSQL -> export (byte for byte the first export) -> import into a new SQLite file -> export
# (byte for byte again); and that runs, replay, stats and verify say the same on the SQLite and
# PostgreSQL stores holding the same log; and that annals serve on PostgreSQL answers a page of runs
# byte for byte as `runs --json` prints it, and /v1/verify as verify does (needs curl). Needs psql (to create and drop the schemas, and to
# tamper with a log).
set -u

ANNALS=${1:?usage: pg_cli_test.sh /path/to/annals [CONNINFO]}
CONN=${2:-${ANNALS_TEST_PG:-}}

unavailable() {
  if [ -n "${CI:-}" ]; then
    echo "pg_cli_test: FAIL: $1 (CI is set: PostgreSQL must be available)"
    exit 1
  fi
  echo "pg_cli_test: skipped: $1"
  exit 77
}
[ -n "$CONN" ] || unavailable "no connection string (pass one, or set ANNALS_TEST_PG)"
command -v psql >/dev/null 2>&1 || unavailable "psql is not installed"
psql_() { psql -X -q -v ON_ERROR_STOP=1 -At -d "$CONN" "$@"; }
psql_ -c "SELECT 1" >/dev/null 2>&1 || unavailable "cannot reach the server ($(psql_ -c 'SELECT 1' 2>&1 | head -1))"

WORK=$(mktemp -d)
PREFIX="annals_cli_$$_$RANDOM"
# Drops every schema the script made (schema() runs in command substitutions, so the names are
# found on the server by their prefix, not kept in a variable).
cleanup() {
  psql_ -c "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, '$PREFIX')" 2>/dev/null |
    while read -r s; do psql_ -c "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1; done
  rm -rf "$WORK"
}
trap cleanup EXIT
failures=0
checks=0

pass() { checks=$((checks + 1)); echo "ok    $1"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL  $1"; }

# run NAME EXPECTED_EXIT ARGS...: runs annals, keeps stdout in $WORK/out, stderr in $WORK/err.
run() {
  local name=$1 expected=$2
  shift 2
  "$ANNALS" "$@" >"$WORK/out" 2>"$WORK/err"
  local code=$?
  if [ "$code" -eq "$expected" ]; then
    pass "$name (exit $code)"
  else
    fail "$name: expected exit $expected, got $code"
    sed 's/^/      stdout: /' "$WORK/out" | head -20
    sed 's/^/      stderr: /' "$WORK/err" | head -20
  fi
  return 0
}

# expect_in FILE TEXT NAME: the file contains the text.
expect_in() {
  if grep -qF -- "$2" "$1"; then
    pass "$3"
  else
    fail "$3: '$2' not found in:"
    head -20 "$1" | sed 's/^/      /'
  fi
}

# same FILE_A FILE_B NAME: the files are byte for byte equal.
same() {
  if cmp -s "$1" "$2"; then
    pass "$3"
  else
    fail "$3"
    diff <(head -c 4000 "$1") <(head -c 4000 "$2") | head -10 | sed 's/^/      /'
  fi
}

# json_field FILE KEY: the first value of "KEY": in a one-line JSON document (numbers/strings).
json_field() {
  grep -o "\"$2\":\(\"[^\"]*\"\|[0-9-][0-9]*\|true\|false\|null\)" "$1" | head -1 |
    sed -e "s/^\"$2\"://" -e 's/^"//' -e 's/"$//'
}

# opt URI KEY VALUE: the connection string with one more option (VALUE holds no '&' or space;
# its '=' is written %3D in a URI's query).
opt() {
  case "$1" in
    postgresql://* | postgres://*)
      case "$1" in *\?*) echo "$1&$2=${3//=/%3D}" ;; *) echo "$1?$2=${3//=/%3D}" ;; esac ;;
    *) echo "$1 $2=$3" ;;
  esac
}

# schema NAME: creates a fresh schema and prints the store URI that works in it.
schema() {
  local s="${PREFIX}_$1"
  psql_ -c "CREATE SCHEMA $s" >/dev/null || { echo "pg_cli_test: cannot create schema $s" >&2; exit 1; }
  opt "$CONN" options "-csearch_path=$s"
}

# has_store NAME: whether schema NAME holds annals_events.
has_store() { [ "$(psql_ -c "SELECT to_regclass('${PREFIX}_$1.annals_events') IS NOT NULL")" = "t" ]; }

echo "== reading an empty schema creates nothing"
EMPTY=$(schema empty)
for cmd in stats verify export "runs --tenant acme --app support-bot" "replay --stream x --position 1" rebuild \
  "purge --tenant acme --before 2026-11-08T00:00:00Z --archive $WORK/p0.jsonl"; do
  # shellcheck disable=SC2086
  run "$cmd on an empty schema exits 3" 3 $cmd --uri "$EMPTY"
  expect_in "$WORK/err" "no annals store in schema '${PREFIX}_empty'" "$cmd says the schema holds no store"
  if has_store empty; then fail "$cmd created a store"; else pass "$cmd did not create a store"; fi
done
run "a search_path naming no schema exits 3" 3 stats --uri "$(opt "$CONN" options "-csearch_path=${PREFIX}_nosuch")"
expect_in "$WORK/err" "names no existing schema" "it says the search_path names no schema"
run "an unreachable server exits 3" 3 stats --uri "host=/nonexistent-annals-dir port=5432 dbname=x"
expect_in "$WORK/err" "cannot connect to PostgreSQL" "it says it cannot connect"
run "--db with a PostgreSQL URI is bad usage" 2 stats --db "postgresql://alice:s3cret-pw@localhost/x"
expect_in "$WORK/err" "--uri" "it points to --uri"
if grep -qF "s3cret-pw" "$WORK/err"; then fail "--db's message shows the password"; else pass "--db's message hides the password"; fi

echo "== demo, stats, runs on PostgreSQL"
DEMO=$(schema demo)
run "demo writes 60 runs" 0 demo --uri "$DEMO" --runs 60
expect_in "$WORK/out" "wrote 60 workflow runs" "demo says what it wrote"
expect_in "$WORK/out" "STATUS" "demo prints a table of runs"
run "stats" 0 stats --uri "$DEMO"
expect_in "$WORK/out" "schema ${PREFIX}_demo" "stats names the schema"
expect_in "$WORK/out" "workflow_runs" "stats shows the workflow_runs checkpoint"
run "stats --json" 0 stats --uri "$DEMO" --json
HEAD=$(json_field "$WORK/out" head_position)
EVENTS=$(json_field "$WORK/out" events)
if [ -n "$HEAD" ] && [ "$HEAD" -gt 60 ] && [ "$HEAD" = "$EVENTS" ]; then pass "stats: $EVENTS events, head $HEAD"; else fail "stats: events '$EVENTS', head '$HEAD'"; fi
if [ "$(json_field "$WORK/out" lag)" = "0" ]; then pass "the inline projection has no lag"; else fail "projection lag is '$(json_field "$WORK/out" lag)'"; fi
SIZE=$(json_field "$WORK/out" tables_size)
if [ -n "$SIZE" ] && [ "$SIZE" -gt 0 ]; then pass "stats --json reports the tables' size ($SIZE bytes)"; else fail "tables_size '$SIZE'"; fi
run "runs --json" 0 runs --uri "$DEMO" --tenant acme --app support-bot --limit 2 --json
expect_in "$WORK/out" '"limit":2' "runs --json has the limit"
LAST_ID=$(json_field "$WORK/out" id)
run "runs --last-id continues" 0 runs --uri "$DEMO" --tenant acme --app support-bot --limit 2 --last-id "$LAST_ID" --json
if grep -qF "\"id\":\"$LAST_ID\"" "$WORK/out"; then fail "the next page repeats $LAST_ID"; else pass "the next page starts after $LAST_ID"; fi
run "runs with an unknown --last-id exits 3" 3 runs --uri "$DEMO" --tenant acme --app support-bot --last-id nope

echo "== the same demo on SQLite and PostgreSQL"
run "demo --json on SQLite" 0 demo --db "$WORK/d1.db" --runs 10 --json
grep -o '"data":.*' "$WORK/out" | sed 's/"[a-z_]*_at":"[^"]*"//g' >"$WORK/d1.page"
run "demo --json on PostgreSQL" 0 demo --uri "$(schema d2)" --runs 10 --json
grep -o '"data":.*' "$WORK/out" | sed 's/"[a-z_]*_at":"[^"]*"//g' >"$WORK/d2.page"
same "$WORK/d1.page" "$WORK/d2.page" "the same seed writes the same runs on both backends"

echo "== rebuild and verify on PostgreSQL"
run "rebuild" 0 rebuild --uri "$DEMO"
expect_in "$WORK/out" "identical to the live tables: yes" "rebuild finds the tables identical"
run "rebuild --json" 0 rebuild --uri "$DEMO" --json
expect_in "$WORK/out" '"swapped":true' "rebuild --json says it swapped"
run "runs after the rebuild" 0 runs --uri "$DEMO" --tenant acme --app support-bot --json
run "verify" 0 verify --uri "$DEMO" --json
expect_in "$WORK/out" '"ok":true' "verify --json says ok"
printf 'correct horse battery staple\n' >"$WORK/key"
printf 'another key\n' >"$WORK/wrong-key"
run "verify writes a signed checkpoint" 0 verify --uri "$DEMO" --checkpoint "$WORK/cp.json" --key-file "$WORK/key"
expect_in "$WORK/cp.json" "\"position\":$HEAD" "the checkpoint holds the head position"
run "demo appends more runs" 0 demo --uri "$DEMO" --runs 5
run "the checkpoint still holds after appends" 0 verify --uri "$DEMO" --checkpoint "$WORK/cp.json" --key-file "$WORK/key"
expect_in "$WORK/out" "only appended to" "verify says the log was only appended to"
run "a wrong key fails the checkpoint" 1 verify --uri "$DEMO" --checkpoint "$WORK/cp.json" --key-file "$WORK/wrong-key"

echo "== round trip: SQLite -> PostgreSQL -> SQLite, byte for byte"
run "demo into SQLite" 0 demo --db "$WORK/a.db" --runs 40
run "export SQLite" 0 export --db "$WORK/a.db" --output "$WORK/a.jsonl"
RT=$(schema rt)
run "import into a fresh PostgreSQL schema" 0 import --uri "$RT" --input "$WORK/a.jsonl"
expect_in "$WORK/out" "imported $(wc -l <"$WORK/a.jsonl") events" "import says how many events"
run "export PostgreSQL" 0 export --uri "$RT" --output "$WORK/b.jsonl"
same "$WORK/a.jsonl" "$WORK/b.jsonl" "SQLite export -> PostgreSQL import -> export is byte-identical"
"$ANNALS" export --uri "$RT" >"$WORK/b-stdout.jsonl" 2>"$WORK/err"
same "$WORK/b.jsonl" "$WORK/b-stdout.jsonl" "export to stdout equals export to a file"
run "export --from 10" 0 export --uri "$RT" --from 10 --output "$WORK/b10.jsonl"
same <(tail -n +10 "$WORK/a.jsonl") "$WORK/b10.jsonl" "export --from 10 is the export from its 10th line"
run "import into a fresh SQLite file" 0 import --db "$WORK/c.db" --input "$WORK/b.jsonl"
run "export that SQLite file" 0 export --db "$WORK/c.db" --output "$WORK/c.jsonl"
same "$WORK/a.jsonl" "$WORK/c.jsonl" "PostgreSQL export -> SQLite import -> export is byte-identical"
STDIN=$(schema stdin)
run "import into PostgreSQL from stdin" 0 import --uri "$STDIN" <"$WORK/a.jsonl"
"$ANNALS" export --uri "$STDIN" >"$WORK/s.jsonl" 2>/dev/null
same "$WORK/a.jsonl" "$WORK/s.jsonl" "import from stdin round-trips"

echo "== the SQLite and PostgreSQL stores of one log answer alike"
run "verify the imported PostgreSQL store" 0 verify --uri "$RT" --json
PG_HASH=$(json_field "$WORK/out" head_hash)
run "verify the SQLite store" 0 verify --db "$WORK/a.db" --json
if [ -n "$PG_HASH" ] && [ "$PG_HASH" = "$(json_field "$WORK/out" head_hash)" ]; then pass "both verify to head hash $PG_HASH"; else fail "head hashes differ: '$PG_HASH' vs '$(json_field "$WORK/out" head_hash)'"; fi
run "stats of the imported store" 0 stats --uri "$RT"
expect_in "$WORK/out" "projections    none" "an imported store has no read tables yet"
for page in "--limit 20" "--limit 3" "--limit 1000"; do
  # shellcheck disable=SC2086
  run "runs $page on PostgreSQL" 0 runs --uri "$RT" --tenant acme --app support-bot $page --json
  cp "$WORK/out" "$WORK/runs-pg.json"
  # shellcheck disable=SC2086
  run "runs $page on SQLite" 0 runs --db "$WORK/a.db" --tenant acme --app support-bot $page --json
  same "$WORK/runs-pg.json" "$WORK/out" "runs $page --json is the same on both stores"
done
for tenant_app in "acme support-bot" "globex doc-summarizer" "initech sales-assistant"; do
  read -r tenant app <<<"$tenant_app"
  "$ANNALS" runs --uri "$RT" --tenant "$tenant" --app "$app" --limit 2 --json >"$WORK/p1" 2>&1
  "$ANNALS" runs --db "$WORK/a.db" --tenant "$tenant" --app "$app" --limit 2 --json >"$WORK/s1" 2>&1
  same "$WORK/p1" "$WORK/s1" "runs of $tenant/$app are the same on both stores"
done
run "rebuild of the imported store" 0 rebuild --uri "$RT"
expect_in "$WORK/out" "swapped in: yes" "the rebuild swaps the tables in"
run "runs after the rebuild" 0 runs --uri "$RT" --tenant acme --app support-bot --limit 1000 --json
cp "$WORK/out" "$WORK/runs-pg.json"
run "runs on SQLite" 0 runs --db "$WORK/a.db" --tenant acme --app support-bot --limit 1000 --json
same "$WORK/runs-pg.json" "$WORK/out" "runs --json is the same after a rebuild on PostgreSQL"
STREAM=$(head -1 "$WORK/a.jsonl" | grep -o '"stream_id":"[^"]*"' | head -1 | sed 's/.*:"//; s/"$//')
POSITIONS=$(grep -F "\"stream_id\":\"$STREAM\"" "$WORK/a.jsonl" | grep -o '"position":[0-9]*' | sed 's/.*://')
for P in $POSITIONS; do
  run "replay $STREAM --position $P on PostgreSQL" 0 replay --uri "$RT" --stream "$STREAM" --position "$P" --json
  cp "$WORK/out" "$WORK/replay-pg.json"
  recorded=$(json_field "$WORK/out" recorded_at)
  run "replay on SQLite" 0 replay --db "$WORK/a.db" --stream "$STREAM" --position "$P" --json
  same "$WORK/replay-pg.json" "$WORK/out" "replay at position $P is the same on both stores"
  run "replay --as-of $recorded on PostgreSQL" 0 replay --uri "$RT" --stream "$STREAM" --as-of "$recorded" --json
  cp "$WORK/out" "$WORK/replay-pg.json"
  run "replay --as-of on SQLite" 0 replay --db "$WORK/a.db" --stream "$STREAM" --as-of "$recorded" --json
  same "$WORK/replay-pg.json" "$WORK/out" "replay as of $recorded is the same on both stores"
done
run "replay of an unknown stream exits 3" 3 replay --uri "$RT" --stream WorkflowRun-nope --position 1

echo "== refused and failed imports leave the store as it was"
run "import into a non-empty store is refused" 2 import --uri "$RT" --input "$WORK/a.jsonl"
"$ANNALS" export --uri "$RT" >"$WORK/b2.jsonl" 2>/dev/null
same "$WORK/a.jsonl" "$WORK/b2.jsonl" "the refused import changed nothing"
{ head -5 "$WORK/a.jsonl"; echo '{"this is": not json'; tail -n +6 "$WORK/a.jsonl"; } >"$WORK/bad.jsonl"
BAD=$(schema bad)
"$ANNALS" import --uri "$BAD" --input "$WORK/bad.jsonl" >"$WORK/out" 2>"$WORK/err"
code=$?
if [ "$code" -ne 0 ]; then pass "a malformed import fails (exit $code)"; else fail "a malformed import succeeded"; fi
expect_in "$WORK/err" "line 6" "the error names line 6"
if ! has_store bad || [ "$(psql_ -c "SELECT count(*) FROM ${PREFIX}_bad.annals_events")" = "0" ]; then
  pass "the failed import left no events"
else
  fail "the failed import left events"
fi
sed '4d' "$WORK/a.jsonl" >"$WORK/gap.jsonl"
GAP=$(schema gap)
"$ANNALS" import --uri "$GAP" --input "$WORK/gap.jsonl" >"$WORK/out" 2>"$WORK/err"
code=$?
if [ "$code" -ne 0 ]; then pass "an import with a missing line fails (exit $code)"; else fail "an import with a missing line succeeded"; fi
if ! has_store gap || [ "$(psql_ -c "SELECT count(*) FROM ${PREFIX}_gap.annals_events")" = "0" ]; then
  pass "and left no events"
else
  fail "and left events"
fi

echo "== purge on PostgreSQL"
PURGE=$(schema purge)
run "import for the purge" 0 import --uri "$PURGE" --input "$WORK/a.jsonl"
run "purge acme's runs of the first week" 0 purge --uri "$PURGE" --tenant acme --before 2026-11-08T00:00:00Z --archive "$WORK/p.jsonl" --json
PURGED=$(json_field "$WORK/out" events)
if [ -n "$PURGED" ] && [ "$PURGED" -gt 0 ]; then pass "purge removed $PURGED events"; else fail "purge removed '$PURGED' events"; fi
run "verify after the purge" 0 verify --uri "$PURGE"
expect_in "$WORK/out" "purged events" "verify steps over the purged events"
run "verify the purge archive" 0 verify --uri "$PURGE" --archive "$WORK/p.jsonl"
expect_in "$WORK/out" "matches purge" "verify says the archive matches its purge"
cp "$WORK/a.db" "$WORK/purge.db"
run "the same purge on SQLite" 0 purge --db "$WORK/purge.db" --tenant acme --before 2026-11-08T00:00:00Z --archive "$WORK/p-sqlite.jsonl" --json
same "$WORK/p.jsonl" "$WORK/p-sqlite.jsonl" "both backends write the same archive"
run "runs after the purge on PostgreSQL" 0 runs --uri "$PURGE" --tenant acme --app support-bot --limit 1000 --json
cp "$WORK/out" "$WORK/runs-purged-pg.json"
run "runs after the purge on SQLite" 0 runs --db "$WORK/purge.db" --tenant acme --app support-bot --limit 1000 --json
same "$WORK/runs-purged-pg.json" "$WORK/out" "after the same purge, runs --json is the same on both stores"

echo "== tampering on PostgreSQL"
TAMPER=$(schema tamper)
run "import for tampering" 0 import --uri "$TAMPER" --input "$WORK/a.jsonl"
if psql_ -c "ALTER TABLE ${PREFIX}_tamper.annals_events DISABLE TRIGGER USER" \
  -c "UPDATE ${PREFIX}_tamper.annals_events SET payload = convert_to('{\"run_id\":\"forged\"}', 'UTF8') WHERE position = 7" >/dev/null 2>"$WORK/psql.err"; then
  run "verify finds an edited payload" 1 verify --uri "$TAMPER"
  expect_in "$WORK/err" "position 7" "the edited payload is reported at position 7"
else
  fail "could not tamper with the log: $(head -1 "$WORK/psql.err")"
fi


echo "== annals serve on PostgreSQL answers as the runs and verify commands do"
if ! command -v curl >/dev/null 2>&1; then
  fail "curl is not installed (scripts/install-deps.sh installs it)"
else
  run "keys add" 0 keys add --keys "$WORK/pg.keys" --tenant acme
  KEY=$(cat "$WORK/out")
  "$ANNALS" serve --uri "$DEMO" --keys "$WORK/pg.keys" --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVE_PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$WORK/serve.out" && break; sleep 0.1; done
  PORT=$(grep -o 'http://127.0.0.1:[0-9]*/' "$WORK/serve.out" | head -1 | sed -e 's|.*:||' -e 's|/||')
  if [ -z "$PORT" ]; then
    fail "annals serve on PostgreSQL did not say where it listens:"
    sed 's/^/      /' "$WORK/serve.err" | head -5
  else
    pass "annals serve listens on PostgreSQL (port $PORT)"
    curl -s -H "Authorization: Bearer $KEY" \
      "http://127.0.0.1:$PORT/v1/apps/support-bot/workflow-runs?limit=5" >"$WORK/api-runs.json"
    echo >>"$WORK/api-runs.json"
    run "runs --json" 0 runs --uri "$DEMO" --tenant acme --app support-bot --limit 5 --json
    same "$WORK/api-runs.json" "$WORK/out" "the API's page of runs is the runs command's, byte for byte"
    curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/verify" >"$WORK/api-verify.json"
    run "verify --json" 0 verify --uri "$DEMO" --json
    if [ "$(json_field "$WORK/api-verify.json" head_position)" = "$(json_field "$WORK/out" head_position)" ] &&
      [ "$(json_field "$WORK/api-verify.json" ok)" = "true" ]; then
      pass "/v1/verify says ok at the head verify reports"
    else
      fail "/v1/verify disagrees with verify: $(head -c 300 "$WORK/api-verify.json")"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ak_wrong" "http://127.0.0.1:$PORT/v1/verify")
    if [ "$code" = 401 ]; then pass "a wrong key is 401"; else fail "a wrong key gave $code, expected 401"; fi
  fi
  kill -TERM "$SERVE_PID" 2>/dev/null
  wait "$SERVE_PID"
  code=$?
  if [ "$code" -eq 0 ]; then pass "annals serve exits 0 on SIGTERM"; else fail "annals serve exited $code on SIGTERM"; fi
fi

echo "== a password is never shown"
PW=$(schema pw)
PWURI=$(opt "$PW" password s3cret-pw)
run "demo with a password in the URI" 0 demo --uri "$PWURI" --runs 3
cp "$WORK/out" "$WORK/pw.out"
run "stats with a password" 0 stats --uri "$PWURI" --json
cat "$WORK/out" >>"$WORK/pw.out"
run "verify with a password" 0 verify --uri "$PWURI" --json
cat "$WORK/out" >>"$WORK/pw.out"
run "import into a non-empty store with a password" 2 import --uri "$PWURI" --input "$WORK/a.jsonl"
cat "$WORK/err" >>"$WORK/pw.out"
run "reading an empty schema with a password" 3 stats --uri "$(opt "$(schema pw2)" password s3cret-pw)"
cat "$WORK/err" >>"$WORK/pw.out"
if grep -qF "s3cret-pw" "$WORK/pw.out"; then
  fail "the password appears in the output:"
  grep -F "s3cret-pw" "$WORK/pw.out" | head -3 | sed 's/^/      /'
else
  pass "no output or message shows the password"
fi
expect_in "$WORK/pw.out" "password=***" "the URI is shown with the password masked"

echo
if [ "$failures" -ne 0 ]; then
  echo "pg_cli_test: $failures of $checks checks FAILED"
  exit 1
fi
echo "pg_cli_test: all $checks checks passed"
