#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`ovi calibrate-cache` from the outside (suite `tools`).

cache-check.py OVI_TOOL PRESETS_DIR [gst]

The shipped tiny-model MagCache tables (presets/cache/tiny_*.json) are what
`ovi calibrate-cache` measures on the tiny model `ovi make-tiny` writes
with its default seed: the command remakes each, counts every forward as
computed, and refuses bad options naming them. `ovi generate --cache`
reports the forwards it computed and skipped, and refuses a bad cache name
or threshold by its value. With `gst`: ovidenoise posts one `ovi-cache`
message per clip whose counts equal `ovi generate`'s for the same settings,
from its properties and from a prompt-file line's overrides, and a bad
cache name in a prompt file stops the pipeline naming it.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import fail, run_tool  # noqa: E402
from gstlaunch import launch  # noqa: E402


def remake(tool, tiny, steps, out):
    code, stdout, err = run_tool(tool, "calibrate-cache", "--model-dir", tiny,
                            "--steps", str(steps), "--output", out)
    if code != 0:
        fail(f"calibrate-cache --steps {steps} failed: {err}")
    m = re.search(r"^forwards: (\d+) computed, (\d+) skipped$", stdout, re.M)
    if not m or (int(m[1]), int(m[2])) != (2 * steps, 0):
        fail(f"calibrate-cache printed no 'forwards: {2 * steps} computed, "
             f"0 skipped':\n{stdout}")
    with open(out) as f:
        return json.load(f)


def forwards(stdout):
    m = re.search(r"^forwards: (\d+) computed, (\d+) skipped$", stdout, re.M)
    return (int(m[1]), int(m[2])) if m else None


def check_generate(tool, tiny, tmp):
    base = ["generate", "--model-dir", tiny, "--steps", "20", "-o",
            os.path.join(tmp, "gen"), "A cat sings. <S>Hi<E>"]
    counts = {}
    for cache, thr in (("off", "0"), ("easy", "0"), ("easy", "1.6"),
                       ("mag", "0.1")):
        code, out, err = run_tool(tool, *base, "--cache", cache,
                             "--cache-threshold", thr)
        if code != 0 or forwards(out) is None:
            fail(f"generate --cache {cache} {thr}: {code} {err}\n{out}")
        counts[cache, thr] = forwards(out)
        if sum(counts[cache, thr]) != 40:
            fail(f"generate --cache {cache} {thr}: {counts[cache, thr]}")
    if counts["off", "0"] != (40, 0) or counts["easy", "0"] != (40, 0):
        fail(f"threshold 0 skipped forwards: {counts}")
    if counts["easy", "1.6"][1] == 0 or counts["mag", "0.1"][1] == 0:
        fail(f"nothing skipped: {counts}")
    for args, named in ((["--cache", "fast"], "'fast'"),
                        (["--cache", "easy", "--cache-threshold", "-2"],
                         "-2")):
        code, _, err = run_tool(tool, *base, *args)
        if code == 0 or named not in err:
            fail(f"generate {args} gave {code}: {err}")
    print(f"ok: ovi generate counts its forwards {counts}")


MESSAGE = re.compile(r"ovi-cache, clip=\(guint64\)(\d+), cache=\(string\)(\w+),"
                     r".*forwards-computed=\(int\)(\d+), "
                     r"forwards-skipped=\(int\)(\d+)")


def check_gst(tool, tiny, tmp):
    prompt = "A cat sings. <S>Hi<E>"
    prompts = os.path.join(tmp, "prompts.txt")
    with open(prompts, "w") as f:
        f.write(json.dumps({"prompt": prompt}) + "\n")
        f.write(json.dumps({"prompt": prompt, "cache": "mag",
                            "cache_threshold": 0.1}) + "\n")
    md = f"model-dir={tiny}"
    r = subprocess.run(
        ["gst-launch-1.0", "-m", "ovitextsrc", f"location={prompts}", md, "!",
         "ovidenoise", md, "steps=20", "cache=easy", "cache-threshold=1.6",
         "!", "fakesink"], capture_output=True, text=True, timeout=600)
    got = [(int(m[1]), m[2], int(m[3]), int(m[4]))
           for m in MESSAGE.finditer(r.stdout)]
    if r.returncode != 0 or len(got) != 2:
        fail(f"pipeline: {r.returncode}, messages {got}\n{r.stderr}")
    for clip, cache, thr in ((0, "easy", "1.6"), (1, "mag", "0.1")):
        code, out, err = run_tool(tool, "generate", "--model-dir", tiny, "--steps",
                             "20", "--cache", cache, "--cache-threshold", thr,
                             "-o", os.path.join(tmp, "gen"), prompt)
        want = (clip, cache) + forwards(out)
        if code != 0 or got[clip] != want:
            fail(f"clip {clip}: element says {got[clip]}, ovi generate {want}")
    with open(prompts, "w") as f:
        f.write(json.dumps({"prompt": prompt, "cache": "fast"}) + "\n")
    code, out = launch(["ovitextsrc", f"location={prompts}", md, "!",
                        "ovidenoise", md, "!", "fakesink"], 600)
    if code == 0 or '"fast"' not in out:
        fail(f"a bad cache name in a prompt file: {code}\n{out}")
    print(f"ok: ovidenoise's ovi-cache messages equal ovi generate's {got}")


def main():
    tool, presets = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="ovi-cache-check-") as tmp:
        tiny = os.path.join(tmp, "tiny")
        code, _, err = run_tool(tool, "make-tiny", tiny)
        if code != 0:
            fail(f"make-tiny failed: {err}")
        for steps in (4, 20):
            with open(os.path.join(presets, "cache", f"tiny_{steps}.json")) as f:
                shipped = json.load(f)
            made = remake(tool, tiny, steps, os.path.join(tmp, "t.json"))
            if (made["model"], made["steps"]) != ("tiny", steps):
                fail(f"table header {made['model']} {made['steps']}")
            for branch in ("positive", "negative"):
                for tower in ("video", "audio"):
                    a = made["ratios"][branch][tower]
                    b = shipped["ratios"][branch][tower]
                    if len(a) != steps or a[0] != 1.0:
                        fail(f"{branch}.{tower}: {a}")
                    worst = max(abs(x - y) for x, y in zip(a, b))
                    if worst > 1e-3:
                        fail(f"tiny_{steps}.json {branch}.{tower} differs "
                             f"from a fresh calibration by {worst}")
            print(f"ok: tiny_{steps}.json remade by calibrate-cache")
        for args, named in ((["--solver", "heun"], "--solver"),
                            (["--steps", "-3"], "--steps"),
                            (["--model-dir", os.path.join(tmp, "none")],
                             "none")):
            code, _, err = run_tool(tool, "calibrate-cache", *args)
            if code == 0 or named not in err:
                fail(f"calibrate-cache {args} gave {code}: {err}")
        print("ok: bad options are refused by name")
        check_generate(tool, tiny, tmp)
        if len(sys.argv) > 3 and sys.argv[3] == "gst":
            check_gst(tool, tiny, tmp)


main()
