#!/usr/bin/env bash
# Run every check vidrtc has, from a fresh clone: the command CI runs.
#
#   bash scripts/test.sh                          # everything
#   bash scripts/test.sh --filter=@vidrtc/protocol  # extra args go to `turbo run test`
#
# 1. scripts/setup.sh --no-build (installs whatever is missing; needs the network), and
#    scripts/consumer-test.sh prepare (packs every package and installs the tarballs into a
#    temporary project outside the workspace; third-party packages from the pnpm store first).
# 2. Re-runs itself inside scripts/netns-run.sh --nic 192.0.2.10/24 (loopback plus a sealed
#    fake NIC whose peer end goes nowhere: nothing can leave the machine), then: build, lint
#    (biome), typecheck, publint, the release dry run, the consumer test
#    (scripts/consumer-test.sh run), and all tests (turbo ->
#    vitest in every package, including the WebRTC and Chromium e2e tests).
# Every step runs even if an earlier one failed; the exit status is non-zero if any failed.
#
# 3. Then, as its own step with its own bound, the long load/soak tests (`pnpm test:load`:
#    apps/e2e/src/**/*.load.test.ts, e.g. 200 sessions back to back); skipped when extra args
#    select a subset of the tests.
# Environment: VIDRTC_SKIP_SETUP=1 skips step 1; VIDRTC_TEST_TIMEOUT (seconds, default
# 4200) bounds the test step; VIDRTC_LOAD_TIMEOUT (seconds, default 1800) bounds the load step;
# VIDRTC_SKIP_LOAD=1 skips it; VIDRTC_CONSUMER_TIMEOUT (seconds, default 900) bounds each of the
# consumer test's two parts; VIDRTC_OFFLINE=1 installs from the pnpm store only.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$VIDRTC_ROOT"

if [[ "${VIDRTC_TEST_PHASE:-}" != "inner" || "${VIDRTC_NETNS:-}" != "1" ]]; then
  if [[ "${VIDRTC_SKIP_SETUP:-}" != "1" ]]; then
    bash scripts/setup.sh --no-build </dev/null
  fi
  # The consumer test installs the packed tarballs with third-party packages from the registry
  # (pnpm store first), so that part runs here; its checks run inside the namespace below.
  VIDRTC_CONSUMER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vidrtc-consumer.XXXXXX")"
  export VIDRTC_CONSUMER_DIR
  timeout --signal=TERM --kill-after=30 "${VIDRTC_CONSUMER_TIMEOUT:-900}" \
    bash scripts/consumer-test.sh prepare "$VIDRTC_CONSUMER_DIR" </dev/null ||
    log test "consumer test: preparing the consumer project failed (the consumer step will fail)"
  export VIDRTC_TEST_PHASE=inner
  # With the sealed fake NIC (TEST-NET-1, goes nowhere): node-datachannel and aiortc skip
  # loopback-only hosts.
  exec bash scripts/netns-run.sh --nic 192.0.2.10/24 bash scripts/test.sh "$@" </dev/null
fi

# ---- inside the isolated namespace ----------------------------------------
log test "network namespace: $(readlink /proc/self/ns/net); interfaces up: $(ip -o link show up | awk -F': ' '{ sub(/@.*/, "", $2); printf "%s ", $2 }')"

turbo=(pnpm exec turbo run --env-mode=loose --continue=always)
test_log="$(mktemp "${TMPDIR:-/tmp}/vidrtc-test.XXXXXX.log")"
trap 'rm -f "$test_log"' EXIT

step_names=()
step_results=()
step_times=()

# run_step NAME COMMAND... -- run one step, record ok/FAIL and its duration.
run_step() {
  local name="$1"
  shift
  local start end rc
  log test "==== $name: $* ===="
  start=$(date +%s)
  set +e
  "$@"
  rc=$?
  set -e
  end=$(date +%s)
  step_names+=("$name")
  step_times+=("$((end - start))s")
  if ((rc == 0)); then
    step_results+=("ok")
  else
    step_results+=("FAIL(rc=$rc)")
  fi
  log test "==== $name: $([[ $rc == 0 ]] && echo ok || echo "FAILED (exit $rc)") in $((end - start))s ===="
}

# All tests, output kept for the summary. Serial: 2 cores, and throughput tests must not compete.
run_tests() {
  timeout --signal=TERM --kill-after=60 "${VIDRTC_TEST_TIMEOUT:-4200}" \
    "${turbo[@]}" --log-order=stream --concurrency=1 test "$@" 2>&1 | tee "$test_log"
  local rc="${PIPESTATUS[0]}"
  if ((rc == 124 || rc == 137)); then
    log test "the test step did not finish within ${VIDRTC_TEST_TIMEOUT:-4200} s and was stopped"
  fi
  return "$rc"
}

# The load/soak tests, bounded on their own; output appended to the same log for the summary.
run_load() {
  timeout --signal=TERM --kill-after=60 "${VIDRTC_LOAD_TIMEOUT:-1800}" pnpm test:load 2>&1 | tee -a "$test_log"
  local rc="${PIPESTATUS[0]}"
  if ((rc == 124 || rc == 137)); then
    log test "the load step did not finish within ${VIDRTC_LOAD_TIMEOUT:-1800} s and was stopped"
  fi
  return "$rc"
}

run_step build "${turbo[@]}" --log-order=grouped build
run_step lint pnpm lint
run_step typecheck "${turbo[@]}" --log-order=grouped typecheck
run_step publint "${turbo[@]}" --log-order=grouped publint
# The API reference builds with every export documented and every link resolved (typedoc.json).
run_step docs pnpm exec typedoc --emit none
run_step release bash scripts/release.sh --dry-run
run_consumer() {
  local rc=0
  timeout --signal=TERM --kill-after=30 "${VIDRTC_CONSUMER_TIMEOUT:-900}" \
    bash scripts/consumer-test.sh run "${VIDRTC_CONSUMER_DIR:-}" || rc=$?
  if ((rc == 124 || rc == 137)); then
    log test "the consumer test did not finish within ${VIDRTC_CONSUMER_TIMEOUT:-900} s and was stopped"
  fi
  [[ -n "${VIDRTC_CONSUMER_DIR:-}" ]] && rm -rf "$VIDRTC_CONSUMER_DIR"
  return "$rc"
}
run_step consumer run_consumer
run_step test run_tests "$@"
if [[ $# -eq 0 && "${VIDRTC_SKIP_LOAD:-}" != "1" ]]; then
  run_step load run_load
fi

# Sum vitest's per-package "Tests  N passed | M failed (T)" lines.
passed=0 failed=0 skipped=0
read -r passed failed skipped < <(
  sed 's/\x1b\[[0-9;]*m//g' "$test_log" | node -e '
    let text = "";
    process.stdin.on("data", (d) => (text += d));
    process.stdin.on("end", () => {
      const sum = { passed: 0, failed: 0, skipped: 0 };
      for (const line of text.split("\n")) {
        const m = /(?:^|\s)Tests\s+(.*)\(\d+\)\s*$/.exec(line);
        if (!m || /Test Files/.test(line)) continue;
        for (const part of m[1].split("|")) {
          const p = /(\d+)\s+(passed|failed|skipped|todo)/.exec(part);
          if (!p) continue;
          const kind = p[2] === "todo" ? "skipped" : p[2];
          sum[kind] += Number(p[1]);
        }
      }
      console.log(sum.passed, sum.failed, sum.skipped);
    });'
) || true
failed_turbo_tasks="$(sed 's/\x1b\[[0-9;]*m//g' "$test_log" | sed -n 's/^Failed:[[:space:]]*//p' | tr ',' ' ' | xargs echo || true)"

echo
log test "==================== summary ===================="
failed_steps=()
for i in "${!step_names[@]}"; do
  printf '[test] %-10s %-12s %s\n' "${step_names[$i]}" "${step_results[$i]}" "${step_times[$i]}" >&2
  [[ "${step_results[$i]}" == ok ]] || failed_steps+=("${step_names[$i]}")
done
if [[ -n "$failed_turbo_tasks" ]]; then
  log test "failed test tasks: $failed_turbo_tasks"
fi
log test "tests: $passed passed, $failed failed, $skipped skipped"
if ((${#failed_steps[@]} > 0)); then
  log test "RESULT: FAIL (failed steps: ${failed_steps[*]})"
  exit 1
fi
log test "RESULT: PASS"
