#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pipeline tests of the ovi plugin with the tiny model on the CPU: run the
example pipelines in examples/pipelines/, then read the files back with
ffprobe and gst-discoverer-1.0 and check stream types, frame counts, sample
counts, durations and start times. The RTMP case pushes to a local nginx
with the rtmp module (skipped when nginx or the module is missing).

Usage: test-pipelines.py SOURCE_ROOT  (the GStreamer env comes from meson)
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import check, summary  # noqa: E402

ROOT = sys.argv[1]
EX = os.path.join(ROOT, "examples", "pipelines")
FPS = 24
RATE = 16000
# the tiny model (presets/models.json): 9 frames at 96x64 per clip
FRAMES, WIDTH, HEIGHT = 9, 96, 64
COMMON_PROPS = ["model-dir", "vram-mode", "gpu-allocation", "cuda-device-id"]
INSPECT = {
    "ovitextsrc": ["prompt", "video-negative-prompt", "audio-negative-prompt",
                   "location", "num-clips", "is-live", "timestamps"],
    "ovidenoise": ["model", "width", "height", "seed", "steps", "solver",
                   "shift", "video-guidance-scale", "audio-guidance-scale",
                   "slg-layer", "continuation", "progress"],
    "ovivaedec": ["tile-size", "tile-overlap"],
    "oviaudiodec": ["buffer-duration"],
}


def clip_samples_total(clips):
    # docs/av-sync.md: round(total frames * 16000 / 24), half up
    frames = clips * FRAMES
    return (frames * RATE * 2 + FPS) // (2 * FPS)


def run(cmd, timeout=300, env=None):
    print("+", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, env=env, text=True)
    if p.returncode != 0:
        print(p.stdout)
    return p


def ffprobe(path):
    p = run(["ffprobe", "-v", "error", "-count_frames", "-show_streams",
             "-show_format", "-of", "json", path])
    if p.returncode != 0:
        return None
    return json.loads(p.stdout)


def streams(info, kind):
    return [s for s in info["streams"] if s["codec_type"] == kind]


def check_av_file(name, path, clips, vcodec, acodec, audio_slack,
                  start_slack=0.001):
    info = ffprobe(path)
    check(info is not None, f"{name}: ffprobe reads {path}")
    if info is None:
        return
    v, a = streams(info, "video"), streams(info, "audio")
    check(len(v) == 1 and len(a) == 1, f"{name}: one video and one audio stream")
    if len(v) != 1 or len(a) != 1:
        return
    v, a = v[0], a[0]
    check(v["codec_name"] == vcodec, f"{name}: video is {vcodec} ({v['codec_name']})")
    check(a["codec_name"] == acodec, f"{name}: audio is {acodec} ({a['codec_name']})")
    check((v["width"], v["height"]) == (WIDTH, HEIGHT),
          f"{name}: {v['width']}x{v['height']} == {WIDTH}x{HEIGHT}")
    check(v.get("pix_fmt") == "yuv420p", f"{name}: yuv420p ({v.get('pix_fmt')})")
    check(v["r_frame_rate"] == "24/1", f"{name}: 24 fps ({v['r_frame_rate']})")
    n = int(v.get("nb_read_frames", -1))
    check(n == clips * FRAMES, f"{name}: {n} frames == {clips} x {FRAMES}")
    vstart = float(v.get("start_time", "nan"))
    astart = float(a.get("start_time", "nan"))
    check(abs(vstart - astart) <= start_slack,
          f"{name}: both streams start together ({vstart} vs {astart})")
    want = clips * FRAMES / FPS
    vdur = float(v.get("duration", info["format"].get("duration", "nan")))
    check(abs(vdur - want) <= 1.0 / FPS + 1e-6,
          f"{name}: video lasts {vdur:.4f} s ~ {want:.4f} s")
    check_decoded(name, path, clips, audio_slack)


def decode(path, args):
    """the first stream ffmpeg decodes with `args`, as raw bytes"""
    p = subprocess.run(["ffmpeg", "-v", "error", "-i", path] + args + ["-"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300)
    if p.returncode != 0:
        print(p.stderr.decode(errors="replace"))
        return None
    return p.stdout


def check_decoded(name, path, clips, audio_slack):
    """Decodes each stream and looks at the content, not the container's
    word for it: video frames counted exactly and each frame a picture (not
    one flat value); audio samples counted per stream (a container's total
    duration says nothing about a stream) and not silent."""
    gray = decode(path, ["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "gray"])
    check(gray is not None, f"{name}: ffmpeg decodes the video")
    if gray is not None:
        size = WIDTH * HEIGHT
        frames = [gray[i:i + size] for i in range(0, len(gray), size)]
        check(len(gray) % size == 0 and len(frames) == clips * FRAMES,
              f"{name}: {len(frames)} decoded frames == {clips * FRAMES}")
        flat = [i for i, f in enumerate(frames) if max(f) - min(f) < 16]
        check(not flat, f"{name}: every decoded frame is a picture (flat: {flat})")
    pcm = decode(path, ["-map", "0:a:0", "-f", "s16le", "-ac", "1",
                        "-ar", str(RATE)])
    check(pcm is not None, f"{name}: ffmpeg decodes the audio")
    if pcm is not None:
        n = len(pcm) // 2
        samples = struct.unpack(f"<{n}h", pcm[:2 * n])
        want = clip_samples_total(clips)
        check(abs(n - want) <= audio_slack * RATE,
              f"{name}: {n} decoded samples ~ {want} (+-{audio_slack * RATE:.0f})")
        rms = (sum(x * x for x in samples) / max(n, 1)) ** 0.5 / 32768
        check(rms > 1e-3, f"{name}: the audio is not silent (rms {rms:.4f})")


def discoverer(name, path, want_video, want_audio):
    p = run(["gst-discoverer-1.0", "-v", path])
    out = p.stdout
    check(p.returncode == 0, f"{name}: gst-discoverer-1.0 reads it")
    if want_video:
        check("video #" in out.lower() or "video:" in out.lower(),
              f"{name}: gst-discoverer sees video")
    if want_audio:
        check("audio #" in out.lower() or "audio:" in out.lower(),
              f"{name}: gst-discoverer sees audio")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    tmp = tempfile.mkdtemp(prefix="ovi-pipelines-")
    env = dict(os.environ)
    env["OVI_DENOISE"] = "steps=2"
    try:
        # 1. text -> mp4 (H.264 + AAC)
        out = os.path.join(tmp, "text.mp4")
        p = run([os.path.join(EX, "text-to-mp4.sh"), out], env=env)
        check(p.returncode == 0, "text-to-mp4.sh runs")
        # AAC: decoders give the encoder's 1024-sample priming (mp4mux of
        # GStreamer 1.22 writes no edit list for it) and pad the last frame
        check_av_file("text mp4", out, 1, "h264", "aac", 2048 / RATE)
        discoverer("text mp4", out, True, True)

        # 2. image -> mp4
        img = os.path.join(tmp, "image.png")
        p = run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=1",
                 "pattern=smpte", "!", "video/x-raw,width=90,height=160", "!",
                 "pngenc", "!", "filesink", f"location={img}"])
        check(p.returncode == 0, "test image written")
        out = os.path.join(tmp, "image.mp4")
        p = run([os.path.join(EX, "image-to-mp4.sh"), img, out], env=env)
        check(p.returncode == 0, "image-to-mp4.sh runs")
        info = ffprobe(out)
        if info:
            v = streams(info, "video")[0]
            # the 9:16 image at the tiny area (6144 px): 64x96, taller than
            # wide, where text-to-video makes the 96x64 default
            check((v["width"], v["height"]) == (64, 96),
                  f"image mp4: size from the image ({v['width']}x{v['height']})")
            check(int(v.get("nb_read_frames", -1)) == FRAMES,
                  "image mp4: one clip of frames")

        # 3. a prompt file -> one mkv with three clips (H.264 + Opus)
        prompts = os.path.join(tmp, "prompts.txt")
        with open(prompts, "w") as f:
            f.write("# three clips\n"
                    "A cat plays piano. <AUDCAP>piano<ENDAUDCAP>\n"
                    '{"prompt": "A dog barks.", "seed": 7}\n'
                    "Waves on a beach. <AUDCAP>surf<ENDAUDCAP>\n")
        out = os.path.join(tmp, "clips.mkv")
        p = run([os.path.join(EX, "prompts-to-mkv.sh"), prompts, out], env=env)
        check(p.returncode == 0, "prompts-to-mkv.sh runs")
        # Opus: 20 ms frames; its pre-skip (312 samples at 48 kHz, 6.5 ms)
        # shows as a negative start time in Matroska (rounded to ms)
        check_av_file("clips mkv", out, 3, "h264", "opus", 0.030, 0.0075)
        discoverer("clips mkv", out, True, True)

        # 4. audio only -> wav: the exact sample count of the A/V rule
        out = os.path.join(tmp, "audio.wav")
        p = run([os.path.join(EX, "text-to-wav.sh"), out], env=env)
        check(p.returncode == 0, "text-to-wav.sh runs")
        info = ffprobe(out)
        if info:
            a = streams(info, "audio")
            check(len(a) == 1 and not streams(info, "video"),
                  "wav: one audio stream, no video")
            if a:
                a = a[0]
                check(int(a["sample_rate"]) == RATE and int(a["channels"]) == 1,
                      "wav: 16 kHz mono")
                check(int(a["duration_ts"]) == clip_samples_total(1),
                      f"wav: {a['duration_ts']} samples == {clip_samples_total(1)}")
        pcm = decode(out, ["-map", "0:a:0", "-f", "s16le"])
        if pcm is not None:
            n = len(pcm) // 2
            samples = struct.unpack(f"<{n}h", pcm[:2 * n])
            check(n == clip_samples_total(1),
                  f"wav: {n} decoded samples == {clip_samples_total(1)}")
            check(max(abs(x) for x in samples) > 32,
                  "wav: the decoded audio is not silent")
        discoverer("wav", out, False, True)

        # gst-inspect documents every property of every element
        for el, props in INSPECT.items():
            p = run(["gst-inspect-1.0", el])
            check(p.returncode == 0, f"gst-inspect-1.0 {el}")
            for prop in props + COMMON_PROPS:
                line = [l for l in p.stdout.splitlines()
                        if l.strip().startswith(prop + " ") or
                        l.strip().startswith(prop + ":")]
                check(bool(line) and len(line[0].split(":", 1)[1].strip()) > 10,
                      f"gst-inspect {el}: {prop} has a blurb")
            check("Default" in p.stdout and "changeable only in NULL or READY"
                  in p.stdout, f"gst-inspect {el}: defaults and mutability shown")

        # 5. RTMP push to a local nginx-rtmp, recorded and read back
        rtmp_case(tmp, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary()


def rtmp_case(tmp, env):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    module = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
    if not os.path.exists(nginx) or not os.path.exists(module):
        print("SKIP: rtmp (nginx or libnginx-mod-rtmp not installed)")
        return
    d = os.path.join(tmp, "nginx")
    rec = os.path.join(d, "rec")
    os.makedirs(rec)
    os.chmod(tmp, 0o755)
    os.chmod(d, 0o777)
    os.chmod(rec, 0o777)
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""load_module {module};
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    application live {{
      live on;
      record all;
      record_path {rec};
      record_unique off;
    }}
  }}
}}
""")
    srv = subprocess.Popen([nginx, "-p", d, "-c", conf],
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        url = f"rtmp://127.0.0.1:{port}/live/ovi"
        p = run([os.path.join(EX, "rtmp-push.sh"), url,
                 "A drone over a lake. <AUDCAP>wind<ENDAUDCAP>", "2"], env=env)
        check(p.returncode == 0, "rtmp-push.sh runs against nginx-rtmp")
    finally:
        srv.send_signal(signal.SIGQUIT)
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    flv = os.path.join(rec, "ovi.flv")
    check(os.path.exists(flv), "nginx recorded the stream")
    if not os.path.exists(flv):
        with open(os.path.join(d, "error.log")) as f:
            print(f.read()[-3000:])
        return
    info = ffprobe(flv)
    check(info is not None, "the recording reads back")
    if info:
        v, a = streams(info, "video"), streams(info, "audio")
        check(len(v) == 1 and v[0]["codec_name"] == "h264", "flv: H.264 video")
        check(len(a) == 1 and a[0]["codec_name"] == "aac", "flv: AAC audio")
        if v:
            n = int(v[0].get("nb_read_frames", -1))
            check(n == 2 * FRAMES, f"flv: {n} frames == 2 x {FRAMES}")
        if a:
            check(int(a[0]["sample_rate"]) == 44100, "flv: 44.1 kHz audio")


if __name__ == "__main__":
    sys.exit(main())
