/**
 * UDP socket buffer sizing for the server's werift peers.
 *
 * The server is the receiving side of an upload. werift's SCTP sends bursts of up to a whole
 * congestion window at once; with Linux's default 208 KiB receive buffer the kernel drops
 * thousands of datagrams per 256 MiB on loopback (`RcvbufErrors` in /proc/net/snmp) and every
 * loss costs an SCTP recovery. Larger buffers remove the drops (the kernel caps the value at
 * `net.core.rmem_max` / `wmem_max`). `@vidrtc/node` does the same on the client side.
 */
import type { RTCPeerConnection } from "werift";

/** Socket buffer size the server asks for (bytes). */
export const SERVER_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

type SizableSocket = { setRecvBufferSize(n: number): void; setSendBufferSize(n: number): void };

/**
 * Sets SO_RCVBUF/SO_SNDBUF on the UDP sockets werift opened for `pc` (they exist once gathering
 * has finished); returns how many were changed. Reaches into werift internals and does nothing
 * if their shape changes.
 */
export function enlargeSocketBuffers(pc: RTCPeerConnection, bytes = SERVER_SOCKET_BUFFER_BYTES): number {
  let changed = 0;
  for (const transport of pc.iceTransports) {
    const protocols = (transport.connection as unknown as { protocols?: unknown }).protocols;
    for (const protocol of Array.isArray(protocols) ? protocols : []) {
      const socket = (protocol as { transport?: { socket?: Partial<SizableSocket> } } | null)?.transport
        ?.socket;
      if (typeof socket?.setRecvBufferSize !== "function" || typeof socket.setSendBufferSize !== "function")
        continue;
      try {
        socket.setRecvBufferSize(bytes);
        socket.setSendBufferSize(bytes);
        changed++;
      } catch {
        // a closed socket: leave it
      }
    }
  }
  return changed;
}
