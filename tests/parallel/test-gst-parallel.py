#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gst-ovi: the elements with gpu-allocation=sp2 and cfg-parallel on CPU
ranks (the test switch OVI_PARALLEL_CPU_RANKS=1, docs/multi-gpu.md) write
the clip gpu-allocation=single writes: the same number of RGB frames and
audio samples, pixels within one 8-bit step, samples within 1e-4; and
gpu-allocation=sp2 without the switch on this machine without GPUs fails at
start with an error that names what was found."""
import array
import os
import subprocess
import sys
import tempfile

FAILED = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILED.append(what)


def pipeline(alloc, video, audio):
    return ["gst-launch-1.0", "-q", "-e",
            "ovitextsrc", "prompt=A bell rings. <AUDCAP>bell<ENDAUDCAP>",
            "!", "ovidenoise", "steps=2", "seed=3", f"gpu-allocation={alloc}",
            "!", "tee", "name=t",
            "t.", "!", "queue", "!", "ovivaedec", "!",
            "video/x-raw,format=RGB", "!", "filesink", f"location={video}",
            "t.", "!", "queue", "!", "oviaudiodec", "!",
            "audio/x-raw,format=F32LE", "!", "filesink", f"location={audio}"]


def run(alloc, tmp, env):
    video = os.path.join(tmp, alloc + ".rgb")
    audio = os.path.join(tmp, alloc + ".f32")
    p = subprocess.run(pipeline(alloc, video, audio), env=env, timeout=600,
                       capture_output=True, text=True)
    check(p.returncode == 0, f"gpu-allocation={alloc} runs ({p.stderr[-300:]})")
    if p.returncode != 0:
        return None, None
    with open(video, "rb") as f:
        v = f.read()
    a = array.array("f")
    with open(audio, "rb") as f:
        a.frombytes(f.read())
    return v, a


def main():
    env = dict(os.environ)
    env["OVI_PARALLEL_CPU_RANKS"] = "1"
    with tempfile.TemporaryDirectory(prefix="ovi-gst-par-") as tmp:
        v1, a1 = run("single", tmp, env)
        for alloc in ["sp2", "cfg-parallel"]:
            v, a = run(alloc, tmp, env)
            if v1 is None or v is None:
                continue
            check(len(v) == len(v1) and len(v1) > 0,
                  f"{alloc}: {len(v)} video bytes, single {len(v1)}")
            check(len(a) == len(a1) and len(a1) > 0,
                  f"{alloc}: {len(a)} audio samples, single {len(a1)}")
            if len(v) == len(v1):
                dv = max(abs(x - y) for x, y in zip(v, v1))
                check(dv <= 1, f"{alloc}: pixels within {dv} of single")
            if len(a) == len(a1):
                da = max(abs(x - y) for x, y in zip(a, a1))
                check(da <= 1e-4, f"{alloc}: samples within {da:.2e} of single")
        # without the switch, no GPU: a clear error at start, no hang
        env.pop("OVI_PARALLEL_CPU_RANKS")
        p = subprocess.run(pipeline("sp2", os.path.join(tmp, "x.rgb"),
                                    os.path.join(tmp, "x.f32")),
                           env=env, timeout=300, capture_output=True, text=True)
        err = p.stdout + p.stderr
        check(p.returncode != 0 and "sp2 needs 2 GPUs, found 0" in err,
              "sp2 without GPUs: " + err.strip().splitlines()[-1][:200]
              if err.strip() else "sp2 without GPUs fails")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
