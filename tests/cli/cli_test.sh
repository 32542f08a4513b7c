#!/usr/bin/env bash
# End-to-end tests of the annals program: run by CTest as
#   bash cli_test.sh /path/to/annals
# Every check prints "ok" or "FAIL" with what it saw; the script exits non-zero if any failed.
# Tampering uses python3's sqlite3 module (the sqlite3 shell is not guaranteed); without it the
# tamper checks are reported as SKIP.
set -u

ANNALS=${1:?usage: cli_test.sh /path/to/annals}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0
checks=0

pass() { checks=$((checks + 1)); echo "ok    $1"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL  $1"; }
skip() { echo "SKIP  $1"; }

# run NAME EXPECTED_EXIT ARGS...: runs annals, keeps stdout in $WORK/out, stderr in $WORK/err.
run() {
  local name=$1 expected=$2
  shift 2
  "$ANNALS" "$@" >"$WORK/out" 2>"$WORK/err"
  local code=$?
  if [ "$code" -eq "$expected" ]; then
    pass "$name (exit $code)"
  else
    fail "$name: expected exit $expected, got $code: annals $*"
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

# json_field FILE KEY: the first value of "KEY": in a one-line JSON document (numbers/strings).
json_field() {
  grep -o "\"$2\":\(\"[^\"]*\"\|[0-9-][0-9]*\|true\|false\|null\)" "$1" | head -1 |
    sed -e "s/^\"$2\"://" -e 's/^"//' -e 's/"$//'
}

have_python=0
if command -v python3 >/dev/null 2>&1 && python3 -c 'import sqlite3' 2>/dev/null; then
  have_python=1
fi

# sql DB STATEMENTS...: runs statements in one transaction with python3's sqlite3.
sql() {
  local db=$1
  shift
  python3 - "$db" "$@" <<'EOF'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
for statement in sys.argv[2:]:
    con.execute(statement)
con.commit()
con.close()
EOF
}

DB="$WORK/demo.db"

echo "== usage"
run "no command is bad usage" 2
run "unknown command is bad usage" 2 frobnicate
run "unknown option is bad usage" 2 stats --db "$DB" --bogus
run "--help exits 0" 0 --help
run "no store given is bad usage" 2 stats
run "--db and --uri together is bad usage" 2 stats --db "$DB" --uri "sqlite:$DB"
run "replay without --position or --as-of is bad usage" 2 replay --db "$DB" --stream x
run "replay with both --position and --as-of is bad usage" 2 replay --db "$DB" --stream x \
  --position 1 --as-of 2026-01-01T00:00:00Z
run "an unknown store scheme is bad usage" 2 demo --uri "bogus:x"

echo "== reading a missing database"
for cmd in stats verify export "runs --tenant acme --app support-bot" "replay --stream x --position 1" rebuild; do
  # shellcheck disable=SC2086
  run "$cmd on a missing database exits 3" 3 $cmd --db "$WORK/missing.db"
  if [ -e "$WORK/missing.db" ]; then fail "$cmd created the missing database"; rm -f "$WORK/missing.db"*; else pass "$cmd did not create it"; fi
done
expect_in "$WORK/err" "does not exist" "the error says the database does not exist"

echo "== demo"
run "demo writes 60 runs" 0 demo --db "$DB" --runs 60
expect_in "$WORK/out" "wrote 60 workflow runs" "demo says what it wrote"
expect_in "$WORK/out" "STATUS" "demo prints a table of runs"
run "demo --json" 0 demo --db "$WORK/demo-json.db" --runs 5 --json
expect_in "$WORK/out" '"runs_written":5' "demo --json reports the runs written"
run "demo is deterministic (first database)" 0 demo --db "$WORK/d1.db" --runs 10 --json
grep -o '"data":.*' "$WORK/out" | sed 's/"[a-z_]*_at":"[^"]*"//g' >"$WORK/d1.page"
run "demo is deterministic (second database)" 0 demo --db "$WORK/d2.db" --runs 10 --json
grep -o '"data":.*' "$WORK/out" | sed 's/"[a-z_]*_at":"[^"]*"//g' >"$WORK/d2.page"
if cmp -s "$WORK/d1.page" "$WORK/d2.page"; then pass "the same seed gives the same runs"; else fail "the same seed gave different runs"; fi

echo "== stats and runs"
run "stats" 0 stats --db "$DB"
expect_in "$WORK/out" "head hash" "stats shows the head hash"
expect_in "$WORK/out" "workflow_runs" "stats shows the workflow_runs checkpoint"
run "stats --json" 0 stats --db "$DB" --json
HEAD=$(json_field "$WORK/out" head_position)
EVENTS=$(json_field "$WORK/out" events)
LAG=$(json_field "$WORK/out" lag)
if [ -n "$HEAD" ] && [ "$HEAD" -gt 60 ] && [ "$HEAD" = "$EVENTS" ]; then pass "stats: $EVENTS events, head $HEAD"; else fail "stats: events '$EVENTS', head '$HEAD'"; fi
if [ "$LAG" = "0" ]; then pass "the inline projection has no lag"; else fail "projection lag is '$LAG'"; fi
HEAD_HASH=$(json_field "$WORK/out" head_hash)

run "runs" 0 runs --db "$DB" --tenant acme --app support-bot
expect_in "$WORK/out" "run-" "runs lists runs"
run "runs --json" 0 runs --db "$DB" --tenant acme --app support-bot --limit 2 --json
expect_in "$WORK/out" '"has_more":' "runs --json has has_more"
expect_in "$WORK/out" '"limit":2' "runs --json has the limit"
LAST_ID=$(json_field "$WORK/out" id)
run "runs --last-id continues" 0 runs --db "$DB" --tenant acme --app support-bot --limit 2 --last-id "$LAST_ID" --json
if grep -qF "\"id\":\"$LAST_ID\"" "$WORK/out"; then fail "the next page repeats $LAST_ID"; else pass "the next page starts after $LAST_ID"; fi
run "runs with an unknown --last-id exits 3 (not found)" 3 runs --db "$DB" --tenant acme --app support-bot --last-id nope
run "runs with --limit 0 is bad usage" 2 runs --db "$DB" --tenant acme --app support-bot --limit 0
run "runs without --tenant is bad usage" 2 runs --db "$DB" --app support-bot

echo "== rebuild"
run "rebuild" 0 rebuild --db "$DB"
expect_in "$WORK/out" "identical to the live tables: yes" "rebuild finds the tables identical"
expect_in "$WORK/err" "events/s" "rebuild shows progress with a rate"
run "rebuild --json" 0 rebuild --db "$DB" --json
expect_in "$WORK/out" '"swapped":true' "rebuild --json says it swapped"
run "rebuild of an unknown projection is bad usage" 2 rebuild --db "$DB" --projection nope

echo "== verify"
run "verify a fresh demo" 0 verify --db "$DB"
expect_in "$WORK/out" "$HEAD_HASH" "verify prints the head hash"
run "verify --json" 0 verify --db "$DB" --json
expect_in "$WORK/out" '"ok":true' "verify --json says ok"

printf 'correct horse battery staple\n' >"$WORK/key"
printf 'another key\n' >"$WORK/wrong-key"
run "verify writes a signed checkpoint" 0 verify --db "$DB" --checkpoint "$WORK/cp.json" --key-file "$WORK/key"
expect_in "$WORK/cp.json" '"signature":' "the checkpoint is signed"
expect_in "$WORK/cp.json" "\"position\":$HEAD" "the checkpoint holds the head position"
run "verify writes an unsigned checkpoint" 0 verify --db "$DB" --checkpoint "$WORK/cp-plain.json"
run "demo appends more runs" 0 demo --db "$DB" --runs 5
run "the checkpoint still holds after appends" 0 verify --db "$DB" --checkpoint "$WORK/cp.json" --key-file "$WORK/key"
expect_in "$WORK/out" "only appended to" "verify says the log was only appended to"
run "the unsigned checkpoint still holds" 0 verify --db "$DB" --checkpoint "$WORK/cp-plain.json"
run "a wrong key fails the checkpoint" 1 verify --db "$DB" --checkpoint "$WORK/cp.json" --key-file "$WORK/wrong-key"
expect_in "$WORK/err" "signature" "the failure names the signature"
sed 's/"position":[0-9]*/"position":3/' "$WORK/cp.json" >"$WORK/cp-edited.json"
run "an edited checkpoint fails its signature" 1 verify --db "$DB" --checkpoint "$WORK/cp-edited.json" --key-file "$WORK/key"
run "an unsigned checkpoint checked with a key fails" 1 verify --db "$DB" --checkpoint "$WORK/cp-plain.json" --key-file "$WORK/key"
echo 'not json' >"$WORK/cp-garbage.json"
run "--key-file without --checkpoint is bad usage" 2 verify --db "$DB" --key-file "$WORK/key"
run "a garbage checkpoint fails" 1 verify --db "$DB" --checkpoint "$WORK/cp-garbage.json"

echo "== replay"
run "export for replay" 0 export --db "$DB" --output "$WORK/replay.jsonl"
STREAM=$(head -1 "$WORK/replay.jsonl" | grep -o '"stream_id":"[^"]*"' | head -1 | sed 's/.*:"//; s/"$//')
if [ -n "$STREAM" ]; then pass "the first event's stream is $STREAM"; else fail "no stream_id in the export"; fi
# The positions of the stream's events, from the export.
POSITIONS=$(grep -F "\"stream_id\":\"$STREAM\"" "$WORK/replay.jsonl" | grep -o '"position":[0-9]*' | sed 's/.*://')
COUNT=0
for P in $POSITIONS; do
  COUNT=$((COUNT + 1))
  for Q in "$P" $((P + 1)); do
    # Expected version at Q: the stream's events at or before Q.
    expected=0
    for X in $POSITIONS; do [ "$X" -le "$Q" ] && expected=$((expected + 1)); done
    run "replay $STREAM --position $Q" 0 replay --db "$DB" --stream "$STREAM" --position "$Q" --json
    cp "$WORK/out" "$WORK/at-position"
    version=$(json_field "$WORK/at-position" version)
    if [ "$version" = "$expected" ]; then pass "version at position $Q is the prefix length $expected"; else fail "version at position $Q is '$version', expected $expected"; fi
    recorded=$(json_field "$WORK/at-position" recorded_at)
    run "replay $STREAM --as-of $recorded" 0 replay --db "$DB" --stream "$STREAM" --as-of "$recorded" --json
    cp "$WORK/out" "$WORK/as-of"
    # Events of one append share recorded_at: as-of shows the whole append, which is the state
    # at the position of its last event.
    asof_position=$(json_field "$WORK/as-of" position)
    run "replay at that append's last position $asof_position" 0 replay --db "$DB" --stream "$STREAM" --position "$asof_position" --json
    if diff <(sed 's/"as_of":[^,]*,"at_position":[^,]*,//' "$WORK/as-of") <(sed 's/"as_of":[^,]*,"at_position":[^,]*,//' "$WORK/out") >/dev/null; then
      pass "replay --as-of $recorded equals replay --position $asof_position"
    else
      fail "replay --as-of $recorded differs from replay --position $asof_position"
      diff <(cat "$WORK/as-of") <(cat "$WORK/out") | head -5
    fi
  done
done
if [ "$COUNT" -ge 2 ]; then pass "replayed $COUNT events of $STREAM"; else fail "the stream had only $COUNT events"; fi
FIRST=$(echo "$POSITIONS" | head -1)
LASTP=$(echo "$POSITIONS" | tail -1)
run "replay text output" 0 replay --db "$DB" --stream "$STREAM" --position "$LASTP"
expect_in "$WORK/out" "status" "replay prints the run's status"
run "replay by run id" 0 replay --db "$DB" --stream "${STREAM#WorkflowRun-}" --position "$LASTP" --json
expect_in "$WORK/out" "\"stream_id\":\"$STREAM\"" "a bare run id names its stream"
if [ "$FIRST" -gt 1 ]; then
  run "replay before the stream's first event exits 3" 3 replay --db "$DB" --stream "$STREAM" --position $((FIRST - 1))
  expect_in "$WORK/err" "no events of $STREAM at or before" "it says there are no events at that point"
fi
run "replay as of 1970 exits 3" 3 replay --db "$DB" --stream "$STREAM" --as-of 1970-01-01T00:00:00Z
run "replay of an unknown stream exits 3" 3 replay --db "$DB" --stream WorkflowRun-nope --position 1
run "replay with a malformed time is bad usage" 2 replay --db "$DB" --stream "$STREAM" --as-of yesterday
run "replay --as-of integer microseconds" 0 replay --db "$DB" --stream "$STREAM" --as-of 9999999999999999 --json
v=$(json_field "$WORK/out" version)
if [ "$v" = "$COUNT" ]; then pass "as of the far future the whole stream is replayed"; else fail "as of the far future version '$v', expected $COUNT"; fi

echo "== export and import"
run "export to a file" 0 export --db "$DB" --output "$WORK/a.jsonl"
lines=$(wc -l <"$WORK/a.jsonl")
run "stats for the export" 0 stats --db "$DB" --json
if [ "$lines" = "$(json_field "$WORK/out" events)" ]; then pass "one line per event ($lines)"; else fail "$lines lines for $(json_field "$WORK/out" events) events"; fi
"$ANNALS" export --db "$DB" >"$WORK/a-stdout.jsonl" 2>"$WORK/err"
if cmp -s "$WORK/a.jsonl" "$WORK/a-stdout.jsonl"; then pass "export to stdout equals export to a file"; else fail "export to stdout differs"; fi
run "export --from 10" 0 export --db "$DB" --from 10 --output "$WORK/from10.jsonl"
if [ "$(wc -l <"$WORK/from10.jsonl")" = "$((lines - 9))" ]; then pass "export --from 10 skips 9 events"; else fail "export --from 10 wrote $(wc -l <"$WORK/from10.jsonl") lines"; fi
run "export --from 0 is bad usage" 2 export --db "$DB" --from 0
run "import into a new database" 0 import --db "$WORK/b.db" --input "$WORK/a.jsonl"
run "export the imported database" 0 export --db "$WORK/b.db" --output "$WORK/b.jsonl"
if cmp -s "$WORK/a.jsonl" "$WORK/b.jsonl"; then pass "export -> import -> export is byte-identical"; else fail "the round trip changed the export"; fi
run "the imported database verifies" 0 verify --db "$WORK/b.db"
run "stats --uri of the imported database" 0 stats --uri "sqlite:$WORK/b.db"
expect_in "$WORK/out" "projections    none" "an imported store has no read tables yet"
cp "$WORK/b.db" "$WORK/b-rebuild.db"
run "rebuild of an imported store" 0 rebuild --db "$WORK/b-rebuild.db"
expect_in "$WORK/out" "only in shadow" "the rebuild reports the rows the empty live tables lacked"
expect_in "$WORK/out" "swapped in: yes" "and swaps the rebuilt tables in"
run "runs work on the imported database" 0 runs --db "$WORK/b.db" --tenant acme --app support-bot --json
run "import from stdin" 0 import --db "$WORK/c.db" <"$WORK/a.jsonl"
"$ANNALS" export --db "$WORK/c.db" >"$WORK/c.jsonl" 2>/dev/null
if cmp -s "$WORK/a.jsonl" "$WORK/c.jsonl"; then pass "import from stdin round-trips"; else fail "import from stdin changed the export"; fi

run "import into a non-empty store is refused" 2 import --db "$WORK/b.db" --input "$WORK/a.jsonl"
"$ANNALS" export --db "$WORK/b.db" >"$WORK/b2.jsonl" 2>/dev/null
if cmp -s "$WORK/a.jsonl" "$WORK/b2.jsonl"; then pass "the refused import changed nothing"; else fail "the refused import changed the store"; fi

{ head -5 "$WORK/a.jsonl"; echo '{"this is": not json'; tail -n +6 "$WORK/a.jsonl"; } >"$WORK/bad.jsonl"
"$ANNALS" import --db "$WORK/bad.db" --input "$WORK/bad.jsonl" >"$WORK/out" 2>"$WORK/err"
code=$?
if [ "$code" -ne 0 ]; then pass "a malformed import fails (exit $code)"; else fail "a malformed import succeeded"; fi
expect_in "$WORK/err" "line 6" "the error names line 6"
if [ ! -e "$WORK/bad.db" ]; then pass "the failed import left no database behind"; else
  run "stats after a failed import" 0 stats --db "$WORK/bad.db" --json
  if [ "$(json_field "$WORK/out" events)" = "0" ]; then pass "the failed import left no events"; else fail "the failed import left events"; fi
fi
run "import of an empty input creates an empty store" 0 import --db "$WORK/empty.db" --input /dev/null
"$ANNALS" import --db "$WORK/empty.db" --input "$WORK/bad.jsonl" >"$WORK/out" 2>"$WORK/err"
code=$?
if [ "$code" -ne 0 ]; then pass "a malformed import into an existing empty store fails (exit $code)"; else fail "a malformed import succeeded"; fi
run "stats of that store" 0 stats --db "$WORK/empty.db" --json
if [ "$(json_field "$WORK/out" events)" = "0" ]; then pass "the failed import left no events in the existing store"; else fail "the failed import left events: $(cat "$WORK/out")"; fi
# A line whose hash does not chain: change one character of a payload's base64 is caught too,
# but simplest is to drop a line, which breaks the chain at the next one.
sed '4d' "$WORK/a.jsonl" >"$WORK/gap.jsonl"
"$ANNALS" import --db "$WORK/gap.db" --input "$WORK/gap.jsonl" >"$WORK/out" 2>"$WORK/err"
code=$?
if [ "$code" -ne 0 ]; then pass "an import with a missing line fails (exit $code)"; else fail "an import with a missing line succeeded"; fi
if [ ! -e "$WORK/gap.db" ]; then pass "and left no database behind"; else fail "and left $WORK/gap.db behind"; fi

echo "== purge"
run "purge on a missing database exits 3" 3 purge --db "$WORK/missing.db" --tenant acme --before 2026-11-08T00:00:00Z --archive "$WORK/p0.jsonl"
if [ -e "$WORK/missing.db" ]; then fail "purge created the missing database"; else pass "purge did not create it"; fi
cp "$DB" "$WORK/purge.db"
run "purge acme's runs of the first week" 0 purge --db "$WORK/purge.db" --tenant acme --before 2026-11-08T00:00:00Z --archive "$WORK/p.jsonl" --json
PURGED=$(json_field "$WORK/out" events)
if [ -n "$PURGED" ] && [ "$PURGED" -gt 0 ]; then pass "purge removed $PURGED events"; else fail "purge removed '$PURGED' events"; fi
run "verify after the purge" 0 verify --db "$WORK/purge.db"
run "verify the purge archive" 0 verify --db "$WORK/purge.db" --archive "$WORK/p.jsonl"
expect_in "$WORK/out" "matches purge" "verify says the archive matches its purge"
sed '1s/"acme"/"acmf"/' "$WORK/p.jsonl" >"$WORK/p-edited.jsonl"
run "an edited archive fails" 1 verify --db "$WORK/purge.db" --archive "$WORK/p-edited.jsonl"
run "purge with an existing archive is refused" 2 purge --db "$WORK/purge.db" --tenant acme --before 2026-11-08T00:00:00Z --archive "$WORK/p.jsonl"
run "purge with a bad date is bad usage" 2 purge --db "$WORK/purge.db" --tenant acme --before soon --archive "$WORK/p9.jsonl"
# A checkpoint taken before a purge still holds when the purge removed its position.
cp "$DB" "$WORK/purge2.db"
HEAD2=$("$ANNALS" stats --db "$WORK/purge2.db" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["head_position"])' 2>/dev/null || echo "")
run "a checkpoint before the purge" 0 verify --db "$WORK/purge2.db" --checkpoint "$WORK/cp-purge.json"
run "demo adds newer runs" 0 demo --db "$WORK/purge2.db" --runs 20
run "purge everything of every tenant before 2100 (the head run is held back)" 0 purge --db "$WORK/purge2.db" --tenant acme --before 2100-01-01T00:00:00Z --archive "$WORK/p2.jsonl"
run "purge the other tenants too" 0 purge --db "$WORK/purge2.db" --tenant globex --before 2100-01-01T00:00:00Z --archive "$WORK/p3.jsonl"
run "purge initech" 0 purge --db "$WORK/purge2.db" --tenant initech --before 2100-01-01T00:00:00Z --archive "$WORK/p4.jsonl"
run "purge umbrella" 0 purge --db "$WORK/purge2.db" --tenant umbrella --before 2100-01-01T00:00:00Z --archive "$WORK/p5.jsonl"
run "the checkpoint still holds over purged positions (head was $HEAD2)" 0 verify --db "$WORK/purge2.db" --checkpoint "$WORK/cp-purge.json"
expect_in "$WORK/out" "purged events" "verify says it stepped over purged events"

echo "== tampering"
if [ "$have_python" -eq 0 ]; then
  skip "tamper checks: python3 with sqlite3 is not available"
else
  # edit a payload
  cp "$DB" "$WORK/t1.db"
  sql "$WORK/t1.db" "DROP TRIGGER annals_events_no_update" \
    "UPDATE annals_events SET payload = CAST('{\"run_id\":\"forged\"}' AS BLOB) WHERE position = 7"
  run "verify finds an edited payload" 1 verify --db "$WORK/t1.db"
  expect_in "$WORK/err" "position 7" "the edited payload is reported at position 7"
  run "verify --json reports the edited position" 1 verify --db "$WORK/t1.db" --json
  if [ "$(json_field "$WORK/out" position)" = "7" ]; then pass "verify --json position is 7"; else fail "verify --json position is '$(json_field "$WORK/out" position)'"; fi
  run "the signed checkpoint fails after tampering" 1 verify --db "$WORK/t1.db" --checkpoint "$WORK/cp.json" --key-file "$WORK/key"
  # a stream id that is not UTF-8: --json must still report it as a verification failure
  cp "$DB" "$WORK/t5.db"
  sql "$WORK/t5.db" "DROP TRIGGER annals_events_no_update" \
    "UPDATE annals_events SET stream_id = CAST(X'5772ff' AS TEXT) WHERE position = 30"
  run "verify --json on a non-UTF-8 tampered row exits 1" 1 verify --db "$WORK/t5.db" --json

  # delete a row
  cp "$DB" "$WORK/t2.db"
  sql "$WORK/t2.db" "DROP TRIGGER annals_events_no_delete" "DELETE FROM annals_events WHERE position = 12"
  run "verify finds a deleted row" 1 verify --db "$WORK/t2.db"
  expect_in "$WORK/err" "position 12" "the deleted row is reported at position 12"

  # reorder two rows
  cp "$DB" "$WORK/t3.db"
  sql "$WORK/t3.db" "DROP TRIGGER annals_events_no_update" \
    "UPDATE annals_events SET position = -1 WHERE position = 20" \
    "UPDATE annals_events SET position = 20 WHERE position = 21" \
    "UPDATE annals_events SET position = 21 WHERE position = -1"
  run "verify finds two reordered rows" 1 verify --db "$WORK/t3.db"
  expect_in "$WORK/err" "position 20" "the reordering is reported at position 20"

  # cut the log short after a checkpoint: the chain alone still verifies, the checkpoint not
  cp "$DB" "$WORK/t4.db"
  "$ANNALS" verify --db "$WORK/t4.db" --checkpoint "$WORK/cp4.json" >/dev/null 2>&1
  HEAD4=$(grep -o '"position":[0-9]*' "$WORK/cp4.json" | sed 's/.*://')
  sql "$WORK/t4.db" "DROP TRIGGER annals_events_no_delete" "DELETE FROM annals_events WHERE position = $HEAD4"
  run "the chain of a truncated log still verifies" 0 verify --db "$WORK/t4.db"
  run "the checkpoint catches the truncation" 1 verify --db "$WORK/t4.db" --checkpoint "$WORK/cp4.json"
  expect_in "$WORK/err" "removed from its end" "the failure says events were removed from the end"
fi

echo
if [ "$failures" -ne 0 ]; then
  echo "cli_test: $failures of $checks checks FAILED"
  exit 1
fi
echo "cli_test: all $checks checks passed"
