#!/usr/bin/env bash
# Consumer test: the packages as an npm user gets them.
#
#   bash scripts/consumer-test.sh prepare DIR   # needs the npm registry (third-party deps)
#   bash scripts/consumer-test.sh run DIR       # run inside scripts/netns-run.sh (no network)
#   bash scripts/consumer-test.sh               # both (run inside the namespace)
#
# prepare: a clean build (every dist/ removed, turbo's cache skipped), `pnpm pack` every public package into DIR/tarballs, and install the tarballs
#   into DIR/project, a fresh project outside the workspace (`@vidrtc/*` and `vidrtc` overridden
#   to the tarballs, third-party packages from the pnpm store first, no install scripts).
# run: scripts/consumer/check.mjs there: imports every entry point in Node ESM, type-checks a
#   consumer file with moduleResolution nodenext and bundler and skipLibCheck false, bundles a
#   browser entry with esbuild (no Node built-in, no werift, gzipped < 15 kB), runs the installed
#   vidrtc-server and `vidrtc run` end to end, and publint + attw (esm-only profile) per tarball.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$VIDRTC_ROOT"

prepare() {
  local dir="$1"
  rm -rf "$dir/tarballs" "$dir/project"
  mkdir -p "$dir/tarballs" "$dir/project"
  clean_build_packages
  local overrides="" deps="" pkg name file
  for pkg in packages/*/; do
    name="$(node -p "const p=require('./${pkg}package.json'); p.private ? '' : p.name")"
    [[ -n "$name" ]] || continue
    file="$(cd "$pkg" && pnpm pack --pack-destination "$dir/tarballs" --json | node -e '
      let t = ""; process.stdin.on("data", (d) => (t += d)).on("end", () => console.log(JSON.parse(t).filename));')"
    overrides+="  \"${name}\": \"file:${file}\"\n"
    deps+="    \"${name}\": \"file:${file}\",\n"
  done
  local types_node
  types_node="$(node -p "require('./package.json').devDependencies['@types/node']")"
  printf '{\n  "name": "vidrtc-consumer",\n  "private": true,\n  "type": "module",\n  "dependencies": {\n%b    "@types/node": "%s"\n  }\n}\n' \
    "$deps" "$types_node" >"$dir/project/package.json"
  # Its own workspace root, so that pnpm does not walk up into another one; no build scripts run.
  printf 'packages: []\noverrides:\n%b' "$overrides" >"$dir/project/pnpm-workspace.yaml"
  cp scripts/consumer/*.ts "$dir/project/"
  (cd "$dir/project" && pnpm install --prefer-offline --ignore-scripts --config.confirmModulesPurge=false >/dev/null)
  log consumer "packed $(ls "$dir/tarballs" | wc -l) tarballs and installed them into $dir/project"
}

run() {
  local dir="$1"
  [[ -f "$dir/project/package.json" ]] || { log consumer "nothing prepared in $dir (run: $0 prepare $dir)"; return 1; }
  node scripts/consumer/check.mjs "$dir"
}

mode="${1:-all}"
dir="${2:-${VIDRTC_CONSUMER_DIR:-}}"
case "$mode" in
  prepare) prepare "${dir:?usage: $0 prepare DIR}" ;;
  run) run "${dir:?usage: $0 run DIR}" ;;
  all)
    dir="$(mktemp -d "${TMPDIR:-/tmp}/vidrtc-consumer.XXXXXX")"
    trap 'rm -rf "$dir"' EXIT
    prepare "$dir"
    run "$dir"
    ;;
  *) echo "usage: $0 [prepare DIR | run DIR]" >&2; exit 2 ;;
esac
