#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The CUDA module holds a cubin for every architecture of the build's list
and the PTX of the highest one (issue 21), read from the module itself:
the fat binaries in its .nv_fatbin ELF section (cuobjdump is not needed).

Each .cu file contributes one fat binary container (magic 0xBA55ED50): a
header (magic u32, version u16, header size u16, payload size u64), then
entries: kind u16 (1 PTX, 2 ELF cubin), version u16, header size u32,
payload size u32, ..., the architecture u32 at byte 28. Containers without
PTX come from the toolkit's libraries (not ours) and are only listed.

usage: check-fatbin.py MODULE ARCH_LIST (e.g. 80,86,89,90,100,120,121)
"""
import struct
import sys

FATBIN_MAGIC = 0xBA55ED50
KIND_PTX, KIND_CUBIN = 1, 2


def section(data, wanted):
    if data[:4] != b"\x7fELF" or data[4] != 2:
        sys.exit("not a 64-bit ELF file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    heads = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
             for i in range(shnum)]
    strtab = heads[shstrndx][4]
    for name, _type, _flags, _addr, off, size in heads:
        end = data.index(b"\0", strtab + name)
        if data[strtab + name:end].decode() == wanted:
            return off, size
    sys.exit(f"no {wanted} section: the module holds no device code")


def containers(data, off, size):
    p = off
    while p + 16 <= off + size:
        magic, _ver, hsize, fsize = struct.unpack_from("<IHHQ", data, p)
        if magic != FATBIN_MAGIC:
            p += 8  # containers are 8-byte aligned
            continue
        entries, q = [], p + hsize
        while q < p + hsize + fsize:
            kind, _ev, ehs, psize = struct.unpack_from("<HHII", data, q)
            arch = struct.unpack_from("<I", data, q + 28)[0]
            entries.append((kind, arch, data[q + ehs:q + ehs + 4]))
            q += ehs + psize
        yield entries
        p += hsize + fsize


def main():
    module, arch_list = sys.argv[1], sys.argv[2]
    want = sorted({int(a) for a in arch_list.split(",") if a.strip()})
    data = open(module, "rb").read()
    ours = 0
    for entries in containers(data, *section(data, ".nv_fatbin")):
        cubins = sorted(a for k, a, _ in entries if k == KIND_CUBIN)
        ptx = [a for k, a, _ in entries if k == KIND_PTX]
        if not ptx:
            print(f"library container (no PTX): sm {cubins}")
            continue
        ours += 1
        print(f"container {ours}: cubins sm {cubins}, PTX {ptx}")
        missing = [a for a in want if a not in cubins]
        if missing:
            sys.exit(f"container {ours}: no cubin for sm {missing}")
        if ptx != [want[-1]]:
            sys.exit(f"container {ours}: PTX {ptx}, expected [{want[-1]}]")
        for k, a, head in entries:
            if k == KIND_CUBIN and head != b"\x7fELF":
                sys.exit(f"container {ours}: the sm_{a} cubin is not an ELF")
    if ours == 0:
        sys.exit("no container of this module's own kernels (with PTX)")
    print(f"ok: {ours} containers, each with sm {want} and PTX {want[-1]}")


main()
