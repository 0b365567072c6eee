#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Seeded training corpus and test strings for the SentencePiece comparison
# tests (tests/text/test-text.c).
# usage: make-corpus.py SEED CORPUS.txt STRINGS.json N_STRINGS
import json
import random
import sys

seed, corpus_path, strings_path, n_strings = (int(sys.argv[1]), sys.argv[2],
                                              sys.argv[3], int(sys.argv[4]))
rng = random.Random(seed)

WORDS = ("a the man woman dog cat walks runs sings speaks says loudly softly "
         "in on under over street kitchen stage camera light sound music "
         "voice crowd guitar rain wind city night morning quickly slowly "
         "bright dark red blue green happy sad old young big small two three "
         "looks at and with while then because of for to from").split()
ACCENTED = "café naïve résumé über straße niño façade crème brûlée Ångström smørrebrød".split()
CJK = ["日本語", "中文字符", "東京", "한국어", "こんにちは", "漢字"]
EMOJI = ["🎉", "👍🏽", "👨‍👩‍👧", "🇯🇵", "❤️", "😀", "🚀"]
OTHER = ["Привет мир", "Καλημέρα", "مرحبا", "ＦＵＬＬ", "ﬁne", "x²", "½", "№5",
         "™", "…", "—", "“quoted”", "‘single’"]
SPACES = [" ", "  ", "\t", "\u00a0", "\u3000", "\u2003", " \n ", "\u200b", "   "]
DIGITS = ["0", "7", "42", "2024", "3.14", "1,000", "10:30", "99%", "#12"]


SYL = "ka to ri mu ne sa lo vi pe du ha ge zo bi ta mo ru ke ni ya str ing tion er".split()


def pseudo():
    return "".join(rng.choice(SYL) for _ in range(rng.randint(1, 4)))


def word():
    r = rng.random()
    if r < 0.35:
        return pseudo()
    if r < 0.70:
        w = rng.choice(WORDS)
        return w.capitalize() if rng.random() < 0.15 else w
    if r < 0.78:
        return rng.choice(ACCENTED)
    if r < 0.84:
        return rng.choice(DIGITS)
    if r < 0.89:
        return rng.choice(CJK)
    if r < 0.93:
        return rng.choice(EMOJI)
    return rng.choice(OTHER)


def sentence(odd_space=False):
    n = rng.randint(3, 14)
    parts = []
    for i in range(n):
        parts.append(word())
        parts.append(rng.choice(SPACES) if odd_space and rng.random() < 0.3 else " ")
    s = "".join(parts[:-1]) + rng.choice([".", "!", "?", ",", ""])
    r = rng.random()
    if r < 0.15:
        s = s + " <S>" + " ".join(word() for _ in range(rng.randint(1, 5))) + "<E>"
    elif r < 0.30:
        s = s + " <AUDCAP>" + ", ".join(word() for _ in range(rng.randint(1, 4))) + "<ENDAUDCAP>"
    elif r < 0.35:
        s = s + " Audio: " + " ".join(word() for _ in range(3))
    return s


with open(corpus_path, "w", encoding="utf-8") as f:
    for _ in range(3000):
        f.write(sentence().replace("\n", " ") + "\n")

strings = ["", " ", "   ", "a", "  leading and trailing  ", "multiple    inner   spaces",
           "tab\there", "new\nline", "\u2581already escaped\u2581", "<S>hi<E>",
           "<AUDCAP>sizzling pan<ENDAUDCAP>", "<pad> </s> <unk> <s>", "<ctl> x",
           "123456789", "x" * 40, "ΑΒΓ", "🎉🎉🎉", "👨‍👩‍👧 family", "soft\u00adhyphen",
           "zero\u200bwidth", "ideographic\u3000space", "nbsp\u00a0here",
           "ＦＵＬＬＷＩＤＴＨ １２３", "ﬁne ﬂoor", "e\u0301cole", "control\x07bell",
           "\x1b[31mred\x1b[0m", "emoji 👍🏽 skin", "Ǆ ǅ ǆ", "ℌ ℍ ℎ", "①②③", "㎏ ㍻",
           "Ⅷ", "ﾊﾝｶｸ", "\ufeffbom", "a\u0300\u0301\u0302"]
while len(strings) < n_strings:
    strings.append(sentence(odd_space=rng.random() < 0.4))
with open(strings_path, "w", encoding="utf-8") as f:
    json.dump(strings, f, ensure_ascii=False)
