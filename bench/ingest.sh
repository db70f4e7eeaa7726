#!/usr/bin/env bash
# bench/ingest.sh — the click-ingest and report part of bench/redirect.sh, alone:
#
#     bench/ingest.sh                                  # 10 M clicks, as in redirect.sh
#     BENCH_INGEST_CLICKS=1000000 bench/ingest.sh      # 1 M (heavy 100 k, light 10 k)
#
# Builds partnerd-bench (release), seeds a fresh SQLite database with
# BENCH_INGEST_CLICKS clicks over 1000 partners (one heavy partner with a tenth of them,
# one light partner with a hundredth) through `Store::record_clicks`, then measures
# batched click ingest into it and the report's latency (`App::report`), and prints a
# table with the goals. See bench/README.md.
#
# Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not run.
#
# Knobs (environment): BENCH_INGEST_CLICKS (10000000), BENCH_INGEST_PARTNERS (1000),
# BENCH_INGEST_BATCH (4096), BENCH_INGEST_BATCHES (200), BENCH_INGEST_REPORT_RUNS (50),
# BENCH_INGEST_ARGS (more partnerd-ingest arguments), BENCH_SKIP_BUILD=1, BENCH_KEEP=1
# (keep the work directory with the database and logs).
# shellcheck disable=SC2317 # cleanup runs from the EXIT trap
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 2
}

# shellcheck source=bench/ingest-common.sh
source "$ROOT/bench/ingest-common.sh"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building (release): cargo build --release -p partnerd-bench"
  cargo build --release --quiet -p partnerd-bench || die "the build failed"
fi
[[ -x "$BIN/partnerd-ingest" ]] || die "$BIN/partnerd-ingest is missing (build it or unset BENCH_SKIP_BUILD)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/partnerd-bench.XXXXXX")
STATUS=2
cleanup() {
  if [[ "${BENCH_KEEP:-0}" == 1 || "$STATUS" == 2 ]]; then
    log "logs and data kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" -v n="$(nproc)" 'BEGIN {exit !(l > 0.5 * n)}'; then
  log "WARNING: the machine is busy (load average $load1 on $(nproc) CPUs): figures will be noisy"
fi

run_ingest_bench

commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ "$commit" != unknown ]] && ! git -C "$ROOT" diff-index --quiet HEAD -- 2>/dev/null; then
  commit+=" (with uncommitted changes)"
fi
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
# The rows have redirect.sh's columns; there is no baseline here.
row() { printf '%-40s %-28s %-8s %-10s %s\n' "$1" "$2" "$4" "$5" "$6"; }

echo
echo "partnerd click-ingest and report benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "commit   $commit"
echo "machine  $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r), load average $load1 at start, $(cut -d' ' -f1 /proc/loadavg) at the end"
echo
row "figure" "partnerd" "baseline" "ratio" "goal" "result"
row "----------------------------------------" "----------------------------" "" "--------" "----------" "-------"
ingest_rows
echo
ingest_details

if [[ "$INGEST_OK" != 1 ]]; then
  STATUS=2
elif ((INGEST_FAILED)); then
  STATUS=1
else
  STATUS=0
fi
exit "$STATUS"
