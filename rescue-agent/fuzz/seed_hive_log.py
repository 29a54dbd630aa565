#!/usr/bin/env python3
"""Seeds for the hive_log fuzz target: small dirty hives with valid
new-format logs (checksums and Marvin32 hashes right), which a fuzzer does
not find by itself. Input layout: u32 primary length, primary, log.

    python3 seed_hive_log.py corpus/hive_log
"""
import os
import struct
import sys

M = 0xFFFFFFFF
SEED = 0x82EF4D887A4E55C5


def rotl(x, n):
    return ((x << n) | (x >> (32 - n))) & M


def mix(lo, hi):
    hi ^= lo
    lo = (rotl(lo, 20) + hi) & M
    hi = rotl(hi, 9) ^ lo
    lo = (rotl(lo, 27) + hi) & M
    return lo, rotl(hi, 19)


def marvin32(data, seed=SEED):
    lo, hi = seed & M, seed >> 32
    n = len(data) // 4 * 4
    for i in range(0, n, 4):
        lo, hi = mix((lo + struct.unpack_from("<I", data, i)[0]) & M, hi)
    tail = data[n:]
    last = (0x80 << (8 * len(tail))) | int.from_bytes(tail, "little")
    lo, hi = mix((lo + last) & M, hi)
    lo, hi = mix(lo, hi)
    return (hi << 32) | lo


def stamp(b, seq1, seq2, file_type):
    struct.pack_into("<II", b, 4, seq1, seq2)
    struct.pack_into("<I", b, 0x1C, file_type)
    x = 0
    for i in range(127):
        x ^= struct.unpack_from("<I", b, 4 * i)[0]
    struct.pack_into("<I", b, 0x1FC, {0: 1, M: M - 1}.get(x, x))


def primary(seq1, seq2, bins):
    b = bytearray(4096 + bins * 4096)
    b[:4] = b"regf"
    for off, v in [(0x14, 1), (0x18, 5), (0x20, 1), (0x24, 0x20), (0x28, bins * 4096)]:
        struct.pack_into("<I", b, off, v)
    for i in range(bins):
        b[4096 + i * 4096:4096 + (i + 1) * 4096] = bytes([i]) * 4096
        b[4096 + i * 4096:4096 + i * 4096 + 4] = b"hbin"
    stamp(b, seq1, seq2, 0)
    return b


def entry(seq, bins, pages):
    e = bytearray(40)
    e[:4] = b"HvLE"
    for off, data in pages:
        e += struct.pack("<II", off, len(data))
    for _, data in pages:
        e += data
    e += bytes(-len(e) % 512)
    struct.pack_into("<IIIII", e, 4, len(e), 1, seq, bins, len(pages))
    struct.pack_into("<Q", e, 24, marvin32(bytes(e[40:])))
    struct.pack_into("<Q", e, 32, marvin32(bytes(e[:32])))
    return e


def log(hive, seq, entries, size):
    head = bytearray(hive[:512]) + bytes(4096 - 512)
    stamp(head, seq, seq, 6)
    out = head[:512] + b"".join(entries)
    return out + bytes(max(0, size - len(out)))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {}
    p = primary(13, 11, 2)
    seeds["dirty-chain"] = (p, log(p, 11, [entry(11, 8192, [(0, b"\xb0" * 4096)]), entry(12, 8192, [(4096, b"\xb1" * 4096)])], 16384))
    seeds["dirty-full-log"] = (p, log(p, 11, [entry(11, 8192, [(0, b"\xb0" * 4096)])], 0))
    c = primary(7, 7, 2)
    seeds["clean-empty-log"] = (c, log(c, 7, [], 16384))
    for name, (prim, lg) in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(struct.pack("<I", len(prim)) + bytes(prim) + bytes(lg))


if __name__ == "__main__":
    main()
