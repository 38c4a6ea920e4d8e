/**
 * A minimal STUN binding responder (RFC 5389 §7.3.1) on a loopback UDP port, for tests whose
 * clients want an ICE server they can reach without leaving the machine. It answers every
 * Binding Request with a Binding Success Response carrying the request's source as
 * XOR-MAPPED-ADDRESS, plus FINGERPRINT. Anything else is ignored. No authentication, no TURN.
 */
import { createSocket, type RemoteInfo } from "node:dgram";
import { isIPv4 } from "node:net";
import { crc32 } from "node:zlib";

const MAGIC_COOKIE = 0x2112a442;
const HEADER_BYTES = 20;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_FINGERPRINT = 0x8028;
const FINGERPRINT_XOR = 0x5354554e;

/** A running responder. */
export interface StunResponder {
  /** Bound UDP port on 127.0.0.1. */
  readonly port: number;
  /** `stun:127.0.0.1:<port>`, for an `RTCIceServer`'s `urls`. */
  readonly url: string;
  /** Binding requests answered so far. */
  readonly requests: number;
  /** Stops listening. Idempotent. */
  close(): Promise<void>;
}

/**
 * Builds the Binding Success Response to `request` (a Binding Request received from `from`),
 * or returns null when `request` is not an RFC 5389 Binding Request. IPv4 sources only.
 */
export function bindingResponse(request: Uint8Array, from: { address: string; port: number }): Buffer | null {
  const req = Buffer.from(request.buffer, request.byteOffset, request.byteLength);
  if (req.length < HEADER_BYTES || (req[0]! & 0xc0) !== 0) return null;
  if (req.readUInt16BE(0) !== BINDING_REQUEST || req.readUInt32BE(4) !== MAGIC_COOKIE) return null;
  if (req.readUInt16BE(2) !== req.length - HEADER_BYTES || !isIPv4(from.address)) return null;

  const xorAddress = Buffer.alloc(12); // attribute header (4) + reserved, family, port, address (8)
  xorAddress.writeUInt16BE(ATTR_XOR_MAPPED_ADDRESS, 0);
  xorAddress.writeUInt16BE(8, 2);
  xorAddress.writeUInt8(0x01, 5); // IPv4
  xorAddress.writeUInt16BE(from.port ^ (MAGIC_COOKIE >>> 16), 6);
  const ip = from.address.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
  xorAddress.writeUInt32BE((ip ^ MAGIC_COOKIE) >>> 0, 8);

  const fingerprint = Buffer.alloc(8);
  fingerprint.writeUInt16BE(ATTR_FINGERPRINT, 0);
  fingerprint.writeUInt16BE(4, 2);

  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(BINDING_SUCCESS, 0);
  header.writeUInt16BE(xorAddress.length + fingerprint.length, 2); // length counts the fingerprint
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  req.copy(header, 8, 8, HEADER_BYTES); // transaction id
  const body = Buffer.concat([header, xorAddress]);
  fingerprint.writeUInt32BE((crc32(body) ^ FINGERPRINT_XOR) >>> 0, 4);
  return Buffer.concat([body, fingerprint]);
}

/** Starts a responder on 127.0.0.1 (an ephemeral port unless `port` is given). */
export function startStunResponder(port = 0): Promise<StunResponder> {
  const socket = createSocket("udp4");
  let requests = 0;
  socket.on("message", (msg: Buffer, from: RemoteInfo) => {
    const reply = bindingResponse(msg, from);
    if (!reply) return;
    requests++;
    socket.send(reply, from.port, from.address);
  });
  let closing: Promise<void> | undefined;
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(port, "127.0.0.1", () => {
      socket.off("error", reject);
      socket.on("error", () => {}); // a send to a vanished client must not crash the test run
      const bound = socket.address().port;
      resolve({
        port: bound,
        url: `stun:127.0.0.1:${bound}`,
        get requests() {
          return requests;
        },
        close: () => {
          closing ??= new Promise<void>((done) => socket.close(() => done()));
          return closing;
        },
      });
    });
  });
}
