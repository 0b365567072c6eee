#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Reference ids from SentencePiece itself (Debian python3-sentencepiece).
# usage: spm-reference.py MODEL STRINGS.json OUT.json
#   STRINGS.json: a JSON list of strings; OUT.json: a list of id lists.
import json
import sys

import sentencepiece

sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    strings = json.load(f)
out = [sp.encode(s) for s in strings]
with open(sys.argv[3], "w", encoding="utf-8") as f:
    json.dump(out, f)
