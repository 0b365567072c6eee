#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gst-ovi: cross-check CPU backend ops against PyTorch's own functions.

Writes random inputs and PyTorch outputs (float64 reference computations
where PyTorch allows, else float32 torch ops) to a temporary directory with a
cases.json manifest, then runs the C checker on it. This catches convention
mistakes (weight layouts, padding orders, nearest-exact rounding, channel
orders) that a reference written by the same hand could share.
Exit 77 (skip) when this python has no torch.

usage: torch-ops.py CHECKER_BINARY
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    print("no torch/numpy in this python: skipping")
    sys.exit(77)

SEED = int(os.environ.get("OVI_TEST_SEED", "20251122"))
print(f"# random seed {SEED} (set OVI_TEST_SEED to change)")
torch.manual_seed(SEED)
cases = []
tmp = tempfile.mkdtemp(prefix="ovi-torch-ops-")
counter = [0]


def save(t):
    a = np.ascontiguousarray(t.detach().to(torch.float32).numpy())
    counter[0] += 1
    name = f"t{counter[0]}.f32"
    a.tofile(os.path.join(tmp, name))
    return {"file": name, "shape": list(a.shape)}


def case(op, inputs, expected, tol, **params):
    cases.append({"op": op, "inputs": {k: save(v) for k, v in inputs.items()},
                  "expected": save(expected), "tol": tol, "params": params})


def r(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo)


d = torch.float64

# conv1d: stride, dilation, groups, padding (zero)
for (cin, cout, t, k, st, pad, dil, g) in [(8, 12, 50, 3, 1, 1, 1, 1),
                                          (6, 6, 41, 12, 2, 5, 1, 6),
                                          (16, 8, 77, 7, 1, 9, 3, 2),
                                          (4, 10, 33, 5, 3, 2, 1, 2)]:
    x, w, b = r(cin, t), r(cout, cin // g, k), r(cout)
    y = F.conv1d(x[None].to(d), w.to(d), b.to(d), stride=st, padding=pad,
                 dilation=dil, groups=g)[0]
    case("conv1d", {"x": x, "w": w, "b": b}, y, 1e-6, stride=st, pad=pad,
         dilation=dil, groups=g)

# conv_transpose1d: dense upsamplers and depthwise anti-alias filters
for (cin, cout, t, k, st, pad, g) in [(16, 8, 20, 16, 8, 4, 1),
                                      (12, 6, 31, 4, 2, 1, 1),
                                      (6, 6, 25, 12, 2, 5, 6),
                                      (8, 8, 9, 11, 5, 3, 1)]:
    x, w, b = r(cin, t), r(cin, cout // g, k), r(cout)
    y = F.conv_transpose1d(x[None].to(d), w.to(d), b.to(d), stride=st,
                           padding=pad, groups=g)[0]
    case("conv_transpose1d", {"x": x, "w": w, "b": b}, y, 1e-6, stride=st,
         pad=pad, groups=g)

# conv3d with 6-sided zero padding (F.pad order: w_l, w_r, h_t, h_b, t_f, t_b)
for (cin, cout, T, H, W, k, st, pads) in [
        (4, 6, 4, 9, 11, (3, 3, 3), (1, 1, 1), (2, 0, 1, 1, 1, 1)),
        (5, 3, 3, 8, 10, (1, 3, 3), (1, 2, 2), (0, 0, 0, 1, 0, 1)),
        (3, 4, 7, 5, 6, (3, 1, 1), (2, 1, 1), (0, 0, 0, 0, 0, 0))]:
    x, w, b = r(cin, T, H, W), r(cout, cin, *k), r(cout)
    xp = F.pad(x[None].to(d), (pads[4], pads[5], pads[2], pads[3], pads[0],
                               pads[1]))
    y = F.conv3d(xp, w.to(d), b.to(d), stride=st)[0]
    case("conv3d", {"x": x, "w": w, "b": b}, y, 1e-6, stride=list(st),
         pad=list(pads))

# norms, softmax, activations
x = r(37, 129, lo=-3, hi=3)
g, bb = r(129, lo=0.5, hi=1.5), r(129)
case("layer_norm", {"x": x, "w": g, "b": bb},
     F.layer_norm(x.to(d), (129,), g.to(d), bb.to(d), eps=1e-6), 1e-6,
     eps=1e-6)
case("rms_norm", {"x": x, "w": g},
     x.to(d) * torch.rsqrt(x.to(d).pow(2).mean(-1, keepdim=True) + 1e-6)
     * g.to(d), 1e-6, eps=1e-6)
case("softmax", {"x": x * 5}, torch.softmax((x * 5).to(d), -1), 1e-6)
case("gelu_tanh", {"x": x}, F.gelu(x.to(d), approximate="tanh"), 3e-6)
case("gelu_erf", {"x": x}, F.gelu(x.to(d)), 3e-6)
case("silu", {"x": x}, F.silu(x.to(d)), 3e-6)

# nearest-exact upsampling and replicate padding on [C, H, W]
x = r(3, 5, 7)
case("upsample2", {"x": x},
     F.interpolate(x[None], scale_factor=2.0, mode="nearest-exact")[0], 0)
case("pad_replicate", {"x": x}, F.pad(x[None], (2, 1, 1, 3),
                                      mode="replicate")[0], 0)

# Wan2.2 patchify: "b c f (h q) (w r) -> b (c r q) f h w" with q = r = 2
x = r(3, 2, 8, 12)
C, T, H, W = x.shape
y = x.reshape(C, T, H // 2, 2, W // 2, 2).permute(0, 5, 3, 1, 2, 4) \
    .reshape(C * 4, T, H // 2, W // 2)
case("pixel_unshuffle", {"x": x}, y, 0)

# attention with an additive bias, scale, a partly masked key range
B, Lq, Lk, Hh, D = 2, 33, 70, 3, 16
q, k, v = r(B, Lq, Hh, D, lo=-2, hi=2), r(B, Lk, Hh, D, lo=-2, hi=2), \
    r(B, Lk, Hh, D)
bias = r(1, Hh, Lq, Lk, lo=-2, hi=2)
s = torch.einsum("bqhd,bkhd->bhqk", q.to(d), k.to(d)) * 0.3 + bias.to(d)
lens = [70, 41]
for bi, ln in enumerate(lens):
    s[bi, :, :, ln:] = float("-inf")
o = torch.einsum("bhqk,bkhd->bqhd", torch.softmax(s, -1), v.to(d))
case("attention", {"q": q, "k": k, "v": v, "bias": bias}, o, 2e-6,
     scale=0.3, kv_lens=lens)

# interleaved-pair RoPE as Wan (complex multiply in float64)
L, Hh, Dh, P = 9, 2, 16, 5
x = r(L, Hh, Dh, lo=-2, hi=2)
ang = r(L, P, lo=-5, hi=5).to(d)
cs, sn = torch.cos(ang).float(), torch.sin(ang).float()
xc = torch.view_as_complex(x[..., :2 * P].to(d).reshape(L, Hh, P, 2))
f = torch.complex(cs.to(d), sn.to(d))[:, None, :]
y = torch.cat([torch.view_as_real(xc * f).reshape(L, Hh, 2 * P),
               x[..., 2 * P:].to(d)], -1)
case("rope", {"x": x, "cos": cs, "sin": sn}, y, 2e-7)

# BigVGAN SnakeBeta (logscale): x + 1/(exp(beta) + 1e-9) sin(exp(alpha) x)^2
x, al, be = r(6, 40, lo=-3, hi=3), r(6, lo=-0.5, hi=0.5), r(6, lo=-0.5, hi=0.5)
a, bt = torch.exp(al.to(d))[:, None], torch.exp(be.to(d))[:, None]
case("snake_beta", {"x": x, "alpha": al, "beta": be},
     x.to(d) + 1.0 / (bt + 1e-9) * torch.sin(x.to(d) * a) ** 2, 1e-6)

# Wan RMS_norm (channel first) and EDM2 normalize
x, gm = r(12, 3, 4, 5, lo=-2, hi=2), r(12, lo=0.5, hi=1.5)
case("channel_norm_l2", {"x": x, "gamma": gm},
     F.normalize(x.to(d), dim=0) * (12 ** 0.5) * gm.to(d)[:, None, None, None],
     1e-6)
nrm = torch.linalg.vector_norm(x.to(d), dim=0, keepdim=True)
case("channel_norm_mag", {"x": x}, x.to(d) / (1e-4 + nrm * (1 / 12) ** 0.5),
     1e-6)

with open(os.path.join(tmp, "cases.json"), "w") as fh:
    json.dump(cases, fh)
rc = subprocess.call([sys.argv[1], tmp])
for name in os.listdir(tmp):
    os.unlink(os.path.join(tmp, name))
os.rmdir(tmp)
sys.exit(rc)
