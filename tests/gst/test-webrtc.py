#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""WebRTC from a live tiny generation, two webrtcbin in one process: the
sender of examples/pipelines/live-to-webrtc.py (VP8 + Opus) offers, a
receiving webrtcbin answers, ICE pairs host candidates of this machine
(libnice leaves loopback out when another interface is up), and the
receiver decodes what arrives. Passes
when at least 3 s of video (72 frames of 96x64) and 3 s of audio have been
decoded on the receiving side. Skips (77) without python3-gi, the
GstWebRTC typelib or gstreamer1.0-nice.

Usage: test-webrtc.py SOURCE_ROOT  (the GStreamer env comes from meson)
"""
import os
import sys
import threading

try:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstWebRTC", "1.0")
    gi.require_version("GstSdp", "1.0")
    from gi.repository import GLib, Gst, GstWebRTC  # noqa: F401
except (ImportError, ValueError) as e:
    print(f"SKIP: python3-gi / gir1.2-gst-plugins-bad-1.0: {e}")
    sys.exit(77)

sys.path.insert(0, os.path.join(sys.argv[1], "examples", "pipelines"))
webrtc_example = __import__("live-to-webrtc")

NEED_S = 3.0
FPS = 24
# 7.5 s of stream: generation starts with the sender's pipeline, before
# the answer, and what is sent before DTLS completes (and the video up to
# the next key frame) does not reach the decoders: a margin over the 3 s
CLIPS = int(os.environ.get("OVI_WEBRTC_CLIPS", "20"))
TIMEOUT_S = int(os.environ.get("OVI_WEBRTC_TIMEOUT", "240"))


class Decoded:
    """decoded buffers of one kind on the receiving side: how many and how
    long they last together (vp8dec leaves video durations unset: a frame
    lasts 1/24 s). Not the span of their timestamps: a live clip that comes
    late leaves a gap in time, not media."""

    def __init__(self):
        self.frames, self.ns, self.caps = 0, 0, None

    def probe(self, pad, info):
        dur = info.get_buffer().duration
        self.ns += Gst.SECOND // FPS if dur == Gst.CLOCK_TIME_NONE else dur
        self.frames += 1
        self.caps = pad.get_current_caps()
        return Gst.PadProbeReturn.OK


class Receiver:
    def __init__(self):
        self.pipeline = Gst.Pipeline.new("receiver")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "recv")
        self.webrtc.set_property("bundle-policy", "max-bundle")
        self.pipeline.add(self.webrtc)
        self.webrtc.connect("pad-added", self._on_pad)
        self.video, self.audio = Decoded(), Decoded()
        self.pipeline.set_state(Gst.State.PLAYING)

    def _on_pad(self, _webrtc, pad):
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        dec = Gst.ElementFactory.make("decodebin")
        dec.connect("pad-added", self._on_decoded)
        self.pipeline.add(dec)
        dec.sync_state_with_parent()
        pad.link(dec.get_static_pad("sink"))

    def _on_decoded(self, _dec, pad):
        kind = pad.get_current_caps().get_structure(0).get_name()
        video = kind.startswith("video/")
        chain = Gst.parse_bin_from_description(
            ("videoconvert ! video/x-raw,format=I420" if video else
             "audioconvert ! audio/x-raw,format=S16LE") +
            " ! fakesink name=out sync=false", True)
        self.pipeline.add(chain)
        chain.sync_state_with_parent()
        pad.link(chain.get_static_pad("sink"))
        counter = self.video if video else self.audio
        chain.get_by_name("out").get_static_pad("sink").add_probe(
            Gst.PadProbeType.BUFFER, counter.probe)

    def answer(self, offer_sdp, timeout=60):
        """the full answer SDP (candidates included) to offer_sdp"""
        answers = []
        ready = threading.Event()

        def on_answer(promise):
            # the reply owns the description: keep it alive past the emit
            reply = promise.get_reply()
            answer = reply.get_value("answer")
            self.webrtc.emit("set-local-description", answer, None)
            webrtc_example.wait_gathered(self.webrtc, lambda: (
                answers.append(webrtc_example.local_sdp(self.webrtc)),
                ready.set()))

        def create_answer():
            self.webrtc.emit("create-answer", None,
                             Gst.Promise.new_with_change_func(on_answer))

        webrtc_example.set_description(self.webrtc, "offer", offer_sdp,
                                       create_answer)
        ready.wait(timeout)
        return answers[0] if answers else None

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


def main():
    Gst.init(None)
    for factory in ("webrtcbin", "nicesrc", "vp8enc", "opusenc"):
        if Gst.ElementFactory.find(factory) is None:
            print(f"SKIP: no {factory} (gstreamer1.0-nice, plugins-bad/good)")
            return 77
    sender = webrtc_example.Sender(webrtc_example.sender_description(
        "A lighthouse at night. <AUDCAP>waves<ENDAUDCAP>", CLIPS,
        "steps=1"))
    receiver = Receiver()
    failures = []

    def check(cond, what):
        print(("ok: " if cond else "FAIL: ") + what, flush=True)
        if not cond:
            failures.append(what)

    loop = GLib.MainLoop()
    errors = []

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            errors.append(f"{msg.src.get_name()}: {err.message} ({dbg})")
            loop.quit()
        return True

    def enough():
        if (receiver.video.ns >= NEED_S * Gst.SECOND and
                receiver.audio.ns >= NEED_S * Gst.SECOND):
            loop.quit()
            return False
        return True

    for p in (sender.pipeline, receiver.pipeline):
        p.get_bus().add_signal_watch()
        p.get_bus().connect("message", on_message)
    try:
        offer = sender.offer()
        check("m=video" in offer and "m=audio" in offer and
              "a=candidate" in offer, "the offer has video, audio and "
              "ICE candidates")
        answer = receiver.answer(offer)
        check(answer is not None and "a=candidate" in answer,
              "the receiver answers with ICE candidates")
        if answer:
            sender.answer(answer)
            GLib.timeout_add(100, enough)
            GLib.timeout_add_seconds(TIMEOUT_S, loop.quit)
            loop.run()
    finally:
        sender.stop()
        receiver.stop()
    check(not errors, f"no pipeline error ({errors})")
    v, a = receiver.video, receiver.audio
    check(v.ns >= NEED_S * Gst.SECOND and v.frames >= NEED_S * FPS,
          f"decoded video: {v.frames} frames, {v.ns / Gst.SECOND:.2f} s "
          f">= {NEED_S} s")
    if v.caps is not None:
        s = v.caps.get_structure(0)
        check((s.get_int("width")[1], s.get_int("height")[1]) == (96, 64),
              f"decoded video is 96x64 ({v.caps.to_string()})")
    check(a.ns >= NEED_S * Gst.SECOND,
          f"decoded audio: {a.ns / Gst.SECOND:.2f} s >= {NEED_S} s")
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
