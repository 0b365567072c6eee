#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Continuous live clips with the tiny model on the CPU (issue 17, item 3;
docs/elements.md, "Continuous clips").

continuation: ovitextsrc is-live=true, 3 clips, ovidenoise
    continuation=last-frame: the conditioning image of each clip after the
    first (ovidenoise's continuation-image signal, [3, H, W] F32 in [-1, 1])
    is the last frame ovivaedec pushed for the clip before, byte for byte
    (RGB); clips x F - (clips - 1) frames (the shared frame shown once),
    video pts = frame_time(offset) with offsets contiguous, audio sample
    offsets contiguous on the grid of docs/av-sync.md and ending with the
    video, one SEGMENT out of every element.
pushed: prompts pushed and `prompt` changed while PLAYING, with the
    application starving the source between clips (it pushes the next prompt
    a while after the previous clip came out): timestamps=contiguous gives
    contiguous clips and one segment; timestamps=running-time leaves a gap
    where the source waited (the mode matters).
files: a live continued run ended with the end-of-stream action signal into
    mp4 (qtmux) and mkv (matroskamux): the EOS finalises the files, which
    ffprobe and GStreamer's own demuxers + decoders read back, every frame
    counted.

Usage: test-continuous.py [continuation|pushed|files|all]
Skips (77) without python3-gi.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

try:
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import GLib, Gst
except (ImportError, ValueError) as e:
    print(f"SKIP: GStreamer's Python bindings (python3-gi): {e}")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import check, summary  # noqa: E402
live_long = __import__("test-live-long")

FPS = 24
RATE = 16000
FRAMES = 9  # the tiny model's frames per clip (presets/models.json)
PROMPT = "A lighthouse at night. <AUDCAP>waves<ENDAUDCAP>"
TIMEOUT_S = int(os.environ.get("OVI_CONTINUOUS_TIMEOUT", "600"))


def frame_time(n):
    return n * Gst.SECOND // FPS  # gst_ovi_frame_time: rounded down


def grid_sample(frame):
    # docs/av-sync.md: round(frame * 16000 / 24), half up
    return (frame * RATE * 2 + FPS) // (2 * FPS)


class Recorder:
    """Buffers (pts, duration, offset, offset_end[, bytes]) and SEGMENT
    events leaving one pad."""

    def __init__(self, pad, keep_data=False):
        self.buffers, self.segments, self.keep = [], 0, keep_data
        pad.add_probe(Gst.PadProbeType.BUFFER, self._buffer)
        pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, self._event)

    def _buffer(self, _pad, info):
        b = info.get_buffer()
        data = b.extract_dup(0, b.get_size()) if self.keep else None
        self.buffers.append((b.pts, b.duration, b.offset, b.offset_end, data))
        return Gst.PadProbeReturn.OK

    def _event(self, _pad, info):
        if info.get_event().type == Gst.EventType.SEGMENT:
            self.segments += 1
        return Gst.PadProbeReturn.OK


def run(pipeline, on_playing=None):
    """PLAYING until EOS (test-live-long.py's run_pipeline); on_playing runs
    in the main loop once set_state(PLAYING) returned: the source streams
    (a live pipeline reaches PLAYING only when its sinks have had a
    buffer)."""
    if on_playing:
        GLib.idle_add(lambda: on_playing() and False)
    return live_long.run_pipeline(pipeline, TIMEOUT_S)


def check_one_segment(name, recorders):
    for el, rec in recorders.items():
        check(rec.segments == 1,
              f"{name}: {rec.segments} SEGMENT event(s) out of {el} == 1")


def check_video(name, video, frames):
    """frames contiguous: offsets +1, pts = frame_time(offset), each buffer
    starting where the one before ended"""
    check(len(video) == frames, f"{name}: {len(video)} frames == {frames}")
    bad = [i for i, (pts, dur, off, end, _) in enumerate(video)
           if pts != frame_time(off) or pts + dur != frame_time(off + 1)
           or end != off + 1 or (i and off != video[i - 1][2] + 1)]
    check(not bad, f"{name}: video pts = frame_time(offset), offsets "
          f"contiguous (not at frames {bad[:5]})")


def check_audio(name, audio, video):
    """sample offsets contiguous, pts = offset / 16000, the audio on the
    video's grid from its first frame to the end of its last"""
    if not check(audio and video, f"{name}: both streams have buffers"):
        return
    bad = [i for i in range(1, len(audio)) if audio[i][2] != audio[i - 1][3]]
    check(not bad, f"{name}: audio sample offsets contiguous (not at {bad[:5]})")
    bad = [i for i, a in enumerate(audio)
           if a[0] != a[2] * Gst.SECOND // RATE]
    check(not bad, f"{name}: audio pts = offset / 16000 (not at {bad[:5]})")
    first, end = video[0][2], video[-1][3]
    check(audio[0][2] == grid_sample(first) and
          audio[-1][3] == grid_sample(end),
          f"{name}: audio samples [{audio[0][2]}, {audio[-1][3]}) == the grid "
          f"of frames [{first}, {end}): [{grid_sample(first)}, "
          f"{grid_sample(end)})")
    vdur = video[-1][0] + video[-1][1] - video[0][0]
    adur = (audio[-1][3] - audio[0][2]) * Gst.SECOND / RATE
    check(abs(adur - vdur) <= Gst.SECOND / FPS,
          f"{name}: audio {adur / Gst.SECOND:.5f} s == video "
          f"{vdur / Gst.SECOND:.5f} s within one frame")


def rgb_of(image, width, height):
    """[3, H, W] F32 in [-1, 1] -> packed RGB bytes, the inverse of the i2v
    preparation (u8 / 255 * 2 - 1), rounded"""
    n = width * height
    v = struct.unpack(f"<{3 * n}f", image)
    out = bytearray(3 * n)
    for c in range(3):
        plane = v[c * n:(c + 1) * n]
        out[c::3] = bytes(min(255, max(0, round((x + 1.0) * 127.5)))
                          for x in plane)
    return bytes(out)


def generation(extra_src, extra_denoise, clips="3"):
    return (f"ovitextsrc name=src is-live=true num-clips={clips} {extra_src} "
            f"! ovidenoise name=den steps=1 {extra_denoise} ! tee name=t ")


def continuation():
    clips = 3
    pipeline = Gst.parse_launch(
        generation(f'prompt="{PROMPT}"', "continuation=last-frame") +
        "t. ! queue ! ovivaedec name=vdec ! video/x-raw,format=RGB "
        "! fakesink name=vsink sync=true "
        "t. ! queue ! oviaudiodec name=adec ! fakesink sync=true")
    get = pipeline.get_by_name
    recs = {el: Recorder(get(el).get_static_pad("src"), el == "vdec")
            for el in ("src", "den", "vdec", "adec")}
    images = []

    def on_image(_den, clip, width, height, buf):
        images.append((clip, width, height, buf.extract_dup(0, buf.get_size())))

    get("den").connect("continuation-image", on_image)
    check(run(pipeline), f"continuation: {clips} live continued clips")
    video, audio, latents = (recs["vdec"].buffers, recs["adec"].buffers,
                             recs["den"].buffers)
    check(len(latents) == clips, f"continuation: {len(latents)} latent "
          f"buffers == {clips}")
    check_video("continuation", video, clips * FRAMES - (clips - 1))
    check_audio("continuation", audio, video)
    check_one_segment("continuation", recs)
    # each latent's frames start where the previous clip's ended: the
    # shared frame is not in the stream twice
    overlap = [k for k in range(1, len(latents))
               if latents[k][2] != latents[k - 1][3]]
    check(not overlap, f"continuation: clip frame ranges follow each other "
          f"({[(l[2], l[3]) for l in latents]})")
    check([i[0] for i in images] == list(range(1, clips)),
          f"continuation: a conditioning image for clips 1..{clips - 1} "
          f"({[i[0] for i in images]})")
    shown = {off: data for _, _, off, _, data in video}
    for clip, width, height, image in images:
        if clip >= len(latents):
            continue
        last = latents[clip - 1][3] - 1  # the last frame of the clip before
        check(len(image) == 3 * width * height * 4 and last in shown and
              rgb_of(image, width, height) == shown[last],
              f"continuation: clip {clip} starts from frame {last}, the last "
              f"one shown of clip {clip - 1}, byte for byte ({width}x{height})")


def pushed(mode):
    """prompts pushed and `prompt` changed while PLAYING; the source waits
    for each pushed prompt (pushed 0.5 s after the clip before came out)"""
    name = f"pushed {mode}"
    clips = 4
    pipeline = Gst.parse_launch(
        generation(f"timestamps={mode}", "", str(clips)) +
        "t. ! queue ! ovivaedec name=vdec ! fakesink sync=true "
        "t. ! queue ! oviaudiodec name=adec ! fakesink sync=true")
    get = pipeline.get_by_name
    src = get("src")
    recs = {el: Recorder(get(el).get_static_pad("src"))
            for el in ("src", "den", "vdec", "adec")}
    state = {"pushed": 0}

    def push_next():
        n = state["pushed"]
        if n < 2:
            src.emit("push-prompt", f'{{"prompt": "Pushed clip {n}.", '
                     f'"seed": {n}}}')
        else:
            # the property, read again at every clip: clips 2 and 3
            src.set_property("prompt", "Clips from the property.")
        state["pushed"] += 1
        return False

    def on_latent(_pad, _info):
        if state["pushed"] < 3:
            GLib.timeout_add(500, push_next)
        return Gst.PadProbeReturn.OK

    get("den").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER,
                                               on_latent)
    check(run(pipeline, on_playing=push_next), f"{name}: prompts pushed "
          "and the prompt property set while PLAYING")
    video, audio = recs["vdec"].buffers, recs["adec"].buffers
    n = len(recs["src"].buffers)
    check(n == clips, f"{name}: {n} clips == {clips}")
    check_one_segment(name, recs)
    if mode == "contiguous":
        check_video(name, video, clips * FRAMES)
        check_audio(name, audio, video)
    else:
        gaps = [i for i in range(1, len(video))
                if video[i][0] > video[i - 1][0] + video[i - 1][1]]
        check(gaps, f"{name}: the clips stamped when they start leave gaps "
              f"where the source waited (at frames {gaps})")


def ffprobe_frames(path):
    p = subprocess.run(["ffprobe", "-v", "error", "-count_frames",
                        "-show_streams", "-of", "json", path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=300)
    if p.returncode != 0:
        print(p.stderr)
        return None
    return json.loads(p.stdout)["streams"]


def gst_decoded(path, demuxer):
    """video frames and audio samples decoded by GStreamer's own demuxer"""
    pipeline = Gst.parse_launch(
        f"filesrc location={path} ! {demuxer} name=d "
        "d. ! queue ! decodebin ! videoconvert ! fakesink name=v "
        "d. ! queue ! decodebin ! audioconvert ! audioresample "
        "! audio/x-raw,format=S16LE,rate=16000,channels=1 ! fakesink name=a")
    counts = {"v": 0, "a": 0}

    def count(kind, unit_bytes):
        def probe(_pad, info):
            size = info.get_buffer().get_size()
            counts[kind] += size // unit_bytes if unit_bytes else 1
            return Gst.PadProbeReturn.OK
        return probe

    for kind, unit_bytes in (("v", None), ("a", 2)):
        pipeline.get_by_name(kind).get_static_pad("sink").add_probe(
            Gst.PadProbeType.BUFFER, count(kind, unit_bytes))
    ok = run(pipeline)
    return counts if ok else None


def files(tmp):
    clips = 3
    frames = clips * FRAMES - (clips - 1)
    outs = {
        "mp4": ("qtdemux", "avenc_aac ! aacparse", "mp4mux", 2048),
        "mkv": ("matroskademux", "opusenc", "matroskamux", 480),
    }
    for ext, (demuxer, aenc, mux, aslack) in outs.items():
        path = os.path.join(tmp, f"live.{ext}")
        pipeline = Gst.parse_launch(
            generation("", "continuation=last-frame", "-1") +
            "t. ! queue ! ovivaedec ! videoconvert ! video/x-raw,format=I420 "
            "! x264enc tune=zerolatency ! h264parse ! queue ! mux. "
            "t. ! queue ! oviaudiodec ! audioconvert ! audioresample "
            f"! {aenc} ! queue ! mux. {mux} name=mux "
            f"! filesink location={path}")
        src = pipeline.get_by_name("src")

        def feed():
            for k in range(clips):
                src.emit("push-prompt", f"{PROMPT} Part {k}.")
            src.emit("end-of-stream")

        check(run(pipeline, on_playing=feed),
              f"{ext}: a live continued run ends with end-of-stream")
        streams = ffprobe_frames(path)
        if not check(streams is not None, f"{ext}: ffprobe reads {path}"):
            continue
        v = [s for s in streams if s["codec_type"] == "video"]
        a = [s for s in streams if s["codec_type"] == "audio"]
        n = int(v[0].get("nb_read_frames", -1)) if v else -1
        check(len(v) == 1 and len(a) == 1 and n == frames,
              f"{ext}: ffprobe counts {n} video frames == {frames}, "
              f"and an audio stream")
        counts = gst_decoded(path, demuxer)
        if not check(counts is not None, f"{ext}: {demuxer} + decodebin "
                     "decode it to EOS"):
            continue
        check(counts["v"] == frames,
              f"{ext}: {demuxer} decodes {counts['v']} frames == {frames}")
        want = grid_sample(frames)
        # the audio codecs' priming and framing (AAC 1024 samples, Opus
        # 20 ms frames and its pre-skip), at 16 kHz
        check(abs(counts["a"] - want) <= aslack,
              f"{ext}: {counts['a']} decoded samples ~ {want} "
              f"(+-{aslack})")


def main():
    Gst.init(None)
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    tmp = tempfile.mkdtemp(prefix="ovi-continuous-")
    try:
        if what in ("continuation", "all"):
            continuation()
        if what in ("pushed", "all"):
            pushed("contiguous")
            pushed("running-time")
        if what in ("files", "all"):
            files(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
