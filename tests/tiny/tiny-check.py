#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checks of `ovi make-tiny` from the outside.

usage: tiny-check.py cli OVI WORKDIR     the command line, determinism, `ovi inspect`
       tiny-check.py torch OVI WORKDIR   torch.load(weights_only=True) of every .pth,
                                         the vocoder's legacy weight-norm names loaded
                                         into torch modules, the tokenizer vs the T5
                                         vocabulary (exit 77 without torch)
"""
import filecmp
import os
import shutil
import subprocess
import sys

FILES = [
    "Ovi/model.safetensors",
    "Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth",
    "Wan2.2-TI2V-5B/Wan2.2_VAE.pth",
    "MMAudio/ext_weights/v1-16.pth",
    "MMAudio/ext_weights/best_netG.pt",
]
SPIECE = "Wan2.2-TI2V-5B/google/umt5-xxl/spiece.model"


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def run(ovi, *args, expect=0):
    p = subprocess.run([ovi, *args], capture_output=True, text=True)
    if p.returncode != expect:
        fail(f"ovi {' '.join(args)}: exit {p.returncode}, expected {expect}\n"
             f"{p.stdout}{p.stderr}")
    return p


def make(ovi, work, name, seed):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    run(ovi, "make-tiny", d, "--seed", str(seed))
    return d


def inspect(ovi, path, prefix=None):
    args = ["inspect", path] + (["--prefix", prefix] if prefix else [])
    rows = {}
    for line in run(ovi, *args).stdout.splitlines():
        name, dtype, shape = line.split(" ")[:3]
        rows[name] = (dtype, shape)
    return rows


def check_cli(ovi, work):
    a = make(ovi, work, "a", 5)
    b = make(ovi, work, "b", 5)
    c = make(ovi, work, "c", 6)
    files = FILES + ([SPIECE] if os.path.exists(os.path.join(a, SPIECE)) else [])
    for f in files:
        if not filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False):
            fail(f"{f}: two runs with seed 5 differ")
        if filecmp.cmp(os.path.join(a, f), os.path.join(c, f), shallow=False):
            fail(f"{f}: seeds 5 and 6 give the same bytes")
    print(f"deterministic: {len(files)} files identical for one seed, "
          "different for another")

    # the default seed is the one the user cache uses
    d = make(ovi, work, "d", 42)
    e = os.path.join(work, "e")
    shutil.rmtree(e, ignore_errors=True)
    run(ovi, "make-tiny", e)
    for f in FILES:
        if not filecmp.cmp(os.path.join(d, f), os.path.join(e, f), shallow=False):
            fail(f"{f}: the default seed is not 42")

    expect = {
        FILES[0]: (None, 237, {
            "video_model.patch_embedding.weight": ("BF16", "[64,48,1,2,2]"),
            "audio_model.patch_embedding.0.weight": ("BF16", "[64,20,7]"),
            "audio_model.patch_embedding.2.w2.weight": ("BF16", "[64,256,7]"),
            "video_model.blocks.1.modulation.modulation": ("BF16", "[1,6,64]"),
            "audio_model.blocks.2.cross_attn.v_fusion.weight": ("BF16", "[64,64]"),
            "video_model.head.head.weight": ("BF16", "[192,64]"),
            "audio_model.head.head.weight": ("BF16", "[20,64]"),
            "video_model.time_projection.1.weight": ("BF16", "[384,64]"),
        }),
        FILES[1]: (None, 22, {
            "token_embedding.weight": ("BF16", "[1024,64]"),
            "blocks.0.attn.q.weight": ("BF16", "[64,64]"),
            "blocks.1.ffn.gate.0.weight": ("BF16", "[128,64]"),
            "blocks.1.pos_embedding.embedding.weight": ("BF16", "[32,2]"),
            "norm.weight": ("BF16", "[64]"),
        }),
        FILES[2]: (None, 196, {
            "encoder.conv1.weight": ("F32", "[4,12,3,3,3]"),
            "conv1.weight": ("F32", "[96,96,1,1,1]"),
            "conv2.weight": ("F32", "[48,48,1,1,1]"),
            "decoder.conv1.weight": ("F32", "[32,48,3,3,3]"),
            "decoder.upsamples.1.upsamples.3.time_conv.weight": ("F32", "[64,32,3,1,1]"),
            "decoder.head.2.weight": ("F32", "[12,8,3,3,3]"),
            "encoder.head.2.weight": ("F32", "[96,16,3,3,3]"),
        }),
        FILES[3]: (None, 57, {
            "data_mean": ("F32", "[1,80,1]"),
            "data_std": ("F32", "[1,80,1]"),
            "decoder.conv_in.weight": ("F32", "[32,20,3]"),
            "decoder.conv_out.weight": ("F32", "[80,8,3]"),
            "decoder.learnable_gain": ("F32", "[]"),
            "decoder.mid.attn_1.qkv.weight": ("F32", "[96,32,1]"),
        }),
        FILES[4]: ("generator.", 784, {
            "conv_pre.weight_g": ("F32", "[64,1,1]"),
            "conv_pre.weight_v": ("F32", "[64,80,7]"),
            "ups.0.0.weight_v": ("F32", "[64,32,8]"),
            "resblocks.17.convs1.2.weight_v": ("F32", "[1,1,11]"),
            "resblocks.5.activations.5.act.beta": ("F32", "[16]"),
            "resblocks.15.activations.5.act.beta": ("F32", "[1]"),
            "activation_post.upsample.filter": ("F32", "[1,1,12]"),
            "conv_post.bias": ("F32", "[1]"),
        }),
    }
    for f, (prefix, count, names) in expect.items():
        rows = inspect(ovi, os.path.join(a, f), prefix)
        if len(rows) != count:
            fail(f"{f}: ovi inspect lists {len(rows)} tensors, expected {count}")
        for n, want in names.items():
            if rows.get(n) != want:
                fail(f"{f}: {n} is {rows.get(n)}, expected {want}")
        print(f"{f}: {count} tensors, {len(names)} names checked")
    # without the prefix the vocoder names are nested under 'generator.'
    rows = inspect(ovi, os.path.join(a, FILES[4]))
    if "generator.conv_pre.weight_g" not in rows:
        fail("best_netG.pt is not {'generator': state_dict}")

    # bad command lines fail with a message
    for args in (["make-tiny"], ["make-tiny", a, "--seed", "x1"],
                 ["make-tiny", a, "--seed"], ["make-tiny", a, "--bogus"],
                 ["make-tiny", a, "--seed", "-3"]):
        p = run(ovi, *args, expect=1)
        if "make-tiny" not in p.stderr:
            fail(f"ovi {' '.join(args)}: no clear message: {p.stderr!r}")
    print("bad arguments rejected")


def check_torch(ovi, work):
    try:
        import torch
    except ImportError:
        print("SKIP: no torch")
        sys.exit(77)
    a = make(ovi, work, "t", 9)
    sds = {}
    for f in FILES[1:]:
        sd = torch.load(os.path.join(a, f), map_location="cpu", weights_only=True)
        if f.endswith("best_netG.pt"):
            if list(sd.keys()) != ["generator"]:
                fail(f"{f}: top-level keys {list(sd.keys())}")
            sd = sd["generator"]
        for k, v in sd.items():
            if not isinstance(v, torch.Tensor):
                fail(f"{f}: {k} is a {type(v)}")
            if not torch.isfinite(v.float()).all() or not v.float().abs().sum() > 0:
                fail(f"{f}: {k} is zero or not finite")
        sds[f] = sd
        print(f"{f}: torch.load(weights_only=True) ok, {len(sd)} tensors, "
              f"dtypes {sorted({str(v.dtype) for v in sd.values()})}")
    t5 = sds[FILES[1]]
    if t5["token_embedding.weight"].dtype != torch.bfloat16:
        fail("the T5 file is not bf16")
    for f in FILES[2:]:
        if any(v.dtype != torch.float32 for v in sds[f].values()):
            fail(f"{f} is not float32")

    # the legacy weight-norm names load into torch's own weight_norm modules
    voc = sds[FILES[4]]
    conv = torch.nn.utils.weight_norm(torch.nn.Conv1d(80, 64, 7, padding=3))
    conv.load_state_dict({k[len("conv_pre."):]: v for k, v in voc.items()
                          if k.startswith("conv_pre.")}, strict=True)
    up = torch.nn.utils.weight_norm(torch.nn.ConvTranspose1d(64, 32, 8, 4, 2))
    up.load_state_dict({k[len("ups.0.0."):]: v for k, v in voc.items()
                        if k.startswith("ups.0.0.")}, strict=True)
    x = torch.randn(1, 80, 5)
    y = up(conv(x))
    if y.shape != (1, 32, 20) or not torch.isfinite(y).all():
        fail(f"weight-norm modules from the file give {y.shape}")
    # the anti-alias filter: 12-tap Kaiser sinc, sum 1, symmetric
    filt = voc["resblocks.0.activations.0.upsample.filter"].flatten()
    if abs(float(filt.sum()) - 1) > 1e-6 or not torch.allclose(filt, filt.flip(0)):
        fail(f"filter {filt}")
    print("vocoder: legacy weight_g/weight_v load into torch weight_norm modules")

    # the tokenizer's ids fit the T5 embedding
    sp_path = os.path.join(a, SPIECE)
    if os.path.exists(sp_path):
        try:
            import sentencepiece
        except ImportError:
            sentencepiece = None
        if sentencepiece is not None:
            sp = sentencepiece.SentencePieceProcessor(model_file=sp_path)
            rows = t5["token_embedding.weight"].shape[0]
            if sp.get_piece_size() > rows:
                fail(f"tokenizer has {sp.get_piece_size()} pieces, T5 {rows} rows")
            ids = sp.encode("A chef flips a pancake. <S>Breakfast!<E>")
            if not ids or max(ids) >= rows:
                fail(f"ids {ids}")
            print(f"tokenizer: {sp.get_piece_size()} pieces <= {rows} T5 rows")
    else:
        print("no spiece.model yet (tokenizer writer not built in)")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("cli", "torch"):
        print(__doc__)
        sys.exit(2)
    mode, ovi, work = sys.argv[1:]
    os.makedirs(work, exist_ok=True)
    try:
        (check_cli if mode == "cli" else check_torch)(ovi, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
