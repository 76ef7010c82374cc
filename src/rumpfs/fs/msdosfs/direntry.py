"""FAT directory entries: 8.3 entries, VFAT long-name slots, names and times.

Allowed imports: ``rumpfs.errors`` (pure functions on bytes and str).

NetBSD's ``direntry.h`` + ``msdosfs_conv.c``, with the name rules of
Linux's ``vfat`` under its default options (``shortname=mixed``,
``codepage=437``): names are checked as ``vfat_add_entry`` does (trailing
dots dropped, a trailing space or one of ``*?<>|":/\\`` or a control
character is EINVAL, more than 255 UTF-16 units ENAMETOOLONG); the short
name of a new entry is made as ``vfat_create_shortname`` makes it (``~1`` to
``~9`` tails on six characters, then four hex digits on two); a name that is
already a valid upper-case 8.3 name gets no long-name slots, others do.
Reading honours the Windows NT case flags (0x08 lower-case base, 0x10
lower-case extension) as ``shortname=mixed`` displays them.

Times: FAT keeps local time. ``offset`` (seconds east of UTC) converts;
modification time has 2 s resolution, creation 10 ms, access a day. Times
before 1980 or after 2107 are clamped, as Linux clamps them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from rumpfs.errors import errno, raise_errno

__all__ = [
    "ATTR_ARCHIVE", "ATTR_DIRECTORY", "ATTR_HIDDEN", "ATTR_LFN", "ATTR_READONLY", "ATTR_SYSTEM",
    "ATTR_VOLUME", "CASE_LOWER_BASE", "CASE_LOWER_EXT", "DIRENT_SIZE", "DOT", "DOTDOT",
    "SLOT_DELETED", "SLOT_EMPTY", "Dirent", "check_name", "date_time_to_ns", "fold",
    "lfn_checksum", "lfn_slots", "lfn_units", "make_short_name", "ns_to_date_time",
    "short_display",
]

DIRENT_SIZE = 32
ATTR_READONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_VOLUME = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LFN = 0x0F
CASE_LOWER_BASE = 0x08
CASE_LOWER_EXT = 0x10
SLOT_EMPTY = 0x00
SLOT_DELETED = 0xE5
DOT = b".          "
DOTDOT = b"..         "
LFN_CHARS = 13
MAX_LFN_UNITS = 255

_DIRENT = struct.Struct("<11sBBBHHHHHHHI")
_BAD_CHARS = frozenset('*?<>|":/\\')
_REPLACE_CHARS = frozenset("[];,+=")
_UNIX_1980 = 315_532_800
_FAT_MAX = 4_354_819_198            # 2107-12-31 23:59:58 as if UTC
_NS = 1_000_000_000


@dataclass(slots=True)
class Dirent:
    """One 32-byte 8.3 directory entry, decoded."""

    name: bytes = b" " * 11
    attr: int = 0
    ntres: int = 0            # case flags
    ctime_cs: int = 0         # creation time, 10 ms units past ctime (0..199)
    ctime: int = 0
    cdate: int = 0
    adate: int = 0
    cluster_hi: int = 0
    mtime: int = 0
    mdate: int = 0
    cluster_lo: int = 0
    size: int = 0

    @classmethod
    def unpack(cls, b: bytes | bytearray | memoryview, off: int = 0) -> Dirent:
        return cls(*_DIRENT.unpack_from(b, off))

    def pack_into(self, buf: bytearray, off: int) -> None:
        _DIRENT.pack_into(buf, off, self.name, self.attr, self.ntres, self.ctime_cs,
                          self.ctime, self.cdate, self.adate, self.cluster_hi, self.mtime,
                          self.mdate, self.cluster_lo, self.size)

    def pack(self) -> bytes:
        buf = bytearray(DIRENT_SIZE)
        self.pack_into(buf, 0)
        return bytes(buf)

    def cluster(self, fat32: bool) -> int:
        return (self.cluster_hi << 16 | self.cluster_lo) if fat32 else self.cluster_lo

    def set_cluster(self, n: int, fat32: bool) -> None:
        self.cluster_lo = n & 0xFFFF
        self.cluster_hi = n >> 16 if fat32 else 0

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & ATTR_DIRECTORY)


# -- names -------------------------------------------------------------------

def fold(name: str) -> str:
    """The case-insensitive key of a name (upper case, one char for one char)."""
    up = name.upper()
    if len(up) == len(name):
        return up
    return "".join(c if len(c.upper()) != 1 else c.upper() for c in name)


def lfn_units(name: str) -> bytes:
    """The UTF-16LE encoding of ``name`` as a long name stores it."""
    return name.encode("utf-16-le", "surrogatepass")


def check_name(name: str) -> str:
    """A name about to be entered, as vfat takes it: trailing dots dropped;
    EINVAL for a trailing space, a forbidden or control character or nothing
    left; ENAMETOOLONG beyond 255 UTF-16 units."""
    stripped = name.rstrip(".")
    if not stripped:
        raise_errno(errno.EINVAL)
    if stripped[-1] == " ":
        raise_errno(errno.EINVAL)
    if len(lfn_units(stripped)) // 2 > MAX_LFN_UNITS:
        raise_errno(errno.ENAMETOOLONG)
    for c in stripped:
        if c < " " or c in _BAD_CHARS:
            raise_errno(errno.EINVAL)
    return stripped


def short_display(name11: bytes, ntres: int) -> str:
    """The 8.3 name as shown (``BASE.EXT``), lower-cased as the case flags say."""
    raw = bytearray(name11)
    if raw[0] == 0x05:
        raw[0] = 0xE5
    base = bytes(raw[:8]).rstrip(b" ").decode("cp437")
    ext = bytes(raw[8:11]).rstrip(b" ").decode("cp437")
    if ntres & CASE_LOWER_BASE:
        base = _ascii_lower(base)
    if ntres & CASE_LOWER_EXT:
        ext = _ascii_lower(ext)
    return f"{base}.{ext}" if ext else base


def _ascii_lower(s: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


class _Info:
    __slots__ = ("lower", "upper", "valid")

    def __init__(self) -> None:
        self.lower = self.upper = self.valid = True


def _ascii_table() -> dict[str, tuple[bytes, int]]:
    """For each ASCII character: its short-name bytes and what it tells about
    the name (bit 1: not valid as is, 2: not all upper, 4: not all lower)."""
    out: dict[str, tuple[bytes, int]] = {}
    for code in range(0x20, 0x7F):
        c = chr(code)
        if c in ". ":
            out[c] = (b"", 1)
        elif c in _REPLACE_CHARS:
            out[c] = (b"_", 1)
        elif "a" <= c <= "z":
            out[c] = (c.upper().encode(), 2)
        elif "A" <= c <= "Z":
            out[c] = (c.encode(), 4)
        else:
            out[c] = (c.encode(), 0)
    return out


_ASCII = _ascii_table()


def _short_char(c: str, info: _Info) -> bytes:
    """One character of a long name as the short name holds it (Linux's
    to_shortname_char with codepage 437); b"" for skipped characters."""
    hit = _ASCII.get(c)
    if hit is not None:
        b, bits = hit
        if bits:
            if bits & 1:
                info.valid = False
            if bits & 2:
                info.upper = False
            if bits & 4:
                info.lower = False
        return b
    if c in ". ":
        info.valid = False
        return b""
    if c in _REPLACE_CHARS:
        info.valid = False
        return b"_"
    try:
        b = c.encode("cp437")
    except UnicodeEncodeError:
        info.valid = False
        return b"_"
    if b[0] >= 0x7F:
        info.lower = info.upper = False
        up = c.upper()
        try:
            return up.encode("cp437") if len(up) == 1 else b
        except UnicodeEncodeError:
            return b
    if b"a" <= b <= b"z":
        info.upper = False
        return bytes([b[0] - 32])
    if b"A" <= b <= b"Z":
        info.lower = False
    return b


def make_short_name(name: str, exists: Callable[[bytes], bool],
                    tail_seed: int = 0, winnt: bool = False) -> tuple[bytes, int, bool]:
    """The 8.3 name for new long name ``name`` in a directory where
    ``exists(name11)`` tells taken short names. Returns (name11, case flags,
    whether long-name slots are needed). ``winnt`` is vfat's
    ``shortname=winnt`` (case flags instead of slots for all-lower parts)."""
    dot = name.rfind(".")
    ext_at: int | None
    if dot < 0 or dot == len(name) - 1:
        sz, ext_at = len(name), None
    else:
        if name[:dot].strip(". "):
            sz, ext_at = dot, dot + 1
        else:                              # ".profile": all base, no extension
            sz, ext_at = len(name), None
    binfo, einfo = _Info(), _Info()
    is_short = True
    base = bytearray()
    tail6 = 6                              # base length to keep before "~N"
    tail2 = 2                              # ... before "XXXX~N"
    for i in range(sz):
        ch = _short_char(name[i], binfo)
        if not ch:
            continue
        if len(base) < 2 and len(base) + len(ch) > 2:
            tail2 = len(base)
        if len(base) < 6 and len(base) + len(ch) > 6:
            tail6 = len(base)
        room = 8 - len(base)
        base += ch[:room]
        if len(base) >= 8:
            if len(ch) > room or i + 1 < sz:
                is_short = False
            break
    if not base:
        raise_errno(errno.EINVAL)
    ext = bytearray()
    if ext_at is not None:
        for i in range(ext_at, len(name)):
            ch = _short_char(name[i], einfo)
            if not ch:
                continue
            if len(ext) + len(ch) > 3:
                is_short = False
                break
            ext += ch
            if len(ext) >= 3:
                if i + 1 != len(name):
                    is_short = False
                break
    if base[0] == 0xE5:
        base[0] = 0x05
    res = bytearray(b" " * 11)
    res[:len(base)] = base
    res[8:8 + len(ext)] = ext
    if is_short and binfo.valid and einfo.valid:
        if exists(bytes(res)):
            raise_errno(errno.EEXIST)
        if not winnt:
            return bytes(res), 0, not (binfo.upper and einfo.upper)
        if (binfo.upper or binfo.lower) and (einfo.upper or einfo.lower):
            lcase = 0
            if not binfo.upper and binfo.lower:
                lcase |= CASE_LOWER_BASE
            if not einfo.upper and einfo.lower:
                lcase |= CASE_LOWER_EXT
            return bytes(res), lcase, False
        return bytes(res), 0, True
    blen = len(base)
    if blen > 6:
        blen = tail6
        res[7] = 0x20
    res[blen] = ord("~")
    for i in range(1, 10):
        res[blen + 1] = ord("0") + i
        if not exists(bytes(res)):
            return bytes(res), 0, True
    # Then, as Linux does: two characters, four hex digits, ~ and 1..8.
    seed = tail_seed & 0xFFFFFFFF
    if blen > 2:
        blen = tail2
        res[7] = 0x20
    res[blen + 4] = ord("~")
    res[blen + 5] = ord("1") + ((seed >> 16) & 7)
    for _ in range(0x10000):
        res[blen:blen + 4] = b"%04X" % (seed & 0xFFFF)
        if not exists(bytes(res)):
            return bytes(res), 0, True
        seed -= 11
    raise_errno(errno.ENOSPC)        # 65536 names with one prefix: no short name left


def lfn_checksum(name11: bytes) -> int:
    s = 0
    for b in name11:
        s = (((s & 1) << 7) + (s >> 1) + b) & 0xFF
    return s


def lfn_slots(name: str, name11: bytes) -> list[bytes]:
    """The long-name slots for ``name``, in disk order (last part first)."""
    units = lfn_units(name)
    n = (len(units) // 2 + LFN_CHARS - 1) // LFN_CHARS
    padded = bytearray(units)
    if len(padded) < n * LFN_CHARS * 2:
        padded += b"\0\0"
        padded += b"\xff" * (n * LFN_CHARS * 2 - len(padded))
    csum = lfn_checksum(name11)
    out = []
    for seq in range(n, 0, -1):
        part = padded[(seq - 1) * 26:seq * 26]
        slot = bytearray(32)
        slot[0] = seq | (0x40 if seq == n else 0)
        slot[1:11] = part[0:10]
        slot[11] = ATTR_LFN
        slot[13] = csum
        slot[14:26] = part[10:22]
        slot[28:32] = part[22:26]
        out.append(bytes(slot))
    return out


def lfn_part(slot: bytes | bytearray | memoryview) -> bytes:
    """The 26 bytes of name a long-name slot carries."""
    return bytes(slot[1:11]) + bytes(slot[14:26]) + bytes(slot[28:32])


def lfn_decode(parts: list[bytes]) -> str | None:
    """Join the parts of a long name (first part first); None if malformed."""
    units = b"".join(parts)
    for i in range(0, len(units), 2):
        if units[i] == 0 and units[i + 1] == 0:
            units = units[:i]
            break
    if not units:
        return None
    name = units.decode("utf-16-le", "replace")
    if "/" in name or "\0" in name:
        return None
    return name


# -- times -------------------------------------------------------------------

def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def date_time_to_ns(date: int, time: int, cs: int, offset: int) -> int:
    """FAT date, time and 10 ms units (local time ``offset`` s east of UTC) -> Unix ns."""
    year = 1980 + (date >> 9)
    month = min(max((date >> 5) & 15, 1), 12)
    day = max(date & 31, 1)
    secs = (_days_from_civil(year, month, day) * 86400 + (time >> 11) * 3600
            + ((time >> 5) & 63) * 60 + (time & 31) * 2)
    return (secs - offset) * _NS + min(cs, 199) * 10_000_000


def ns_to_date_time(ns: int, offset: int) -> tuple[int, int, int]:
    """Unix ns -> (FAT date, time, 10 ms units past time), clamped to 1980..2107."""
    secs, frac = divmod(ns, _NS)
    secs += offset
    if secs < _UNIX_1980:
        secs, frac = _UNIX_1980, 0
    elif secs > _FAT_MAX + 1:
        secs, frac = _FAT_MAX + 1, 990_000_000
    days, rem = divmod(secs, 86400)
    y, m, d = _civil_from_days(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    date = (y - 1980) << 9 | m << 5 | d
    time = hh << 11 | mm << 5 | ss >> 1
    return date, time, (ss & 1) * 100 + frac // 10_000_000
