# SPDX-License-Identifier: LGPL-2.1-or-later
"""gst-launch-1.0 for tests that expect an error.

gst-launch-1.0 1.22 quits its main loop from the bus sync handler on ERROR;
an error posted before the main thread has entered g_main_loop_run() is lost
and gst-launch waits forever (seen ~2 in 100 runs of an instant error on a
loaded 2-core box; gdb: the main thread in g_main_loop_run, the sink waiting
for preroll). Its output then already holds the error: such a run is ended
after RACE_GRACE s and run again; a case hangs only when every attempt does.
"""
import subprocess
import threading
import time

RACE_MARK = "ERROR: pipeline doesn't want to preroll."
RACE_GRACE = 20
ATTEMPTS = 3


def launch_once(args, timeout, env=None):
    p = subprocess.Popen(["gst-launch-1.0"] + args, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout))
    reader.start()
    deadline = time.monotonic() + timeout
    marked = None
    while p.poll() is None and time.monotonic() < deadline:
        if marked is None and any(RACE_MARK in line for line in lines):
            marked = time.monotonic()
        if marked is not None and time.monotonic() - marked > RACE_GRACE:
            break
        time.sleep(0.1)
    raced = p.poll() is None and marked is not None
    if p.poll() is None:
        p.kill()
    p.wait()
    reader.join()
    return (None if p.returncode < 0 else p.returncode), "".join(lines), raced


def launch(args, timeout, env=None):
    """(exit code, or None when it hung; stdout and stderr together)"""
    for _ in range(ATTEMPTS):
        code, out, raced = launch_once(args, timeout, env)
        if not raced:
            return code, out
        print("note: gst-launch lost its error before its main loop ran; "
              "running it again")
    return None, out
