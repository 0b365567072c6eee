#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gst-ovi: `ovi lora` on the tiny model.

Usage: lora-cli.py OVI WORKDIR

Writes the tiny model and a kohya-style LoRA (rank 2, alpha 1, F32) for it,
then checks that `ovi lora` reports the format, rank, alpha and key counts
(and the unmatched key); that `--sum --strength 0` prints exactly the lines
`ovi inspect --sum` prints for those tensors; and that `--sum` at strength
0.5 prints the sums of the merged weights computed here (double precision,
rounded to bf16) for the video or both towers as --target says; and that
`ovi generate --lora --sigmas` merges the LoRA and runs the sigmas' steps.
"""
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import check, summary  # noqa: E402
from safetensors_f32 import write_safetensors  # noqa: E402

OVI, WORK = sys.argv[1], sys.argv[2]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)


def run(*args, ok=True):
    r = subprocess.run([OVI, *args], capture_output=True, text=True)
    if ok and r.returncode != 0:
        print(r.stdout, r.stderr)
        sys.exit(f"ovi {' '.join(args)} failed")
    return r


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[8 + n + a:8 + n + b]
        if info["dtype"] == "BF16":
            vals = [struct.unpack("<f", struct.pack("<I", v << 16))[0]
                    for v in struct.unpack(f"<{len(raw) // 2}H", raw)]
        else:
            vals = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        out[name] = (info["dtype"], info["shape"], vals)
    return out


def to_bf16(x):
    """nearest bfloat16 to the double x (ties to even), by comparison"""
    f = struct.unpack("<I", struct.pack("<f", x))[0] >> 16
    best = None
    for c in (f - 1, f, f + 1):
        v = struct.unpack("<f", struct.pack("<I", (c & 0xffff) << 16))[0]
        key = (abs(v - x), c & 1)
        if best is None or key < best[0]:
            best = (key, v)
    return best[1]


model_dir = os.path.join(WORK, "tiny")
run("make-tiny", model_dir)
model = read_safetensors(os.path.join(model_dir, "Ovi", "model.safetensors"))
dim = model["video_model.blocks.0.self_attn.q.weight"][1][0]
ffn = model["video_model.blocks.1.ffn.0.weight"][1][0]

rng = random.Random(5)
rank, alpha = 2, 1.0
lora = {}
targets = {"blocks_0_self_attn_q": (dim, dim, "blocks.0.self_attn.q"),
           "blocks_1_ffn_0": (ffn, dim, "blocks.1.ffn.0")}
for stem, (out, inp, _) in targets.items():
    lora[f"lora_unet_{stem}.lora_down.weight"] = (
        [rank, inp], [rng.uniform(-0.5, 0.5) for _ in range(rank * inp)])
    lora[f"lora_unet_{stem}.lora_up.weight"] = (
        [out, rank], [rng.uniform(-0.5, 0.5) for _ in range(out * rank)])
    lora[f"lora_unet_{stem}.alpha"] = ([], [alpha])
lora["lora_unet_blocks_9_self_attn_q.alpha"] = ([], [alpha])
lora_path = os.path.join(WORK, "kohya.safetensors")
write_safetensors(lora_path, lora)

# the summary
r = run("lora", lora_path, "--model-dir", model_dir)
check("format: kohya/musubi" in r.stdout, "format not reported: " + r.stdout)
check("rank: 2, alpha: 1 (scale 0.5)" in r.stdout, "rank/alpha: " + r.stdout)
check("keys: 7, matched: 6, unmatched: 1" in r.stdout, "counts: " + r.stdout)
check("unmatched: lora_unet_blocks_9_self_attn_q.alpha" in r.stdout,
      "unmatched key not listed")

# strength 0: exactly ovi inspect's lines
inspect = {l.split(" ")[0]: l for l in run(
    "inspect", "--sum",
    os.path.join(model_dir, "Ovi", "model.safetensors")).stdout.splitlines()}
r = run("lora", lora_path, "--model-dir", model_dir, "--strength", "0",
        "--sum", "--target", "both")
lines = r.stdout.splitlines()
check(len(lines) == 4, f"4 tensors expected at target both, got {lines}")
for line in lines:
    check(line == inspect.get(line.split(" ")[0]),
          f"strength 0 line differs from ovi inspect: {line}")

# strength 0.5: the merged weights' sums
strength = 0.5
r = run("lora", lora_path, "--model-dir", model_dir, "--strength",
        str(strength), "--sum")
got = {l.split(" ")[0]: l for l in r.stdout.splitlines()}
check(len(got) == 2 and all(k.startswith("video_model.") for k in got),
      f"target video: {list(got)}")
for stem, (out, inp, dotted) in targets.items():
    name = f"video_model.{dotted}.weight"
    dtype, shape, w = model[name]
    down = lora[f"lora_unet_{stem}.lora_down.weight"][1]
    up = lora[f"lora_unet_{stem}.lora_up.weight"][1]
    merged = []
    for o in range(out):
        for j in range(inp):
            d = sum(up[o * rank + k] * down[k * inp + j] for k in range(rank))
            merged.append(to_bf16(w[o * inp + j] + strength * alpha / rank * d))
    line = got.get(name, "")
    check(line.startswith(f"{name} BF16 [{out},{inp}] "),
          f"line of {name}: {line!r}")
    if line:
        s = float(line.split(" ")[-1])
        check(math.isclose(s, math.fsum(merged), rel_tol=1e-12, abs_tol=1e-9),
              f"{name}: sum {s} != {math.fsum(merged)}")

# bad input: an error on stderr, nothing on stdout
r = run("lora", lora_path + ".missing", "--model-dir", model_dir, ok=False)
check(r.returncode != 0 and "missing" in r.stderr and r.stdout == "",
      "missing file: " + r.stderr)
r = run("lora", lora_path, "--model-dir", model_dir, "--strength", "-1",
        ok=False)
check(r.returncode != 0 and "strength" in r.stderr,
      "negative strength: " + r.stderr)

# ovi generate: --lora merged at load, --sigmas (2 steps, no guidance)
def generate(name, *extra):
    base = os.path.join(WORK, name)
    r = run("generate", "--model-dir", model_dir, "-o", base, "--steps", "2",
            "--video-guidance-scale", "1", "--audio-guidance-scale", "1",
            *extra, "a test", ok=False)
    y4m = base + ".y4m"
    data = open(y4m, "rb").read() if os.path.exists(y4m) else None
    return r, data


r0, plain = generate("plain", "--sigmas", "1,0.5,0")
r1, lora_out = generate("lora", "--sigmas", "1,0.5,0", "--lora",
                        f"{lora_path}:1:both")
check(r0.returncode == 0 and r1.returncode == 0,
      "ovi generate failed: " + r0.stderr + r1.stderr)
check("2 steps" in r1.stderr, "--sigmas did not give 2 steps: " + r1.stderr)
check(plain is not None and lora_out is not None and plain != lora_out,
      "--lora changed nothing")
r2, _ = generate("bad", "--lora", lora_path + ".missing")
check(r2.returncode != 0 and ".missing" in r2.stderr,
      "a missing --lora file: " + r2.stderr)

sys.exit(summary())
print("ok")
