#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""tests: `ovi estimate` from the outside (exit codes, auto choice, OOM advice)."""
import re
import subprocess
import sys

ovi = sys.argv[1]


def run(*args):
    p = subprocess.run([ovi, "estimate", *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def peak(text, mode):
    m = re.search(r"vram-mode %s,.*?peak\s+device\s+([\d.]+) (GiB|MiB)" % re.escape(mode),
                  text, re.S)
    assert m, (mode, text)
    v = float(m.group(1))
    return v if m.group(2) == "GiB" else v / 1024


rc, out, err = run("--model", "720x720_5s", "--width", "704", "--height", "704")
assert rc == 0, err
assert "15004 video + 157 audio tokens" in out, out
peaks = [peak(out, m) for m in ("standard", "fp8", "fp8-offload", "ultra-low")]
print("704x704 peaks (GiB):", peaks)
assert peaks == sorted(peaks, reverse=True), peaks
for stage in ("text", "denoise", "video-decode", "audio-decode"):
    assert stage in out

# auto picks the fastest mode that fits
for free, want in ((80, "standard"), (peaks[1] + 0.01, "fp8"),
                   (peaks[2] + 0.01, "fp8-offload"), (peaks[3] + 0.01, "ultra-low")):
    rc, out, err = run("--vram-mode", "auto", "--device-free-gb", "%.3f" % free)
    assert rc == 0, err
    assert "vram-mode auto: %s fits" % want in out, (free, out)

# nothing fits: exit 2 with the needed / free numbers
rc, out, err = run("--vram-mode", "auto", "--device-free-gb", "1")
assert rc == 2 and "no mode fits" in err and "is free" in err, (rc, err)
# an explicit mode that does not fit names the one that would
rc, out, err = run("--vram-mode", "standard", "--device-free-gb", "20")
assert rc == 2 and "would fit" in err, (rc, err)

# bad input is a clear error, not a crash
for args in (("--vram-mode", "huge"), ("--width", "704"), ("--model", "nope"),
             ("--act-bytes", "3"), ("--bogus", "1")):
    rc, out, err = run(*args)
    assert rc == 1 and err.startswith("ovi: "), (args, rc, err)

# the tiny folder needs --model-dir (no release dims)
rc, out, err = run("--model", "tiny")
assert rc == 1 and "--model-dir" in err, err
print("ok")
