#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""tests: `ovi estimate` from the outside (exit codes, auto choice, OOM advice)."""
import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile

ovi = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="ovi-estimate-")
atexit.register(shutil.rmtree, tmp, True)


def meminfo(gib):
    """a /proc/meminfo stand-in saying `gib` GiB are available"""
    path = os.path.join(tmp, "meminfo-%g" % gib)
    with open(path, "w") as f:
        f.write("MemTotal:       %d kB\nMemFree:          1024 kB\n"
                "MemAvailable:   %d kB\n" % (gib * 2 ** 20 * 2, gib * 2 ** 20))
    return path


# the host RAM the tool reads: plenty unless a case says otherwise, so the
# device-side cases do not depend on the machine running them
HOST_GIB = 256


def run(*args):
    env = dict(os.environ, OVI_MEMINFO_FILE=meminfo(HOST_GIB))
    p = subprocess.run([ovi, "estimate", *args], capture_output=True,
                       text=True, env=env)
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

# host memory per stage, private vs mapped: ultra-low streams the int8 DiT
# blocks from the weight cache file's mapping (private: a GPU's staging
# buffers) and streams the bf16 umT5 from its file's mapping: two blocks
# resident of the whole file
GIB = {"B": 2.0 ** -30, "KiB": 2.0 ** -20, "MiB": 2.0 ** -10, "GiB": 1.0}
SIZE = r"([\d.]+ (?:B|KiB|MiB|GiB))"


def gib(size):
    v, unit = size.split()
    return float(v) * GIB[unit]


def host_of(out, stage):
    """(total, private, mapped resident, mapped total) in GiB of `stage`"""
    m = re.search(r"\n  %s .*host %s \(private %s, mapped %s resident of %s\)"
                  % (stage, SIZE, SIZE, SIZE, SIZE), out)
    assert m, (stage, out)
    return [gib(g) for g in m.groups()]


rc, out, err = run("--vram-mode", "ultra-low")
assert rc == 0, err
total, private, mapped, mapped_all = host_of(out, "denoise")
assert 10 < mapped < 11 and private < 0.1, out
assert abs(total - private - mapped) < 0.02, out
dn_private = private
total, private, mapped, mapped_all = host_of(out, "text")
print("ultra-low text stage host (GiB): total %.2f private %.2f (denoise's "
      "%.2f held) mapped %.2f resident of %.2f" % (total, private, dn_private,
                                                   mapped, mapped_all))
assert 10 < mapped_all < 12, out      # the bf16 umT5 file
assert 0.5 < mapped < 1, out          # two of its 24 blocks (368 MiB each)
assert 0.2 < private - dn_private < 1, out  # umT5's f32 activations
assert abs(total - private - mapped) < 0.02, out
assert "host RAM: 256.00 GiB (MemAvailable)" in out, out

# a simulated 16 GB host: auto takes the fastest mode fitting both memories
# and says why it passed over the faster ones
HOST_GIB = 16
rc, out, err = run("--vram-mode", "auto", "--device-free-gb", "12")
assert rc == 0, err
assert "vram-mode auto: fp8-offload fits" in out, out
assert re.search(r"auto chose fp8-offload: device [\d.]+ GiB of 12.00 GiB free, "
                 r"host [\d.]+ GiB of 16.00 GiB \([\d.]+ [MG]iB private, .* mapped "
                 r"resident, stage \w+\); passed over: standard needs "
                 r"about [\d.]+ GiB of device memory.*fp8 needs", out), out
# ... an 8 GB card beside it: ultra-low, its DiT blocks mapped and umT5
# streamed, fits both
rc, out, err = run("--vram-mode", "auto", "--device-free-gb", "7")
assert rc == 0, (rc, out, err)
assert re.search(r"auto chose ultra-low: device [\d.]+ GiB of 7.00 GiB free, "
                 r"host 1\d.\d+ GiB of 16.00 GiB \([\d.]+ [MG]iB private, "
                 r"[\d.]+ [MG]iB mapped resident, stage \w+\); passed over: "
                 r".*fp8-offload needs about [\d.]+ GiB of device memory", out), out
# ... with 10 GB of RAM it does not: refused, naming the mode and the RAM
HOST_GIB = 10
rc, out, err = run("--vram-mode", "auto", "--device-free-gb", "7")
assert rc == 2, (rc, out)
assert re.search(r"ultra-low needs about 1\d.\d+ GiB of host RAM \([\d.]+ [MG]iB "
                 r"private, 1\d.\d+ GiB mapped resident, stage \w+\), 10.00 GiB "
                 r"is available", err), err
assert "close programs or add RAM" in err, err
HOST_GIB = 16
# --host-ram-gb overrides the system's figure; 0 leaves host RAM unchecked
rc, out, err = run("--vram-mode", "fp8-offload", "--device-free-gb", "12",
                   "--host-ram-gb", "8")
assert rc == 2 and "needs about 10." in err and "8.00 GiB is available" in err, err
rc, out, err = run("--vram-mode", "auto", "--device-free-gb", "7",
                   "--host-ram-gb", "0")
assert rc == 0 and "auto: ultra-low fits" in out and "RAM unchecked" in out, out
HOST_GIB = 256

# bad input is a clear error, not a crash
for args in (("--vram-mode", "huge"), ("--width", "704"), ("--model", "nope"),
             ("--act-bytes", "3"), ("--bogus", "1"), ("--host-ram-gb", "x")):
    rc, out, err = run(*args)
    assert rc == 1 and err.startswith("ovi: "), (args, rc, err)

# the tiny folder needs --model-dir (no release dims)
rc, out, err = run("--model", "tiny")
assert rc == 1 and "--model-dir" in err, err

# a unified-memory device (issue 21): the weights read in place are counted
# once, as device bytes, and the pool peak is the device peak (no host);
# `ovi devices` says so. A discrete card (control) shows no in-place bytes.
GB10 = ('{"driver_version": 13000, "archs": [121], "ptx_arch": 121,'
        ' "host_available_gib": 110, "devices": [{"name": "NVIDIA GB10",'
        ' "cc": "12.1", "total_gib": 119, "free_gib": 60, "integrated": true}]}')
H100 = ('{"driver_version": 13000, "archs": [90], "ptx_arch": 90,'
        ' "host_available_gib": 110, "devices": [{"name": "H100", "cc": "9.0",'
        ' "total_gib": 80, "free_gib": 79}]}')


def described(json, *args, tool="estimate"):
    path = os.path.join(tmp, "probe.json")
    with open(path, "w") as f:
        f.write(json)
    env = dict(os.environ, OVI_MEMINFO_FILE=meminfo(HOST_GIB),
               OVI_DEVICE_PROBE_FILE=path)
    p = subprocess.run([ovi, tool, *args], capture_output=True, text=True,
                       env=env)
    return p.returncode, p.stdout, p.stderr


def gib(value, unit):
    return float(value) * {"B": 2 ** -30, "KiB": 2 ** -20, "MiB": 2 ** -10,
                           "GiB": 1}[unit]


U = r"([\d.]+) (B|KiB|MiB|GiB)"
rc, out, err = described(GB10, "--model", "720x720_5s", "--width", "704",
                         "--height", "704", "--vram-mode", "auto")
assert rc == 0 and "vram-mode auto: standard fits" in out, (rc, out, err)
for stage in ("text", "denoise", "video-decode", "audio-decode"):
    m = re.search(r"%s +device +%s \(weights %s, %s of them in place" % (stage, U, U, U), out)
    assert m, (stage, out)
    weights, in_place = gib(*m.group(3, 4)), gib(*m.group(5, 6))
    assert 0.9 * weights < in_place <= weights, (stage, out)
peak_dev = re.search(r"peak +device +%s, host %s" % (U, U), out)
pool = re.search(r"unified pool +%s" % U, out)
assert peak_dev and pool, out
assert gib(*peak_dev.group(3, 4)) == 0, out
assert gib(*pool.group(1, 2)) == gib(*peak_dev.group(1, 2)), out
rc, out, err = described(H100, "--model", "720x720_5s", "--width", "704",
                         "--height", "704", "--vram-mode", "auto")
assert rc == 0 and "in place" not in out and "unified pool" not in out, out
rc, out, err = described(GB10, tool="devices")
assert "weights are read in place" in out, (rc, out, err)
print("ok")
