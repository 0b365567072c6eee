#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`ovi generate` on the tiny model: it writes a valid y4m/wav pair, and the
same settings through the GStreamer pipeline give the same frames and
samples, text-to-video and image-to-video (a PNG through pngdec into
ovidenoise's image pad, the same file through --image).

The pipeline's frames are taken as RGB straight from ovivaedec and turned
into 4:4:4 BT.601 limited-range YCbCr here with the formula `ovi generate`
documents, so the comparison is exact (no videoconvert rounding); its
samples come from oviaudiodec through wavenc (F32LE) and are compared bit
for bit. Bad options are refused by name.

Usage: generate-check.py OVI_TOOL WORKDIR [gst]  (gst: also run the pipeline)
"""
import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import check, summary  # noqa: E402

OVI, WORK = sys.argv[1], sys.argv[2]
WITH_GST = len(sys.argv) > 3 and sys.argv[3] == "gst"
# the tiny model (presets/models.json): 9 frames at 96x64, 24 fps
FRAMES, WIDTH, HEIGHT = 9, 96, 64
SAMPLES = FRAMES * 16000 // 24
PROMPT = "A chef flips a pancake. <S>Breakfast!<E> <AUDCAP>sizzling pan<ENDAUDCAP>"


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=600, **kw)
    print(p.stdout, flush=True)
    return p


def read_y4m(path):
    """(header fields, [frame bytes])"""
    data = open(path, "rb").read()
    head, _, rest = data.partition(b"\n")
    fields = head.decode().split()
    check(fields[0] == "YUV4MPEG2", f"{path}: y4m signature")
    f = {k[0]: k[1:] for k in fields[1:]}
    w, h = int(f["W"]), int(f["H"])
    size = w * h * (3 if f.get("C", "420jpeg").startswith("444") else 1.5)
    frames = []
    while rest:
        tag, _, rest = rest.partition(b"\n")
        check(tag.startswith(b"FRAME"), f"{path}: frame {len(frames)} tag")
        frames.append(rest[:int(size)])
        rest = rest[int(size):]
    return f, frames


def wav_chunks(path):
    data = open(path, "rb").read()
    check(data[:4] == b"RIFF" and data[8:12] == b"WAVE", f"{path}: RIFF/WAVE")
    chunks, pos = {}, 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunks[cid] = data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    return chunks


def yuv444(rgb):
    """packed RGB -> Y, Cb, Cr planes: the formula of ovi-generate.c"""
    def u8(v):
        return 0 if v <= 0 else 255 if v >= 255 else int(v + 0.5)
    n = len(rgb) // 3
    y, u, v = bytearray(n), bytearray(n), bytearray(n)
    for i in range(n):
        r, g, b = rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]
        y[i] = u8(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255)
        u[i] = u8(128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255)
        v[i] = u8(128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255)
    return bytes(y + u + v)


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
tiny = os.path.join(WORK, "tiny")
check(run([OVI, "make-tiny", tiny]).returncode == 0, "make-tiny")
base = os.path.join(WORK, "gen")
settings = ["--steps", "3", "--seed", "7", "--shift", "4.0",
            "--video-guidance-scale", "3.5", "--audio-guidance-scale", "2.5",
            "--slg-layer", "1"]
p = run([OVI, "generate", "--model-dir", tiny, "-o", base] + settings + [PROMPT])
check(p.returncode == 0, "ovi generate exits 0")
for stage in ["text encoder", "fusion DiT", "video VAE", "vocoder", "total"]:
    check(stage in p.stdout, f"the time of '{stage}' is printed")

hdr, frames = read_y4m(base + ".y4m")
check((hdr["W"], hdr["H"], hdr["F"], hdr.get("C")) == (str(WIDTH), str(HEIGHT), "24:1", "444"),
      f"y4m header {hdr}")
check(len(frames) == FRAMES, f"{len(frames)} frames == {FRAMES}")
check(all(len(f) == WIDTH * HEIGHT * 3 for f in frames), "full frames")
check(len(set(frames)) > 1, "the frames differ (not a constant clip)")
chunks = wav_chunks(base + ".wav")
fmt = struct.unpack("<HHIIHH", chunks[b"fmt "][:16])
check(fmt == (3, 1, 16000, 64000, 4, 32), f"wav fmt {fmt}: float32 mono 16 kHz")
check(len(chunks[b"data"]) == SAMPLES * 4, f"{len(chunks[b'data']) // 4} samples == {SAMPLES}")
if shutil.which("ffprobe"):
    q = run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
             "stream=nb_read_frames,width,height", "-of", "csv=p=0", base + ".y4m"])
    check(q.stdout.strip() == f"{WIDTH},{HEIGHT},{FRAMES}", "ffprobe reads the y4m")

# bad input: refused by name, nothing written
bad = os.path.join(WORK, "bad")
for args, word in [(["--solver", "heun"], "heun"), (["--vram-mode", "fast"], "fast"),
                   (["--backend", "tpu"], "tpu"), ([], "prompt")]:
    q = run([OVI, "generate", "--model-dir", tiny, "-o", bad] + args
            + ([PROMPT] if args else []))
    check(q.returncode != 0 and word in q.stdout, f"refuses {args or 'no prompt'}")
check(not os.path.exists(bad + ".y4m"), "nothing written on bad input")


def pipeline_av(name, md, props, image=None):
    """frames (RGB) and the wav data chunk of the pipeline for `props`"""
    rgb, wav = os.path.join(WORK, name + ".rgb"), os.path.join(WORK, name + ".wav")
    src = (["filesrc", f"location={image}", "!", "pngdec", "!", "videoconvert", "!",
            "video/x-raw,format=RGB", "!", "den.image"] if image else [])
    pipeline = (src + ["ovitextsrc", f"prompt={PROMPT}", "num-clips=1", md, "!",
                       "ovidenoise", "name=den", md] + [f"{k}={v}" for k, v in props.items()]
                + ["!", "tee", "name=t",
                   "t.", "!", "queue", "!", "ovivaedec", md, "!",
                   "video/x-raw,format=RGB", "!", "filesink", f"location={rgb}",
                   "t.", "!", "queue", "!", "oviaudiodec", md, "!",
                   "audio/x-raw,format=F32LE", "!", "wavenc", "!",
                   "filesink", f"location={wav}"])
    q = run(["gst-launch-1.0", "-q", "-e"] + pipeline)
    check(q.returncode == 0, f"{name}: the pipeline runs")
    raw = open(rgb, "rb").read() if os.path.exists(rgb) else b""
    return raw, wav_chunks(wav).get(b"data") if os.path.exists(wav) else None


def compare(name, raw, pdata, frames, data, w, h):
    fsize = w * h * 3
    check(len(raw) == len(frames) * fsize, f"{name}: {len(raw) // fsize} RGB frames")
    same = [yuv444(raw[i * fsize:(i + 1) * fsize]) == frames[i]
            for i in range(min(len(frames), len(raw) // fsize))]
    check(len(same) == len(frames) and all(same),
          f"{name}: every frame equals the pipeline's ({sum(same)}/{len(frames)})")
    check(pdata == data, f"{name}: the samples equal the pipeline's, bit for bit")


if WITH_GST:
    props = {"steps": "3", "seed": "7", "shift": "4.0", "video-guidance-scale": "3.5",
             "audio-guidance-scale": "2.5", "slg-layer": "1"}
    raw, pdata = pipeline_av("pipe", f"model-dir={tiny}", props)
    compare("t2v", raw, pdata, frames, chunks[b"data"], WIDTH, HEIGHT)

    # image-to-video: a PNG through pngdec into ovidenoise's image pad, and
    # the same file through `ovi generate --image` (gdk-pixbuf)
    png = os.path.join(WORK, "first.png")
    q = run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=1", "pattern=smpte", "!",
             "video/x-raw,format=RGB,width=120,height=72", "!", "pngenc", "!",
             "filesink", f"location={png}"])
    check(q.returncode == 0, "a first frame written")
    ibase = os.path.join(WORK, "i2v")
    q = run([OVI, "generate", "--model-dir", tiny, "-o", ibase, "--image", png]
            + settings + [PROMPT])
    check(q.returncode == 0, "ovi generate --image exits 0")
    ihdr, iframes = read_y4m(ibase + ".y4m")
    check(len(iframes) == FRAMES, f"i2v: {len(iframes)} frames")
    iw, ih = int(ihdr["W"]), int(ihdr["H"])
    raw, pdata = pipeline_av("pipe-i2v", f"model-dir={tiny}", props, image=png)
    compare("i2v", raw, pdata, iframes, wav_chunks(ibase + ".wav")[b"data"], iw, ih)
    check(iframes != frames, "i2v: the image changes the clip")

sys.exit(summary())
