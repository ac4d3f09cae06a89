"""A browser stand-in for callscope's WebRTC tests: aiortc (an independent WebRTC stack)
plays a WAV as its microphone and records what it receives.

Protocol on stdin/stdout, one JSON object per line:
  -> {"offer": "<sdp>", "offers": [...]}   once ICE gathering is complete (one per peer)
  <- {"answer": "<sdp>"} or {"answers": [...]}   read from stdin
  -> {"state": "<connection state>"}  on every change
  -> {"done": true}              after the recording is closed
Runs for --seconds after the answer, then stops (the test also kills it by PID).
"""
import argparse
import asyncio
import json
import sys

import aioice.ice
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer, MediaRecorder

# aioice never offers loopback by itself; the tests run on 127.0.0.1 only.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--play", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--codec", default="", help="force one codec, e.g. PCMU")
    ap.add_argument("--peers", type=int, default=1, help="peers in this process (load tests)")
    ap.add_argument("--play-others", default="", help="what peers after the first play")
    args = ap.parse_args()
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
    for pc, recorder in peers:
        await recorder.stop()
        await pc.close()
    say({"done": True})


async def make_peer(args, index):
    record = args.record if index == 0 else f"{args.record}.{index}.wav"

    pc = RTCPeerConnection()
    player = MediaPlayer(args.play_others if index > 0 and args.play_others else args.play)
    recorder = MediaRecorder(record)
    sender = pc.addTrack(player.audio)
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
        say({"state": pc.connectionState})

    await pc.setLocalDescription(await pc.createOffer())
    return pc, recorder


asyncio.run(main())
