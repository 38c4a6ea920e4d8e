/** The werift transport: both roles on werift, the pure-JS WebRTC stack (the default). */
import type { OffererConfig, Transport } from "../types.js";
import { createWeriftAnswerer } from "./answerer.js";
import { createWeriftPeer, type WeriftPeer } from "./peer.js";

/** Maps the stack-neutral offerer options onto werift's. */
export function weriftOfferer(config: OffererConfig = {}): WeriftPeer {
  if (config.loopbackOnly) {
    return createWeriftPeer({
      ...(config.iceServers ? { iceServers: config.iceServers } : {}),
      ...(config.socketBufferBytes === undefined ? {} : { socketBufferBytes: config.socketBufferBytes }),
      werift: {
        iceUseIpv4: false,
        iceUseIpv6: false,
        iceAdditionalHostAddresses: ["127.0.0.1"],
        iceInterfaceAddresses: { udp4: "127.0.0.1" },
        ...(config.portRange ? { icePortRange: [config.portRange[0], config.portRange[1]] } : {}),
      },
    });
  }
  return createWeriftPeer({
    ...(config.iceServers ? { iceServers: config.iceServers } : {}),
    ...(config.socketBufferBytes === undefined ? {} : { socketBufferBytes: config.socketBufferBytes }),
    werift: {
      ...(config.includeLoopback === false ? { iceAdditionalHostAddresses: undefined } : {}),
      ...(config.portRange ? { icePortRange: [config.portRange[0], config.portRange[1]] } : {}),
    },
  });
}

/** werift behind the seam. */
export const weriftTransport: Transport = {
  name: "werift",
  createOfferer: weriftOfferer,
  createAnswerer: createWeriftAnswerer,
};
