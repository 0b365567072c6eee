#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`ovi generate` in the streamed modes streams the DiT blocks: with a plan
made for a described H100 ($OVI_DEVICE_PROBE_FILE) run on the CPU backend
(the test switch $OVI_STAGE_CPU_BACKEND=1), fp8-offload and ultra-low print
the block streamer's copies (one per block per step, and the prefetch of
block 0), fp8 (resident) prints none, and fp8-offload's clip is fp8's bit for
bit. The blocks come from the weight cache file's mapping.

Usage: stream-check.py OVI_TOOL
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import check, summary  # noqa: E402

OVI = sys.argv[1]
STEPS = 3
H100 = ('{"driver_version": 13000, "archs": [90], "ptx_arch": 90, '
        '"host_available_gib": 400, "devices": [{"name": "H100", '
        '"cc": "9.0", "total_gib": 80, "free_gib": 79}]}')


def generate(tmp, mode, cache_dir):
    """(clip bytes, the streamer's line or None)"""
    base = os.path.join(tmp, mode)
    env = dict(os.environ, OVI_DEVICE_PROBE_FILE=os.path.join(tmp, "h100.json"),
               OVI_STAGE_CPU_BACKEND="1", OVI_WEIGHT_CACHE_DIR=cache_dir)
    cmd = [OVI, "generate", "--model-dir", os.path.join(tmp, "tiny"),
           "--vram-mode", mode, "--steps", str(STEPS), "--seed", "5", "-o",
           base, "a cat purrs <AUDCAP>purring<ENDAUDCAP>"]
    print("+", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    print(p.stdout, flush=True)
    check(p.returncode == 0, f"{mode}: ovi generate exits 0")
    line = re.search(r"^blocks streamed: (\d+) copies, (\d+) bytes pinned, "
                     r"(\d+) pageable, (\d+) mapped$", p.stdout, re.M)
    clip = b"".join(open(base + ext, "rb").read() for ext in (".y4m", ".wav")) \
        if p.returncode == 0 else b""
    return clip, line


with tempfile.TemporaryDirectory(prefix="ovi-stream-") as tmp:
    subprocess.run([OVI, "make-tiny", os.path.join(tmp, "tiny")], check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(tmp, "h100.json"), "w") as f:
        f.write(H100)
    layers = 3  # the tiny model's fusion blocks (ovi-tiny.c)
    cache_dir = os.path.join(tmp, "cache")
    resident, none = generate(tmp, "fp8", cache_dir)
    check(none is None, "fp8: no blocks streamed")
    for mode in ("fp8-offload", "ultra-low"):
        clip, line = generate(tmp, mode, cache_dir)
        check(line is not None, f"{mode}: the block streamer ran")
        if line is None:
            continue
        copies, mapped = int(line[1]), int(line[4])
        check(copies == STEPS * layers + 1,
              f"{mode}: {copies} copies, one per block per step + 1")
        check(mapped > 0, f"{mode}: blocks from the weight cache's mapping")
        if mode == "fp8-offload":
            check(clip == resident, "fp8-offload: the clip is fp8's bit for bit")

sys.exit(summary())
