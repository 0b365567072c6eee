# SPDX-License-Identifier: LGPL-2.1-or-later
"""Small F32 safetensors files written by the python tests (LoRAs and
inputs for the tools and the server)."""
import json
import struct


def write_safetensors(path, tensors):
    """tensors: name -> (shape, list of floats), written as F32 in the
    dict's order"""
    header, blobs, off = {}, [], 0
    for name, (shape, vals) in tensors.items():
        raw = struct.pack(f"<{len(vals)}f", *vals)
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
