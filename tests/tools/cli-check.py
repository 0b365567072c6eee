#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The `ovi` command line from the outside (suite `tools`).

cli-check.py TEST OVI_TOOL

  parity-strict  `ovi parity` cannot pass by accident: each golden case
                 passes as it is, and fails when the case is broken in one
                 of the ways that used to pass (unreadable tolerance, a
                 reference tensor the engine never emits, no cases at all,
                 the t5 case without its texts, a reference off by 1 %).
  inspect        `ovi inspect --sum` on a safetensors file written here
                 gives each tensor's name, dtype, shape and float64 sum.
  bench          `ovi bench --model tiny --backend cpu` times every stage
                 and the copy of a streamed block (pinned, mapped).
"""
import json
import math
import os
import re
import shutil
import struct
import sys
import random
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import fail, run_tool  # noqa: E402

GOLDEN = os.environ.get("OVI_GOLDEN_DIR", "")
# safetensors dtype -> struct format of one element
FORMATS = {"F32": "f", "F64": "d", "I64": "q", "U8": "B", "F16": "e"}


# ---- safetensors, read and written here (the format is eight bytes of
# header length, a JSON header, the data); a tensor is (dtype, shape,
# flat list of values) ----

def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        fmt = FORMATS[info["dtype"]]
        count = (b - a) // struct.calcsize(fmt)
        values = list(struct.unpack(f"<{count}{fmt}", data[a:b]))
        tensors[name] = (info["dtype"], info["shape"], values)
    return tensors


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, values = tensors[name]
        raw = struct.pack(f"<{len(values)}{FORMATS[dtype]}", *values)
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def scaled(tensor, factor):
    dtype, shape, values = tensor
    return (dtype, shape, [v * factor for v in values])


# ---- parity-strict ----

def copy_case(tmp, name):
    """A writable copy of a golden case; the tokenizer folder beside it (the
    t5 case reads ../tokenizer/spiece.model)."""
    for case in (name, "tokenizer"):
        dst = os.path.join(tmp, case)
        if not os.path.exists(dst):
            shutil.copytree(os.path.join(GOLDEN, case), dst)
            for root, _, files in os.walk(dst):
                for f in files:
                    os.chmod(os.path.join(root, f), 0o644)
    return os.path.join(tmp, name)


def parity(tool, case_dir):
    """exit code, passed, failed, output; a case that cannot be opened
    ends without a summary line and counts as one failure"""
    code, out, err = run_tool(tool, "parity", case_dir)
    m = re.search(r"^(\d+) passed, (\d+) failed$", out, re.M)
    if m is None:
        if code == 0:
            fail(f"parity {case_dir}: exit 0 without a summary:\n{out}{err}")
        return code, 0, 1, out + err
    return code, int(m.group(1)), int(m.group(2)), out + err


def expect_failure(tool, case_dir, why, pattern):
    code, passed, failed, text = parity(tool, case_dir)
    if code == 0 or failed == 0:
        fail(f"parity passed a case with {why}:\n{text}")
    if not re.search(pattern, text):
        fail(f"parity on a case with {why} did not say /{pattern}/:\n{text}")
    print(f"ok: fails with {why} ({failed} failed)")


def test_parity_strict(tool):
    if not os.path.isdir(GOLDEN):
        print("golden vectors not found (OVI_GOLDEN_DIR)")
        sys.exit(77)
    for case in ("fusion_dit", "sampler", "video_vae", "audio", "t5",
                 "tokenizer"):
        code, passed, failed, text = parity(tool, os.path.join(GOLDEN, case))
        if code != 0 or failed or passed == 0:
            fail(f"golden case {case} does not pass:\n{text}")
        print(f"ok: {case} passes ({passed} comparisons)")

    with tempfile.TemporaryDirectory() as tmp:
        case = copy_case(tmp, "fusion_dit")
        cfg_path = os.path.join(case, "config.json")
        original_cfg = open(cfg_path).read()
        cfg = json.loads(original_cfg)
        cfg["tolerance"]["fp32_pass_if"] = "rel_l2 below 1e-4"
        json.dump(cfg, open(cfg_path, "w"))
        expect_failure(tool, case, "an unreadable tolerance",
                       r"cannot read tolerance\.fp32_pass_if")
        del cfg["tolerance"]["fp32_pass_if"]
        json.dump(cfg, open(cfg_path, "w"))
        expect_failure(tool, case, "no fp32 rule at all",
                       r"states no fp32 tolerance")
        open(cfg_path, "w").write(original_cfg)

        io_path = os.path.join(case, "io.safetensors")
        io = read_safetensors(io_path)
        original = dict(io)
        io["out.pos.extra"] = io["out.pos.vid"]
        write_safetensors(io_path, io)
        expect_failure(tool, case, "a reference the engine never emits",
                       r"out\.pos\.extra error=\"reference never compared\" FAIL")
        io = dict(original)
        io["out.pos.vid"] = scaled(io["out.pos.vid"], 1.01)
        write_safetensors(io_path, io)
        expect_failure(tool, case, "a reference off by 1 %",
                       r"out\.pos\.vid max_abs=\S+ rel=9\.9\d*e-03 FAIL")

        tok = copy_case(tmp, "tokenizer")
        open(os.path.join(tok, "cases.json"), "w").write("[]")
        expect_failure(tool, tok, "no tokenizer cases",
                       r"empty reference: nothing compared")

        t5 = copy_case(tmp, "t5")
        os.remove(os.path.join(t5, "texts.json"))
        expect_failure(tool, t5, "the t5 texts missing", r"texts\.json")


# ---- inspect ----

def test_inspect(tool):
    rng = random.Random(7)

    def normal(dtype, n):
        # rounded through the dtype, so the expected sum is of stored values
        fmt = "<" + FORMATS[dtype]
        return [struct.unpack(fmt, struct.pack(fmt, rng.gauss(0, 1)))[0]
                for _ in range(n)]

    tensors = {
        "blocks.0.weight": ("F32", [5, 3], normal("F32", 15)),
        "blocks.0.bias": ("F16", [5], normal("F16", 5)),
        "ids": ("I64", [3, 4], list(range(-3, 9))),
        "scale": ("F64", [], [2.5]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.safetensors")
        write_safetensors(path, tensors)
        code, out, err = run_tool(tool, "inspect", path, "--sum")
        if code != 0:
            fail(f"inspect failed: {err}")
        lines = [l for l in out.splitlines() if l and not l.startswith("#")]
        seen = {}
        for line in lines:
            m = re.match(r"^(\S+) (\S+) \[([\d, ]*)\]\s+(\S+)$", line)
            if m is None:
                fail(f"inspect: unexpected line '{line}'")
            seen[m.group(1)] = (m.group(2), m.group(3), float(m.group(4)))
        if sorted(seen) != sorted(tensors):
            fail(f"inspect listed {sorted(seen)}, expected {sorted(tensors)}")
        for name, (_, dims, values) in tensors.items():
            dtype, shape, total = seen[name]
            want_shape = ",".join(str(d) for d in dims)
            want = float(math.fsum(values))
            if shape.replace(" ", "") != want_shape:
                fail(f"inspect {name}: shape [{shape}], expected [{want_shape}]")
            if abs(total - want) > 1e-12 * max(1.0, abs(want)):
                fail(f"inspect {name}: sum {total!r}, expected {want!r}")
        print(f"ok: inspect --sum, {len(tensors)} tensors")
        code, out, err = run_tool(tool, "inspect", os.path.join(tmp, "missing"))
        if code == 0 or "missing" not in err:
            fail("inspect of a missing file did not fail naming it")
        print("ok: inspect of a missing file fails naming it")


# ---- bench ----

def test_bench(tool):
    code, out, err = run_tool(tool, "bench", "--model", "tiny", "--backend", "cpu",
                         "--repeat", "1")
    if code != 0:
        fail(f"bench failed: {err}")
    for stage in ("dit", "step", "t5", "vae", "audio"):
        m = re.search(rf"^{stage}\s+.*?(\d+(\.\d+)?) (ms|s)\b", out, re.M)
        if m is None:
            fail(f"bench printed no time for stage {stage}:\n{out}")
        if not float(m.group(1)) > 0:
            fail(f"bench: stage {stage} took no time:\n{out}")
    # host-to-device copies of one streamed block: on the cpu backend a
    # memcpy, said so, from pinned memory and from a file mapping
    for src in ("pinned", "mapped, page cache", "mapped, from disk"):
        m = re.search(rf"^copy\s+{src} -> cpu \(a memcpy\)\s+[\d.]+ ms\s+"
                      rf"(\d+(\.\d+)?) GB/s", out, re.M)
        if m is None or not float(m.group(1)) > 0:
            fail(f"bench printed no copy bandwidth from {src}:\n{out}")
    print("ok: bench times every stage and the copies")


# ---- step caching with a LoRA ----

def test_cache_lora(tool):
    """Step caching composes with a LoRA (merged at load): threshold 0 gives
    the uncached clip bit for bit, a threshold that skips gives fewer
    forwards, and the LoRA changes the clip."""
    rng = random.Random(3)
    lora = {}
    for b in range(3):  # the tiny model: 3 blocks of width 64
        for m in "qkvo":
            key = f"diffusion_model.blocks.{b}.self_attn.{m}"
            lora[key + ".lora_down.weight"] = (
                "F32", [4, 64], [rng.gauss(0, 0.5) for _ in range(256)])
            lora[key + ".lora_up.weight"] = (
                "F32", [64, 4], [rng.gauss(0, 0.5) for _ in range(256)])
            lora[key + ".alpha"] = ("F32", [], [4.0])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "style.safetensors")
        write_safetensors(path, lora)

        def generate(name, *args):
            base = os.path.join(tmp, name)
            code, out, err = run_tool(tool, "generate", "--backend", "cpu",
                                 "--steps", "20", "-o", base, *args,
                                 "A cat plays piano.")
            if code != 0:
                fail(f"generate {name}: {err}")
            m = re.search(r"forwards: (\d+) computed, (\d+) skipped",
                          out + err)
            data = b"".join(open(base + ext, "rb").read()
                            for ext in (".y4m", ".wav"))
            return data, (int(m.group(1)), int(m.group(2))) if m else None

        with_lora = ["--lora", path + ":0.8"]
        off, _ = generate("off", *with_lora, "--cache", "off")
        zero, n0 = generate("zero", *with_lora, "--cache", "easy",
                            "--cache-threshold", "0")
        skip, n1 = generate("skip", *with_lora, "--cache", "easy",
                            "--cache-threshold", "1.6")
        plain, _ = generate("plain", "--cache", "off")
        if zero != off or n0 != (40, 0):
            fail(f"threshold 0 with a LoRA is not the uncached clip ({n0})")
        if n1 is None or n1[1] == 0 or sum(n1) != 40 or skip == off:
            fail(f"threshold 1.6 with a LoRA skipped nothing ({n1})")
        if plain == off:
            fail("the LoRA did not change the clip")
        print(f"ok: cache with a LoRA: threshold 0 identical, 1.6 "
              f"{n1[0]} computed {n1[1]} skipped")


TESTS = {"parity-strict": test_parity_strict, "inspect": test_inspect,
         "bench": test_bench, "cache-lora": test_cache_lora}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in TESTS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(TESTS)} OVI_TOOL")
    TESTS[sys.argv[1]](sys.argv[2])
