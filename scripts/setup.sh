#!/usr/bin/env bash
# Prepare a machine to build, test and demo vidrtc. Idempotent: installs only what is
# missing and says what it installs.
#
#   bash scripts/setup.sh              # tools + dependencies + build
#   bash scripts/setup.sh --no-build   # tools + dependencies only
#
# 1. System tools (Debian/Ubuntu, via apt-get, only when one is missing):
#    ffmpeg/ffprobe (ffmpeg), chromium, ip (iproute2), unshare (util-linux), and
#    aiortc for Debian's /usr/bin/python3 (python3-aiortc, the interop tests' Python peer).
# 2. pnpm $VIDRTC_PNPM_VERSION via `npm i -g` when pnpm is missing.
# 3. pnpm install --frozen-lockfile (set VIDRTC_OFFLINE=1 to add --offline).
# 4. pnpm build (turbo), inside an isolated network namespace.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$VIDRTC_ROOT"

build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    -h | --help)
      sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      log setup "unknown argument: $arg"
      exit 2
      ;;
  esac
done

# --- Node -------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1; then
  log setup "Node.js >= 20 is required but 'node' was not found"
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 20)); then
  log setup "Node.js >= 20 is required, found $(node -v)"
  exit 1
fi

# --- System packages --------------------------------------------------------
missing_pkgs=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing_pkgs+=(ffmpeg)
[[ -x "$VIDRTC_CHROMIUM" ]] || command -v chromium >/dev/null 2>&1 || missing_pkgs+=(chromium)
command -v ip >/dev/null 2>&1 || missing_pkgs+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing_pkgs+=(util-linux)
# The aiortc interop tests run Debian's python3 (not a pyenv/venv one) with Debian's aiortc.
/usr/bin/python3 -c 'import aiortc, av' >/dev/null 2>&1 || missing_pkgs+=(python3-aiortc)

if ((${#missing_pkgs[@]} > 0)); then
  log setup "installing system packages: ${missing_pkgs[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    log setup "apt-get not found; install these yourself: ${missing_pkgs[*]}"
    exit 1
  fi
  sudo=()
  if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      log setup "need root to install ${missing_pkgs[*]}; re-run as root or install them yourself"
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing_pkgs[@]}"
else
  log setup "system tools present: ffmpeg, ffprobe, chromium, ip, unshare, python3-aiortc"
fi

# --- pnpm -------------------------------------------------------------------
if ! command -v pnpm >/dev/null 2>&1; then
  log setup "installing pnpm@$VIDRTC_PNPM_VERSION (npm i -g)"
  npm i -g "pnpm@$VIDRTC_PNPM_VERSION"
  hash -r
  if ! command -v pnpm >/dev/null 2>&1; then
    npm_prefix="$(npm prefix -g)"
    export PATH="$npm_prefix/bin:$PATH"
  fi
else
  have="$(pnpm --version 2>/dev/null || echo unknown)"
  if [[ "$have" != "$VIDRTC_PNPM_VERSION" ]]; then
    log setup "note: pnpm $have found; the workspace pins pnpm@$VIDRTC_PNPM_VERSION"
  else
    log setup "pnpm $have present"
  fi
fi

# --- Dependencies -----------------------------------------------------------
install_args=(install --frozen-lockfile)
if [[ "${VIDRTC_OFFLINE:-}" == "1" ]]; then
  install_args+=(--offline)
fi
log setup "pnpm ${install_args[*]}"
pnpm "${install_args[@]}" </dev/null

# --- Build ------------------------------------------------------------------
if ((build)); then
  log setup "pnpm build (turbo, isolated network namespace)"
  bash "$VIDRTC_ROOT/scripts/netns-run.sh" pnpm build </dev/null
fi
log setup "done"
