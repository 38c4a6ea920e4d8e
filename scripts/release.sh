#!/usr/bin/env bash
# Publish the packages that pending changesets have versioned (`pnpm release`).
#
#   pnpm release             # scripts/test.sh (setup, build, lint, typecheck, tests), then changeset publish
#   pnpm release --dry-run   # clean build (every dist/ removed, turbo's cache skipped), then check the release without publishing anything:
#                            #   - `changeset version` in a throwaway clone turns the pending changesets
#                            #     into versions and CHANGELOGs (every package must reach >= 0.1.0),
#                            #   - `pnpm publish -r --dry-run` packs every public package.
#
# Provenance: npm signs provenance only from a supported CI (GitHub Actions, GitLab CI), so it is
# switched on there (NPM_CONFIG_PROVENANCE=true) and left off elsewhere, where npm would refuse.
# Run `pnpm changeset version` and commit the bump before the real release.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$VIDRTC_ROOT"

if [[ "${1:-}" == "--dry-run" ]]; then
  clean_build_packages
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/vidrtc-release.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  # A clone of the committed tree plus the working tree's changesets and package.json files,
  # so that the check sees uncommitted changesets too.
  git clone -q --no-hardlinks "$VIDRTC_ROOT" "$tmp/repo"
  cp .changeset/*.md .changeset/config.json "$tmp/repo/.changeset/" 2>/dev/null || true
  for f in package.json packages/*/package.json; do cp "$f" "$tmp/repo/$f"; done
  ln -s "$VIDRTC_ROOT/node_modules" "$tmp/repo/node_modules"
  (cd "$tmp/repo" && node_modules/.bin/changeset version >/dev/null)
  node - "$tmp/repo" <<'JS'
const { readFileSync, readdirSync, existsSync } = require("node:fs");
const root = process.argv[2];
let bad = 0;
for (const dir of readdirSync(`${root}/packages`)) {
  const file = `${root}/packages/${dir}/package.json`;
  if (!existsSync(file)) continue;
  const pkg = JSON.parse(readFileSync(file, "utf8"));
  if (pkg.private) continue;
  const changelog = `${root}/packages/${dir}/CHANGELOG.md`;
  const okVersion = /^(0\.[1-9]\d*\.\d+|[1-9]\d*\.\d+\.\d+)$/.test(pkg.version);
  const okLog = existsSync(changelog) && readFileSync(changelog, "utf8").includes(`## ${pkg.version}`);
  console.log(`[release] ${pkg.name}: ${pkg.version}${okLog ? " with CHANGELOG" : " WITHOUT CHANGELOG"}`);
  for (const [dep, range] of Object.entries(pkg.dependencies ?? {})) {
    if (range.startsWith("workspace:")) continue;
    if (!range.startsWith("^")) { console.log(`[release] ${pkg.name}: ${dep}@${range} is not a caret range`); bad++; }
  }
  if (!okVersion || !okLog) bad++;
}
process.exit(bad ? 1 : 0);
JS
  pnpm -r publish --dry-run --no-git-checks
  log release "dry run ok: nothing was published"
  exit 0
fi

bash scripts/test.sh
# Publish what a clean build gives, not dist/ as the tests' (cached) build left it.
clean_build_packages
if [[ "${GITHUB_ACTIONS:-}" == "true" || -n "${GITLAB_CI:-}" ]]; then
  export NPM_CONFIG_PROVENANCE=true
fi
pnpm exec changeset publish
