#!/usr/bin/python3
"""Dumps a registry hive with hivex (Debian python3-hivex), the independent
reader the registry tests compare against: one line per value,
`key path<TAB>value name<TAB>type<TAB>data as hex`, and one line per key
without values (`key path<TAB>-`), sorted. Key timestamps and cell offsets
are left out. The first line is the base block: `base<TAB>seq1<TAB>seq2<TAB>checksum ok|bad`.

    tests/support/hive_dump.py HIVE
"""
import struct
import sys

import hivex


def base_line(path):
    b = open(path, "rb").read(4096)
    seq1, seq2 = struct.unpack_from("<II", b, 4)
    x = 0
    for i in range(127):
        x ^= struct.unpack_from("<I", b, 4 * i)[0]
    x = {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(x, x)
    ok = x == struct.unpack_from("<I", b, 0x1FC)[0]
    return f"base\t{seq1}\t{seq2}\tchecksum {'ok' if ok else 'bad'}"


def main():
    h = hivex.Hivex(sys.argv[1])
    lines = []
    stack = [(h.root(), "")]
    while stack:
        node, path = stack.pop()
        values = h.node_values(node)
        if not values:
            lines.append(f"{path}\t-")
        for v in values:
            t, data = h.value_value(v)
            lines.append(f"{path}\t{h.value_key(v)}\t{t}\t{data.hex()}")
        for c in h.node_children(node):
            stack.append((c, f"{path}\\{h.node_name(c)}" if path else h.node_name(c)))
    print(base_line(sys.argv[1]))
    for line in sorted(lines):
        print(line)


if __name__ == "__main__":
    main()
