#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Live generation to a browser over WebRTC: webrtcbin sends VP8 + Opus, and
a minimal signalling server (Python standard library, HTTP on loopback)
serves the player page (webrtc-player.html) and swaps one offer and one
answer with it. ICE is not trickled: each side sends its SDP once it has
gathered its candidates, so two plain HTTP requests are the whole exchange.

  live-to-webrtc.py [--port 8080] [--clips N] [PROMPT]
  then open http://127.0.0.1:8080/ (one viewer per run)

Needs python3-gi, gir1.2-gst-plugins-bad-1.0 and gstreamer1.0-nice. The
Sender class is also what tests/gst/test-webrtc.py drives against a second
webrtcbin.
"""
import argparse
import http.server
import os
import queue
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "webrtc-player.html")


def sender_description(prompt, clips, denoise="", model_dir=""):
    """generation, VP8/Opus RTP, into a webrtcbin named `send`"""
    common = f' model-dir="{model_dir}"' if model_dir else ""
    src = (f'ovitextsrc is-live=true num-clips={clips} prompt="{prompt}"'
           f"{common}")
    return (
        f"{src} ! ovidenoise {denoise}{common} ! tee name=t "
        "webrtcbin name=send bundle-policy=max-bundle "
        f"t. ! queue ! ovivaedec name=vdec{common} ! videoconvert "
        "! video/x-raw,format=I420 "
        "! vp8enc deadline=1 keyframe-max-dist=24 ! rtpvp8pay pt=96 "
        "! application/x-rtp,media=video,encoding-name=VP8,payload=96 "
        "! send. "
        f"t. ! queue ! oviaudiodec name=adec{common} ! audioconvert "
        "! audioresample ! audio/x-raw,rate=48000 ! opusenc ! rtpopuspay pt=97"
        " ! application/x-rtp,media=audio,encoding-name=OPUS,payload=97 "
        "! send. ")


def wait_gathered(webrtc, done):
    """calls done() once webrtc has gathered its ICE candidates"""
    def on_state(element, _pspec):
        if (element.get_property("ice-gathering-state") ==
                GstWebRTC.WebRTCICEGatheringState.COMPLETE):
            done()
    if (webrtc.get_property("ice-gathering-state") ==
            GstWebRTC.WebRTCICEGatheringState.COMPLETE):
        done()
    else:
        webrtc.connect("notify::ice-gathering-state", on_state)


def set_description(webrtc, kind, sdp_text, then=None):
    """set-remote/local-description from SDP text; then() when applied"""
    _res, msg = GstSdp.SDPMessage.new_from_text(sdp_text)
    typ = (GstWebRTC.WebRTCSDPType.OFFER if kind == "offer"
           else GstWebRTC.WebRTCSDPType.ANSWER)
    desc = GstWebRTC.WebRTCSessionDescription.new(typ, msg)
    promise = Gst.Promise.new_with_change_func(
        lambda _p: then() if then else None)
    webrtc.emit("set-remote-description", desc, promise)


def local_sdp(webrtc):
    return webrtc.get_property("local-description").sdp.as_text()


class Sender:
    """the sending pipeline; offer() starts it and hands back the full SDP
    offer (candidates included), answer(sdp) completes the session"""

    def __init__(self, description):
        self.pipeline = Gst.parse_launch(description)
        self.webrtc = self.pipeline.get_by_name("send")
        self.offers = queue.Queue()

    def _on_offer(self, promise):
        reply = promise.get_reply()
        if reply is None or not reply.has_field("offer"):
            print(f"webrtcbin made no offer: {reply and reply.to_string()}",
                  file=sys.stderr, flush=True)
            return
        # the reply owns the description: keep it alive past the emit
        offer = reply.get_value("offer")
        self.webrtc.emit("set-local-description", offer, None)
        wait_gathered(self.webrtc,
                      lambda: self.offers.put(local_sdp(self.webrtc)))

    def _on_negotiation_needed(self, _element):
        promise = Gst.Promise.new_with_change_func(self._on_offer)
        self.webrtc.emit("create-offer", None, promise)

    def offer(self, timeout=60):
        self.webrtc.connect("on-negotiation-needed",
                            self._on_negotiation_needed)
        self.pipeline.set_state(Gst.State.PLAYING)
        return self.offers.get(timeout=timeout)

    def answer(self, sdp_text):
        set_description(self.webrtc, "answer", sdp_text)

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


class Signalling(http.server.BaseHTTPRequestHandler):
    """GET / the page, GET /offer the sender's offer, POST /answer"""
    sender = None

    def _reply(self, code, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/":
            with open(PAGE) as f:
                self._reply(200, f.read(), "text/html")
        elif self.path == "/offer":
            self._reply(200, self.sender.offer(), "application/sdp")
        else:
            self._reply(404, f"no such path: {self.path}\n")

    def do_POST(self):
        if self.path != "/answer":
            self._reply(404, f"no such path: {self.path}\n")
            return
        length = int(self.headers.get("Content-Length", 0))
        self.sender.answer(self.rfile.read(length).decode())
        self._reply(200, "ok\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--clips", type=int, default=100,
                    help="clips to generate (the prompt repeated)")
    ap.add_argument("prompt", nargs="?", default="A drone flies over a "
                    "mountain lake at sunrise. <AUDCAP>wind<ENDAUDCAP>")
    args = ap.parse_args()
    Gst.init(None)
    Signalling.sender = Sender(sender_description(
        args.prompt, args.clips, os.environ.get("OVI_DENOISE", ""),
        os.environ.get("OVI_MODEL_DIR", "")))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port),
                                             Signalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"open http://127.0.0.1:{args.port}/", flush=True)
    try:
        GLib.MainLoop().run()
    except KeyboardInterrupt:
        pass
    Signalling.sender.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
