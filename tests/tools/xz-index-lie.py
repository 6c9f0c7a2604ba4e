#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
# Rewrite an xz file's index so that it claims fewer uncompressed bytes
# than its blocks hold: the last record's uncompressed size is lowered
# (its varint keeps its length) and the index CRC32 recomputed, so the
# footer, the backward size and every CRC still agree.  `xz -t` rejects
# the result; a decoder that trusts the index alone copies it truncated.
# BYTES_LESS may be the whole size (an index that says 0 bytes).
# With --check-id N instead, the stream's check type is set to N in its
# header and footer (their CRC32s recomputed): 2 is a reserved type
# whose check is 4 bytes like CRC32's, which no liblzma can verify.
# Usage: xz-index-lie.py IN.xz OUT.xz BYTES_LESS
#        xz-index-lie.py --check-id N IN.xz OUT.xz
import struct
import sys
import zlib


def varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        v |= (b & 0x7F) << shift
        i += 1
        shift += 7
        if not b & 0x80:
            return v, i


def encode(v, length):
    out = bytearray()
    for k in range(length):
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if k < length - 1 else 0))
    if v:
        raise SystemExit("xz-index-lie: value does not fit its varint")
    return bytes(out)


def check_id(n, src, dst):
    data = bytearray(open(src, "rb").read())
    if data[:6] != b"\xfd7zXZ\x00" or data[-2:] != b"YZ":
        raise SystemExit("xz-index-lie: not one xz stream")
    data[7] = n
    data[8:12] = struct.pack("<I", zlib.crc32(data[6:8]))
    data[-3] = n
    data[-12:-8] = struct.pack("<I", zlib.crc32(data[-8:-2]))
    open(dst, "wb").write(data)


def main():
    if sys.argv[1] == "--check-id":
        return check_id(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    src, dst, less = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = bytearray(open(src, "rb").read())
    if data[-2:] != b"YZ":
        raise SystemExit("xz-index-lie: no stream footer (one stream only)")
    backward = struct.unpack("<I", data[-8:-4])[0]
    size = (backward + 1) * 4
    start = len(data) - 12 - size
    if data[start] != 0:
        raise SystemExit("xz-index-lie: no index indicator")
    count, i = varint(data, start + 1)
    last = None
    for _ in range(count):
        _, i = varint(data, i)
        at = i
        unc, i = varint(data, i)
        last = (at, i - at, unc)
    at, length, unc = last
    if less <= 0 or less > unc:
        raise SystemExit("xz-index-lie: BYTES_LESS out of range")
    new = unc - less
    if new and new < (1 << (7 * (length - 1))) and length > 1:
        raise SystemExit("xz-index-lie: the new size needs a shorter varint")
    data[at:at + length] = encode(new, length)
    crc_at = start + size - 4
    data[crc_at:crc_at + 4] = struct.pack("<I", zlib.crc32(data[start:crc_at]))
    open(dst, "wb").write(data)


main()
