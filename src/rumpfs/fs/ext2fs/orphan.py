"""ext2 orphan list: inodes without names that are still open.

Allowed imports: ``rumpfs.errors`` and this package.

As on Linux: an inode whose last name goes while it is still referenced
(an open file, a cwd) is put on the superblock's orphan list —
``s_last_orphan`` names the first, each orphan's ``i_dtime`` the next — and
taken off when it is finally freed. After a crash (or a kernel shutdown with
files still open) the list says what to free: a read-write mount does it
(:func:`process_orphans`), as Linux's ext4_orphan_cleanup does.

Untrusted input: the chain is followed at most ``inodes_count`` steps and
never twice through one inode; a bad link stops processing with EUCLEAN and
the mount falls back to read-only (vfsops).

Invariants: ``mp.orphans`` lists the chain in disk order (head first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rumpfs.fs.ext2fs.ext2fs import corrupt, log, put32, u32
from rumpfs.fs.ext2fs.inode import Ext2Node, iget, iupdate

if TYPE_CHECKING:
    from rumpfs.fs.ext2fs.vfsops import Ext2Mount

__all__ = ["add_orphan", "drop_orphan", "process_orphans"]

_LAST_ORPHAN = 232          # s_last_orphan in the superblock


def _head(mp: Ext2Mount) -> int:
    return u32(mp.sb.raw, _LAST_ORPHAN)


def _set_head(mp: Ext2Mount, ino: int) -> None:
    put32(mp.sb.raw, _LAST_ORPHAN, ino)
    mp.write_super(clean=False)


def add_orphan(mp: Ext2Mount, vp: Ext2Node) -> None:
    if vp.ino in mp.orphans:
        return
    put32(vp.raw, 0x14, _head(mp))          # i_dtime: the next orphan
    iupdate(vp)
    _set_head(mp, vp.ino)
    mp.orphans.insert(0, vp.ino)


def drop_orphan(mp: Ext2Mount, vp: Ext2Node) -> None:
    """Unlink ``vp`` from the chain (it is about to be freed)."""
    if vp.ino not in mp.orphans:
        return
    k = mp.orphans.index(vp.ino)
    nxt = u32(vp.raw, 0x14)
    if k == 0:
        _set_head(mp, nxt)
    else:
        prev = iget(mp, mp.orphans[k - 1], orphan=True)
        put32(prev.raw, 0x14, nxt)
        iupdate(prev)
    del mp.orphans[k]


def process_orphans(mp: Ext2Mount) -> int:
    """Free what the orphan list of a file system not cleanly unmounted names;
    returns how many were freed."""
    chain: list[int] = []
    ino = _head(mp)
    seen: set[int] = set()
    while ino:
        if ino in seen or len(seen) >= mp.sb.inodes_count:
            corrupt("orphan list loops at inode %d", ino)
        seen.add(ino)
        vp = iget(mp, ino, orphan=True)
        chain.append(ino)
        ino = u32(vp.raw, 0x14)
    mp.orphans = list(chain)
    freed = 0
    for ino in chain:
        vp = iget(mp, ino, orphan=True)
        if vp.nlink == 0:
            mp.vnops.release(vp)
            freed += 1
        else:
            drop_orphan(mp, vp)             # a truncate's orphan: nothing to free
            put32(vp.raw, 0x14, 0)
            iupdate(vp)
    if freed:
        log.warning("ext2fs: freed %d orphan inode(s) left by an unclean unmount", freed)
    return freed
