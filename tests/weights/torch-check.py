#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gst-ovi: checks the weight readers and writers against Debian's torch.

Usage: torch-check.py OVI WRITE_SAMPLE WORKDIR

 a) torch.save of nested state dicts (bf16/fp16/fp32/fp64/int64/..., shared
    storages with offsets, a transposed tensor, a 0-d tensor,
    {'generator': sd}, a list): `ovi inspect --sum` must list exactly the
    names/dtypes/shapes torch has, with the float64 sums torch computes;
 b) a malicious pickle (os.system) is refused: nonzero exit, one line
    `ovi: FILE: ...` on stderr, and its command did not run;
 d) ovi_pth_write output (write-sample) is read back by
    torch.load(weights_only=True) equal to the same tensors written by
    ovi_safetensors_write, parsed here independently.
Exits 77 (skip) when this python cannot import torch.
"""
import collections
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import check, failures, summary  # noqa: E402

OVI, WRITE_SAMPLE, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(WORK, exist_ok=True)


# ---- b) a malicious pickle is refused and nothing runs -------------------
marker = os.path.join(WORK, "pwned-marker")
proof = os.path.join(WORK, "payload-works-marker")
for p in (marker, proof):
    if os.path.exists(p):
        os.unlink(p)


def evil_pickle(path):
    cmd = f"touch {path}".encode()
    return (b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(cmd)) + cmd +
            b"\x85R.")


evil_path = os.path.join(WORK, "evil.pth")
with zipfile.ZipFile(evil_path, "w", zipfile.ZIP_STORED) as z:
    z.writestr("evil/data.pkl", evil_pickle(marker))
    z.writestr("evil/version", "3\n")
# the payload is real: an ordinary unpickler runs it
pickle.loads(evil_pickle(proof))
check(os.path.exists(proof), "the test payload does not work")
r = subprocess.run([OVI, "inspect", evil_path], capture_output=True,
                   text=True)
check(r.returncode != 0, "ovi inspect accepted a pickle calling os.system")
err_lines = r.stderr.splitlines()
check(len(err_lines) == 1 and err_lines[0].startswith(f"ovi: {evil_path}: ")
      and "os.system" in err_lines[0],
      f"unexpected stderr for the evil pickle: {r.stderr!r}")
check(not os.path.exists(marker), "the evil pickle's command ran")
print("evil pickle refused:", err_lines[0] if err_lines else "")

# a bad file: one line on stderr naming the file
bad_path = os.path.join(WORK, "bad.safetensors")
with open(bad_path, "wb") as f:
    f.write(struct.pack("<Q", 1000) + b"{}")
r = subprocess.run([OVI, "inspect", bad_path], capture_output=True, text=True)
check(r.returncode != 0 and len(r.stderr.splitlines()) == 1
      and r.stderr.startswith(f"ovi: {bad_path}: "),
      f"bad file: rc {r.returncode}, stderr {r.stderr!r}")


try:
    import torch
except ImportError:
    print("torch not importable by", sys.executable, "- skipping the rest")
    sys.exit(1 if failures else 77)

DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
    torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


def flatten(obj, prefix=""):
    """(name, tensor) in pickle order, names dotted as ovi does."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from flatten(v, f"{prefix}.{i}" if prefix else str(i))


def expected_lines(obj, strip=None):
    out = []
    for name, t in flatten(obj):
        if strip is not None:
            if not name.startswith(strip):
                continue
            name = name[len(strip):]
        shape = "[" + ",".join(str(d) for d in t.shape) + "]"
        s = t.detach().double().sum().item()
        a = t.detach().double().abs().sum().item()
        out.append((name, DTYPES[t.dtype], shape, s, a))
    return out


def run_inspect(path, *extra):
    return subprocess.run([OVI, "inspect", path, "--sum", *extra],
                          capture_output=True, text=True)


def compare_inspect(path, expected, *extra):
    r = run_inspect(path, *extra)
    check(r.returncode == 0, f"{path}: ovi inspect failed: {r.stderr}")
    lines = r.stdout.splitlines()
    check(len(lines) == len(expected),
          f"{path}: {len(lines)} tensors listed, torch has {len(expected)}")
    worst = 0.0
    for line, (name, dt, shape, s, a) in zip(lines, expected):
        f = line.split(" ")
        check(len(f) == 4, f"{path}: bad line {line!r}")
        if len(f) != 4:
            continue
        check(f[:3] == [name, dt, shape],
              f"{path}: got {f[:3]}, torch says {[name, dt, shape]}")
        got = float(f[3])
        err = abs(got - s) / max(a, 1e-300) if a else abs(got - s)
        worst = max(worst, err)
        check(err <= 1e-12, f"{path}: {name}: sum {got!r} vs torch {s!r}")
    print(f"{path}: {len(lines)} tensors match torch; worst relative sum "
          f"error {worst:.3g}")


# ---- a) torch.save of nested state dicts --------------------------------
g = torch.Generator().manual_seed(1234)
base = torch.randn(64, generator=g)
sd = collections.OrderedDict()
sd["conv_pre.weight"] = torch.randn(8, 3, 7, generator=g)
sd["conv_pre.bias"] = torch.randn(8, generator=g, dtype=torch.float64)
sd["ups.0.weight"] = torch.randn(4, 8, generator=g).to(torch.bfloat16)
sd["ups.0.bias"] = torch.randn(4, generator=g).to(torch.float16)
sd["shared.a"] = base[:24].view(4, 6)              # shares base's storage
sd["shared.b"] = base[10:40].view(5, 6)            # ... at offset 10
sd["shared.b_t"] = base[10:40].view(5, 6).t()      # transposed view
sd["proj.weight_t"] = torch.randn(5, 9, generator=g).t()
sd["step"] = torch.tensor(12345678901, dtype=torch.int64)   # 0-d
sd["gain"] = torch.tensor(0.375)                              # 0-d float
sd["counts"] = torch.arange(-5, 7, dtype=torch.int64).view(3, 4)
sd["i32"] = torch.arange(-3, 3, dtype=torch.int32)
sd["i8"] = torch.arange(-3, 3, dtype=torch.int8)
sd["u8"] = torch.arange(250, 256, dtype=torch.uint8)
sd["mask"] = torch.tensor([True, False, True])
sd["param"] = torch.nn.Parameter(torch.randn(3, 3, generator=g))
sd["strided"] = torch.randn(6, 8, generator=g)[::2, 1::3]
ckpt = {
    "generator": sd,
    "discriminators": [
        collections.OrderedDict(w=torch.randn(2, 2, generator=g)),
        {"w": torch.randn(3, generator=g).to(torch.bfloat16)},
    ],
    "epoch": 7, "lr": 1e-4, "name": "run", "none": None,
    "pair": (torch.ones(2), "text"),
}
nested_path = os.path.join(WORK, "nested.pth")
torch.save(ckpt, nested_path)
compare_inspect(nested_path, expected_lines(ckpt))
compare_inspect(nested_path, expected_lines(ckpt, "generator."),
                "--prefix", "generator.")

# the same archive re-zipped with zip64 records everywhere (as torch writes
# files over 4 GiB): same listing
zip64_path = os.path.join(WORK, "nested-zip64.pth")
_limit = zipfile.ZIP64_LIMIT
zipfile.ZIP64_LIMIT = 1
try:
    with zipfile.ZipFile(nested_path) as src, \
            zipfile.ZipFile(zip64_path, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
finally:
    zipfile.ZIP64_LIMIT = _limit
compare_inspect(zip64_path, expected_lines(ckpt))

# also a bare state dict as nn.Module.state_dict() makes it (with _metadata)
m = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.LayerNorm(4),
                        torch.nn.Linear(4, 2)).to(torch.bfloat16)
msd = m.state_dict()
module_path = os.path.join(WORK, "module.pth")
torch.save(msd, module_path)
compare_inspect(module_path, expected_lines(msd))

# ---- d) ovi_pth_write read back by torch.load(weights_only=True) ---------
s_pth = os.path.join(WORK, "sample.pth")
s_st = os.path.join(WORK, "sample.safetensors")
subprocess.run([WRITE_SAMPLE, s_pth, s_st], check=True)

ST_DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
         "F64": torch.float64, "I64": torch.int64, "I32": torch.int32,
         "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
         "F8_E4M3": None}


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    check(n % 8 == 0, f"{path}: header length {n} not a multiple of 8")
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    ends = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        ends.append((b, e))
        dt = ST_DT[info["dtype"]]
        if dt is None:
            out[name] = (info["dtype"], info["shape"], body[b:e])
            continue
        raw = bytearray(body[b:e])
        t = torch.frombuffer(raw, dtype=dt) if raw else torch.empty(0, dtype=dt)
        out[name] = t.reshape(info["shape"]).clone()
    ends.sort()
    pos = 0
    for b, e in ends:
        check(b == pos, f"{path}: gap or overlap at {b} (expected {pos})")
        pos = e
    check(pos == len(body), f"{path}: data section has trailing bytes")
    return out


ref = read_safetensors(s_st)
loaded = torch.load(s_pth, weights_only=True)
check(list(loaded.keys()) == ["generator"], f"pth keys {list(loaded)}")
gsd = loaded["generator"]
check(isinstance(gsd, collections.OrderedDict), "state dict not an OrderedDict")
pth_names = list(gsd.keys())
st_names = [k for k, v in ref.items() if isinstance(v, torch.Tensor)]
check(sorted(pth_names) == sorted(st_names),
      f"names differ: {pth_names} vs {st_names}")
for name in pth_names:
    a, b = gsd[name], ref.get(name)
    if b is None:
        continue
    check(a.dtype == b.dtype and a.shape == b.shape,
          f"{name}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}")
    if a.dtype == b.dtype and a.shape == b.shape:
        same = torch.equal(a.reshape(-1).view(torch.uint8),
                           b.reshape(-1).view(torch.uint8)) \
            if a.dtype != torch.bool else torch.equal(a, b)
        check(same, f"{name}: values differ between pth and safetensors")
print(f"ovi_pth_write: {len(pth_names)} tensors read back by "
      f"torch.load(weights_only=True), bit-identical to the safetensors copy")
compare_inspect(s_pth, expected_lines(loaded))

# the writer's zip64 form (used past 4 GiB), forced on a small file: torch
# and ovi read it the same
z64_pth = os.path.join(WORK, "sample-zip64.pth")
subprocess.run([WRITE_SAMPLE, z64_pth, os.path.join(WORK, "unused.st")],
               check=True, env=dict(os.environ, OVI_PTH_FORCE_ZIP64="1"))
with zipfile.ZipFile(z64_pth) as z:
    check(all(len(i.extra) >= 28 for i in z.infolist()),
          "forced zip64 output has no zip64 records")
z64 = torch.load(z64_pth, weights_only=True)["generator"]
check(list(z64.keys()) == pth_names, "zip64 pth: names differ")
for name in pth_names:
    check(torch.equal(z64[name], gsd[name]), f"zip64 pth: {name} differs")
compare_inspect(z64_pth, expected_lines({"generator": z64}))

# the safetensors written by ovi, listed by ovi, against torch's view of it
st_expected = sorted(expected_lines(
    {k: v for k, v in ref.items() if isinstance(v, torch.Tensor)}))
r = run_inspect(s_st)
lines = [l for l in r.stdout.splitlines() if not l.startswith("fp8.")]
check(r.returncode == 0 and len(lines) == len(st_expected),
      f"{s_st}: {r.stderr}")
for line, (name, dt, shape, s, a) in zip(lines, st_expected):
    f = line.split(" ")
    check(f[:3] == [name, dt, shape], f"{s_st}: {f[:3]} vs {[name, dt, shape]}")
    check(abs(float(f[3]) - s) <= 1e-12 * max(a, 1e-300),
          f"{s_st}: {name} sum {f[3]} vs {s}")

sys.exit(summary())
print("all torch checks passed")
