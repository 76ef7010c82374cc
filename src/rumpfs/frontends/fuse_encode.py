"""How the FUSE frontend shows a node to the host: attributes, directory
records, and the small decoding and encoding helpers its handlers share.

Allowed imports: the standard library, ``rumpfs.frontends.fuse_proto`` and
``rumpfs.dev.rumpblk`` (its major number). Pure functions and constants: no
I/O, no state. The frontend's hot paths (LOOKUP, GETATTR, each READDIRPLUS
entry) call :func:`attr_fields`, so it is written for speed.
"""

from __future__ import annotations

import errno
import os
import stat
import struct

from rumpfs.dev.rumpblk import RUMPBLK_DEVMAJOR
from rumpfs.frontends.fuse_proto import DIRENT, ENTRY_OUT, GETXATTR_OUT

__all__ = ["DIRENTS", "DIRENTS_PLUS", "DIRENT_PACKS", "DIRENT_SIZES", "PADS", "READDIR_SLACK",
           "attr_fields", "dirent_struct", "host_view", "is_rumpblk", "name_at", "readdir_room",
           "sized_reply"]

# Linux 6.18 sizes its READDIR buffer from the caller's getdents count (32 KiB
# for glibc) and says so in the request, yet refuses (EINVAL) a reply that
# fills it exactly (measured: 1,024 records of 32 bytes are refused, 1,023 are
# taken, and so are 819 of 40 bytes, 32,760 bytes); one record alignment less
# is always taken. Older kernels ask for one page and take it.
READDIR_SLACK = 8
PADS = [b"\0" * i for i in range(8)]      # a record's padding to 8 bytes


def dirent_struct(namelen: int, plus: bool = False) -> struct.Struct:
    """One READDIR record (``fuse_dirent``: ino off namelen type, then the
    name) -- with ``plus``, READDIRPLUS's (``fuse_entry_out`` first) -- for a
    name of ``namelen`` bytes, as one struct: its ``s`` field pads the name with
    NULs to the record's 8-byte alignment, so a record is one ``pack`` call
    (no concatenation, no padding table)."""
    head = ENTRY_OUT.format.lstrip("<") if plus else ""
    pad = ((DIRENT.size + namelen + 7) & ~7) - DIRENT.size
    return struct.Struct(f"<{head}{DIRENT.format.lstrip('<')}{pad}s")


# Precompiled for every name Linux sends (NAME_MAX 255); the handlers take
# longer names (a kernel file system may allow them) from dirent_struct().
DIRENTS = [dirent_struct(n) for n in range(256)]
DIRENTS_PLUS = [dirent_struct(n, True) for n in range(256)]
DIRENT_PACKS = [s.pack for s in DIRENTS]        # READDIR's hot loop: no attribute reads
DIRENT_SIZES = [s.size for s in DIRENTS]

_IFMT = 0o170000
_BLK_OR_CHR = (stat.S_IFBLK, stat.S_IFCHR)


def readdir_room(size: int) -> int:
    """Bytes of records to put in the reply to a READDIR(PLUS) asking for ``size``."""
    return max(size - READDIR_SLACK, 0)


def is_rumpblk(rdev: int) -> bool:
    """Whether a device node with ``rdev`` is one of rumpblk's (see :func:`host_view`)."""
    return os.major(rdev) == RUMPBLK_DEVMAJOR


def host_view(st: os.stat_result) -> tuple[int, int]:
    """The (mode, rdev) the host is shown for ``st`` (docs/cli.md, "Device keys").

    FUSE mounts are ``nodev``: the host lets no program open a device node on
    them, not even root. So rumpblk's devices (etfs BLK/CHR keys, or nodes
    made with its major) are shown as regular files of the window's size,
    with the same permission bits; opening one still opens the device in the
    kernel, so ``dd``, ``mkfs`` and ``fsck`` work on the window. Other device
    nodes keep their type (``ls -l`` shows what ``mknod`` made).
    """
    mode = st.st_mode
    if (stat.S_ISBLK(mode) or stat.S_ISCHR(mode)) and is_rumpblk(st.st_rdev):
        return stat.S_IFREG | stat.S_IMODE(mode), 0
    return mode, st.st_rdev


def attr_fields(st: os.stat_result, ino: int) -> tuple[int, ...]:
    """``fuse_attr``'s fields for ``st`` under node id ``ino`` (mode at index 9)."""
    a_s, a_ns = divmod(st.st_atime_ns, 1_000_000_000)
    m_s, m_ns = divmod(st.st_mtime_ns, 1_000_000_000)
    c_s, c_ns = divmod(st.st_ctime_ns, 1_000_000_000)
    mode = st.st_mode
    rdev = st.st_rdev
    if rdev and mode & _IFMT in _BLK_OR_CHR:
        mode, rdev = host_view(st)
    return (ino, st.st_size, st.st_blocks, a_s, m_s, c_s, a_ns, m_ns, c_ns, mode,
            st.st_nlink, st.st_uid, st.st_gid, rdev & 0xFFFFFFFF,
            st.st_blksize or 4096, 0)


def name_at(body: memoryview) -> bytes:
    """A NUL-terminated name at the start of ``body``."""
    raw = bytes(body)
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


def sized_reply(data: bytes, size: int) -> list[bytes]:
    """getxattr/listxattr's reply: the length when asked with size 0."""
    if size == 0:
        return [GETXATTR_OUT.pack(len(data), 0)]
    if len(data) > size:
        raise OSError(errno.ERANGE, "xattr buffer too small")
    return [data]
