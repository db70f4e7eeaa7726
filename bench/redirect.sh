#!/usr/bin/env bash
# bench/redirect.sh — partnerd's redirect benchmark, in one command:
#
#     bench/redirect.sh
#
# Builds partnerd and the benchmark tools (release), installs wrk and sqlite3 (Debian
# packages) when missing, starts `partnerd serve` on a fresh SQLite data directory and
# the bare hyper baseline (`partnerd-baseline`, the same 302) on free loopback ports,
# creates an API key and a partner, and measures both servers with identical load:
#   (a) redirect throughput with keep-alive (wrk, median of BENCH_RUNS runs)
#   (b) the same under connection churn (`Connection: close`)
#   (c) latency at half of partnerd's measured keep-alive maximum (partnerd-load, paced)
#   (d) clicks stored in the database against the 302s the clients received
#   (e) peak RSS (VmHWM) of each server
#   (f) batched click ingest into a SQLite database seeded with BENCH_INGEST_CLICKS
#       (10 M) clicks, and (g) the report's latency for a partner holding a tenth of
#       them — `partnerd-ingest`, also alone as bench/ingest.sh
# and prints a table of figures, ratios and goals. See bench/README.md.
#
# Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not measure
# (build failure, a server that does not start, a missing route, an ingest benchmark
# that failed).
#
# Knobs (environment): BENCH_DURATION (s per wrk run, 10), BENCH_RUNS (3),
# BENCH_THREADS (wrk threads, 2), BENCH_CONNECTIONS (64), BENCH_WARMUP (s, 3),
# BENCH_PACED_DURATION (s, 10), BENCH_SKIP_BUILD=1, BENCH_KEEP=1 (keep the work
# directory with logs and the database), BENCH_ALLOW_INCOMPLETE=1 (go on when the
# redirect or the partner API is missing, to develop the harness; figures are then
# marked invalid and the exit status is 2), BENCH_SKIP_INGEST=1 (no click-ingest and
# report part), BENCH_INGEST_CLICKS and the other BENCH_INGEST_* of
# bench/ingest-common.sh.
# shellcheck disable=SC2317 # cleanup and stop_server run from the EXIT trap
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
WARMUP=${BENCH_WARMUP:-3}
PACED_DURATION=${BENCH_PACED_DURATION:-10}
ALLOW_INCOMPLETE=${BENCH_ALLOW_INCOMPLETE:-0}
UA='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36'

# Goals (from the issue).
GOAL_KEEPALIVE_RATIO=0.40
GOAL_CHURN_RATIO=0.85
GOAL_P99_MS=5

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 2
}

# The click-ingest and report part (f, g), shared with bench/ingest.sh.
# shellcheck source=bench/ingest-common.sh
source "$ROOT/bench/ingest-common.sh"
SKIP_INGEST=${BENCH_SKIP_INGEST:-0}

# Only the settings given here: no partnerd.toml of the caller, no PARTNERD_* variables
# (a PARTNERD_DATABASE_URL would move partnerd off SQLite).
for var in $(compgen -e | grep '^PARTNERD_' || true); do
  unset "$var"
done

# ---------------------------------------------------------------- tools and build
install_packages() {
  local sudo=""
  [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
  log "installing $* (Debian packages)"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  install_packages "${missing[@]}"
fi
for tool in wrk sqlite3 curl; do
  command -v "$tool" >/dev/null || die "$tool is still missing after the install"
done

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building (release): cargo build --release -p partnerd -p partnerd-bench"
  cargo build --release --quiet -p partnerd -p partnerd-bench || die "the build failed"
fi
for bin in partnerd partnerd-baseline partnerd-load partnerd-ingest; do
  [[ -x "$BIN/$bin" ]] || die "$BIN/$bin is missing (build it or unset BENCH_SKIP_BUILD)"
done

# ---------------------------------------------------------------- servers
WORK=$(mktemp -d "${TMPDIR:-/tmp}/partnerd-bench.XXXXXX")
DATA=$WORK/data
PARTNERD_PID=""
BASELINE_PID=""
STATUS=2 # until the end says otherwise

stop_server() {
  local pid=$1
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  stop_server "$PARTNERD_PID"
  stop_server "$BASELINE_PID"
  wait 2>/dev/null || true
  if [[ "${BENCH_KEEP:-0}" == 1 || "$STATUS" == 2 ]]; then
    log "logs and data kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port below the ephemeral range, so the clients' own ports never
# take it.
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "found no free port"
}

# Waits until URL answers (any HTTP status) while PID lives.
wait_http() {
  local url=$1 pid=$2 name=$3 logfile=$4 code
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || {
      tail -n 20 "$logfile" >&2 || true
      die "$name exited while starting (log above, in $logfile)"
    }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
    [[ "$code" != 000 ]] && return 0
    sleep 0.1
  done
  die "$name does not answer on $url after 60 s (log: $logfile)"
}

rss_peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

PARTNERD_PORT=$(free_port)
PARTNERD_URL=http://127.0.0.1:$PARTNERD_PORT
log "starting partnerd serve on $PARTNERD_URL, SQLite in $DATA"
mkdir -p "$DATA"
(cd "$WORK" && exec "$BIN/partnerd" serve --listen "127.0.0.1:$PARTNERD_PORT" --data-dir "$DATA") \
  >"$WORK/partnerd.log" 2>&1 &
PARTNERD_PID=$!
wait_http "$PARTNERD_URL/healthz" "$PARTNERD_PID" partnerd "$WORK/partnerd.log"

# ---------------------------------------------------------------- key, partner, probe
INCOMPLETE=()
incomplete() {
  INCOMPLETE+=("$1")
  if [[ "$ALLOW_INCOMPLETE" == 1 ]]; then
    log "WARNING: $1 — going on (BENCH_ALLOW_INCOMPLETE=1); the figures are not valid"
  else
    die "$1"
  fi
}

log "creating an API key: partnerd api-key create --name bench"
KEY=$(cd "$WORK" && "$BIN/partnerd" api-key create --name bench --data-dir "$DATA" \
  2>"$WORK/api-key.log" | tail -n 1) ||
  die "partnerd api-key create failed: $(cat "$WORK/api-key.log")"
[[ -n "$KEY" ]] || die "partnerd api-key create printed no key"

# POST /api/v1/partners, retried politely (1 s apart, 30 s at most) while the server
# is not answering or answers 5xx; a 404 means the route is not there.
PARTNER_ID=""
create_partner() {
  local code body
  for attempt in $(seq 1 30); do
    code=$(curl -s -o "$WORK/partner.json" -w '%{http_code}' --max-time 10 \
      -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
      -d '{"email":"bench-partner@example.com","name":"Bench Partner"}' \
      "$PARTNERD_URL/api/v1/partners" || true)
    body=$(head -c 300 "$WORK/partner.json" 2>/dev/null || true)
    case "$code" in
      200 | 201)
        PARTNER_ID=$(json_string_field id <"$WORK/partner.json")
        [[ -n "$PARTNER_ID" ]] || die "POST /api/v1/partners answered $code without an id: $body"
        return 0
        ;;
      404)
        incomplete "POST /api/v1/partners answers 404: this partnerd has no integration API for partners yet (needed to create the partner whose link is measured)"
        return 0
        ;;
      401 | 403) die "POST /api/v1/partners refused the new API key ($code): $body" ;;
      000 | 5??) log "POST /api/v1/partners: ${code/#000/no answer}, retrying ($attempt/30)" ;;
      *) die "POST /api/v1/partners answered $code: $body" ;;
    esac
    sleep 1
  done
  die "POST /api/v1/partners did not succeed within 30 s"
}
# The string (or number) value of a top-level field of a small JSON object on stdin.
json_string_field() {
  if command -v python3 >/dev/null; then
    python3 -c 'import json, sys; v = json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1" 2>/dev/null || true
  else
    tr -d '\n' | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\{0,1\}\([^\",}]*\).*/\1/p"
  fi
}
create_partner
PARTNER_ID=${PARTNER_ID:-bench-missing-partner}
REDIRECT_URL=$PARTNERD_URL/r/$PARTNER_ID
log "partner $PARTNER_ID; measuring GET $REDIRECT_URL"

# One real redirect, to check it and to copy its headers into the baseline.
probe_code=$(curl -s -o /dev/null -D "$WORK/probe.headers" -w '%{http_code}' --max-time 10 \
  -H "User-Agent: $UA" "$REDIRECT_URL" || true)
header_value() { tr -d '\r' <"$WORK/probe.headers" | sed -n "s/^$1:[[:space:]]*//Ip" | head -n 1; }
PROBE_LOCATION=$(header_value location)
PROBE_COOKIE=$(header_value set-cookie)
SENT_PROBE=0
if [[ "$probe_code" == 302 ]]; then
  SENT_PROBE=1
  if [[ -z "$PROBE_COOKIE" || "$PROBE_LOCATION" != *"ref="* ]]; then
    incomplete "GET /r/$PARTNER_ID answers 302 without a referral token or cookie (the unknown-partner answer?): Location: ${PROBE_LOCATION:-none}"
  fi
else
  incomplete "GET /r/$PARTNER_ID answers ${probe_code/#000/nothing}, not 302: this partnerd has no redirect yet"
fi

# ---------------------------------------------------------------- baseline
BASELINE_PORT=$(free_port)
while [[ "$BASELINE_PORT" == "$PARTNERD_PORT" ]]; do BASELINE_PORT=$(free_port); done
BASELINE_URL=http://127.0.0.1:$BASELINE_PORT
baseline_args=(--listen "127.0.0.1:$BASELINE_PORT")
if [[ -n "$PROBE_LOCATION" && -n "$PROBE_COOKIE" && "$probe_code" == 302 ]]; then
  # The same 302 as partnerd's, byte for byte the size of a real one.
  baseline_args+=(--location "$PROBE_LOCATION" --set-cookie "$PROBE_COOKIE")
fi
log "starting partnerd-baseline on $BASELINE_URL"
"$BIN/partnerd-baseline" "${baseline_args[@]}" >"$WORK/baseline.log" 2>&1 &
BASELINE_PID=$!
wait_http "$BASELINE_URL/" "$BASELINE_PID" partnerd-baseline "$WORK/baseline.log"
BASELINE_REDIRECT_URL=$BASELINE_URL/r/$PARTNER_ID
curl -s -o /dev/null -D "$WORK/baseline.headers" -H "User-Agent: $UA" "$BASELINE_REDIRECT_URL"
BASELINE_LOCATION=$(tr -d '\r' <"$WORK/baseline.headers" | sed -n 's/^location:[[:space:]]*//Ip' | head -n 1)
BASELINE_COOKIE=$(tr -d '\r' <"$WORK/baseline.headers" | sed -n 's/^set-cookie:[[:space:]]*//Ip' | head -n 1)

# ---------------------------------------------------------------- measuring
# Runs wrk; prints "rate ok requests status_errors socket_errors p99_ms".
# ok = answers with a 2xx/3xx status (wrk counts 4xx/5xx as status errors); rate = ok
# per second, so a server answering errors fast does not look fast.
run_wrk() {
  local url=$1 seconds=$2
  shift 2
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" --timeout 5s \
    -s "$ROOT/bench/wrk-summary.lua" -H "User-Agent: $UA" "$@" "$url" 2>&1) ||
    die "wrk failed: $out"
  local line
  line=$(grep '^WRK_RESULT ' <<<"$out") || die "wrk printed no summary: $out"
  awk '{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    ok = v["requests"] - v["status_errors"]
    rate = ok / (v["duration_us"] / 1e6)
    sock = v["connect_errors"] + v["read_errors"] + v["write_errors"] + v["timeouts"]
    printf "%.0f %d %d %d %d %.2f\n", rate, ok, v["requests"], v["status_errors"], sock, v["p99_us"] / 1000
  }' <<<"$line"
}

# Runs partnerd-load; prints its RESULT line's key=value pairs.
run_paced() {
  local url=$1 rate=$2 out
  out=$("$BIN/partnerd-load" --url "$url" --rate "$rate" --duration "${PACED_DURATION}s" \
    --connections "$CONNECTIONS" -H "User-Agent: $UA" 2>&1) || die "partnerd-load failed: $out"
  grep '^RESULT ' <<<"$out" | cut -d' ' -f2- || die "partnerd-load printed no result: $out"
}
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

SENT_WRK=0         # 2xx/3xx answers partnerd gave to wrk
PARTNERD_SOCKET_ERRORS=0
PARTNERD_STATUS_ERRORS=0
count_partnerd() { # the output of run_wrk against partnerd
  local -a f
  read -ra f <<<"$1"
  SENT_WRK=$((SENT_WRK + f[1]))
  PARTNERD_STATUS_ERRORS=$((PARTNERD_STATUS_ERRORS + f[3]))
  PARTNERD_SOCKET_ERRORS=$((PARTNERD_SOCKET_ERRORS + f[4]))
}
describe() { # run_wrk output → "N req/s (p99 X ms[, errors])"
  local -a f
  read -ra f <<<"$1"
  local extra=""
  ((f[3] > 0)) && extra+=", ${f[3]} non-2xx/3xx"
  ((f[4] > 0)) && extra+=", ${f[4]} socket errors"
  printf '%8d req/s (p99 %s ms%s)' "${f[0]}" "${f[5]}" "$extra"
}

load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" -v n="$(nproc)" 'BEGIN {exit !(l > 0.5 * n)}'; then
  log "WARNING: the machine is busy (load average $load1 on $(nproc) CPUs): figures will be noisy"
fi

log "warming up both servers (${WARMUP} s each)"
b=$(run_wrk "$BASELINE_REDIRECT_URL" "$WARMUP")
p=$(run_wrk "$REDIRECT_URL" "$WARMUP")
count_partnerd "$p"

declare -a KA_P KA_B CH_P CH_B
log "keep-alive: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $RUNS runs each, servers alternating"
for i in $(seq 1 "$RUNS"); do
  b=$(run_wrk "$BASELINE_REDIRECT_URL" "$DURATION")
  p=$(run_wrk "$REDIRECT_URL" "$DURATION")
  count_partnerd "$p"
  KA_B+=("${b%% *}")
  KA_P+=("${p%% *}")
  log "  run $i: baseline $(describe "$b") | partnerd $(describe "$p")"
done
log "connection churn: the same with -H 'Connection: close'"
for i in $(seq 1 "$RUNS"); do
  b=$(run_wrk "$BASELINE_REDIRECT_URL" "$DURATION" -H 'Connection: close')
  p=$(run_wrk "$REDIRECT_URL" "$DURATION" -H 'Connection: close')
  count_partnerd "$p"
  CH_B+=("${b%% *}")
  CH_P+=("${p%% *}")
  log "  run $i: baseline $(describe "$b") | partnerd $(describe "$p")"
done
KA_P_MED=$(median "${KA_P[@]}")
KA_B_MED=$(median "${KA_B[@]}")
CH_P_MED=$(median "${CH_P[@]}")
CH_B_MED=$(median "${CH_B[@]}")

PACED_RATE=$(awk -v r="$KA_P_MED" 'BEGIN {printf "%.0f", (r / 2 < 1) ? 1 : r / 2}')
log "latency at half of partnerd's maximum: partnerd-load --rate $PACED_RATE --connections $CONNECTIONS, ${PACED_DURATION} s each"
PACED_P=$(run_paced "$REDIRECT_URL" "$PACED_RATE")
PACED_B=$(run_paced "$BASELINE_REDIRECT_URL" "$PACED_RATE")
for who in partnerd baseline; do
  r=$PACED_P
  [[ $who == baseline ]] && r=$PACED_B
  log "  $who: $(field achieved_rate "$r") req/s answered, statuses $(field statuses "$r"), errors $(field errors "$r"), timeouts $(field timeouts "$r"), started late $(field late "$r"); p50 $(field p50_ms "$r") ms, p95 $(field p95_ms "$r") ms, p99 $(field p99_ms "$r") ms, max $(field max_ms "$r") ms"
done
SENT_PACED=$(field ok "$PACED_P")
SENT_PACED=${SENT_PACED:-0}

# ---------------------------------------------------------------- counts and memory
SENT_TOTAL=$((SENT_PROBE + SENT_WRK + SENT_PACED))
STORED=$(sqlite3 -cmd '.timeout 10000' "$DATA/partnerd.db" 'SELECT count(*) FROM clicks;' 2>"$WORK/sqlite.err" || true)
if [[ ! "$STORED" =~ ^[0-9]+$ ]]; then
  STORED=""
  log "cannot count the stored clicks: $(head -c 200 "$WORK/sqlite.err")"
fi
RSS_P=$(rss_peak_kib "$PARTNERD_PID")
RSS_B=$(rss_peak_kib "$BASELINE_PID")

# ---------------------------------------------------------------- click ingest and report
# Batched click ingest into a table already holding BENCH_INGEST_CLICKS (10 M) clicks,
# and the report for a partner holding a tenth of them against one holding a
# hundredth: `partnerd-ingest` seeds its own SQLite database through the store API
# (`Store::record_clicks`) and times `record_clicks` and `App::report` in-process. The
# servers are stopped first: their figures are taken, and they would only hold memory.
stop_server "$PARTNERD_PID"
stop_server "$BASELINE_PID"
PARTNERD_PID=""
BASELINE_PID=""
if [[ "$SKIP_INGEST" == 1 ]]; then
  log "skipping the click-ingest and report benchmark (BENCH_SKIP_INGEST=1)"
else
  run_ingest_bench
fi

# ---------------------------------------------------------------- the table
VALID=1
((${#INCOMPLETE[@]} == 0)) || VALID=0
verdict() { # an awk condition → PASS / FAIL (INVALID when partnerd was not measured)
  if [[ $VALID == 0 ]]; then
    echo "INVALID"
  elif awk "BEGIN {exit !($1)}"; then
    echo "PASS"
  else
    echo "FAIL"
  fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "n/a"}'; }
KA_RATIO=$(awk -v a="$KA_P_MED" -v b="$KA_B_MED" 'BEGIN {print (b > 0) ? a / b : 0}')
CH_RATIO=$(awk -v a="$CH_P_MED" -v b="$CH_B_MED" 'BEGIN {print (b > 0) ? a / b : 0}')
P99_P=$(field p99_ms "$PACED_P")
P99_P=${P99_P:-nan}
P99_B=$(field p99_ms "$PACED_B")

KA_VERDICT=$(verdict "$KA_RATIO >= $GOAL_KEEPALIVE_RATIO")
CH_VERDICT=$(verdict "$CH_RATIO >= $GOAL_CHURN_RATIO")
P99_VERDICT=$(verdict "\"$P99_P\" != \"nan\" && $P99_P + 0 <= $GOAL_P99_MS")
if [[ -n "$STORED" ]]; then
  LOST=$((SENT_TOTAL - STORED))
  CLICKS_FIGURE="$STORED stored / $SENT_TOTAL 302s"
  CLICKS_VERDICT=$(verdict "$LOST <= 0")
else
  LOST="?"
  CLICKS_FIGURE="? stored / $SENT_TOTAL 302s"
  CLICKS_VERDICT=$(verdict "0")
fi
FAILED=0
for v in "$KA_VERDICT" "$CH_VERDICT" "$P99_VERDICT" "$CLICKS_VERDICT"; do
  [[ "$v" == FAIL ]] && FAILED=1
done
((INGEST_FAILED)) && FAILED=1

commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ "$commit" != unknown ]] && ! git -C "$ROOT" diff-index --quiet HEAD -- 2>/dev/null; then
  commit+=" (with uncommitted changes)"
fi
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)

mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
row() { printf '%-40s %-28s %-16s %-8s %-10s %s\n' "$@"; }

echo
echo "partnerd redirect benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "commit   $commit"
echo "machine  $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r), load average $load1 at start, $(cut -d' ' -f1 /proc/loadavg) at the end"
echo "tools    $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2), sqlite3 $(sqlite3 --version | cut -d' ' -f1)"
echo "load     wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s x $RUNS (median), browser User-Agent, loopback; paced ${PACED_DURATION}s over $CONNECTIONS connections"
echo "redirect GET /r/$PARTNER_ID: Location ${#PROBE_LOCATION} bytes, Set-Cookie ${#PROBE_COOKIE} bytes (baseline: ${#BASELINE_LOCATION} and ${#BASELINE_COOKIE})"
echo
row "figure" "partnerd" "baseline" "ratio" "goal" "result"
row "----------------------------------------" "----------------------------" "----------------" "--------" "----------" "-------"
row "redirect throughput, keep-alive" "$KA_P_MED req/s" "$KA_B_MED req/s" "$(ratio "$KA_P_MED" "$KA_B_MED")" ">= ${GOAL_KEEPALIVE_RATIO}x" "$KA_VERDICT"
row "redirect throughput, Connection: close" "$CH_P_MED req/s" "$CH_B_MED req/s" "$(ratio "$CH_P_MED" "$CH_B_MED")" ">= ${GOAL_CHURN_RATIO}x" "$CH_VERDICT"
row "p99 latency at $PACED_RATE req/s (50% max)" "$P99_P ms" "$P99_B ms" "-" "<= ${GOAL_P99_MS} ms" "$P99_VERDICT"
row "clicks stored vs 302s sent" "$CLICKS_FIGURE" "-" "-" "lost = 0" "$CLICKS_VERDICT"
row "peak RSS (VmHWM)" "$(mib "$RSS_P")" "$(mib "$RSS_B")" "-" "(figure)" "-"
if [[ "$SKIP_INGEST" == 1 ]]; then
  row "batched click ingest, report latency" "skipped (BENCH_SKIP_INGEST=1)" "-" "-" "-" "-"
else
  ingest_rows
fi
echo
if [[ -n "$STORED" ]]; then
  echo "clicks stored = $STORED, 302s sent = $SENT_TOTAL, lost = $LOST" \
    "(302s: probe $SENT_PROBE + wrk $SENT_WRK + paced $SENT_PACED)"
  echo "  a negative loss is clicks committed whose answers were in flight when a client stopped:" \
    "at most $CONNECTIONS per wrk or paced run, $((CONNECTIONS * (2 * RUNS + 2))) in this run"
else
  echo "clicks stored = ? (no clicks table in $DATA/partnerd.db), 302s sent = $SENT_TOTAL, lost = ?"
fi
echo "partnerd answers wrk did not count as 2xx/3xx: $PARTNERD_STATUS_ERRORS; socket errors: $PARTNERD_SOCKET_ERRORS"
if [[ "$SKIP_INGEST" != 1 ]]; then
  ingest_details
fi

if [[ "$SKIP_INGEST" != 1 && "$INGEST_OK" != 1 ]]; then
  INCOMPLETE+=("the click-ingest and report benchmark failed (partnerd-ingest's log: $WORK/ingest.log)")
fi
if ((${#INCOMPLETE[@]})); then
  echo
  echo "INVALID: this run did not measure everything:"
  printf '  - %s\n' "${INCOMPLETE[@]}"
  STATUS=2
elif ((FAILED)); then
  STATUS=1
else
  STATUS=0
fi
exit "$STATUS"
