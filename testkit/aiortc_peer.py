"""A browser stand-in for callscope's WebRTC tests and benchmarks: aiortc (an independent
WebRTC stack) plays a WAV as its microphone and records what it receives.

Protocol on stdin/stdout, one JSON object per line:
  -> {"offer": "<sdp>", "offers": [...]}   once ICE gathering is complete (one per peer)
  <- {"answer": "<sdp>"} or {"answers": [...]}   read from stdin
  -> {"state": "<connection state>"}  on every change (with "peer": index when --peers > 1)
  -> {"stats": [...]}            with --stats: per peer, RTP counters just before closing
  -> {"done": true}              after the recordings are closed
Runs for --seconds after the answer, then stops (the test also kills it by PID).
"""
import argparse
import asyncio
import json
import sys
import threading
import time
import types

import aioice.ice
import aiortc.rtcrtpreceiver
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole, MediaPlayer, MediaRecorder
from aiortc.mediastreams import MediaStreamError

# aioice never offers loopback by itself; the tests run on 127.0.0.1 only.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--play", required=True)
    ap.add_argument("--record", required=True,
                    help="WAV to record peer 0 to; empty: nothing recorded (a black hole)")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--codec", default="", help="force one codec, e.g. PCMU")
    ap.add_argument("--peers", type=int, default=1, help="peers in this process (load tests)")
    ap.add_argument("--play-others", default="", help="what peers after the first play")
    ap.add_argument("--loop", action="store_true", help="play the file(s) in a loop")
    ap.add_argument("--passthrough", action="store_true",
                    help="send the file's Opus packets as they are (an .ogg of 20 ms frames), "
                         "no live encoding: many peers cost far less")
    ap.add_argument("--no-decode", action="store_true",
                    help="count and drop received audio undecoded (loss and jitter are still "
                         "measured on arrival): a load generator's saving, nothing is heard")
    ap.add_argument("--stats", action="store_true", help="print RTP counters per peer at the end")
    args = ap.parse_args()
    if args.no_decode:
        aiortc.rtcrtpreceiver.decoder_worker = drain_undecoded
        aiortc.rtcrtpreceiver.queue = types.SimpleNamespace(Queue=DiscardingQueue)
    peers = [await make_peer(args, i) for i in range(args.peers)]
    say({"offer": peers[0][0].localDescription.sdp,
         "offers": [pc.localDescription.sdp for pc, _ in peers]})
    line = await asyncio.get_event_loop().run_in_executor(None, sys.stdin.readline)
    msg = json.loads(line)
    answers = msg.get("answers") or [msg["answer"]]
    for (pc, _), answer in zip(peers, answers):
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    for _, recorder in peers:
        await recorder.start()
    await asyncio.sleep(args.seconds)
    if args.stats:
        clock = 8000 if args.codec.upper() in ("PCMU", "PCMA") else 48000
        say({"stats": [await rtp_counters(pc, clock) for pc, _ in peers]})
    for pc, recorder in peers:
        await recorder.stop()
        await pc.close()
    say({"done": True})


def drain_undecoded(loop, input_q, output_q, decode_error):
    """Stands in for aiortc's receiver decoder thread: takes frames and drops them."""
    while input_q.get() is not None:
        pass
    asyncio.run_coroutine_threadsafe(output_q.put(None), loop)


class DiscardingQueue:
    """Stands in for a receiver's decoder queue with --no-decode: a frame is dropped as it is
    put, with no lock taken and no thread woken per packet (with 50 peers those wake-ups were
    a fifth of the load generator's CPU, taken from the server under test); the None that
    stops the receiver ends the waiting get()."""

    def __init__(self):
        self._stopped = threading.Event()

    def put(self, item, *args, **kwargs):
        if item is None:
            self._stopped.set()

    def get(self, *args, **kwargs):
        self._stopped.wait()
        return None


class PacketTrack(MediaStreamTrack):
    """Sends a file's Opus packets as they are, paced by their timestamps: what
    MediaPlayer(decode=False) sends, without its demuxing thread per peer and the hand-over
    of every packet from that thread to the event loop."""

    kind = "audio"

    def __init__(self, packets):
        super().__init__()
        self._packets = packets
        self._next = 0
        self._start = None

    async def recv(self):
        if self.readyState != "live" or self._next >= len(self._packets):
            self.stop()
            raise MediaStreamError
        packet = self._packets[self._next]
        self._next += 1
        at = float(packet.pts * packet.time_base)
        if self._start is None:
            self._start = time.time() - at
        else:
            wait = self._start + at - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        return packet


_demuxed = {}


def demuxed_packets(path):
    """The audio packets of `path`, read once per process and shared by its peers (the
    sender only reads them). The container stays open: the packets' data is its."""
    if path not in _demuxed:
        container = av.open(path)
        stream = container.streams.audio[0]
        _demuxed[path] = (container, [p for p in container.demux(stream) if p.size])
    return _demuxed[path][1]


async def rtp_counters(pc, clock):
    """What this peer sent and received: aiortc's own RTP statistics."""
    out = {"packets_sent": 0, "packets_received": 0, "packets_lost": 0, "jitter_ms": 0.0}
    report = await pc.getStats()
    for stats in report.values():
        if stats.type == "outbound-rtp":
            out["packets_sent"] += stats.packetsSent
        elif stats.type == "inbound-rtp":
            out["packets_received"] += stats.packetsReceived
            out["packets_lost"] += stats.packetsLost
            # RTP timestamp units: 8 kHz for G.711, else Opus at 48 kHz.
            out["jitter_ms"] = max(out["jitter_ms"], stats.jitter / clock * 1000.0)
    return out


async def make_peer(args, index):
    pc = RTCPeerConnection()
    source = args.play_others if index > 0 and args.play_others else args.play
    if args.passthrough:
        # No loop here: the file must last the whole call.
        track = PacketTrack(demuxed_packets(source))
    else:
        track = MediaPlayer(source, loop=args.loop).audio
    if args.record:
        record = args.record if index == 0 else f"{args.record}.{index}.wav"
        recorder = MediaRecorder(record)
    else:
        recorder = MediaBlackhole()
    sender = pc.addTrack(track)
    if args.codec:
        from aiortc.rtcrtpsender import RTCRtpSender
        caps = RTCRtpSender.getCapabilities("audio")
        prefs = [c for c in caps.codecs if c.mimeType.lower() == "audio/" + args.codec.lower()]
        for t in pc.getTransceivers():
            if t.sender == sender:
                t.setCodecPreferences(prefs)

    @pc.on("track")
    def on_track(track):
        recorder.addTrack(track)

    @pc.on("connectionstatechange")
    async def on_state():
        if args.peers > 1:
            say({"state": pc.connectionState, "peer": index})
        else:
            say({"state": pc.connectionState})

    await pc.setLocalDescription(await pc.createOffer())
    return pc, recorder


asyncio.run(main())
