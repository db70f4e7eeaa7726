# bench/ingest-common.sh — the click-ingest and report benchmark's shell side, sourced
# by bench/redirect.sh and bench/ingest.sh (not run on its own).
#
# The caller provides: BIN (the release directory), WORK (a work directory), log().
# run_ingest_bench runs `partnerd-ingest` on a fresh SQLite database in $WORK/ingest,
# parses its `key=value` output into ING_* variables and sets the figures and verdicts
# (INGEST_*, REPORT_*); ingest_rows prints the table rows with a row() of the caller's.
#
# Knobs (environment):
#   BENCH_INGEST_CLICKS    clicks seeded (10000000); the heavy partner gets a tenth,
#                          the light one a hundredth
#   BENCH_INGEST_PARTNERS  partners (1000)
#   BENCH_INGEST_BATCH     clicks per measured record_clicks call (4096: the click
#                          writer's largest batch, MAX_BATCH in partnerd-app)
#   BENCH_INGEST_BATCHES   measured calls (200)
#   BENCH_INGEST_REPORT_RUNS  timed reports per case (50, after 5 warm-ups)
#   BENCH_INGEST_ARGS      extra arguments for partnerd-ingest
# shellcheck shell=bash
# shellcheck disable=SC2034 # the figures and verdicts are for the sourcing script

INGEST_CLICKS=${BENCH_INGEST_CLICKS:-10000000}
INGEST_PARTNERS=${BENCH_INGEST_PARTNERS:-1000}
INGEST_BATCH=${BENCH_INGEST_BATCH:-4096}
INGEST_BATCHES=${BENCH_INGEST_BATCHES:-200}
INGEST_REPORT_RUNS=${BENCH_INGEST_REPORT_RUNS:-50}
INGEST_HEAVY=$((INGEST_CLICKS / 10))
INGEST_LIGHT=$((INGEST_CLICKS / 100))

# Goals (from the issue).
GOAL_INGEST_PER_S=150000
GOAL_REPORT_P95_MS=50
GOAL_REPORT_RATIO=2

# 10000000 → "10 M", 100000 → "100 k".
human_count() {
  awk -v n="$1" 'BEGIN {
    if (n >= 1e6) { v = n / 1e6; u = " M" } else if (n >= 1e3) { v = n / 1e3; u = " k" } else { v = n; u = "" }
    s = sprintf("%.1f", v); sub(/\.0$/, "", s); print s u
  }'
}

# The value of KEY in the partnerd-ingest output file.
ing() { sed -n "s/^$1=//p" "$WORK/ingest.out" | tail -n 1; }

# PASS/FAIL for an awk condition; ERROR when the benchmark did not run.
ingest_verdict() {
  if [[ "$INGEST_OK" != 1 ]]; then
    echo "ERROR"
  elif awk "BEGIN {exit !($1)}"; then
    echo "PASS"
  else
    echo "FAIL"
  fi
}

INGEST_OK=0
INGEST_FAILED=0 # a goal missed
run_ingest_bench() {
  local args=(--data-dir "$WORK/ingest" --clicks "$INGEST_CLICKS" --partners "$INGEST_PARTNERS"
    --heavy-partner-clicks "$INGEST_HEAVY" --light-partner-clicks "$INGEST_LIGHT"
    --batch "$INGEST_BATCH" --measure-batches "$INGEST_BATCHES" --report-runs "$INGEST_REPORT_RUNS")
  # shellcheck disable=SC2206 # word splitting wanted
  [[ -n "${BENCH_INGEST_ARGS:-}" ]] && args+=(${BENCH_INGEST_ARGS})
  log "click ingest and report: seeding $(human_count "$INGEST_CLICKS") clicks over $INGEST_PARTNERS partners" \
    "(heavy $(human_count "$INGEST_HEAVY"), light $(human_count "$INGEST_LIGHT")) into a fresh SQLite database;" \
    "this takes a while: about $(((INGEST_CLICKS / 35000 + 90 + 59) / 60)) min on 2 CPUs (a progress line every tenth)"
  log "  $BIN/partnerd-ingest ${args[*]}"
  local started=$SECONDS rc
  # Standard output to the file, standard error (progress) to the terminal and the log.
  set +e
  "$BIN/partnerd-ingest" "${args[@]}" 2>&1 >"$WORK/ingest.out" | tee "$WORK/ingest.log" >&2
  rc=${PIPESTATUS[0]}
  set -e
  INGEST_SECONDS=$((SECONDS - started))
  if ((rc != 0)) || [[ -z "$(ing report_ratio_p95)" ]]; then
    log "partnerd-ingest failed (exit $rc): see $WORK/ingest.log"
    INGEST_OK=0
  else
    INGEST_OK=1
  fi
  ING_SEED_RATE=$(ing seed_clicks_per_s)
  ING_SEED_SECONDS=$(ing seed_seconds)
  ING_RATE=$(ing ingest_clicks_per_s)
  ING_P50=$(ing ingest_batch_p50_ms)
  ING_P95=$(ing ingest_batch_p95_ms)
  ING_P99=$(ing ingest_batch_p99_ms)
  ING_HEAVY_P95=$(ing report_heavy_p95_ms)
  ING_LIGHT_P95=$(ing report_light_p95_ms)
  ING_HEAVY30_P95=$(ing report_heavy_30d_p95_ms)
  ING_LIGHT30_P95=$(ing report_light_30d_p95_ms)
  ING_RATIO=$(ing report_ratio_p95)
  ING_RATIO30=$(ing report_ratio_30d_p95)
  ING_RUNS=$(ing report_runs)
  ING_RSS=$(ing peak_rss_kib)
  ING_DB=$(ing db_bytes)
  ING_WAL=$(ing wal_bytes)

  INGEST_VERDICT=$(ingest_verdict "${ING_RATE:-0} >= $GOAL_INGEST_PER_S")
  REPORT_VERDICT=$(ingest_verdict "${ING_HEAVY_P95:-1e9} <= $GOAL_REPORT_P95_MS")
  REPORT30_VERDICT=$(ingest_verdict "${ING_HEAVY30_P95:-1e9} <= $GOAL_REPORT_P95_MS")
  RATIO_VERDICT=$(ingest_verdict "${ING_RATIO:-1e9} <= $GOAL_REPORT_RATIO")
  RATIO30_VERDICT=$(ingest_verdict "${ING_RATIO30:-1e9} <= $GOAL_REPORT_RATIO")
  for v in "$INGEST_VERDICT" "$REPORT_VERDICT" "$REPORT30_VERDICT" "$RATIO_VERDICT" "$RATIO30_VERDICT"; do
    [[ "$v" == FAIL ]] && INGEST_FAILED=1
  done
  local n heavy light
  n=$(human_count "$INGEST_CLICKS")
  heavy=$(human_count "$INGEST_HEAVY")
  light=$(human_count "$INGEST_LIGHT")
  INGEST_LABEL="batched click ingest, $n in table"
  INGEST_FIGURE="${ING_RATE:-?} clicks/s"
  REPORT_LABEL="report p95, $heavy of $n clicks, 365 d"
  REPORT_FIGURE="${ING_HEAVY_P95:-?} ms"
  REPORT30_LABEL="report p95, $heavy of $n clicks, 30 d"
  REPORT30_FIGURE="${ING_HEAVY30_P95:-?} ms"
  RATIO_LABEL="report p95 $heavy / $light clicks, 365 d"
  RATIO_FIGURE="${ING_HEAVY_P95:-?} / ${ING_LIGHT_P95:-?} ms"
  RATIO30_LABEL="report p95 $heavy / $light clicks, 30 d"
  RATIO30_FIGURE="${ING_HEAVY30_P95:-?} / ${ING_LIGHT30_P95:-?} ms"
  log "click ingest and report done in ${INGEST_SECONDS} s"
}

# The table rows; row() is the caller's: figure, partnerd, baseline, ratio, goal, result.
ingest_rows() {
  row "$INGEST_LABEL" "$INGEST_FIGURE" "-" "-" ">= $((GOAL_INGEST_PER_S / 1000)) k/s" "$INGEST_VERDICT"
  row "$REPORT_LABEL" "$REPORT_FIGURE" "-" "-" "<= $GOAL_REPORT_P95_MS ms" "$REPORT_VERDICT"
  row "$REPORT30_LABEL" "$REPORT30_FIGURE" "-" "-" "<= $GOAL_REPORT_P95_MS ms" "$REPORT30_VERDICT"
  row "$RATIO_LABEL" "$RATIO_FIGURE" "-" "${ING_RATIO:-?}x" "<= ${GOAL_REPORT_RATIO}x" "$RATIO_VERDICT"
  row "$RATIO30_LABEL" "$RATIO30_FIGURE" "-" "${ING_RATIO30:-?}x" "<= ${GOAL_REPORT_RATIO}x" "$RATIO30_VERDICT"
}

# Details under the table.
ingest_details() {
  echo "click ingest: $(human_count "$INGEST_CLICKS") clicks seeded over $INGEST_PARTNERS partners in ${ING_SEED_SECONDS:-?} s" \
    "(${ING_SEED_RATE:-?} clicks/s, record_clicks in batches of $(ing seed_batch)); then $INGEST_BATCHES record_clicks calls" \
    "of $INGEST_BATCH fresh clicks (random partners): ${ING_RATE:-?} clicks/s (first half $(ing ingest_first_half_clicks_per_s)," \
    "second half $(ing ingest_second_half_clicks_per_s)), batch p50 ${ING_P50:-?} ms, p95 ${ING_P95:-?} ms, p99 ${ING_P99:-?} ms"
  echo "report: App::report(partner, UTC) for the heavy ($(human_count "$INGEST_HEAVY") clicks) and light" \
    "($(human_count "$INGEST_LIGHT")) partner, ${ING_RUNS:-?} timed runs per case after $(ing report_warmups) warm-ups, interleaved:" \
    "365 d p50 $(ing report_heavy_365d_p50_ms) / $(ing report_light_365d_p50_ms) ms," \
    "30 d p50 $(ing report_heavy_30d_p50_ms) / $(ing report_light_30d_p50_ms) ms (heavy / light)"
  echo "partnerd-ingest: peak RSS $(awk -v k="${ING_RSS:-0}" 'BEGIN {printf "%.1f MiB", k / 1024}')," \
    "database $(awk -v b="${ING_DB:-0}" -v w="${ING_WAL:-0}" 'BEGIN {printf "%.2f GiB + WAL %.1f MiB", b / 2^30, w / 2^20}')," \
    "${INGEST_SECONDS:-?} s in all; load average $(ing load_start) at its start, $(ing load_after_seed) after seeding," \
    "$(ing load_after_ingest) after the ingest, $(ing load_end) at its end"
}
