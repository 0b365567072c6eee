#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The never-stalling channel of examples/pipelines/live-channel.sh, with
generation slower than real time: the tiny model at STEPS steps makes a
9-frame clip (0.375 s) in about 0.9 s on a 2-core box.

The example runs as documented, with this file as its GST_LAUNCH: the
launcher parses the same arguments gst-launch-1.0 gets (Gst.parse_launchv),
recalculates the latency on LATENCY messages as gst-launch does, and sends
EOS once the last clip has gone out and the slate has run a second after it.
The Matroska file is then read back: ffprobe for the packets, GStreamer's
demuxer and decoders (avdec_h264, flacdec) for the pictures and samples.
Checked: video packets at exactly 24 fps with no gap from start to end;
audio packets contiguous and lasting as long as the video within one frame;
the slate (a solid colour image) after the last clip, and nothing but the
slate or the black background before the first;
every clip's 9 frames out, the clip's last frame repeated between clips,
and gaps between clips (generation really was slower than real time); each
clip's sound starting with its first frame within one frame (1/24 s).

OVI_CHANNEL_BREAK=latency shows the test failing without the latency the
pattern rests on: ovidenoise's LATENCY answer is made 0 (an element that
does not answer the query) and OVI_CHANNEL_MARGIN 0; the aggregators then
stop waiting for the clips and drop their late frames and samples (measured:
runs of 1-3 frames instead of 9, no clip sound left, 14 failed checks).
Skips (77) without python3-gi, ffprobe or a needed element.

With `rtmp` after SOURCE_ROOT the example pushes to a local nginx-rtmp (as
test-live-long.py starts it) and the same checks run on its recording, with
the AAC priming (23 ms) allowed on the audio's length (gst-live-channel-rtmp;
skips without nginx). Under heavy load FLV timestamps went off once (not
diagnosed).

OVI_CHANNEL_LATENCY_DELAY=S holds back the latency recalculation after the
first clip's LATENCY message for S seconds: the first clip then reaches the
sink while ovidenoise's start-up estimate (1 s a step: 300 s here) is the
pipeline latency, the race that stalled about 1 run in 20 when rtmp2sink
synced to the clock (its wait, set with 303 s, is not shortened by the later
LATENCY event). Measured with 6: rtmp2sink sync=true stalled (flvmux's src
thread in gst_base_sink_wait_clock), the example's sync=false passes.

Usage: test-live-channel.py SOURCE_ROOT [rtmp]  (the GStreamer env from meson)
"""
import array
import importlib.util
import json
import os
import shutil
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import check, summary  # noqa: E402

FPS = 24
FRAME_S = 1.0 / FPS
FRAMES = 9  # the tiny model's frames per clip (presets/models.json)
RATE = 44100  # the channel's audio rate
CLIPS = int(os.environ.get("OVI_CHANNEL_CLIPS", "8"))
STEPS = int(os.environ.get("OVI_CHANNEL_STEPS", "300"))
SLATE_RGB = (40, 200, 90)
# its luma in the channel's I420 (BT.601, limited range)
SLATE_Y = round(16 + (65.481 * SLATE_RGB[0] + 128.553 * SLATE_RGB[1] +
                      24.966 * SLATE_RGB[2]) / 255)
SLATE_AFTER_S = 1.0
# Start-up: once in about 30 runs on a loaded box the compositor left out
# the output slot of the first clip's first frame (stamped at 0.042 s,
# before the slate's first frame): the frame count is then one short of
# duration x fps, and only from here on is every slot checked
STARTUP_S = 0.5
PROMPT = "A lighthouse at night. <AUDCAP>waves, wind<ENDAUDCAP>"
ELEMENTS = ("compositor", "audiomixer", "gdkpixbufoverlay", "x264enc",
            "flacenc", "matroskamux", "pngenc", "avdec_h264", "flacdec")
RTMP_ELEMENTS = ("avenc_aac", "flvmux", "rtmp2sink", "flvdemux", "avdec_aac")


# ---- the launcher (GST_LAUNCH of the example) ----

class Launcher:
    """gst-launch-1.0 -e for the example's arguments, stopping by itself
    once the generation is over and the slate has run after it"""

    def __init__(self, args):
        self.pipeline = Gst.parse_launchv([a for a in args if a != "-e"])
        self.loop = GLib.MainLoop()
        self.ok = False
        self.ended = set()
        self.clip_end = 0
        self.stamps = []
        self.stopping = False
        self.latencies = []
        self.delayed = False
        self._watch("ovivaedec", self._on_clip_frame)
        self._watch("oviaudiodec", None)
        self._element("ovitextsrc").get_static_pad("src").add_probe(
            Gst.PadProbeType.BUFFER, self._on_clip)
        self.pipeline.get_by_name("comp").get_static_pad("src").add_probe(
            Gst.PadProbeType.BUFFER, self._on_output)
        if os.environ.get("OVI_CHANNEL_BREAK") == "latency":
            self._element("ovidenoise").get_static_pad("src").add_probe(
                Gst.PadProbeType.QUERY_UPSTREAM | Gst.PadProbeType.PULL,
                self._zero_latency)

    def _element(self, factory):
        it = self.pipeline.iterate_elements()
        res, e = it.next()
        while res == Gst.IteratorResult.OK:
            if e.get_factory().get_name() == factory:
                return e
            res, e = it.next()
        raise RuntimeError(f"no {factory} in the example's pipeline")

    def _watch(self, factory, on_buffer):
        pad = self._element(factory).get_static_pad("src")
        pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM,
                      lambda _p, info: self._on_event(factory, info))
        if on_buffer:
            pad.add_probe(Gst.PadProbeType.BUFFER, on_buffer)

    def _on_event(self, factory, info):
        if info.get_event().type == Gst.EventType.EOS:
            self.ended.add(factory)
        return Gst.PadProbeReturn.OK

    def _on_clip(self, _pad, info):
        self.stamps.append(info.get_buffer().pts)
        return Gst.PadProbeReturn.OK

    def _on_clip_frame(self, _pad, info):
        buf = info.get_buffer()
        self.clip_end = max(self.clip_end, buf.pts + buf.duration)
        return Gst.PadProbeReturn.OK

    def _on_output(self, _pad, info):
        after = self.clip_end + SLATE_AFTER_S * Gst.SECOND
        if (len(self.ended) == 2 and not self.stopping and
                info.get_buffer().pts >= after):
            self.stopping = True
            GLib.idle_add(self._stop)
        return Gst.PadProbeReturn.OK

    def _stop(self):
        """ends the slate and the silence at one running time X (on a 0.25 s
        boundary, a whole number of frames and of samples): buffers that end
        after X are dropped, and EOS is sent once each source reaches X. The
        video then ends at X, the audio less than a 23 ms buffer before."""
        clock = self.pipeline.get_clock()
        now = clock.get_time() - self.pipeline.get_base_time()
        quarter = Gst.SECOND // 4
        x = (now // quarter + 2) * quarter
        for factory in ("videotestsrc", "audiotestsrc"):
            src = self._element(factory)
            src.get_static_pad("src").add_probe(
                Gst.PadProbeType.BUFFER,
                lambda _p, info, src=src: self._end_at(src, x, info))
        return False

    @staticmethod
    def _end_at(src, x, info):
        buf = info.get_buffer()
        if buf.pts + buf.duration <= x:
            return Gst.PadProbeReturn.OK
        if not getattr(src, "eos_sent", False):
            src.eos_sent = True
            GLib.idle_add(lambda: src.send_event(Gst.Event.new_eos())
                          and False)
        return Gst.PadProbeReturn.DROP

    @staticmethod
    def _zero_latency(_pad, info):
        query = info.get_query()
        if query.type == Gst.QueryType.LATENCY:
            live, _min, max_ = query.parse_latency()
            query.set_latency(live, 0, max_)
        return Gst.PadProbeReturn.OK

    def _latency(self, name):
        """the minimum latency an aggregator waits for, in s"""
        query = Gst.Query.new_latency()
        pad = self.pipeline.get_by_name(name).get_static_pad("src")
        if not pad.query(query):
            return None
        return round(query.parse_latency()[1] / Gst.SECOND, 3)

    def _on_message(self, _bus, msg):
        if msg.type == Gst.MessageType.EOS:
            self.ok = True
            self.loop.quit()
        elif msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print(f"error from {msg.src.get_name()}: {err.message}\n{dbg}")
            self.loop.quit()
        elif msg.type == Gst.MessageType.LATENCY:
            delay = float(os.environ.get("OVI_CHANNEL_LATENCY_DELAY", "0"))
            if self.latencies and not self.delayed and delay > 0:
                self.delayed = True
                GLib.timeout_add(int(delay * 1000), self._recalculate)
            else:
                self._recalculate()
        return True

    def _recalculate(self):
        self.pipeline.recalculate_latency()
        self.latencies.append([self._latency(name) for name in
                               ("comp", "mix")])
        return False

    def run(self, timeout_s=240):
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)
        GLib.timeout_add_seconds(timeout_s, self.loop.quit)
        self.pipeline.set_state(Gst.State.PLAYING)
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)
        print("launcher: compositor and audiomixer latency after each "
              "LATENCY message (s): " + json.dumps(self.latencies))
        print("launcher: clips stamped at " +
              json.dumps([round(s / Gst.SECOND, 3) for s in self.stamps]))
        return 0 if self.ok else 1


# ---- reading the file back ----

def ffprobe_packets(path):
    """{"video": [(pts, dur)], "audio": [...]} in seconds, or None"""
    p = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                        "packet=codec_type,pts_time,duration_time",
                        "-of", "json", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    if p.returncode != 0:
        print(p.stderr)
        return None
    out = {"video": [], "audio": []}
    for pkt in json.loads(p.stdout)["packets"]:
        out[pkt["codec_type"]].append((float(pkt["pts_time"]),
                                       float(pkt.get("duration_time", 0))))
    return out


def decoded(path, caps):
    """[(pts ns, duration ns, bytes)] of the file's stream that converts to
    caps, through decodebin (matroskademux and the decoders)"""
    pipeline = Gst.parse_launch(
        f'filesrc location="{path}" ! decodebin ! {caps} '
        "! appsink name=out sync=false")
    sink = pipeline.get_by_name("out")
    pipeline.set_state(Gst.State.PLAYING)
    out = []
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        buf = sample.get_buffer()
        out.append((buf.pts, buf.duration, buf.extract_dup(0, buf.get_size())))
    pipeline.set_state(Gst.State.NULL)
    return out


def mean_abs_diff(a, b):
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)


def near(pix, luma):
    return sum(abs(y - luma) for y in pix) / len(pix) < 6


def classify_frames(frames):
    """one letter per frame: S the slate, B the compositor's black
    background, = the previous frame again, N a new (generated) frame"""
    kinds = []
    for i, (_pts, _dur, pix) in enumerate(frames):
        if near(pix, SLATE_Y):
            kinds.append("S")
        elif near(pix, 16):
            kinds.append("B")
        elif i and mean_abs_diff(pix, frames[i - 1][2]) < 2:
            kinds.append("=")
        else:
            kinds.append("N")
    return "".join(kinds)


def runs(flags):
    """[(start, length)] of the runs of True"""
    out, start = [], None
    for i, f in enumerate(list(flags) + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i - start))
            start = None
    return out


def check_packets(path, audio_slack):
    pk = ffprobe_packets(path)
    if not check(pk is not None and pk["video"] and pk["audio"],
                 "ffprobe reads video and audio packets"):
        return None
    v, a = sorted(pk["video"]), sorted(pk["audio"])
    span = v[-1][0] + FRAME_S - v[0][0]
    check(abs(len(v) - span * FPS) <= 1, f"{len(v)} video frames over "
          f"{span:.3f} s: {FPS} fps within one frame")
    # from STARTUP_S on, every frame in its slot
    s = [t for t, _d in v if t >= STARTUP_S]
    off = [abs(s[i] - (s[0] + i * FRAME_S)) for i in range(len(s))]
    check(s and max(off) <= 0.0015, f"{len(s)} video packets at exactly "
          f"{FPS} fps from {STARTUP_S} s, no gap (worst "
          f"{max(off or [0]) * 1000:.1f} ms off)")
    holes = [i for i in range(1, len(a))
             if abs(a[i][0] - (a[i - 1][0] + a[i - 1][1])) > 0.0015]
    check(not holes, f"{len(a)} audio packets contiguous (not at {holes[:5]})")
    vdur = len(v) * FRAME_S
    adur = a[-1][0] + a[-1][1] - a[0][0]
    check(abs(vdur - adur) <= FRAME_S + audio_slack and
          abs(v[0][0] - a[0][0]) <= FRAME_S,
          f"audio {a[0][0]:.3f}+{adur:.3f} s and video {v[0][0]:.3f}"
          f"+{vdur:.3f} s equal within one frame (+{audio_slack * 1000:.0f}"
          " ms codec framing)")
    return v


def check_pictures(path):
    frames = decoded(path, "videoconvert ! video/x-raw,format=GRAY8")
    kinds = classify_frames(frames)
    print("frames: " + kinds)
    clips = runs(k == "N" for k in kinds)
    # a clip starting in the first STARTUP_S may have lost its first frame
    early = [n for s, n in clips if frames[s][0] < STARTUP_S * Gst.SECOND]
    lost = sum((-n) % FRAMES for n in early)
    check(len(clips) >= 2 and lost <= 1 and
          all(n % FRAMES == 0 for s, n in clips
              if frames[s][0] >= STARTUP_S * Gst.SECOND) and
          sum(n for _s, n in clips) + lost == CLIPS * FRAMES,
          f"every clip's {FRAMES} frames out: runs of new frames "
          f"{[n for _s, n in clips]} add up to {CLIPS} x {FRAMES}"
          f" ({lost} lost at start-up)")
    if not clips:
        return frames, []
    first, last = clips[0][0], clips[-1][0] + clips[-1][1]
    # the slate's first frame is stamped when its thread starts: output
    # frames before it (one, on a loaded box) show the background, and the
    # first clip may start at frame 1
    started = kinds.lstrip("B")
    check(set(kinds[:first]) <= {"B", "S"} and "B" not in started,
          f"before the first clip {kinds[:first].count('S')} slate frames "
          f"after {len(kinds) - len(started)} background frames, nothing else")
    between = kinds[first:last]
    check("S" not in between, "between clips the last frame, not the slate")
    check(len(clips) >= CLIPS - 1, f"generation slower than real time: "
          f"{len(clips) - 1} pauses between {CLIPS} clips filled")
    tail = kinds[last:]
    check(len(tail) >= FPS // 2 and set(tail) <= {"S"},
          f"the slate after the last clip ({len(tail)} frames)")
    return frames, clips


def check_sync(path, frames, clips):
    """each clip's sound starts with its first frame (within one frame)"""
    pcm = decoded(path, "audioconvert ! audio/x-raw,format=S16LE,channels=1")
    samples = array.array("h")
    for _pts, _dur, data in pcm:
        samples.frombytes(data)
    t0 = pcm[0][0] / Gst.SECOND
    # the silence source mixed with nothing stays exactly 0 (dithering=none);
    # the generated sound is never that quiet for 10 ms on end
    sounds = []
    for start, n in runs(abs(s) > 2 for s in samples):
        if sounds and start - sum(sounds[-1]) <= RATE // 100:
            sounds[-1] = (sounds[-1][0], start + n - sounds[-1][0])
        else:
            sounds.append((start, n))
    onsets = [t0 + s / RATE for s, _n in sounds]
    print("sound onsets (s): " + json.dumps([round(t, 3) for t in onsets]))
    check(len(onsets) == len(clips), f"{len(onsets)} sounds for "
          f"{len(clips)} runs of clip frames")
    for start, n in clips:
        if n % FRAMES:
            continue  # its first frame lost at start-up (STARTUP_S)
        vt = frames[start][0] / Gst.SECOND
        near = min(abs(t - vt) for t in onsets) if onsets else 1e9
        check(near <= FRAME_S, f"clip at {vt:.3f} s: its sound starts "
              f"{near * 1000:.1f} ms from its first frame")


def make_slate(path):
    color = 0xff000000 | SLATE_RGB[0] << 16 | SLATE_RGB[1] << 8 | SLATE_RGB[2]
    pipeline = Gst.parse_launch(
        f"videotestsrc pattern=solid-color foreground-color={color} "
        "num-buffers=1 ! video/x-raw,width=96,height=64 ! videoconvert "
        f'! pngenc ! filesink location="{path}"')
    pipeline.set_state(Gst.State.PLAYING)
    pipeline.get_bus().timed_pop_filtered(
        30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)


def run_example(tmp, out):
    """live-channel.sh OUT PROMPT CLIPS, with this file as GST_LAUNCH and a
    solid colour slate"""
    example = os.path.join(sys.argv[1], "examples", "pipelines",
                           "live-channel.sh")
    png = os.path.join(tmp, "slate.png")
    launcher = os.path.join(tmp, "launch")
    with open(launcher, "w") as f:
        f.write(f'#!/bin/sh\nexec /usr/bin/python3 "{__file__}" '
                '--launch "$@"\n')
    os.chmod(launcher, 0o755)
    make_slate(png)
    # a 3 s margin: on a 2-core box shared with builds a tiny clip took
    # from 0.6 to 2.4 s, and one slower than the last by more than the
    # margin loses its start (seen with 1 s)
    env = dict(os.environ, GST_LAUNCH=launcher, OVI_CHANNEL_SLATE=png,
               OVI_DENOISE=f"steps={STEPS}", OVI_CHANNEL_MARGIN="3000000000")
    env.pop("OVI_MODEL_DIR", None)
    if os.environ.get("OVI_CHANNEL_BREAK") == "latency":
        env["OVI_CHANNEL_MARGIN"] = "0"
    p = subprocess.run(["bash", example, out, PROMPT, str(CLIPS)], env=env,
                       timeout=400)
    check(p.returncode == 0, f"live-channel.sh {out.split(':')[0]} with "
          f"{CLIPS} clips of {STEPS} steps ran to EOS")


def nginx_rtmp(tmp):
    """test-live-long.py's local nginx-rtmp, or None when not installed"""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "test-live-long.py")
    spec = importlib.util.spec_from_file_location("live_long", path)
    live_long = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(live_long)
    if not live_long.NginxRtmp.available():
        return None
    return live_long.NginxRtmp(tmp)


def check_recording(path, audio_slack):
    if not check(os.path.exists(path), f"{path} written"):
        return
    if check_packets(path, audio_slack):
        frames, clips = check_pictures(path)
        if clips:
            check_sync(path, frames, clips)


def main():
    Gst.init(None)
    if len(sys.argv) > 1 and sys.argv[1] == "--launch":
        return Launcher(sys.argv[2:]).run()
    rtmp = len(sys.argv) > 2 and sys.argv[2] == "rtmp"
    need = ELEMENTS + (RTMP_ELEMENTS if rtmp else ())
    missing = [e for e in need if not Gst.ElementFactory.find(e)]
    if missing or not shutil.which("ffprobe"):
        print(f"SKIP: missing {missing or 'ffprobe'}")
        return 77
    tmp = tempfile.mkdtemp(prefix="ovi-channel-")
    try:
        if not rtmp:
            out = os.path.join(tmp, "channel.mkv")
            run_example(tmp, out)
            check_recording(out, 0)
        else:
            nginx = nginx_rtmp(tmp)
            if nginx is None:
                print("SKIP: nginx or libnginx-mod-rtmp not installed")
                return 77
            nginx.start()
            try:
                run_example(tmp, f"rtmp://127.0.0.1:{nginx.port}/live/ovi")
            finally:
                nginx.stop()
            # the AAC encoder's priming frame, which FLV cannot mark
            check_recording(os.path.join(nginx.rec, "ovi.flv"), 1024 / RATE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
