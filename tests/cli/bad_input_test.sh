#!/usr/bin/env bash
# Hostile input to the annals program, as a table: run by CTest as
#   bash bad_input_test.sh /path/to/annals
# (or against an installed binary: bash tests/cli/bad_input_test.sh /opt/annals/bin/annals).
# Each case gives the expected exit code (2 bad usage, 3 store error/not found, 1 verification
# failed, 0 for odd but legitimate values), a text stderr must contain (the offending value, or
# an escaped prefix of it), and the database file the case points at. Every case then checks
# that the database is byte-for-byte unchanged: the sha256 of the main file, and that no -wal
# file with content was left behind (the demo database is settled first, so its WAL is empty).
# stderr must also be short (under 4 KiB) and free of raw control bytes.
# Needs only bash, coreutils and dd (no sqlite3 shell, no python).
set -u

ANNALS=${1:?usage: bad_input_test.sh /path/to/annals}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0
checks=0
cases=0

pass() { checks=$((checks + 1)); }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL  $1"; }

# state FILE: what "unchanged" compares: the main file's sha256 and the WAL's size.
state() {
  local wal=none
  [ -e "$1-wal" ] && wal=$(stat -c %s "$1-wal")
  echo "$(sha256sum <"$1" | cut -d' ' -f1) wal:$wal"
}

# case NAME EXPECTED_EXIT STDERR_TEXT DB_FILE ARGS...
case_() {
  local name=$1 expected=$2 text=$3 db=$4
  shift 4
  cases=$((cases + 1))
  local before=""
  [ -e "$db" ] && before=$(state "$db")
  "$ANNALS" "$@" >"$WORK/out" 2>"$WORK/err"
  local code=$?
  local ok=1
  if [ "$code" -ne "$expected" ]; then
    fail "$name: expected exit $expected, got $code"
    ok=0
  else
    pass
  fi
  if [ -n "$text" ]; then
    if grep -qF -- "$text" "$WORK/err"; then pass; else fail "$name: stderr lacks '$text'"; ok=0; fi
  fi
  if [ "$expected" -ne 0 ]; then
    if [ "$(wc -c <"$WORK/err")" -le 4096 ]; then pass; else fail "$name: stderr is $(wc -c <"$WORK/err") bytes"; ok=0; fi
    # No control bytes other than the final newline of each line.
    if LC_ALL=C tr -d '\n' <"$WORK/err" | LC_ALL=C grep -q '[[:cntrl:]]'; then
      fail "$name: stderr holds raw control bytes"
      ok=0
    else
      pass
    fi
  fi
  if [ -n "$before" ]; then
    local after
    after=$(state "$db")
    if [ "$after" = "$before" ]; then pass; else fail "$name: $db changed ($before -> $after)"; ok=0; fi
  fi
  if [ "$ok" -eq 1 ]; then
    echo "ok    $name (exit $code)"
  else
    sed 's/^/      stderr: /' "$WORK/err" | head -5 | cut -c1-300
  fi
  return 0
}

# set_be32 FILE OFFSET VALUE: writes a big-endian 32-bit integer into the file in place (the
# SQLite header keeps user_version at offset 60 and application_id at 68).
set_be32() {
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($3 >> 24 & 255)) $(($3 >> 16 & 255)) \
    $(($3 >> 8 & 255)) $(($3 & 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

DB="$WORK/demo.db"
if ! "$ANNALS" demo --db "$DB" --runs 30 >/dev/null 2>"$WORK/err"; then
  echo "FAIL  the demo database could not be written:"; cat "$WORK/err"; exit 1
fi
# Settle it: a read that sets up nothing, so the last connection's close empties the WAL.
"$ANNALS" runs --db "$DB" --tenant acme --app support-bot >/dev/null 2>&1
"$ANNALS" stats --db "$DB" >/dev/null 2>&1
RUN_ID=$("$ANNALS" runs --db "$DB" --tenant acme --app support-bot --limit 1 --json |
  grep -o '"id":"[^"]*"' | head -1 | sed 's/"id":"//; s/"$//')
OTHER_RUN=$("$ANNALS" runs --db "$DB" --tenant globex --app support-bot --limit 1 --json 2>/dev/null |
  grep -o '"id":"[^"]*"' | head -1 | sed 's/"id":"//; s/"$//')
if [ -z "$OTHER_RUN" ]; then
  OTHER_RUN=$("$ANNALS" export --db "$DB" | grep -v '"tenant_id":"acme"' | grep -o '"stream_id":"WorkflowRun-[^"]*"' |
    head -1 | sed 's/"stream_id":"WorkflowRun-//; s/"$//')
fi
[ -n "$RUN_ID" ] || { echo "FAIL  no run id in the demo database"; exit 1; }
[ -n "$OTHER_RUN" ] || { echo "FAIL  no run of another tenant in the demo database"; exit 1; }
STREAM="WorkflowRun-$RUN_ID"

SQL="'; DROP TABLE annals_events; --"
BIG=$(printf 'BIG%.0s' $(seq 1 30000))  # 90 000 bytes: under the kernel's per-argument limit
BAD_UTF8=$'r-\xff\xfe-1'
NEWLINE=$'r-1\nforged line'

echo "== runs: limits and cursors"
case_ "runs --limit 0" 2 "limit 0" "$DB" runs --db "$DB" --tenant acme --app support-bot --limit 0
case_ "runs --limit 1001" 2 "limit 1001" "$DB" runs --db "$DB" --tenant acme --app support-bot --limit 1001
case_ "runs --limit -1" 2 "-1" "$DB" runs --db "$DB" --tenant acme --app support-bot --limit -1
case_ "runs --limit 2^64" 2 "18446744073709551616" "$DB" runs --db "$DB" --tenant acme --app support-bot --limit 18446744073709551616
case_ "runs --limit abc" 2 "abc" "$DB" runs --db "$DB" --tenant acme --app support-bot --limit abc
case_ "runs --last-id of SQL metacharacters" 3 "$SQL" "$DB" runs --db "$DB" --tenant acme --app support-bot --last-id "$SQL"
case_ "runs --last-id empty" 3 "last_id ''" "$DB" runs --db "$DB" --tenant acme --app support-bot --last-id ""
case_ "runs --last-id not UTF-8" 3 'r-\xff\xfe-1' "$DB" runs --db "$DB" --tenant acme --app support-bot --last-id "$BAD_UTF8"
case_ "runs --last-id with a newline" 3 'r-1\x0aforged line' "$DB" runs --db "$DB" --tenant acme --app support-bot --last-id "$NEWLINE"
case_ "runs --last-id of 90 kB" 3 "last_id 'BIGBIGBIG" "$DB" runs --db "$DB" --tenant acme --app support-bot --last-id "$BIG"
case_ "runs --last-id from another tenant's page" 3 "$OTHER_RUN" "$DB" runs --db "$DB" --tenant acme --app support-bot --last-id "$OTHER_RUN"
case_ "runs --tenant of SQL metacharacters lists nothing" 0 "" "$DB" runs --db "$DB" --tenant "$SQL" --app support-bot
case_ "runs --app '%' lists nothing" 0 "" "$DB" runs --db "$DB" --tenant acme --app "%"
if grep -q "no runs" "$WORK/out"; then pass; else fail "runs --app '%' listed runs"; fi

echo "== replay: streams, positions, times"
case_ "replay --stream of SQL metacharacters" 3 "$SQL" "$DB" replay --db "$DB" --stream "$SQL" --position 1
case_ "replay --stream with a newline" 3 'r-1\x0aforged line' "$DB" replay --db "$DB" --stream "$NEWLINE" --position 1
case_ "replay --stream not UTF-8" 3 'r-\xff\xfe-1' "$DB" replay --db "$DB" --stream "$BAD_UTF8" --position 1
case_ "replay --stream of 90 kB" 2 "stream id 'BIGBIGBIG" "$DB" replay --db "$DB" --stream "$BIG" --position 1
case_ "replay --stream empty" 2 "--stream is empty" "$DB" replay --db "$DB" --stream "" --position 1
case_ "replay --position 0" 2 "'0': out of range (expected a whole number from 1" "$DB" replay --db "$DB" --stream "$STREAM" --position 0
case_ "replay --position -1" 2 "-1" "$DB" replay --db "$DB" --stream "$STREAM" --position -1
case_ "replay --position 2^64" 2 "18446744073709551616" "$DB" replay --db "$DB" --stream "$STREAM" --position 18446744073709551616
case_ "replay --as-of February 30th" 2 "2026-02-30T00:00:00Z" "$DB" replay --db "$DB" --stream "$STREAM" --as-of 2026-02-30T00:00:00Z
case_ "replay --as-of hour 24" 2 "2026-01-01T24:00:00Z" "$DB" replay --db "$DB" --stream "$STREAM" --as-of 2026-01-01T24:00:00Z
case_ "replay --as-of offset +24:00" 2 "+24:00" "$DB" replay --db "$DB" --stream "$STREAM" --as-of 2026-01-01T00:00:00+24:00
case_ "replay --as-of a five-digit year" 2 "99999-01-01T00:00:00Z" "$DB" replay --db "$DB" --stream "$STREAM" --as-of 99999-01-01T00:00:00Z
case_ "replay --as-of microseconds beyond 64 bits" 2 "9223372036854775808" "$DB" replay --db "$DB" --stream "$STREAM" --as-of 9223372036854775808
case_ "replay --as-of the smallest 64-bit time" 3 "recorded at or before" "$DB" replay --db "$DB" --stream "$STREAM" --as-of -9223372036854775808
case_ "replay --as-of the largest 64-bit time" 0 "" "$DB" replay --db "$DB" --stream "$STREAM" --as-of 9223372036854775807
case_ "replay --as-of text with a NUL-like escape" 2 'yesterday\\0' "$DB" replay --db "$DB" --stream "$STREAM" --as-of 'yesterday\0'

echo "== export, import, purge"
case_ "export --from 0" 2 "0" "$DB" export --db "$DB" --from 0
case_ "export --from 2^64-1 exports nothing" 0 "" "$DB" export --db "$DB" --from 18446744073709551615
"$ANNALS" export --db "$DB" --output "$WORK/all.jsonl" >/dev/null 2>&1
head -c $(($(wc -c <"$WORK/all.jsonl") - 50)) "$WORK/all.jsonl" >"$WORK/cut.jsonl"
LINES=$(wc -l <"$WORK/all.jsonl")
case_ "import of an export cut mid-line" 2 "line $LINES" "$WORK/cut.jsonl" import --db "$WORK/fresh.db" --input "$WORK/cut.jsonl"
if [ -e "$WORK/fresh.db" ]; then fail "the cut import left $WORK/fresh.db behind"; else pass; fi
case_ "import into a store that is not empty" 2 "not empty" "$DB" import --db "$DB" --input "$WORK/all.jsonl"
case_ "import of SQL metacharacters" 2 "import line 1" "$WORK/all.jsonl" import --db "$WORK/fresh2.db" --input <(echo "$SQL")
case_ "purge --before February 30th" 2 "2026-02-30" "$DB" purge --db "$DB" --tenant acme --before 2026-02-30T00:00:00Z --archive "$WORK/p.jsonl"
case_ "purge --tenant empty" 2 "tenant" "$DB" purge --db "$DB" --tenant "" --before 2026-01-01T00:00:00Z --archive "$WORK/p.jsonl"
echo "an earlier purge's only copy" >"$WORK/kept.jsonl"
case_ "purge onto an existing archive" 2 "$WORK/kept.jsonl" "$DB" purge --db "$DB" --tenant acme --before 2100-01-01T00:00:00Z --archive "$WORK/kept.jsonl"
if [ "$(cat "$WORK/kept.jsonl")" = "an earlier purge's only copy" ]; then pass; else fail "the existing archive was overwritten"; fi

echo "== files that are not (current) annals stores"
head -c 5000 /dev/urandom >"$WORK/random.db"
case_ "stats on a file of random bytes" 3 "random.db" "$WORK/random.db" stats --db "$WORK/random.db"
printf 'hello, I am a text file\n' >"$WORK/text.db"
case_ "verify on a text file" 3 "text.db" "$WORK/text.db" verify --db "$WORK/text.db"
cp "$DB" "$WORK/cut60.db" && truncate -s 60 "$WORK/cut60.db"
case_ "stats on a database cut to 60 bytes (damaged: exit 1)" 1 "cut60.db" "$WORK/cut60.db" stats --db "$WORK/cut60.db"
cp "$DB" "$WORK/half.db" && truncate -s $(($(stat -c %s "$DB") / 2)) "$WORK/half.db"
case_ "verify on a database cut in half" 1 "half.db" "$WORK/half.db" verify --db "$WORK/half.db"
cp "$DB" "$WORK/newer.db" && set_be32 "$WORK/newer.db" 60 2
case_ "stats on a store of schema version 2" 3 "schema version 2" "$WORK/newer.db" stats --db "$WORK/newer.db"
case_ "runs on a store of schema version 2" 3 "schema version 2" "$WORK/newer.db" runs --db "$WORK/newer.db" --tenant acme --app support-bot
case_ "import into a store of schema version 2" 3 "schema version 2" "$WORK/newer.db" import --db "$WORK/newer.db" --input "$WORK/all.jsonl"
cp "$DB" "$WORK/foreign.db" && set_be32 "$WORK/foreign.db" 68 305419896
case_ "stats on another application's database" 3 "0x12345678" "$WORK/foreign.db" stats --db "$WORK/foreign.db"
case_ "--uri with an unknown option" 2 "'nosuch'" "$DB" stats --uri "sqlite:$DB?nosuch=1"
case_ "--uri with an unknown scheme" 2 "'mysql'" "$DB" stats --uri "mysql://localhost/db"
case_ "--db naming a directory" 3 "$WORK" "$DB" stats --db "$WORK"

echo "$cases cases, $checks checks, $failures failed"
[ "$failures" -eq 0 ]
