/**
 * Network isolation check for the e2e tests: every WebRTC and Chromium run must happen in a
 * network namespace from which nothing can leave the machine (see scripts/netns-run.sh).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readlinkSync } from "node:fs";

/** How the isolation check classified one interface that is administratively up. */
export type InterfaceKind = "loopback" | "sealed-veth" | "other";

/** One interface that is up in the current network namespace. */
export interface UpInterface {
  /** Interface name, e.g. `lo`, `vnic0`. */
  name: string;
  /** `loopback`; `sealed-veth` (a veth whose peer is in this namespace too); anything else is `other`. */
  kind: InterfaceKind;
  /** Addresses as `addr/prefix`. */
  addresses: string[];
  /** Why the interface breaks isolation, or `null` when it does not. */
  problem: string | null;
}

/** What {@link inspectNetwork} saw. */
export interface NetworkReport {
  /** `net:[inode]` of this process's network namespace, or `null` when unreadable. */
  namespace: string | null;
  /** Interfaces that are up. */
  interfaces: UpInterface[];
  /** IPv4 address of a sealed fake NIC (`netns-run.sh --nic`), if there is one. */
  fakeNicAddress: string | null;
  /** True when nothing that is up can reach beyond this namespace. */
  isolated: boolean;
}

/** Thrown by {@link assertIsolatedNetwork} when the process can reach a real network. */
export class NetworkNotIsolatedError extends Error {
  /** What the check saw. */
  readonly report: NetworkReport;

  /** @param report the inspection result that failed the check */
  constructor(report: NetworkReport) {
    const offenders = report.interfaces
      .filter((i) => i.problem !== null)
      .map((i) => `${i.name} (${i.problem})`)
      .join(", ");
    super(
      `These tests must run in an isolated network namespace (only loopback up) so that no traffic can ` +
        `leave the machine, but this process can reach a network: ${offenders}. Run them through ` +
        `scripts/netns-run.sh, e.g. \`bash scripts/netns-run.sh pnpm --filter @vidrtc/e2e test\`, ` +
        `or run everything with \`bash scripts/test.sh\`.`,
    );
    this.name = "NetworkNotIsolatedError";
    this.report = report;
  }
}

/** One address in `ip -j addr show` output (the fields the check reads). */
export interface IpAddrInfo {
  family?: string;
  local?: string;
  prefixlen?: number;
  scope?: string;
}

/** One interface in `ip -j -d addr show` output (the fields the check reads). */
export interface IpLink {
  ifname?: string;
  flags?: string[];
  link_type?: string;
  link?: string | null;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string };
  addr_info?: IpAddrInfo[];
}

/** IPv4 documentation ranges (RFC 5737): never routed, safe for a fake NIC. */
const DOCUMENTATION_NETS = ["192.0.2.", "198.51.100.", "203.0.113."];

function ipBinary(): string {
  for (const candidate of ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]) {
    if (existsSync(candidate)) return candidate;
  }
  return "ip";
}

function readLinks(): IpLink[] {
  let output: string;
  try {
    output = execFileSync(ipBinary(), ["-j", "-d", "addr", "show"], {
      encoding: "utf8",
      timeout: 10_000,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (error) {
    throw new Error(
      "Cannot inspect network interfaces: `ip -j -d addr show` failed. Install iproute2 " +
        "(bash scripts/setup.sh does).",
      { cause: error },
    );
  }
  const parsed: unknown = JSON.parse(output);
  if (!Array.isArray(parsed)) throw new Error("Unexpected output from `ip -j addr show`.");
  return parsed as IpLink[];
}

function currentNamespace(): string | null {
  try {
    return readlinkSync("/proc/self/ns/net");
  } catch {
    return null;
  }
}

function addressProblem(info: IpAddrInfo): string | null {
  const local = info.local ?? "";
  if (info.family === "inet") {
    return DOCUMENTATION_NETS.some((net) => local.startsWith(net))
      ? null
      : `IPv4 ${local} is not a documentation address`;
  }
  if (info.family === "inet6") {
    return info.scope === "link" ? null : `IPv6 ${local} is not link-local`;
  }
  return null;
}

/**
 * Lists the interfaces that are up in this process's network namespace and decides whether
 * the namespace is isolated: only loopback up, or loopback plus a sealed veth pair (both ends
 * here, documentation IPv4 addresses and link-local IPv6 only). Throws only when `ip` fails.
 */
export function inspectNetwork(): NetworkReport {
  return classifyLinks(readLinks(), currentNamespace());
}

/**
 * The decision behind {@link inspectNetwork}, on parsed `ip -j -d addr show` output
 * (exported for tests).
 */
export function classifyLinks(links: readonly IpLink[], namespace: string | null = null): NetworkReport {
  const byName = new Map(links.map((l) => [l.ifname ?? "", l]));
  const interfaces: UpInterface[] = [];
  let fakeNicAddress: string | null = null;

  for (const link of links) {
    if (!link.flags?.includes("UP")) continue;
    const name = link.ifname ?? "?";
    const addrs = link.addr_info ?? [];
    const addresses = addrs.map((a) => `${a.local ?? "?"}/${a.prefixlen ?? "?"}`);
    let kind: InterfaceKind = "other";
    let problem: string | null = null;

    if (link.link_type === "loopback") {
      kind = "loopback";
    } else {
      const peerName = typeof link.link === "string" ? link.link : null;
      const peer = peerName === null ? undefined : byName.get(peerName);
      const sealed =
        link.linkinfo?.info_kind === "veth" &&
        link.link_netnsid === undefined &&
        peer !== undefined &&
        peer.link === name &&
        peer.link_netnsid === undefined;
      if (sealed) {
        kind = "sealed-veth";
        problem = addrs.map(addressProblem).find((p) => p !== null) ?? null;
        const v4 = addrs.find((a) => a.family === "inet");
        if (problem === null && v4?.local !== undefined) fakeNicAddress = v4.local;
      } else {
        problem = `${link.linkinfo?.info_kind ?? link.link_type ?? "interface"} that may reach other hosts`;
      }
    }
    interfaces.push({ name, kind, addresses, problem });
  }

  return {
    namespace,
    interfaces,
    fakeNicAddress,
    isolated: interfaces.every((i) => i.problem === null),
  };
}

/**
 * Throws {@link NetworkNotIsolatedError} unless this process runs in an isolated network
 * namespace (see {@link inspectNetwork}); returns the report otherwise.
 */
export function assertIsolatedNetwork(): NetworkReport {
  const report = inspectNetwork();
  if (!report.isolated) throw new NetworkNotIsolatedError(report);
  return report;
}
