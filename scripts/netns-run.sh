#!/usr/bin/env bash
# Run a command inside a fresh network namespace in which only loopback is up.
# Nothing the command sends can leave the machine; 127.0.0.1 still works inside.
#
#   bash scripts/netns-run.sh pnpm test
#   bash scripts/netns-run.sh --nic 192.0.2.10/24 node bench.mjs
#
# --nic CIDR  also creates a sealed fake NIC: a veth pair whose both ends stay in the
#             namespace (the peer end goes nowhere), with CIDR on one end and a default
#             route through it. For WebRTC stacks that ignore loopback-only hosts.
#             Use a documentation range (192.0.2.0/24) so the address is never routable.
#
# Sets VIDRTC_NETNS=1 for the command. When that is already set and the current
# namespace really is isolated (only lo, or lo plus our sealed veth pair, is up),
# the command is exec'd as is instead of nesting another namespace.
#
# Needs iproute2 (`ip`) and util-linux (`unshare`), and root or unprivileged user
# namespaces (then `unshare -r` maps the caller to root inside).
set -euo pipefail

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
}

nic=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nic)
      [[ $# -ge 2 ]] || { echo "netns-run: --nic needs an address like 192.0.2.10/24" >&2; exit 2; }
      nic="$2"
      shift 2
      ;;
    --nic=*)
      nic="${1#--nic=}"
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    --)
      shift
      break
      ;;
    *) break ;;
  esac
done

if [[ $# -eq 0 ]]; then
  usage
  exit 2
fi

if [[ -n "$nic" && ! "$nic" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ ]]; then
  echo "netns-run: --nic expects an IPv4 CIDR such as 192.0.2.10/24, got '$nic'" >&2
  exit 2
fi

for tool in ip unshare; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "netns-run: '$tool' not found; install iproute2 and util-linux (bash scripts/setup.sh does)" >&2
    exit 127
  fi
done

# Names of the interfaces that are administratively up in the current namespace.
up_interfaces() {
  ip -o link show up 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'
}

# True when only loopback (and, optionally, our sealed vnic0/vnic0peer pair) is up.
already_isolated() {
  local name
  while IFS= read -r name; do
    case "$name" in
      lo | vnic0 | vnic0peer) ;;
      *) return 1 ;;
    esac
  done < <(up_interfaces)
  return 0
}

if [[ "${VIDRTC_NETNS:-}" == "1" ]]; then
  if already_isolated; then
    if [[ -n "$nic" ]] && ! up_interfaces | grep -qx vnic0; then
      echo "netns-run: already in an isolated namespace without a fake NIC; --nic $nic ignored" >&2
    fi
    exec "$@"
  fi
  echo "netns-run: VIDRTC_NETNS=1 is set but this namespace has real interfaces up; isolating anyway" >&2
fi

unshare_flags=(--net)
if [[ "$(id -u)" != "0" ]]; then
  # Without root, a user namespace gives us the capabilities to configure our own netns.
  unshare_flags+=(--map-root-user)
fi

# shellcheck disable=SC2016 # the inner script is expanded by the inner bash
inner='
set -euo pipefail
nic="$1"
shift
ip link set lo up
if [[ -n "$nic" ]]; then
  ip link add vnic0 type veth peer name vnic0peer
  ip addr add "$nic" dev vnic0
  ip link set vnic0peer up
  ip link set vnic0 up
  ip route add default dev vnic0
fi
export VIDRTC_NETNS=1
exec "$@"
'

if ! unshare "${unshare_flags[@]}" true 2>/dev/null; then
  echo "netns-run: cannot create a network namespace (unshare ${unshare_flags[*]} failed)." >&2
  echo "netns-run: run as root, or enable unprivileged user namespaces." >&2
  exit 1
fi

exec unshare "${unshare_flags[@]}" -- bash -c "$inner" netns-run "$nic" "$@"
