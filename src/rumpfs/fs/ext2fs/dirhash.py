"""ext2/3/4 directory-index hashes: legacy, half-MD4 and TEA, signed and unsigned.

Allowed imports: the standard library only.

The htree (``dir_index``) keys each name by one of these 32-bit hashes,
seeded from the superblock (Linux's ``fs/ext4/hash.c`` describes them; the
code here follows the documented algorithms). A hash this module does not
know (siphash, for casefolded directories) gives None and the caller falls
back to a scan.
"""

from __future__ import annotations

__all__ = ["dirhash"]

_M = 0xFFFFFFFF
LEGACY, HALF_MD4, TEA, LEGACY_U, HALF_MD4_U, TEA_U = range(6)


def _rol(x: int, s: int) -> int:
    x &= _M
    return ((x << s) | (x >> (32 - s))) & _M


def _str2hashbuf(msg: bytes, num: int, signed: bool) -> list[int]:
    n = len(msg)
    pad = (n | (n << 8)) & _M
    pad = (pad | (pad << 16)) & _M
    val = pad
    out: list[int] = []
    n = min(n, num * 4)
    for i in range(n):
        c = msg[i]
        if signed and c >= 128:
            c -= 256
        val = (c + (val << 8)) & _M
        if i % 4 == 3:
            out.append(val)
            val = pad
            num -= 1
    num -= 1
    if num >= 0:
        out.append(val)
    while num > 0:
        num -= 1
        out.append(pad)
    return out


def _half_md4(buf: list[int], x: list[int]) -> None:
    a, b, c, d = buf

    def f(x_: int, y: int, z: int) -> int:
        return z ^ (x_ & (y ^ z))

    def g(x_: int, y: int, z: int) -> int:
        return ((x_ & y) + ((x_ ^ y) & z)) & _M

    def h(x_: int, y: int, z: int) -> int:
        return x_ ^ y ^ z

    k2, k3 = 0o13240474631, 0o15666365641
    for fn, k, order, shifts in (
        (f, 0, (0, 1, 2, 3, 4, 5, 6, 7), (3, 7, 11, 19)),
        (g, k2, (1, 3, 5, 7, 0, 2, 4, 6), (3, 5, 9, 13)),
        (h, k3, (3, 7, 2, 6, 1, 5, 0, 4), (3, 9, 11, 15)),
    ):
        for j in range(0, 8, 4):
            a = _rol(a + fn(b, c, d) + x[order[j]] + k, shifts[0])
            d = _rol(d + fn(a, b, c) + x[order[j + 1]] + k, shifts[1])
            c = _rol(c + fn(d, a, b) + x[order[j + 2]] + k, shifts[2])
            b = _rol(b + fn(c, d, a) + x[order[j + 3]] + k, shifts[3])
    buf[0] = (buf[0] + a) & _M
    buf[1] = (buf[1] + b) & _M
    buf[2] = (buf[2] + c) & _M
    buf[3] = (buf[3] + d) & _M


def _tea(buf: list[int], x: list[int]) -> None:
    s = 0
    b0, b1 = buf[0], buf[1]
    a, b, c, d = x
    for _ in range(16):
        s = (s + 0x9E3779B9) & _M
        b0 = (b0 + ((((b1 << 4) + a) & _M) ^ ((b1 + s) & _M) ^ (((b1 >> 5) + b) & _M))) & _M
        b1 = (b1 + ((((b0 << 4) + c) & _M) ^ ((b0 + s) & _M) ^ (((b0 >> 5) + d) & _M))) & _M
    buf[0] = (buf[0] + b0) & _M
    buf[1] = (buf[1] + b1) & _M


def _legacy(name: bytes, signed: bool) -> int:
    h0, h1 = 0x12A3FE2D, 0x37ABE8F9
    for c in name:
        if signed and c >= 128:
            c -= 256
        h = (h1 + (h0 ^ ((c * 7152373) & _M))) & _M
        if h & 0x80000000:
            h = (h - 0x7FFFFFFF) & _M
        h1, h0 = h0, h
    return (h0 << 1) & _M


def dirhash(name: bytes, version: int, seed: list[int]) -> int | None:
    """The major hash of ``name`` (low bit clear), or None for an unknown version."""
    buf = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    if any(seed):
        buf = list(seed)
    if version in (LEGACY, LEGACY_U):
        h = _legacy(name, version == LEGACY)
    elif version in (HALF_MD4, HALF_MD4_U):
        signed = version == HALF_MD4
        for p in range(0, max(len(name), 1), 32):
            _half_md4(buf, _str2hashbuf(name[p:], 8, signed))
            if not name:
                break
        h = buf[1]
    elif version in (TEA, TEA_U):
        signed = version == TEA
        for p in range(0, max(len(name), 1), 16):
            _tea(buf, _str2hashbuf(name[p:], 4, signed))
            if not name:
                break
        h = buf[0]
    else:
        return None
    h &= ~1 & _M
    if h == 0x7FFFFFFF << 1:
        h = 0x7FFFFFFE << 1
    return h
