#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# T5 bidirectional relative-position buckets as computed by torch in the
# official umT5 encoder (float32 log path), for rel = k - q in [-N, N].
# usage: t5-buckets.py N NUM_BUCKETS MAX_DIST OUT.json
import json
import math
import sys

import torch

n, num_buckets, max_dist = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rel = torch.arange(-n, n + 1).unsqueeze(0)  # [1, 2n+1]
half = num_buckets // 2
buckets = (rel > 0).long() * half
rel = torch.abs(rel)
max_exact = half // 2
large = max_exact + (torch.log(rel.float() / max_exact) / math.log(max_dist / max_exact)
                     * (half - max_exact)).long()
large = torch.min(large, torch.full_like(large, half - 1))
buckets += torch.where(rel < max_exact, rel, large)
with open(sys.argv[4], "w") as f:
    json.dump(buckets[0].tolist(), f)
