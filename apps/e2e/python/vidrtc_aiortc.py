#!/usr/bin/env python3
"""aiortc test peers for vidrtc interop (test tools of this repository).

Two modes, both print one JSON line on stdout at the end (logs go to stderr):

  upload --url URL --file PATH [--workflow frame-stats] [--timeout S]
      An offering aiortc peer framed like Roboflow's Python SDK: channels `inference` then
      `video_upload`, 48 KiB chunks with the 8-byte header (chunk_index, total_chunks, u32 LE),
      pause while bufferedAmount is above 256 KiB (polled every 10 ms), results reassembled from
      the 12-byte framing (frame_id, chunk_index, total_chunks) and gunzipped when they start
      with 1f 8b, a cumulative {"ack": n} after each frame, done on processing_complete.

  receive --port PORT [--ffprobe ffprobe] [--max-sessions N]
      An answering aiortc peer speaking the server's side of the upload protocol on
      POST /initialise_webrtc_worker (127.0.0.1:PORT): echoes 0/1-byte keepalives, reassembles the
      chunks, hashes the file (SHA-256), counts its frames with ffprobe and sends one result per
      frame ({"sha256", "bytes"} as serialized_output_data) and then processing_complete.
      Runs until SIGTERM/SIGINT; prints one JSON line per finished upload.

aiortc ignores loopback-only hosts: run inside a namespace with a sealed fake NIC.
"""

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import resource
import signal
import struct
import sys
import time
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription

CHUNK = 48 * 1024
BUFFER_LIMIT = 256 * 1024
POLL_S = 0.01
UPLOAD_HEADER = struct.Struct("<II")
RESULT_HEADER = struct.Struct("<III")


def log(*parts):
    print("[aiortc]", *parts, file=sys.stderr, flush=True)


def cpu_ms():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1000.0


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def decode_payload(payload: bytes):
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    return json.loads(payload.decode("utf-8"))


class Reassembler:
    """Joins 12-byte-framed result chunks per frame_id (chunks of frames may interleave)."""

    def __init__(self):
        self.parts = {}

    def push(self, message: bytes):
        if len(message) < RESULT_HEADER.size:
            raise ValueError(f"result message of {len(message)} bytes is shorter than its header")
        frame_id, index, total = RESULT_HEADER.unpack_from(message)
        if total == 0 or index >= total:
            raise ValueError(f"bad result header: chunk {index} of {total}")
        slot = self.parts.setdefault(frame_id, [None] * total)
        slot[index] = message[RESULT_HEADER.size :]
        if all(p is not None for p in slot):
            del self.parts[frame_id]
            return frame_id, b"".join(slot)
        return None


async def upload(args):
    size = os.path.getsize(args.file)
    if size == 0:
        raise SystemExit("refusing an empty file")
    total = (size + CHUNK - 1) // CHUNK
    pc = RTCPeerConnection()
    inference = pc.createDataChannel("inference", ordered=True)
    video = pc.createDataChannel("video_upload", ordered=True)
    done = asyncio.get_running_loop().create_future()
    opened = asyncio.Event()
    results = []
    frame_ids = []
    gzipped = [0]
    reasm = Reassembler()
    state = {"failed": None}

    @pc.on("connectionstatechange")
    def _state():
        log("connection", pc.connectionState)
        if pc.connectionState == "failed" and not done.done():
            done.set_exception(RuntimeError("peer connection failed"))

    @video.on("open")
    def _open():
        opened.set()

    @inference.on("message")
    def _message(message):
        if isinstance(message, str):
            return
        got = reasm.push(message)
        if got is None:
            return
        frame_id, payload = got
        if payload[:2] == b"\x1f\x8b":
            gzipped[0] += 1
        out = decode_payload(payload)
        if out.get("processing_complete"):
            if not done.done():
                done.set_result(out)
            return
        results.append(out)
        frame_ids.append(frame_id)
        inference.send(json.dumps({"ack": frame_id}))

    t_offer = time.monotonic()  # like stream(): offer creation and gathering count as setup
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers completely here
    body = {
        "workflow_configuration": {
            "type": "WorkflowConfiguration",
            "workflow_id": args.workflow,
            "workspace_name": "local",
            "image_input_name": "image",
        },
        "webrtc_offer": {"type": "offer", "sdp": pc.localDescription.sdp},
        "webrtc_realtime_processing": False,
        "stream_output": [],
        "data_output": ["*"],
    }
    t_setup = time.monotonic()
    req = urllib.request.Request(
        args.url.rstrip("/") + "/initialise_webrtc_worker",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    loop = asyncio.get_running_loop()
    try:
        resp = await loop.run_in_executor(None, lambda: urllib.request.urlopen(req, timeout=30))
    except urllib.error.HTTPError as e:
        print(json.dumps({"mode": "upload", "ok": False, "status": e.code}), flush=True)
        await pc.close()
        return 3
    answer = json.loads(resp.read())
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    await asyncio.wait_for(opened.wait(), 30)
    first_chunk_s = None
    setup_s = None
    cpu0, t0, rss0 = cpu_ms(), time.monotonic(), rss_mib()
    rss_peak = [rss0]

    async def _sample_rss():
        while True:
            rss_peak[0] = max(rss_peak[0], rss_mib())
            await asyncio.sleep(0.05)

    sampler = asyncio.ensure_future(_sample_rss())
    with open(args.file, "rb") as f:
        for index in range(total):
            while video.bufferedAmount > BUFFER_LIMIT:
                if done.done():
                    break
                await asyncio.sleep(POLL_S)
            video.send(UPLOAD_HEADER.pack(index, total) + f.read(CHUNK))
            if first_chunk_s is None:
                first_chunk_s = time.monotonic() - t_setup
                setup_s = time.monotonic() - t_offer
    while video.bufferedAmount > 0 and not done.done():
        await asyncio.sleep(POLL_S)
    sent_s = time.monotonic() - t0
    send_cpu = cpu_ms() - cpu0
    sampler.cancel()
    rss_peak[0] = max(rss_peak[0], rss_mib())
    complete = await asyncio.wait_for(done, args.timeout)
    await pc.close()
    mib = size / (1024 * 1024)
    print(
        json.dumps(
            {
                "mode": "upload",
                "ok": True,
                "bytes": size,
                "chunks": total,
                "results": len(results),
                "frameIds": frame_ids[:3] + frame_ids[-3:],
                "inOrder": frame_ids == list(range(1, len(frame_ids) + 1)),
                "gzipped": gzipped[0],
                "completeFrameId": (complete.get("video_metadata") or {}).get("frame_id"),
                "terminationReason": complete.get("termination_reason"),
                "errors": sum(len(r.get("errors") or []) for r in results) + len(complete.get("errors") or []),
                "firstChunkSeconds": first_chunk_s,
                "setupSeconds": setup_s,
                "uploadSeconds": sent_s,
                "mibPerSecond": mib / sent_s if sent_s > 0 else None,
                "cpuMsPerMiB": send_cpu / mib,
                "rssGrowthMiB": rss_mib() - rss0,
                "rssPeakGrowthMiB": rss_peak[0] - rss0,
                "firstResult": results[0] if results else None,
            }
        ),
        flush=True,
    )
    return 0


# ---------------------------------------------------------------- receiver


class UploadSession:
    """The server's side of one upload, on an answering aiortc peer."""

    def __init__(self, receiver, pc):
        self.receiver = receiver
        self.pc = pc
        self.total = None
        self.next_index = 0
        self.hash = hashlib.sha256()
        self.bytes = 0
        self.result_channel = None
        self.path = os.path.join(receiver.tmp, f"upload-{id(self)}.bin")
        self.file = open(self.path, "wb")
        self.error = None
        self.keepalives = 0
        self.acks = []
        self.cpu0 = cpu_ms()
        self.t0 = None
        self.finished = False

    def on_channel(self, channel):
        if channel.label == "video_upload":
            channel.on("message", lambda m: self.on_chunk(channel, m))
        else:
            self.result_channel = channel
            channel.on("message", self.on_control)

    def on_control(self, message):
        if isinstance(message, str):
            try:
                value = json.loads(message)
            except ValueError:
                return
            if isinstance(value, dict) and isinstance(value.get("ack"), int):
                self.acks.append(value["ack"])

    def fail(self, reason):
        if self.error is None:
            self.error = reason
            log("upload refused:", reason)
            asyncio.ensure_future(self.finish())

    def on_chunk(self, channel, message):
        if self.finished:
            return
        if isinstance(message, str):
            return self.fail("text message on video_upload")
        if len(message) <= 1:
            self.keepalives += 1
            channel.send(message)
            return
        if len(message) < UPLOAD_HEADER.size:
            return self.fail(f"{len(message)}-byte message on video_upload")
        if self.t0 is None:
            self.t0 = time.monotonic()
        index, total = UPLOAD_HEADER.unpack_from(message)
        if self.total is None:
            self.total = total
        if total != self.total or index != self.next_index:
            return self.fail(f"chunk {index}/{total}, expected {self.next_index}/{self.total}")
        payload = message[UPLOAD_HEADER.size :]
        self.hash.update(payload)
        self.bytes += len(payload)
        self.file.write(payload)
        self.next_index += 1
        if self.next_index == self.total:
            asyncio.ensure_future(self.finish())

    def send_result(self, frame_id, obj):
        data = json.dumps(obj).encode()
        chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
        for i, c in enumerate(chunks):
            self.result_channel.send(RESULT_HEADER.pack(frame_id, i, len(chunks)) + c)

    async def finish(self):
        if self.finished:
            return
        self.finished = True
        upload_s = time.monotonic() - self.t0 if self.t0 else 0.0
        cpu = cpu_ms() - self.cpu0
        self.file.close()
        digest = self.hash.hexdigest()
        frames = 0
        if self.error is None:
            frames = await self.receiver.count_frames(self.path)
        os.unlink(self.path)
        errors = [self.error] if self.error else []
        for _ in range(200):
            if self.result_channel is not None and self.result_channel.readyState == "open":
                break
            await asyncio.sleep(0.05)
        if self.result_channel is not None:
            for n in range(1, frames + 1):
                self.send_result(
                    n,
                    {
                        "serialized_output_data": {"sha256": digest, "bytes": self.bytes},
                        "video_metadata": {"frame_id": n},
                        "errors": [],
                        "processing_complete": False,
                        "termination_reason": None,
                    },
                )
            self.send_result(
                frames + 1,
                {
                    "serialized_output_data": None,
                    "video_metadata": {"frame_id": frames},
                    "errors": errors,
                    "processing_complete": True,
                    "termination_reason": "upload_error" if errors else None,
                },
            )
        mib = self.bytes / (1024 * 1024)
        print(
            json.dumps(
                {
                    "mode": "receive",
                    "ok": self.error is None,
                    "error": self.error,
                    "bytes": self.bytes,
                    "chunks": self.next_index,
                    "sha256": digest,
                    "frames": frames,
                    "keepalives": self.keepalives,
                    "acks": len(self.acks),
                    "uploadSeconds": upload_s,
                    "mibPerSecond": mib / upload_s if upload_s > 0 else None,
                    "cpuPercent": 100.0 * cpu / (upload_s * 1000.0) if upload_s > 0 else None,
                    "cpuMsPerMiB": cpu / mib if mib > 0 else None,
                }
            ),
            flush=True,
        )
        # The client closes the peer connection (as against Roboflow's server); bound it anyway.
        asyncio.get_running_loop().call_later(60, lambda: asyncio.ensure_future(self.pc.close()))


class Receiver:
    def __init__(self, args):
        self.args = args
        self.tmp = args.temp_dir or os.environ.get("TMPDIR", "/tmp")
        self.peers = set()

    async def count_frames(self, path):
        proc = await asyncio.create_subprocess_exec(
            self.args.ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        try:
            return int(out.decode().strip().split(",")[0])
        except ValueError:
            return 0

    async def answer(self, offer_sdp):
        pc = RTCPeerConnection()
        self.peers.add(pc)
        session = UploadSession(self, pc)
        pc.on("datachannel", session.on_channel)

        @pc.on("connectionstatechange")
        async def _state():
            if pc.connectionState in ("failed", "closed"):
                self.peers.discard(pc)
                if pc.connectionState == "failed":
                    await pc.close()

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    async def handle(self, reader, writer):
        status, payload = 500, {"message": "Internal error."}
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
            length = int(headers.get("content-length", "0"))
            if length > 4 * 1024 * 1024:
                status, payload = 413, {"message": "body too large"}
            else:
                body = await asyncio.wait_for(reader.readexactly(length), 10)
                if method != "POST" or path != "/initialise_webrtc_worker":
                    status, payload = 404, {"message": "not found"}
                elif len(self.peers) >= self.args.max_sessions:
                    status, payload = 429, {"message": "too many sessions"}
                else:
                    request = json.loads(body)
                    sdp = await self.answer(request["webrtc_offer"]["sdp"])
                    status = 200
                    payload = {
                        "status": "success",
                        "context": {"request_id": None, "pipeline_id": None},
                        "sdp": sdp,
                        "type": "answer",
                    }
        except Exception as e:  # noqa: BLE001 - any bad request is a 400 with a reason
            status, payload = 400, {"message": f"{type(e).__name__}: {e}"}
        data = json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Too Large", 429: "Too Many"}
        writer.write(
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\nconnection: close\r\n\r\n".encode() + data
        )
        await writer.drain()
        writer.close()

    async def run(self):
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.args.port)
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"mode": "receive", "listening": f"http://127.0.0.1:{port}"}), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()
        for pc in list(self.peers):
            await pc.close()
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    up = sub.add_parser("upload")
    up.add_argument("--url", required=True)
    up.add_argument("--file", required=True)
    up.add_argument("--workflow", default="frame-stats")
    up.add_argument("--timeout", type=float, default=600)
    rc = sub.add_parser("receive")
    rc.add_argument("--port", type=int, default=0)
    rc.add_argument("--ffprobe", default="ffprobe")
    rc.add_argument("--max-sessions", type=int, default=8)
    rc.add_argument("--temp-dir", default=None)
    args = p.parse_args()
    if args.mode == "upload":
        return asyncio.run(upload(args))
    return asyncio.run(Receiver(args).run())


if __name__ == "__main__":
    sys.exit(main())
