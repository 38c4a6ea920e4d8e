#!/usr/bin/env bash
# Run the vidrtc demo from a fresh clone: sets the machine up (scripts/setup.sh), then
# runs `pnpm demo` (apps/e2e/src/demo.ts) inside an isolated network namespace, so the
# local inference server and the client talk over loopback only.
#
#   bash scripts/demo.sh [demo arguments...]
#
# VIDRTC_SKIP_SETUP=1 skips setup (tools, install, build) when you know it is done.
# VIDRTC_DEMO_TIMEOUT (seconds, default 600) bounds the demo run.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$VIDRTC_ROOT"

if [[ "${VIDRTC_SKIP_SETUP:-}" != "1" ]]; then
  bash scripts/setup.sh </dev/null
fi
log demo "pnpm demo (isolated network namespace)"
limit="${VIDRTC_DEMO_TIMEOUT:-600}"
rc=0
bash scripts/netns-run.sh timeout --signal=TERM --kill-after=10 "$limit" pnpm demo "$@" </dev/null || rc=$?
if ((rc == 124 || rc == 137)); then
  log demo "the demo did not finish within ${limit} s and was stopped"
fi
exit "$rc"
