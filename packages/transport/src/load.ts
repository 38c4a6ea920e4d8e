/** Selecting a transport by name; node-datachannel is loaded only when asked for. */
import { VidrtcError } from "@vidrtc/protocol";
import { TRANSPORT_NAMES, type Transport, type TransportName } from "./types.js";
import { weriftTransport } from "./werift/index.js";

let nodeDataChannel: Promise<Transport> | null = null;

/**
 * Returns the transport called `name`. werift is always there; node-datachannel is imported on
 * first use and fails with `TRANSPORT_UNAVAILABLE` (naming the npm package to install) when the
 * package or its native binary cannot be loaded. Unknown names fail with `INVALID_OPTIONS`.
 */
export async function loadTransport(name: TransportName = "werift"): Promise<Transport> {
  if (name === "werift") return weriftTransport;
  if (name === "node-datachannel") {
    nodeDataChannel ??= import("./node-datachannel/index.js").then(
      async (module) => {
        await module.assertNodeDataChannelLoads();
        return module.nodeDataChannelTransport;
      },
      (error: unknown) => {
        throw unavailable(error);
      },
    );
    nodeDataChannel.catch(() => {
      nodeDataChannel = null;
    });
    return nodeDataChannel;
  }
  throw new VidrtcError(
    "INVALID_OPTIONS",
    `Unknown transport "${String(name)}": use one of ${TRANSPORT_NAMES.map((n) => `"${n}"`).join(", ")}.`,
  );
}

/** The error for a node-datachannel that cannot be loaded. */
export function unavailable(error: unknown): VidrtcError {
  if (VidrtcError.isInstance(error)) return error;
  return new VidrtcError(
    "TRANSPORT_UNAVAILABLE",
    `The node-datachannel transport cannot be loaded (${error instanceof Error ? error.message : String(error)}). ` +
      'Install it with "npm install node-datachannel@0.33" (it ships prebuilt binaries for Linux, macOS and ' +
      'Windows), or use transport "werift".',
    { cause: error, details: { package: "node-datachannel" } },
  );
}
