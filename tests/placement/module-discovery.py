#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Module discovery without OVI_BACKEND_PATH (issue 13 item 2).

1. `ovi` from the build tree finds the CUDA module the build made
   (<build>/kernels/libovi-cuda.so, beside <build>/meson-private).
2. An install layout (libovi in LIB, the module in LIB/gst-ovi), moved to
   a temporary folder, finds its own module, not the build tree's.
3. OVI_BACKEND_PATH wins over both, and a folder without the module is
   named in the reason.
4. The elements through GST_PLUGIN_PATH=<build>/gst (when given) reach the
   module too: the reason they run on the CPU here is the driver, not a
   missing module.
Without a CUDA build, (1) must say plainly that there is no module.

usage: module-discovery.py OVI_TOOL BUILD_ROOT HAVE_CUDA(0|1) [PLUGIN_DIR]
"""
import os
import shutil
import subprocess
import sys
import tempfile

ovi, build, have_cuda = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
plugin_dir = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
env = dict(os.environ)
env.pop("OVI_BACKEND_PATH", None)
env.pop("OVI_DEVICE_PROBE_FILE", None)


def devices(tool, extra=None, libpath=None):
    e = dict(env)
    e.update(extra or {})
    if libpath:
        e["LD_LIBRARY_PATH"] = libpath
    r = subprocess.run([tool, "devices"], env=e, capture_output=True,
                       text=True, timeout=60)
    if r.returncode not in (0, 3):
        sys.exit(f"ovi devices exited {r.returncode}: {r.stderr}")
    return r.stdout


def expect(text, needle, what):
    if needle not in text:
        sys.exit(f"{what}: expected '{needle}' in:\n{text}")
    print(f"ok: {what}")


module = os.path.join(build, "kernels", "libovi-cuda.so")
out = devices(ovi)
if not have_cuda:
    expect(out, "no CUDA backend module", "build tree without CUDA")
    sys.exit(0)
expect(out, f"CUDA module: {os.path.realpath(module)}", "build tree")
no_gpu = "No usable GPU" in out

if plugin_dir and shutil.which("gst-launch-1.0"):
    e = dict(env, GST_PLUGIN_PATH=plugin_dir, GST_DEBUG="ovi-engine:4")
    r = subprocess.run(["gst-launch-1.0", "ovitextsrc", "prompt=a cat", "!",
                        "fakesink"], env=e, capture_output=True, text=True,
                       timeout=300)
    reasons = [l for l in (r.stdout + r.stderr).splitlines()
               if "runs on the CPU" in l]
    if any("no CUDA backend module" in l for l in reasons):
        sys.exit("the elements did not find the module:\n" + "\n".join(reasons))
    if no_gpu and not reasons:
        sys.exit("no GPU here, yet the elements gave no CPU reason:\n"
                 + r.stdout + r.stderr)
    print(f"ok: elements through GST_PLUGIN_PATH ({len(reasons)} CPU reason"
          f" line(s), none a missing module)")

with tempfile.TemporaryDirectory() as tmp:
    lib = os.path.join(tmp, "lib")
    os.makedirs(os.path.join(lib, "gst-ovi"))
    core = os.path.join(build, "ovi-core")
    for name in os.listdir(core):
        if name.startswith("libovi.so") and not name.endswith(".p"):
            shutil.copy(os.path.join(core, name), lib, follow_symlinks=True)
    installed = os.path.join(lib, "gst-ovi", "libovi-cuda.so")
    shutil.copy(module, installed)
    tool = os.path.join(tmp, "ovi")
    shutil.copy(ovi, tool)
    out = devices(tool, libpath=lib)
    expect(out, f"CUDA module: {installed}", "moved install")

    empty = os.path.join(tmp, "empty")
    os.mkdir(empty)
    out = devices(tool, {"OVI_BACKEND_PATH": empty + ":" + lib + "/gst-ovi"},
                  libpath=lib)
    expect(out, f"CUDA module: {installed}", "OVI_BACKEND_PATH list")
    os.remove(installed)
    out = devices(tool, {"OVI_BACKEND_PATH": empty}, libpath=lib)
    expect(out, "no CUDA backend module: no libovi-cuda.so in " + empty,
           "OVI_BACKEND_PATH without the module")
