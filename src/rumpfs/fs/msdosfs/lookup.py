"""Directories: scanning entries, the per-directory name index, adding and removing names.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors`` and this package.

NetBSD's ``msdosfs_lookup.c``. A directory's slots are read once into a
:class:`DirIndex` (kept on the directory's denode while it lives): names
(long and short, case-folded) -> :class:`Entry`, the set of 8.3 names in use
(for short-name generation), the free slots, and where the used part ends.
Every change goes to the disk buffers and the index together.

Scanning follows Linux's ``fat_search_long``: free slots (0x00 and 0xE5)
are skipped, not taken as the end; a long name counts only if its slots come
in sequence with the right checksum, else the 8.3 name is used; volume
labels and misplaced ``.``/``..`` are skipped; a name that cannot be a path
component (``/`` or NUL in it) is skipped with a log line. New entries go
into the first run of free slots before the end of the used part, else
after it, else into a new zeroed cluster (FAT12/16 root: ENOSPC; any
directory: at most 65536 slots, as Linux).

Offsets are bytes from the start of the directory; a slot's cookie for
readdir is its slot number + 1.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.msdosfs.direntry import (
    ATTR_DIRECTORY,
    ATTR_LFN,
    ATTR_VOLUME,
    DOT,
    DOTDOT,
    Dirent,
    fold,
    lfn_checksum,
    lfn_decode,
    lfn_part,
    lfn_slots,
    make_short_name,
    short_display,
)

if TYPE_CHECKING:
    from rumpfs.fs.msdosfs.denode import Denode
    from rumpfs.fs.msdosfs.volume import Buf, RootSector

__all__ = ["DirIndex", "Entry", "add_entry", "dir_index", "read_dirent", "remove_entry",
           "write_dirent"]

_LOG = logging.getLogger("rumpfs.msdosfs")
_MAX_DIR_BYTES = 65536 * 32


@dataclass(slots=True)
class Entry:
    """One name of a directory."""

    name: str            # as shown: the long name, else the 8.3 name with its case flags
    name11: bytes
    first: int           # offset of its first slot (a long name's first)
    offset: int          # offset of its 8.3 slot
    attr: int
    cluster: int


@dataclass(slots=True)
class DirIndex:
    """What a directory holds, by name and by position."""

    names: dict[str, Entry] = field(default_factory=dict)
    entries: dict[int, Entry] = field(default_factory=dict)     # by 8.3 slot offset
    shorts: set[bytes] = field(default_factory=set)
    holes: set[int] = field(default_factory=set)                # free slots before `end`
    end: int = 0                 # just past the last used slot
    size: int = 0                # bytes the directory spans
    subdirs: int = 0
    dotdot: int = -1             # cluster in the ".." entry (-1: none)

    def find(self, name: str) -> Entry | None:
        return self.names.get(fold(name))

    def _enter(self, e: Entry) -> None:
        self.entries[e.offset] = e
        self.shorts.add(e.name11)
        self.names.setdefault(fold(e.name), e)
        short = short_display(e.name11, 0)
        self.names.setdefault(fold(short), e)
        if e.attr & ATTR_DIRECTORY:
            self.subdirs += 1

    def _leave(self, e: Entry) -> None:
        del self.entries[e.offset]
        self.shorts.discard(e.name11)
        for key in (fold(e.name), fold(short_display(e.name11, 0))):
            if self.names.get(key) is e:
                del self.names[key]
        if e.attr & ATTR_DIRECTORY:
            self.subdirs -= 1


# -- blocks -------------------------------------------------------------------

def _bsize(dn: Denode) -> int:
    return dn.vol.geo.bps if dn.fixed_root() else dn.vol.cluster_size


def _bread(dn: Denode, i: int) -> Buf | RootSector:
    if dn.fixed_root():
        return dn.vol.bread_rootsec(i)
    return dn.vol.bread_cluster(dn.clusters()[i])


def _nblocks(dn: Denode) -> int:
    return dn.vol.geo.root_sectors if dn.fixed_root() else len(dn.clusters())


def read_dirent(dn: Denode, offset: int) -> Dirent:
    bs = _bsize(dn)
    bp = _bread(dn, offset // bs)
    d = Dirent.unpack(bp.data, offset % bs)
    dn.vol.release(bp)
    return d


def _write_slots(dn: Denode, offset: int, slots: Iterable[bytes]) -> None:
    """Write consecutive 32-byte slots starting at ``offset``."""
    bs = _bsize(dn)
    vol = dn.vol
    bp: Buf | RootSector | None = None
    cur = -1
    for slot in slots:
        i, off = divmod(offset, bs)
        if i != cur:
            if bp is not None:
                vol.dirty(bp)
            bp = _bread(dn, i)
            cur = i
        assert bp is not None
        bp.data[off:off + 32] = slot
        offset += 32
    if bp is not None:
        vol.dirty(bp)


def write_dirent(dn: Denode, offset: int, d: Dirent) -> None:
    _write_slots(dn, offset, [d.pack()])


def _mark_deleted(dn: Denode, first: int, last: int) -> None:
    bs = _bsize(dn)
    for off in range(first, last + 32, 32):
        bp = _bread(dn, off // bs)
        bp.data[off % bs] = 0xE5
        dn.vol.dirty(bp)


# -- scanning -----------------------------------------------------------------

def dir_index(dn: Denode) -> DirIndex:
    """The index of directory ``dn``, read on first use."""
    idx = dn.index
    if idx is None:
        idx = _scan(dn)
        dn.index = idx
    return idx


def _scan(dn: Denode) -> DirIndex:
    idx = DirIndex()
    fat32 = dn.vol.fat32
    bs = _bsize(dn)
    vol = dn.vol
    parts: list[bytes] = []
    nextseq = 0
    csum = 0
    lfn_start = 0
    last_used = -32
    free: list[int] = []
    n = _nblocks(dn)
    for i in range(n):
        bp = _bread(dn, i)
        data = bytes(bp.data)
        vol.release(bp)
        base = i * bs
        for o in range(0, bs, 32):
            off = base + o
            b0 = data[o]
            if b0 == 0x00 or b0 == 0xE5:
                free.append(off)
                nextseq = 0
                continue
            last_used = off
            attr = data[o + 11]
            if attr == ATTR_LFN:
                seq = b0 & 0x3F
                if b0 & 0x40 and 1 <= seq <= 20:
                    parts = [b""] * seq
                    parts[seq - 1] = lfn_part(data[o:o + 32])
                    nextseq, csum, lfn_start = seq - 1, data[o + 13], off
                elif nextseq and seq == nextseq and data[o + 13] == csum:
                    parts[seq - 1] = lfn_part(data[o:o + 32])
                    nextseq = seq - 1
                else:
                    nextseq, parts = 0, []
                continue
            name11 = data[o:o + 11]
            long = None
            if parts and nextseq == 0 and lfn_checksum(name11) == csum:
                long = lfn_decode(parts)
            parts = []
            nextseq = 0
            if attr & ATTR_VOLUME:
                continue
            de = Dirent.unpack(data, o)
            if name11 == DOT:
                continue
            if name11 == DOTDOT:
                if off == 32:
                    idx.dotdot = de.cluster(fat32)
                continue
            name = long if long is not None else short_display(name11, de.ntres)
            if not name or "/" in name or "\0" in name or name in (".", ".."):
                _LOG.warning("msdosfs: skipping unusable name %r in a directory", name)
                continue
            idx._enter(Entry(name, name11, lfn_start if long is not None else off, off,
                             de.attr, de.cluster(fat32)))
    idx.size = n * bs
    idx.end = last_used + 32
    idx.holes = {off for off in free if off < idx.end}
    return idx


# -- changing -----------------------------------------------------------------

def _find_room(dn: Denode, idx: DirIndex, count: int) -> int:
    """Offset of ``count`` consecutive free slots, growing the directory if needed."""
    if idx.holes:
        run_start, run = -1, 0
        for off in sorted(idx.holes):
            if run and off == run_start + run * 32:
                run += 1
            else:
                run_start, run = off, 1
            if run == count:
                for o in range(run_start, run_start + count * 32, 32):
                    idx.holes.discard(o)
                return run_start
    pos = idx.end
    need = pos + count * 32
    if need > idx.size:
        if dn.fixed_root():
            raise_errno(errno.ENOSPC)
        if need > _MAX_DIR_BYTES:
            raise_errno(errno.ENOSPC)
        vol = dn.vol
        cs = vol.cluster_size
        more = (need - idx.size + cs - 1) // cs
        cl = dn.clusters()
        new = vol.fat.alloc(more, cl[-1] + 1)
        vol.fat.link(cl[-1], new[0])
        for c in new:
            vol.zero_cluster(c)
        cl.extend(new)
        idx.size += more * cs
    # slots between the old end and pos are free already; those we take are not holes
    idx.end = need
    return pos


def add_entry(dn: Denode, name: str, de: Dirent, seed: int, winnt: bool) -> Entry:
    """Enter ``name`` (already checked) for ``de`` into directory ``dn``; fills
    in ``de.name``/``de.ntres``. Returns the new entry."""
    idx = dir_index(dn)
    name11, lcase, need_lfn = make_short_name(name, idx.shorts.__contains__, seed, winnt)
    slots = lfn_slots(name, name11) if need_lfn else []
    de.name = name11
    de.ntres = lcase
    pos = _find_room(dn, idx, len(slots) + 1)
    offset = pos + 32 * len(slots)
    _write_slots(dn, pos, [*slots, de.pack()])
    e = Entry(name if need_lfn else short_display(name11, lcase), name11, pos, offset,
              de.attr, de.cluster(dn.vol.fat32))
    idx._enter(e)
    return e


def remove_entry(dn: Denode, e: Entry) -> None:
    """Free the slots of entry ``e`` of directory ``dn``."""
    idx = dir_index(dn)
    _mark_deleted(dn, e.first, e.offset)
    idx._leave(e)
    for off in range(e.first, e.offset + 32, 32):
        idx.holes.add(off)


def set_dotdot(dn: Denode, cluster: int) -> None:
    """Point the ``..`` entry of directory ``dn`` at ``cluster`` (0 = the root)."""
    d = read_dirent(dn, 32)
    if d.name != DOTDOT:
        dn.vol.corrupt("directory without '..' in its second slot")
    d.set_cluster(cluster, dn.vol.fat32)
    write_dirent(dn, 32, d)
    if dn.index is not None:
        dn.index.dotdot = cluster


def is_empty(dn: Denode) -> bool:
    return not dir_index(dn).entries
