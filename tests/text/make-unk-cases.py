#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes a SentencePiece unigram model in which unknown characters compete
with multi-character pieces, and strings that exercise it.

    make-unk-cases.py MODEL_OUT STRINGS_OUT.json

SentencePiece scores an unknown character min_score - 10 (kUnkPenalty) in
the Viterbi lattice. The model has single characters only for some letters
(a, b, c, y, w); x, q and z exist only inside longer pieces ("xy", "qz",
"xqz", "zzz"). Scores are set so that for strings such as "xyw" the best
path takes x as unknown ("x" + "yw": (-40) + (-1)) over the piece path
("xy" + "w": (-20) + (-25)), while a penalty of 0 or 20 would choose the
other; other strings flip the other way. Consecutive unknowns merge into one
<unk> id. The test compares our tokenizer with SentencePiece itself on
these strings (test-text.c, test_unknown_competition).
"""
import itertools
import json
import random
import struct
import sys


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | 0x80 if v else b)
        if not v:
            return bytes(out)


def field_bytes(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data


def field_int(field, v):
    return varint(field << 3) + varint(v)


def field_float(field, v):
    return varint(field << 3 | 5) + struct.pack("<f", v)


NORMAL, UNKNOWN, CONTROL = 1, 2, 3
W = "\u2581"  # SentencePiece's escaped space

# min_score is -30 ("zzz"), so an unknown character scores -40
PIECES = [
    ("<pad>", 0.0, CONTROL), ("</s>", 0.0, CONTROL), ("<unk>", 0.0, UNKNOWN),
    (W, -2.0, NORMAL),
    ("a", -3.0, NORMAL), ("b", -3.5, NORMAL), ("c", -4.0, NORMAL),
    ("y", -1.0, NORMAL), ("w", -25.0, NORMAL),
    ("yw", -1.0, NORMAL), ("xy", -20.0, NORMAL), ("qz", -12.0, NORMAL),
    ("xqz", -21.0, NORMAL), ("zzz", -30.0, NORMAL), ("ab", -5.0, NORMAL),
    (W + "a", -4.0, NORMAL), (W + "xy", -26.0, NORMAL),
    ("abc", -6.5, NORMAL), ("cy", -7.5, NORMAL), ("bw", -14.0, NORMAL),
]


def model_bytes():
    pieces = b"".join(
        field_bytes(1, field_bytes(1, p.encode()) + field_float(2, s)
                    + field_int(3, t))
        for p, s, t in PIECES)
    # unigram; unk 2, no bos, eos 1, pad 0
    trainer = (field_int(3, 1) + field_int(40, 2)
               + field_int(41, 0xFFFFFFFFFFFFFFFF) + field_int(42, 1)
               + field_int(43, 0))
    # identity normaliser: no charsmap; dummy prefix, whitespace handling on
    normalizer = (field_bytes(1, b"identity") + field_int(3, 1)
                  + field_int(4, 1) + field_int(5, 1))
    return pieces + field_bytes(2, trainer) + field_bytes(3, normalizer)


def strings():
    fixed = ["xyw", "xy", "x", "xq", "xqz", "qz", "qzw", "zz", "zzz", "zzzz",
             "xyxyw", "axyw", "abxyw", "xyw xyw", "cyw", "bwxy", "xxyw",
             "q", "z", "zq", "xqzw", "abc xy", "yxqz", "wxyw", "éxyw",
             "x\u00e9y", "日本xy", "xy  zzz", " xyw ", "abcxqzzzzqz"]
    rng = random.Random(20261205)
    letters = "abcyqxzw é"
    generated = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 12)))
                 for _ in range(300)]
    short = ["".join(t) for n in (1, 2, 3) for t in
             itertools.product("xyzqwb", repeat=n)]
    return fixed + short + generated


if __name__ == "__main__":
    with open(sys.argv[1], "wb") as f:
        f.write(model_bytes())
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(strings(), f, ensure_ascii=False)
