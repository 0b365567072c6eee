#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gst-ovi: (re)generates the fuzzers' seed corpus in fuzz/corpus/.

Run with Debian's /usr/bin/python3 (it has torch):
    /usr/bin/python3 fuzz/make-corpus.py [fuzz/corpus]
Tiny valid files of both formats and a set of deliberately broken ones,
and LoRA files (valid in each key format, and broken) for fuzz-lora.
Files named crash-* are inputs the fuzzers once found; they are kept and
not regenerated here.
"""
import collections
import hashlib
import io
import json
import os
import struct
import sys
import zipfile

import torch

torch.manual_seed(0)
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "corpus")
ST = os.path.join(OUT, "safetensors")
PT = os.path.join(OUT, "pth")
os.makedirs(ST, exist_ok=True)
os.makedirs(PT, exist_ok=True)


def put(dirname, name, data):
    assert len(data) < 20000, name
    with open(os.path.join(dirname, name), "wb") as f:
        f.write(data)


# ---- safetensors --------------------------------------------------------
def st(header, body=b"", pad=True, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(
        header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + body


def tensor_entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


body = bytes(range(256)) * 2
all_dtypes = collections.OrderedDict()
off = 0
for dt, size in [("F64", 8), ("I64", 8), ("F32", 4), ("I32", 4), ("F16", 2),
                 ("BF16", 2), ("F8_E4M3", 1), ("I8", 1), ("U8", 1),
                 ("BOOL", 1)]:
    all_dtypes["t." + dt] = tensor_entry(dt, [2, 3], off, off + 6 * size)
    off += 6 * size
put(ST, "valid-all-dtypes.safetensors",
    st({"__metadata__": {"format": "pt"}, **all_dtypes},
       bytes(b & 1 for b in body[:off])))
put(ST, "valid-empty.safetensors", st({}))
put(ST, "valid-metadata-only.safetensors",
    st({"__metadata__": {"a": "b", "c": ""}}))
put(ST, "valid-0d-and-empty.safetensors",
    st({"s": tensor_entry("F32", [], 0, 4),
        "e": tensor_entry("F16", [0, 7], 4, 4)}, body[:4]))
put(ST, "valid-misaligned.safetensors",
    st({"x": tensor_entry("F32", [3], 0, 12)}, body[:12], pad=False,
       raw_header=b'{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}'))
put(ST, "valid-8d.safetensors",
    st({"x": tensor_entry("BF16", [1, 2, 1, 2, 1, 2, 1, 1], 0, 16)},
       body[:16]))
put(ST, "bad-overlap.safetensors",
    st({"a": tensor_entry("F32", [2], 0, 8),
        "b": tensor_entry("F32", [2], 4, 12)}, body[:12]))
put(ST, "bad-size.safetensors",
    st({"a": tensor_entry("F32", [3], 0, 8)}, body[:8]))
put(ST, "bad-range.safetensors",
    st({"a": tensor_entry("F32", [4], 0, 16)}, body[:8]))
put(ST, "bad-reversed.safetensors",
    st({"a": tensor_entry("F32", [0], 8, 0)}, body[:8]))
put(ST, "bad-dtype.safetensors",
    st({"a": tensor_entry("Q4_K", [2], 0, 8)}, body[:8]))
put(ST, "bad-9d.safetensors",
    st({"a": tensor_entry("U8", [1] * 9, 0, 1)}, body[:1]))
put(ST, "bad-overflow.safetensors",
    st({"a": tensor_entry("F32", [2**40, 2**40], 0, 8)}, body[:8]))
put(ST, "bad-json.safetensors",
    st(None, body[:8], raw_header=b'{"a":{"dtype":"F32",'))
put(ST, "bad-not-object.safetensors", st(None, raw_header=b"[1,2,3]"))
put(ST, "bad-metadata.safetensors", st({"__metadata__": {"k": 5}}))
put(ST, "bad-deep.safetensors",
    st(None, raw_header=b'{"a":' + b"[" * 200 + b"]" * 200 + b"}"))
put(ST, "bad-header-length.safetensors",
    struct.pack("<Q", 2**63) + b'{"a":1}')
put(ST, "bad-nul.safetensors", st(None, raw_header=b'{"a\x00":{}}'))
put(ST, "bad-utf8.safetensors", st(None, raw_header=b'{"\xff\xfe":{}}'))
put(ST, "bad-truncated.safetensors",
    st({"__metadata__": {"format": "pt"}, **all_dtypes}, body[:off])[:-7])
put(ST, "bad-tiny.safetensors", b"\x02\x00\x00")
put(ST, "bad-legacy-pickle.safetensors", b"\x80\x02\x8a\x0alZ\xe7")


def weight_cache_file():
    """A valid re-quantised weight cache file (ovi-core/weights/
    ovi-weight-cache.c): an int8 weight and its scale, the cache's metadata
    with the data length and the digest of its tensor table."""
    tensors = [("blocks.0.self_attn.q.weight", "I8", [4, 8], 0, 32),
               ("blocks.0.self_attn.q.weight.qscale", "F32", [4], 32, 48)]
    table = "".join(f"{n}|{dt}|" + "".join(f"{d}," for d in shape) +
                    f"|{b}|{e}\n" for n, dt, shape, b, e in sorted(tensors))
    meta = {"ovi.cache.format": "1", "ovi.cache.kind": "int8-per-channel",
            "ovi.cache.source": "/models/tiny.safetensors",
            "ovi.cache.source_size": "123456",
            "ovi.cache.source_mtime": "1700000000.000000000",
            "ovi.cache.source_fingerprint": "0" * 64,
            "ovi.cache.data_bytes": "48",
            "ovi.cache.table": hashlib.sha256(table.encode()).hexdigest()}
    header = {"__metadata__": meta, **{n: tensor_entry(dt, shape, b, e)
                                       for n, dt, shape, b, e in tensors}}
    return st(header, bytes(range(32)) + struct.pack("<4f", 1, 2, 3, 4))


put(ST, "valid-weight-cache.safetensors", weight_cache_file())

# ---- pth ---------------------------------------------------------------
def saved(obj, **kw):
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


g = torch.Generator().manual_seed(5)
base = torch.randn(12, generator=g)
nested = {
    "generator": collections.OrderedDict(
        [("w", base[:6].view(2, 3)), ("w_t", base[2:8].view(2, 3).t()),
         ("b", torch.randn(3, generator=g).to(torch.bfloat16)),
         ("h", torch.randn(2, generator=g).to(torch.float16)),
         ("d", torch.randn(2, generator=g).to(torch.float64)),
         ("step", torch.tensor(3)), ("m", torch.tensor([True, False]))]),
    "list": [torch.arange(4, dtype=torch.int32), (torch.ones(1, dtype=torch.int8),)],
    "epoch": 3, "lr": 0.5, "tag": "x",
}
put(PT, "valid-nested.pth", saved(nested))
put(PT, "valid-module.pth", saved(torch.nn.Linear(3, 2).state_dict()))
put(PT, "valid-protocol4.pth",
    saved({"a": torch.ones(2, 2), "b": torch.zeros(3, dtype=torch.uint8)},
          pickle_protocol=4))
put(PT, "valid-empty-dict.pth", saved({}))
put(PT, "valid-param.pth",
    saved({"p": torch.nn.Parameter(torch.ones(2))}))


def rezip(data, mutate_pkl=None, drop=None, method=zipfile.ZIP_STORED,
          zip64=False):
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    old = zipfile.ZIP64_LIMIT
    if zip64:
        zipfile.ZIP64_LIMIT = 1
    try:
        with zipfile.ZipFile(out, "w", method) as z:
            for info in src.infolist():
                content = src.read(info.filename)
                if drop and drop in info.filename:
                    continue
                if mutate_pkl and info.filename.endswith("data.pkl"):
                    content = mutate_pkl(content)
                zi = zipfile.ZipInfo(info.filename, (1980, 1, 1, 0, 0, 0))
                zi.compress_type = method
                z.writestr(zi, content)
    finally:
        zipfile.ZIP64_LIMIT = old
    return out.getvalue()


small = saved({"w": torch.arange(6, dtype=torch.float32).view(2, 3)})
put(PT, "valid-zip64.pth", rezip(small, zip64=True))
put(PT, "bad-deflated.pth", rezip(small, method=zipfile.ZIP_DEFLATED))
put(PT, "bad-missing-storage.pth", rezip(small, drop="/data/0"))
put(PT, "bad-no-pickle.pth", rezip(small, drop="data.pkl"))
put(PT, "bad-truncated.pth", small[:len(small) // 2])
put(PT, "bad-no-eocd.pth", small[:-22])
put(PT, "bad-big-numel.pth",
    rezip(small, mutate_pkl=lambda p: p.replace(b"K\x06t", b"K\x60t")))
put(PT, "bad-evil-os-system.pth",
    rezip(small, mutate_pkl=lambda p:
          b"\x80\x02cos\nsystem\nX\x05\x00\x00\x00touch\x85R."))
put(PT, "bad-evil-stack-global.pth",
    rezip(small, mutate_pkl=lambda p:
          b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93."))
put(PT, "bad-underflow.pth", rezip(small, mutate_pkl=lambda p: b"\x80\x02."))
put(PT, "bad-memo.pth",
    rezip(small, mutate_pkl=lambda p: b"\x80\x02h\x09."))
put(PT, "bad-cycle.pth",
    rezip(small, mutate_pkl=lambda p: b"\x80\x02]q\x00h\x00a."))
put(PT, "bad-pickle-truncated.pth",
    rezip(small, mutate_pkl=lambda p: p[:len(p) // 2]))
# ---- raw pickles for fuzz-pickle (it wraps them with storages "0".."7")
PK = os.path.join(OUT, "pickle")
os.makedirs(PK, exist_ok=True)
for name in sorted(os.listdir(PT)):
    if not name.startswith("valid-"):
        continue
    with zipfile.ZipFile(os.path.join(PT, name)) as z:
        pkl = [i for i in z.namelist() if i.endswith("/data.pkl")][0]
        data = z.read(pkl)
    # the wrapper's storages hold 256 bytes: keep element counts small
    put(PK, name.replace(".pth", ".pkl"), data)
put(PK, "evil-os-system.pkl",
    b"\x80\x02cos\nsystem\nX\x05\x00\x00\x00touch\x85R.")
put(PK, "evil-stack-global.pkl",
    b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.")
import pickle
scalars = {"f": [1.5, -0.0, float("inf")], "big": [2**70, -2**70, 2**63 - 1],
           "small": [-3, 255, 65535, -70000], "b": b"xy" * 40,
           "t": (1, 2, 3, 4), "n": None, "bools": (True, False),
           "s": "\u00e9" * 300, "d": {1: [], 2: ()}}
for proto in (2, 4, 5):
    put(PK, f"scalars-p{proto}.pkl", pickle.dumps(scalars, protocol=proto))
put(PK, "cycle.pkl", b"\x80\x02]q\x00h\x00a.")
put(PK, "deep.pkl", b"\x80\x02" + b"]" * 100 + b"a" * 99 + b".")
# ---- LoRA files for fuzz-lora (its model: dim 8, ffn 16, names as Ovi's)
LO = os.path.join(OUT, "lora")
os.makedirs(LO, exist_ok=True)


def lora_st(tensors):
    header, blobs, off = {}, [], 0
    for k, (shape, vals) in tensors.items():
        raw = struct.pack(f"<{len(vals)}f", *vals)
        header[k] = tensor_entry("F32", shape, off, off + len(raw))
        blobs.append(raw)
        off += len(raw)
    return st(header, b"".join(blobs))


def v(n):
    return [((i * 7) % 5 - 2) * 0.1 for i in range(n)]


dm = "diffusion_model.blocks.0."
put(LO, "native.safetensors", lora_st({
    dm + "self_attn.q.lora_down.weight": ([2, 8], v(16)),
    dm + "self_attn.q.lora_up.weight": ([8, 2], v(16)),
    dm + "self_attn.q.alpha": ([], [1.0]),
    dm + "self_attn.q.diff_b": ([8], v(8)),
    dm + "norm3.diff": ([8], v(8)),
    dm + "modulation.diff": ([1, 6, 8], v(48)),
    "diffusion_model.head.modulation.diff": ([1, 2, 8], v(16)),
    "diffusion_model.patch_embedding.lora_down.weight":
        ([2, 4, 1, 2, 2], v(32)),
    "diffusion_model.patch_embedding.lora_up.weight": ([8, 2, 1, 1, 1], v(16)),
}))
put(LO, "diffusers.safetensors", lora_st({
    "base_model.model.blocks.0.attn1.to_q.lora_A.weight": ([2, 8], v(16)),
    "base_model.model.blocks.0.attn1.to_q.lora_B.weight": ([8, 2], v(16)),
    "transformer.blocks.0.ffn.net.0.proj.lora_A.weight": ([1, 8], v(8)),
    "transformer.blocks.0.ffn.net.0.proj.lora_B.weight": ([16, 1], v(16)),
}))
ko = "lora_unet_audio_model_blocks_0_cross_attn_k_fusion"
put(LO, "kohya-ovi.safetensors", lora_st({
    "lora_unet__blocks_0_self_attn_q.lora_down.weight": ([2, 8], v(16)),
    "lora_unet__blocks_0_self_attn_q.lora_up.weight": ([8, 2], v(16)),
    "lora_unet__blocks_0_self_attn_q.alpha": ([], [4.0]),
    ko + ".lora_down.weight": ([2, 8], v(16)),
    ko + ".lora_up.weight": ([8, 2], v(16)),
    "lora_unet_blocks_3_self_attn_q.alpha": ([], [1.0]),
}))
put(LO, "bad-shape.safetensors", lora_st({
    dm + "ffn.0.lora_down.weight": ([2, 7], v(14)),
    dm + "ffn.0.lora_up.weight": ([16, 2], v(32)),
}))
put(LO, "bad-nan.safetensors", lora_st({
    dm + "self_attn.q.lora_down.weight": ([2, 8], v(15) + [float("nan")]),
    dm + "self_attn.q.lora_up.weight": ([8, 2], v(16)),
}))
put(LO, "bad-rank0-huge.safetensors", lora_st({
    dm + "self_attn.q.lora_down.weight": ([0, 8], []),
    dm + "self_attn.q.lora_up.weight": ([8, 0], []),
    dm + "ffn.0.lora_down.weight": ([2**40, 0], []),
    dm + "ffn.0.lora_up.weight": ([16, 2**40, 0], []),
}))
# no elements, but 16 x ~2^60 overflows int64 strides (found by fuzz-lora)
put(LO, "bad-zero-dim-overflow.safetensors", lora_st({
    dm + "ffn.0.lora_down.weight": ([0, 8], []),
    dm + "ffn.0.lora_up.weight": ([16, 1099511099511627776, 0], []),
}))
put(LO, "bad-nothing.safetensors", lora_st({
    "unet.conv_in.lora_down.weight": ([2, 8], v(16)),
    "unet.conv_in.lora_up.weight": ([8, 2], v(16)),
}))
print("corpus written to", OUT)
