# SPDX-License-Identifier: LGPL-2.1-or-later
"""The checks of the python tests: each one prints what it checked, ok or
FAIL; the run fails when any did.

    sys.path.insert(0, TESTS_DIR)
    from checks import check, failures, summary
"""

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
