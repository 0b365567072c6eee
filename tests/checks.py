# SPDX-License-Identifier: LGPL-2.1-or-later
"""The checks of the python tests: each one prints what it checked, ok or
FAIL; the run fails when any did (or at once, with fail()).

    sys.path.insert(0, TESTS_DIR)
    from checks import check, failures, summary
"""
import subprocess
import sys

failures = []


def check(cond, what):
    """records `what` as failed unless `cond`; returns `cond`"""
    if not cond:
        failures.append(what)
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    return cond


def summary():
    """prints the failure count; the exit status: 1 when a check failed"""
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


def fail(msg):
    """a failed check that ends the run"""
    print("FAIL: " + msg)
    sys.exit(1)


def run_tool(tool, *args):
    """(exit status, stdout, stderr) of `tool args`"""
    r = subprocess.run([tool, *args], capture_output=True, text=True,
                       timeout=600)
    return r.returncode, r.stdout, r.stderr
