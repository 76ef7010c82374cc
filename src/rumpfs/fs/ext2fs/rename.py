"""ext2 rename primitives, plugged under genfs' rename driver.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors`` and this package.

The driver (``vfs.genfs.rename``) has checked every rule that depends only
on types, permissions and ancestry. Here remain a non-empty target directory
(ENOTEMPTY) and the on-disk moves. Outline: check -> enter the target name
(or point the existing one at the source) -> remove the source name -> a
moved directory's ``..`` and both parents' link counts -> the replaced
node's link count (freed if that was its last link and nobody holds it) ->
times. The target is entered before the source goes, so a failure (ENOSPC
growing the target directory) leaves the source in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.ext2fs.inode import Ext2Node, iupdate
from rumpfs.fs.ext2fs.lookup import Dir
from rumpfs.vfs.vnode import VDIR

if TYPE_CHECKING:
    from rumpfs.fs.ext2fs.vnops import Ext2Ops

__all__ = ["exchange", "rename"]


def _set_dotdot(vp: Ext2Node, parent: Ext2Node) -> None:
    d = Dir(vp)
    d.retarget(b"..", parent.ino, VDIR)


def rename(ops: Ext2Ops, fdvp: Ext2Node, fname: bytes, fvp: Ext2Node, tdvp: Ext2Node,
           tname: bytes, tvp: Ext2Node | None, now: int) -> None:
    isdir = fvp.type is VDIR
    moved = isdir and fdvp is not tdvp
    if tvp is not None and tvp.type is VDIR and not Dir(tvp).is_empty():
        raise_errno(errno.ENOTEMPTY)
    if moved and tvp is None:
        ops._more_links(tdvp)            # EMLINK before anything changes
    if tvp is None:
        try:
            Dir(tdvp).enter(tname, fvp.ino, fvp.type)
        except OSError:
            if moved:
                ops._fewer_links(tdvp)
            raise
    else:
        Dir(tdvp).retarget(tname, fvp.ino, fvp.type)
    Dir(fdvp).remove(fname)
    if moved:
        _set_dotdot(fvp, tdvp)
        ops._fewer_links(fdvp)
    if tvp is not None:
        if tvp.type is VDIR:
            tvp.nlink = 0
            if not moved:
                ops._fewer_links(tdvp)   # its '..' no longer counts in tdvp
            # a directory moved over a directory: tdvp keeps its count
        else:
            tvp.nlink = max(0, tvp.nlink - 1)
        tvp.ctime = now
        iupdate(tvp)
        if tvp.nlink == 0:
            ops.unlinked(tvp)
    fvp.ctime = now
    fdvp.mtime = fdvp.ctime = tdvp.mtime = tdvp.ctime = now
    iupdate(fvp)
    iupdate(fdvp)
    if tdvp is not fdvp:
        iupdate(tdvp)


def exchange(ops: Ext2Ops, fdvp: Ext2Node, fname: bytes, tdvp: Ext2Node, tname: bytes,
             now: int) -> None:
    """RENAME_EXCHANGE: swap two entries in place."""
    from rumpfs.fs.ext2fs.inode import iget
    fd, td = Dir(fdvp), Dir(tdvp)
    fc, tc = fd.cache(), td.cache()
    if fname not in fc or tname not in tc:
        raise_errno(errno.ENOENT)
    a = iget(fdvp.mount, fc[fname][0])  # type: ignore[arg-type]
    b = iget(tdvp.mount, tc[tname][0])  # type: ignore[arg-type]
    fd.retarget(fname, b.ino, b.type)
    td.retarget(tname, a.ino, a.type)
    if fdvp is not tdvp:
        if a.type is VDIR:
            _set_dotdot(a, tdvp)
        if b.type is VDIR:
            _set_dotdot(b, fdvp)
        if a.type is VDIR and b.type is not VDIR:
            ops._more_links(tdvp)
            ops._fewer_links(fdvp)
        elif b.type is VDIR and a.type is not VDIR:
            ops._more_links(fdvp)
            ops._fewer_links(tdvp)
    a.ctime = b.ctime = now
    fdvp.mtime = fdvp.ctime = tdvp.mtime = tdvp.ctime = now
    for vp in {id(x): x for x in (a, b, fdvp, tdvp)}.values():
        iupdate(vp)
