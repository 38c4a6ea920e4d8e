/**
 * Guard for WebRTC tests: they must run in a network namespace where nothing can leave the
 * machine, e.g. `unshare -n sh -c 'ip link set lo up; npx vitest run'`.
 */
import { networkInterfaces } from "node:os";

/** Addresses of the sealed fake NIC that `netns-run --nic 192.0.2.x/24` may add (TEST-NET-1). */
const FAKE_NIC_PREFIX = "192.0.2.";

/**
 * Lists the non-loopback addresses this process could use to reach a network. Allowed: loopback,
 * and the sealed fake NIC of `netns-run --nic` (a 192.0.2.x/24 address, plus IPv6 link-local
 * addresses on its veth pair).
 */
export function exposedAddresses(): string[] {
  const exposed: string[] = [];
  const interfaces = Object.entries(networkInterfaces());
  // With the fake NIC, both veth ends (vnic0 and vnic0peer) also get IPv6 link-local addresses.
  const fakeNic = interfaces.some(([, infos]) =>
    (infos ?? []).some((i) => i.family === "IPv4" && i.address.startsWith(FAKE_NIC_PREFIX)),
  );
  for (const [name, infos] of interfaces) {
    const list = infos ?? [];
    for (const info of list) {
      if (info.internal) continue;
      if (info.family === "IPv4" && info.address.startsWith(FAKE_NIC_PREFIX)) continue;
      if (fakeNic && info.family === "IPv6" && info.address.toLowerCase().startsWith("fe80:")) continue;
      exposed.push(`${name} ${info.address}`);
    }
  }
  return exposed;
}

/**
 * Throws unless the process is in an isolated network namespace (see {@link exposedAddresses}).
 * Call it in `beforeAll` of every test file that starts werift.
 */
export function assertIsolatedNetwork(): void {
  const exposed = exposedAddresses();
  if (exposed.length > 0) {
    throw new Error(
      "WebRTC tests must run in an isolated network namespace so that no packet can leave the " +
        `machine, but these interfaces are reachable: ${exposed.join(", ")}. Run them with ` +
        `\`unshare -n sh -c 'ip link set lo up; cd packages/node && npx vitest run src/'\`.`,
    );
  }
}
