#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Seeded strings full of HTML character references, with Python's
# html.unescape of each (the official cleaning applies it twice).
# usage: html-reference.py SEED N OUT.json   (OUT: [[input, unescaped], ...])
import html
import html.entities
import json
import random
import sys

rng = random.Random(int(sys.argv[1]))
names = sorted(html.entities.html5)
plain = ["the", "cat", "café", "東京", "🎉", " ", "  ", "\t", "a", "12", ";", "<", ">",
         "&", "&&", "#", "x"]


def piece():
    r = rng.random()
    if r < 0.3:
        return rng.choice(plain)
    if r < 0.55:
        return "&" + rng.choice(names)
    if r < 0.62:
        return "&" + rng.choice(names).rstrip(";") + rng.choice(["x", "é", "1", ";", "", "amp;"])
    if r < 0.67:
        return "&" + rng.choice(names).rstrip(";").upper() + ";"
    if r < 0.82:
        return "&#" + str(rng.choice([0, 9, 11, 13, 28, 39, 65, 127, 128, 129, 141, 150, 157, 159,
                                      160, 233, 8217, 0xD800, 0xDFFF, 0xFDD0, 0xFFFE, 0x1FFFF,
                                      0x10FFFF, 0x110000, 128512, 10 ** 12])) + rng.choice([";", ""])
    if r < 0.92:
        return "&#" + rng.choice("xX") + rng.choice(["41", "e9", "2019", "1F600", "zz", "",
                                                     "110000", "d800"]) + rng.choice([";", ""])
    return rng.choice(["&amp;amp;", "&amp;lt;", "&ampx", "&notit;", "&#", "&#;", "&;", "&#x;",
                       "&" + "a" * 40 + ";"])


out = []
for _ in range(int(sys.argv[2])):
    s = "".join(piece() for _ in range(rng.randint(1, 10)))
    out.append([s, html.unescape(s)])
with open(sys.argv[3], "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False)
