# Shared helpers for scripts/*.sh (sourced, not run).
# shellcheck shell=bash

# Repository root, whatever the caller's working directory.
VIDRTC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VIDRTC_ROOT

# No tool may phone home: turbo telemetry and update checks, pnpm/npm update checks.
export TURBO_TELEMETRY_DISABLED=1
export DO_NOT_TRACK=1
export TURBO_NO_UPDATE_NOTIFIER=1
export npm_config_update_notifier=false
export NO_UPDATE_NOTIFIER=1

# The pnpm version the workspace is pinned to (package.json "packageManager").
VIDRTC_PNPM_VERSION="12.4.2"

# The Chromium binary the browser tests drive.
VIDRTC_CHROMIUM="${VIDRTC_CHROMIUM:-/usr/bin/chromium}"
export VIDRTC_CHROMIUM

# log TAG MESSAGE... -- one prefixed line on stderr.
log() {
  local tag="$1"
  shift
  printf '[%s] %s\n' "$tag" "$*" >&2
}

# clean_build_packages -- build every package from scratch for packing or publishing. turbo
# restores a cache hit's outputs over whatever dist/ holds, so a file of a deleted or renamed
# source would otherwise stay there and be packed; so every dist/ is removed first and --force
# skips turbo's cache. Runs inside an isolated network namespace, like setup's build.
clean_build_packages() {
  rm -rf "$VIDRTC_ROOT"/packages/*/dist
  (cd "$VIDRTC_ROOT" && bash scripts/netns-run.sh pnpm exec turbo run build --force --output-logs=errors-only </dev/null >/dev/null)
}
