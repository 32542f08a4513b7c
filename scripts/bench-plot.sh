#!/usr/bin/env bash
# Draws annals_bench results as a PNG: for each workload, annals' throughput beside its raw-SQLite
# baseline (log scale), one panel per JSON document, with the ratio printed above each pair.
#
#   build/bench/annals_bench --scale full --json > normal.json
#   build/bench/annals_bench --scale full --synchronous full --json > full.json
#   bash scripts/bench-plot.sh docs/performance.png normal.json full.json
#
# W7 is a latency (µs per page): it is drawn as pages/s of the deep page, and its baseline is the
# same deep page read with OFFSET. Needs jq and gnuplot (installed from Debian when missing).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: bench-plot.sh OUT.png RESULTS.json [RESULTS.json ...]" >&2
  exit 2
fi
out=$1
shift
for f in "$@"; do
  [ -r "$f" ] || { echo "bench-plot: cannot read $f" >&2; exit 2; }
done

missing=()
command -v jq >/dev/null || missing+=(jq)
command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

panels=()
i=0
for f in "$@"; do
  i=$((i + 1))
  # name, annals/s, baseline/s, ratio label, unit
  jq -r '.workloads[] |
    (if .unit == "us/page" then
       [.name, 1e6 / .annals, 1e6 / .baseline, "deep/first \(.ratio * 100 | round / 100)",
        "pages/s"]
     else
       [.name, .annals, .baseline, "\(.ratio * 100 | round / 100)",
        .unit]
     end) | @tsv' "$f" >"$work/$i.dat"
  title=$(jq -r '"scale \(.scale), synchronous=\(.synchronous), \(.date)"' "$f")
  panels+=("set title \"$title\"; plot '$work/$i.dat' using 2:xtic(stringcolumn(1).\"\\n\".stringcolumn(5)) title 'annals' lc rgb '#1f77b4', '' using 3 title 'raw SQLite baseline' lc rgb '#bbbbbb', '' using 0:(\$2*1.6):4 with labels notitle font ',9'")
done

{
  echo "set terminal pngcairo size 1200,$((420 * $#)) font 'sans,10'"
  echo "set output '$out'"
  echo "set multiplot layout $#,1"
  echo "set datafile separator '\\t'"
  echo "set style data histograms"
  echo "set style histogram clustered gap 1"
  echo "set style fill solid 0.9 border -1"
  echo "set boxwidth 0.9"
  echo "set logscale y"
  echo "set format y '10^{%L}'"
  echo "set ylabel 'per second (log scale)'"
  echo "set key top right"
  echo "set grid ytics"
  echo "set tmargin 3"
  echo "set bmargin 5"
  for p in "${panels[@]}"; do echo "$p"; done
  echo "unset multiplot"
} >"$work/plot.gp"
gnuplot "$work/plot.gp"
echo "bench-plot: wrote $out"
