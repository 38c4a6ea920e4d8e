/** The node-datachannel transport: both roles on libdatachannel (native, optional dependency). */
import type { Transport } from "../types.js";
import { createNdcAnswerer, createNdcOfferer, nativeLibraryVersion } from "./peer.js";

/** Throws unless the native binary loads. */
export async function assertNodeDataChannelLoads(): Promise<void> {
  nativeLibraryVersion();
}

/** node-datachannel behind the seam. */
export const nodeDataChannelTransport: Transport = {
  name: "node-datachannel",
  createOfferer: createNdcOfferer,
  createAnswerer: createNdcAnswerer,
};
