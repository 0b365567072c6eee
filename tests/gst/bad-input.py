#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Bad input, swept as a new user would meet it: every case is a gst-launch
line with one bad value (a property, a prompt-file line, a request pad, a
model folder) and the clear, specific message it must give -- never a
generic flow error, a hang or a crash. A few cases are documented
acceptances (docs/elements.md): they must run and say what they did.

Usage: bad-input.py (the GStreamer env comes from meson; the tiny model)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gstlaunch import launch  # noqa: E402

TIMEOUT = 120
# what a user must never get as the first error: a message with no reason
GENERIC = re.compile(r"Internal data stream error|reason not-linked|"
                     r"failed to post a proper error message")


def first_error(out):
    """the first ERROR block gst-launch printed (message + debug info)"""
    m = re.search(r"^ERROR: from element [^\n]*\n(Additional debug info:\n"
                  r"[^\n]*\n[^\n]*\n)?", out, re.M)
    return m.group(0) if m else ""


def make_files(tmp):
    tiny = os.path.join(tmp, "tiny")
    subprocess.run(["ovi", "make-tiny", tiny], check=True,
                   stdout=subprocess.DEVNULL)

    def folder(name, edit):
        d = os.path.join(tmp, name)
        shutil.copytree(tiny, d)
        edit(d)
        return d

    def truncate(rel):
        def edit(d):
            path = os.path.join(d, rel)
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                f.truncate(size // 2)
        return edit

    def remove(rel):
        return lambda d: os.remove(os.path.join(d, rel))

    files = {
        "no-fusion": folder("no-fusion", remove("Ovi/model.safetensors")),
        "cut-fusion": folder("cut-fusion", truncate("Ovi/model.safetensors")),
        "cut-t5": folder("cut-t5", truncate(
            "Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth")),
        "cut-vae": folder("cut-vae", truncate("Wan2.2-TI2V-5B/Wan2.2_VAE.pth")),
        "no-vocoder": folder("no-vocoder",
                             remove("MMAudio/ext_weights/best_netG.pt")),
        "empty-dir": os.path.join(tmp, "empty"),
    }
    os.makedirs(files["empty-dir"])
    prompts = {
        "bad-json": '{"prompt": "a", "seed": 5\n',
        "bad-seed": '{"prompt": "a", "seed": "five"}\n',
        "bad-steps": '{"prompt": "a", "steps": 0}\n',
        "bad-width": '{"prompt": "a", "width": 100000}\n',
        "bad-solver": '{"prompt": "a", "solver": "ddim"}\n',
        "unknown-key": '{"prompt": "a", "sead": 5}\n',
        "no-prompt-key": '{"seed": 5}\n',
        "comments-only": "# nothing here\n\n",
        "not-utf8": "caf\xe9\n",
    }
    for name, text in prompts.items():
        path = os.path.join(tmp, name + ".txt")
        with open(path, "w", encoding="latin-1") as f:
            f.write(text)
        files[name] = path
    return files


def cases(f):
    src = "ovitextsrc prompt=hi num-clips=1"
    den = "ovidenoise steps=2"
    dec = "tee name=t t. ! queue ! ovivaedec ! fakesink t. ! queue ! " \
          "oviaudiodec ! fakesink"

    def p(text):
        return text.split()

    # (name, gst-launch args, regex the first error must match) -- errors
    yield ("empty prompt", ['ovitextsrc', 'prompt=""', '!', 'fakesink'],
           r"The prompt is empty")
    # what a shell passes for prompt="": gst-launch takes the '!' as value
    yield ("empty prompt from a shell", ['ovitextsrc', 'prompt=', '!',
                                         'fakesink'],
           r'The prompt is "!": an empty prompt=""')
    yield ("missing prompt file", p("ovitextsrc location=/nonexistent.txt ! "
                                    "fakesink"),
           r"Could not read the prompt file.*nonexistent\.txt")
    for name, what in [("bad-json", r"not valid JSON"),
                       ("bad-seed", r'"seed" must be a number'),
                       ("bad-steps", r'"steps" must be an integer in \[1, 1000\]'),
                       ("bad-width", r'"width" must be an integer in \[32, 8192\]'),
                       ("bad-solver", r'"solver" must be "unipc" or "euler"'),
                       ("unknown-key", r'unknown key "sead"'),
                       ("no-prompt-key", r'the JSON object has no "prompt"'),
                       ("comments-only", r"no prompts in the file"),
                       ("not-utf8", r"not UTF-8 text")]:
        yield ("prompt file " + name,
               p(f"ovitextsrc location={f[name]} ! fakesink"),
               re.escape(f[name]) + r":?\d*:? ?" + what)
    yield ("model-dir missing", p(f"{src} ! ovidenoise model-dir=/nonexistent"
                                  " ! fakesink"),
           r"model folder '/nonexistent' does not exist")
    yield ("model-dir empty", p(f"{src} ! ovidenoise model-dir={f['empty-dir']}"
                                " ! fakesink"),
           re.escape(f["empty-dir"]))
    yield ("fusion weights missing",
           p(f"{src} ! ovidenoise model-dir={f['no-fusion']} ! fakesink"),
           r"Ovi/model|model\.safetensors|fusion")
    yield ("fusion weights truncated",
           p(f"{src} ! ovidenoise model-dir={f['cut-fusion']} ! fakesink"),
           r"model\.safetensors.*(truncated|exceeds|size)")
    yield ("umT5 weights truncated",
           p(f"ovitextsrc prompt=hi model-dir={f['cut-t5']} ! fakesink"),
           r"models_t5_umt5-xxl-enc-bf16\.pth")
    yield ("VAE weights truncated",
           p(f"{src} ! {den} ! ovivaedec model-dir={f['cut-vae']} ! fakesink"),
           r"Wan2\.2_VAE\.pth")
    yield ("vocoder missing",
           p(f"{src} ! {den} ! oviaudiodec model-dir={f['no-vocoder']} ! "
             "fakesink"),
           r"best_netG\.pt")
    yield ("variant without weights",
           p(f"{src} ! ovidenoise model=720x720_5s ! fakesink"),
           r"variant '720x720_5s' needs its weights")
    yield ("variant not in the folder",
           p(f"{src} ! ovidenoise model=960x960_10s model-dir={f['no-vocoder']}"
             " ! fakesink"),
           r"holds the tiny model.*not variant '960x960_10s'")
    yield ("unknown variant", p(f"{src} ! ovidenoise model=nonsense ! fakesink"),
           r'could not set property "model".*"nonsense"')
    yield ("unknown vram-mode",
           p(f"{src} ! ovidenoise vram-mode=bogus ! fakesink"),
           r'could not set property "vram-mode".*"bogus"')
    yield ("shift 0", p(f"{src} ! {den} shift=0 ! fakesink"),
           r"shift 0 out of range")
    yield ("slg-layer past the blocks",
           p(f"{src} ! {den} slg-layer=999 ! fakesink"),
           r"slg-layer 999.*blocks")
    yield ("image pad fed audio",
           p(f"{src} ! {den} name=d ! fakesink audiotestsrc num-buffers=1 ! "
             "d.image"),
           r"could not link audiotestsrc0 to d")


# (name, args, regex the output must show) -- documented acceptances
def acceptances(f):
    yield ("steps 0 means the preset's steps",
           "ovitextsrc prompt=hi num-clips=1 ! ovidenoise steps=0 ! fakesink"
           .split(), r"Execution ended")
    yield ("out-of-range width is refused by GObject, the default kept",
           "ovitextsrc prompt=hi num-clips=1 ! ovidenoise width=100000 steps=2"
           " ! fakesink".split(),
           r"value \"100000\" of type 'gint' is invalid or out of range for "
           r"property 'width'[\s\S]*Execution ended")
    yield ("image pad at EOS without a picture: text-to-video",
           "ovitextsrc prompt=hi num-clips=1 ! ovidenoise steps=2 name=d ! "
           "fakesink videotestsrc num-buffers=0 ! d.image".split(),
           r"Execution ended")
    yield ("no prompt: says it waits for push-prompt",
           "ovitextsrc ! fakesink".split(),
           r"waiting for prompts pushed with the push-prompt action signal")


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("XDG_CACHE_HOME", os.path.join(tmp, "cache"))
        files = make_files(tmp)
        for name, args, want in cases(files):
            code, out = launch(["-e"] + args, TIMEOUT)
            err = first_error(out)
            problems = []
            if code is None:
                problems.append(f"hung for {TIMEOUT} s")
            elif code == 0:
                problems.append("exit 0")
            if "WARNING: erroneous pipeline" in out:
                err = out  # refused by gst-launch's parser: its own words
            if not re.search(want, err):
                problems.append(f"no /{want}/ in the first error")
            if GENERIC.search(err.split("\n")[0]):
                problems.append("a generic error")
            if problems:
                failures.append(name)
                print(f"FAIL: {name}: {', '.join(problems)}\n{out[-2000:]}")
            else:
                print(f"ok: {name}: {err.splitlines()[0] if err else ''}")
        for name, args, want in acceptances(files):
            code, out = launch(["-e"] + args, 20 if "push-prompt" in want
                               else TIMEOUT)
            ok = re.search(want, out) and (code == 0 or "push-prompt" in want)
            if not ok:
                failures.append(name)
                print(f"FAIL: {name}\n{out[-2000:]}")
            else:
                print(f"ok: {name}")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
