#!/usr/bin/env bash
# bench/webhooks.sh — the billing-events benchmark, in one command:
#
#     bench/webhooks.sh
#
# Builds partnerd and the benchmark tools (release), starts `partnerd serve` on a
# fresh SQLite data directory with a Stripe signing secret, and the verify-only
# baseline (`partnerd-webhooks baseline`: reads, verifies and parses each event, no
# database) on free loopback ports. `partnerd-webhooks drive` credits customers to a
# partner through the API, then posts distinct signed `invoice.paid` events of ~5 KB
# to `/webhooks/stripe` over keep-alive connections; partnerd answers 200 only after
# the commit that booked the event. Runs alternate between the servers; the median of
# BENCH_RUNS runs counts. Afterwards it checks that every event was booked once
# (billing_events and ledger transfers in the database) and that `partnerd ledger
# verify` passes, and reads partnerd's peak RSS.
#
# Exit status: 0 goal met, 1 goal missed, 2 could not measure.
# Knobs: BENCH_EVENTS (events per run, 50000), BENCH_RUNS (3), BENCH_CONNECTIONS (64),
# BENCH_SKIP_BUILD=1, BENCH_KEEP=1 (keep the work directory); the binaries are taken
# from $CARGO_TARGET_DIR/release when it is set, else target/release.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${BENCH_EVENTS:-50000}
RUNS=${BENCH_RUNS:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
GOAL_RATE=10000
SECRET=whsec_benchmark_$(date +%s)

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 2
}
for var in $(compgen -e | grep '^PARTNERD_' || true); do
  unset "$var"
done
if ! command -v sqlite3 >/dev/null; then
  log "installing sqlite3 (Debian package)"
  sudo=""
  [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends sqlite3 >/dev/null
fi
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building (release)"
  cargo build --release -q -p partnerd -p partnerd-bench || die "build failed"
fi
# The build's own target directory when CARGO_TARGET_DIR names one.
BIN=${CARGO_TARGET_DIR:-target}/release/partnerd
TOOL=${CARGO_TARGET_DIR:-target}/release/partnerd-webhooks

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_for() {
  for _ in $(seq 1 150); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.2
  done
  die "$1 did not answer"
}

PORT=$(free_port)
BASE_PORT=$(free_port)
PARTNERD_STRIPE_WEBHOOK_SECRET=$SECRET PARTNERD_LOG=warn \
  "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/partnerd.log" 2>&1 &
PARTNERD_PID=$!
PIDS+=("$PARTNERD_PID")
"$TOOL" baseline --listen "127.0.0.1:$BASE_PORT" --secret "$SECRET" >"$WORK/baseline.log" 2>&1 &
PIDS+=("$!")
wait_for "http://127.0.0.1:$PORT/healthz"
wait_for "http://127.0.0.1:$BASE_PORT/"
KEY=$("$BIN" api-key create --name bench --data-dir "$WORK/data" 2>/dev/null | tail -n 1)
[[ -n "$KEY" ]] || die "no API key"

rate_of() { sed -n 's/^RESULT .*rate=\([0-9]*\).*/\1/p' "$1"; }
p99_of() { sed -n 's/^RESULT .*p99_ms=\([0-9.]*\).*/\1/p' "$1"; }
failed_of() { sed -n 's/^RESULT .*failed=\([0-9]*\).*/\1/p' "$1"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for run in $(seq 1 "$RUNS"); do
  log "run $run/$RUNS: baseline"
  "$TOOL" drive --url "http://127.0.0.1:$BASE_PORT" --secret "$SECRET" --events "$EVENTS" \
    --connections "$CONNECTIONS" --tag "b$run" >"$WORK/baseline.$run" || die "baseline run failed"
  log "run $run/$RUNS: partnerd"
  "$TOOL" drive --url "http://127.0.0.1:$PORT" --api-key "$KEY" --secret "$SECRET" --events "$EVENTS" \
    --connections "$CONNECTIONS" --tag "p$run" >"$WORK/partnerd.$run" || die "partnerd run failed: $(tail -3 "$WORK/partnerd.$run")"
  grep -v '^RESULT' "$WORK/partnerd.$run" | sed 's/^/  partnerd: /' >&2
done

BASE_RATE=$(for r in $(seq 1 "$RUNS"); do rate_of "$WORK/baseline.$r"; done | median)
RATE=$(for r in $(seq 1 "$RUNS"); do rate_of "$WORK/partnerd.$r"; done | median)
P99=$(for r in $(seq 1 "$RUNS"); do p99_of "$WORK/partnerd.$r"; done | median)
FAILED=$(for r in $(seq 1 "$RUNS"); do failed_of "$WORK/partnerd.$r"; done | awk '{s+=$1} END {print s+0}')
DB="$WORK/data/partnerd.db"
SENT=$((EVENTS * RUNS))
BOOKED=$(sqlite3 "$DB" "select count(*) from billing_events where origin = 'stripe' and event_id like 'evt_bench%'")
TRANSFERS=$(sqlite3 "$DB" "select count(distinct source) from ledger_transfers where source like 'com:in_bench%'")
RSS=$(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$PARTNERD_PID/status")
VERIFY=$("$BIN" ledger verify --data-dir "$WORK/data" 2>&1 | tail -n 1) && VERIFIED=yes || VERIFIED=no

echo
echo "machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u +%F), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
printf '%-58s %14s %14s %8s %10s\n' figure partnerd baseline ratio goal
printf '%-58s %14s %14s %8s %10s\n' "signed invoice.paid events/s, median of $RUNS ($CONNECTIONS conns)" \
  "$RATE" "$BASE_RATE" "$(awk -v a="$RATE" -v b="$BASE_RATE" 'BEGIN {printf "%.2fx", a/b}')" ">= $GOAL_RATE"
printf '%-58s %14s %14s\n' "latency p99 under that load (ms, median)" "$P99" "-"
printf '%-58s %14s\n' "events answered other than 200" "$FAILED"
printf '%-58s %14s\n' "events sent / booked once (billing_events)" "$SENT / $BOOKED"
printf '%-58s %14s\n' "commission transfers booked" "$TRANSFERS"
printf '%-58s %14s\n' "partnerd ledger verify" "$VERIFIED: $VERIFY"
printf '%-58s %14s\n' "partnerd peak RSS" "$RSS"

[[ "$BOOKED" == "$SENT" && "$TRANSFERS" == "$SENT" && "$FAILED" == 0 && "$VERIFIED" == yes ]] || exit 1
awk -v a="$RATE" -v g="$GOAL_RATE" 'BEGIN {exit !(a >= g)}' || exit 1
