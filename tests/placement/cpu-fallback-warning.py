#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The CPU fallback is never silent where an NVIDIA driver is installed
(issue 13): an element that falls back posts a WARNING on the bus naming
why; without a driver it runs on the CPU quietly.

The machine is described by OVI_DEVICE_PROBE_FILE (ovi-gpu-manager.h), so
the test runs on a machine without any GPU.

usage: cpu-fallback-warning.py GST_PLUGIN_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

plugin_dir = sys.argv[1]
cases = [
    ({"status": "driver-too-old", "driver_version": 12040,
      "runtime_version": 13000, "nvidia_driver": True},
     "older than the CUDA 13.0 runtime"),
    ({"status": "no-module", "nvidia_driver": True,
      "message": "no libovi-cuda.so in /nowhere"},
     "no CUDA backend module"),
    ({"driver_version": 13000, "archs": [90], "ptx_arch": 90,
      "devices": [{"name": "small GPU", "cc": "9.0", "free_gib": 0.001}]},
     "not enough memory on GPU 0"),
    ({"status": "no-driver"}, None),
]

for desc, says in cases:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(desc, f)
        f.flush()
        env = dict(os.environ, OVI_DEVICE_PROBE_FILE=f.name,
                   GST_PLUGIN_PATH=plugin_dir)
        r = subprocess.run(
            ["gst-launch-1.0", "-m", "ovitextsrc",
             "prompt=a cat plays the piano", "!", "fakesink"],
            env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    if r.returncode != 0:
        sys.exit(f"{desc}: gst-launch failed ({r.returncode}):\n{out}")
    warnings = [l for l in out.splitlines() if "WARNING" in l]
    if says is None:
        if warnings:
            sys.exit(f"{desc}: a warning without an NVIDIA driver:\n{out}")
        print(f"ok: {desc['status']}: quiet CPU fallback")
        continue
    if not any(says in l for l in out.splitlines()):
        sys.exit(f"{desc}: no WARNING saying '{says}':\n{out}")
    if not warnings:
        sys.exit(f"{desc}: the reason is there but not as a WARNING:\n{out}")
    print(f"ok: {desc.get('status', 'ok')}: warned ({says})")
