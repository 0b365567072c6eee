#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gst-ovi: (re)generates the SentencePiece fuzz seeds in fuzz/corpus/spm/.

    fuzz/make-spm-corpus.py OVI_BINARY [OUT_DIR]

Valid small models from the tiny writer (`ovi make-tiny`, two seeds) and
from /usr/bin/spm_train on a tiny corpus (vocab 80 and 340 with byte
fallback; a custom normalisation TSV so that a precompiled charsmap trie is
present -- nmt_nfkc's own map is 238 KB, too big for a seed), then
truncated and mutated variants built with a small protobuf encoder: NaN/inf
scores, empty / invalid-UTF-8 / duplicate pieces, many pieces, hostile
charsmaps (trie size past the blob, random units, values past the
replacement blob), other model types, bad special ids, varint overflow.
Deterministic: the same binaries give the same files. Files named crash-*
are inputs the fuzzer once found; they are kept and not regenerated here.
"""
import os
import random
import struct
import subprocess
import sys
import tempfile

OVI = sys.argv[1]
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "corpus", "spm")
os.makedirs(OUT, exist_ok=True)
for old in os.listdir(OUT):
    if not old.startswith("crash-"):
        os.unlink(os.path.join(OUT, old))


def put(name, data):
    assert len(data) < 40000, (name, len(data))
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def f_bytes(field, data):
    return key(field, 2) + varint(len(data)) + data


def f_int(field, v):
    return key(field, 0) + varint(v)


def f_float(field, v):
    return key(field, 5) + struct.pack("<f", v)


def parse(data):
    """top-level (field, wire, raw value bytes) list of a message"""
    out, i = [], 0
    while i < len(data):
        k, i = read_varint(data, i)
        field, wire = k >> 3, k & 7
        if wire == 0:
            v, j = read_varint(data, i)
            out.append((field, wire, data[i:j]))
            i = j
        elif wire == 2:
            n, i = read_varint(data, i)
            out.append((field, wire, data[i:i + n]))
            i += n
        elif wire == 5:
            out.append((field, wire, data[i:i + 4]))
            i += 4
        elif wire == 1:
            out.append((field, wire, data[i:i + 8]))
            i += 8
        else:
            raise ValueError("wire %d" % wire)
    return out


def read_varint(data, i):
    v = s = 0
    while True:
        b = data[i]
        i += 1
        v |= (b & 0x7F) << s
        s += 7
        if not b & 0x80:
            return v, i


def emit(fields):
    out = bytearray()
    for field, wire, raw in fields:
        if wire == 2:
            out += f_bytes(field, raw)
        else:
            out += key(field, wire) + raw
    return bytes(out)


def piece(text, score, ptype=None):
    d = f_bytes(1, text) + f_float(2, score)
    if ptype is not None:
        d += f_int(3, ptype)
    return f_bytes(1, d)


def model(pieces, trainer=b"", normalizer=b""):
    return (b"".join(pieces) + (f_bytes(2, trainer) if trainer else b"")
            + (f_bytes(3, normalizer) if normalizer else b""))


def charsmap(trie_units, repl, trie_size=None):
    trie = b"".join(struct.pack("<I", u & 0xFFFFFFFF) for u in trie_units)
    size = len(trie) if trie_size is None else trie_size
    return struct.pack("<I", size) + trie + repl


def normalizer(cmap, name=b"custom"):
    return (f_bytes(1, name) + f_bytes(2, cmap) + f_int(3, 1) + f_int(4, 1)
            + f_int(5, 1))


TRAINER = f_int(3, 1) + f_int(40, 2) + f_int(41, 0xFFFFFFFFFFFFFFFF) \
    + f_int(42, 1) + f_int(43, 0)

with tempfile.TemporaryDirectory() as tmp:
    models = {}
    for seed in (0, 5):
        d = os.path.join(tmp, "tiny%d" % seed)
        subprocess.run([OVI, "make-tiny", d, "--seed", str(seed)], check=True,
                       stdout=subprocess.DEVNULL)
        for root, _, files in os.walk(d):
            if "spiece.model" in files:
                with open(os.path.join(root, "spiece.model"), "rb") as f:
                    models["tiny-%d" % seed] = f.read()
    rng = random.Random(1)
    words = ("the cat dog plays piano soft rain roof hello there world audio "
             "video sound music quiet loud \uff26\uff55\uff4c\uff4c caf\u00e9 "
             "\ufb01ne \u2460 \u216b").split()
    corpus = os.path.join(tmp, "c.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for _ in range(300):
            f.write(" ".join(rng.choice(words) for _ in range(8)) + "\n")
    rules = os.path.join(tmp, "rules.tsv")
    with open(rules, "w") as f:
        f.write("FF21\t41\n2460\t31\nFB01\t66 69\nFF46 FF55\t66 75\n"
                "3000\t20\n")
    for name, extra in (("trained-80", ["--vocab_size=80"]),
                        ("trained-bytes", ["--vocab_size=340",
                                           "--byte_fallback=true"])):
        # relative paths: the trainer spec records them
        subprocess.run(["/usr/bin/spm_train", "--input=c.txt",
                        "--model_prefix=" + name,
                        "--normalization_rule_tsv=rules.tsv",
                        "--num_threads=1", "--random_seed=1",
                        "--minloglevel=2", "--hard_vocab_limit=false"] + extra,
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, cwd=tmp)
        with open(os.path.join(tmp, name + ".model"), "rb") as f:
            models[name] = f.read()

for name, data in sorted(models.items()):
    put(name + ".model", data)

base = models["trained-80"]
fields = parse(base)
pieces = [f for f in fields if f[0] == 1]
trainer = [f for f in fields if f[0] == 2][0][2]
norm = [f for f in fields if f[0] == 3][0][2]
cmap = [f for f in parse(norm) if f[0] == 2][0][2]

# truncations
for n in (1, 7, 100, len(base) // 2, len(base) - 1):
    put("trunc-%d.model" % n, base[:n])
put("trunc-tiny.model", models["tiny-0"][:len(models["tiny-0"]) * 2 // 3])


def with_pieces(new_pieces, tr=trainer, nm=norm):
    return emit(new_pieces) + f_bytes(2, tr) + f_bytes(3, nm)


def rescore(i, score):
    fs = parse(pieces[i][2])
    fs = [(1, 2, f[2]) if f[0] == 1 else f for f in fs if f[0] != 2]
    raw = emit(fs[:1]) + f_float(2, score) + emit(fs[1:])
    return (1, 2, raw)


for tag, score in (("nan", float("nan")), ("inf", float("inf")),
                   ("-inf", float("-inf")), ("huge", 3e38)):
    p = list(pieces)
    for i in range(3, len(p), 3):
        p[i] = rescore(i, score)
    put("score-%s.model" % tag, with_pieces(p))

p = list(pieces) + [(1, 2, f_bytes(1, b"") + f_float(2, -1.0))]
put("empty-piece.model", with_pieces(p))
p = list(pieces) + [(1, 2, f_bytes(1, b"\xff\xfe") + f_float(2, -1.0)),
                    (1, 2, f_bytes(1, b"\xe2\x96") + f_float(2, -2.0)),
                    (1, 2, f_bytes(1, b"a\x00b") + f_float(2, -2.0))]
put("bad-utf8-piece.model", with_pieces(p))
put("dup-pieces.model", with_pieces(list(pieces) + list(pieces[3:10])))
p = list(pieces) + [(1, 2, f_bytes(1, b"<0x%02X>" % i) + f_float(2, 0.0)
                     + f_int(3, 6)) for i in (0x41, 0x300 & 0xFF)]
put("byte-pieces-no-fallback.model", with_pieces(p))
p = list(pieces) + [(1, 2, f_bytes(1, b"\xe2\x96\x81x") + f_float(2, -1.0)
                     + f_int(3, t)) for t in (0, 4, 5, 7, 99)]
put("piece-types.model", with_pieces(p))
many = [piece(b"%x" % i, -float(i % 50)) for i in range(3000)]
put("many-pieces.model", model(many, TRAINER, norm))

# special ids
for tag, tr in (("unk-out-of-range", f_int(3, 1) + f_int(40, 100000)),
                ("unk-negative", f_int(3, 1) + f_int(40, (1 << 64) - 5)),
                ("no-eos", f_int(3, 1) + f_int(42, 0xFFFFFFFFFFFFFFFF)),
                ("model-bpe", f_int(3, 2)), ("model-char", f_int(3, 4)),
                ("model-99", f_int(3, 99)),
                ("byte-fallback-no-bytes", trainer + key(35, 0) + b"\x01")):
    put("trainer-%s.model" % tag, with_pieces(pieces, tr))
put("only-trainer.model", f_bytes(2, trainer))
put("empty.model", b"")

# charsmaps
put("charsmap-none.model", with_pieces(pieces, trainer, f_int(3, 1)))
put("charsmap-size-past-end.model",
    with_pieces(pieces, trainer, normalizer(struct.pack("<I", 1 << 20)
                                            + cmap[4:])))
put("charsmap-short.model", with_pieces(pieces, trainer, normalizer(b"\x04")))
put("charsmap-odd-trie.model",
    with_pieces(pieces, trainer, normalizer(struct.pack("<I", 6)
                                            + cmap[4:])))
trie_size = struct.unpack("<I", cmap[:4])[0]
units = list(struct.unpack("<%dI" % (trie_size // 4), cmap[4:4 + trie_size]))
repl = cmap[4 + trie_size:]
rng = random.Random(7)
for k in range(6):
    u = list(units)
    for _ in range(4 + 4 * k):
        u[rng.randrange(len(u))] = rng.getrandbits(32)
    put("charsmap-random-units-%d.model" % k,
        with_pieces(pieces, trainer, normalizer(charsmap(u, repl))))
put("charsmap-no-repl.model",
    with_pieces(pieces, trainer, normalizer(charsmap(units, b""))))
put("charsmap-repl-unterminated.model",
    with_pieces(pieces, trainer, normalizer(charsmap(units,
                                                     repl.rstrip(b"\0")))))
put("charsmap-huge-units.model",
    with_pieces(pieces, trainer,
                normalizer(charsmap([0xFFFFFFFF] * 64, b"x\0"))))
put("charsmap-tsv-on-tiny.model",
    models["tiny-0"] + f_bytes(3, normalizer(cmap)))

# wire-level damage
put("varint-overflow.model", b"\x0a" + b"\xff" * 11 + b"\x01")
put("length-past-end.model", b"\x0a\xff\xff\xff\x0f" + base[:20])
put("wire-group.model", b"\x0b\x0c" + base)
put("wire-7.model", base[:40] + b"\x0f" + base[40:])
put("nested-length-past-end.model",
    f_bytes(1, b"\x0a\x50abc") + base)
