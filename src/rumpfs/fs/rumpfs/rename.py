"""rumpfs rename primitives, plugged under genfs' rename driver.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors``.

The driver (``vfs.genfs.rename``) has checked every rule that depends only
on types, permissions and ancestry; here remain what only rumpfs knows:
pinned names (EBUSY) and a non-empty target directory (ENOTEMPTY).
Outline: check -> detach source -> replace or attach target (a replaced
name keeps its readdir cookie) -> link counts and times.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.rumpfs.node import RumpDir, RumpNode
from rumpfs.vfs.vnode import VDIR, Vnode

if TYPE_CHECKING:
    from rumpfs.fs.rumpfs.vnops import RumpfsOps

__all__ = ["exchange", "rename"]


def rename(ops: RumpfsOps, fdvp: RumpDir, fname: str, fvnode: Vnode, tdvp: RumpDir,
           tname: str, tvnode: Vnode | None, now: int) -> None:
    # The vnodes are narrowed to rumpfs nodes only once their names are known
    # not to be pinned: a pinned name holds a foreign vnode (an etfs key).
    fdvp.check_unpinned(fname)
    if tvnode is not None:
        tdvp.check_unpinned(tname)
    fvp = cast(RumpNode, fvnode)
    tvp = cast(RumpNode | None, tvnode)
    if tvp is not None and tvp.type is VDIR and cast(RumpDir, tvp).entries:
        raise_errno(errno.ENOTEMPTY)
    fdvp.detach(fname)
    if tvp is None:
        tdvp.attach(tname, fvp)
    else:
        tdvp.replace(tname, fvp)
        tvp.nlink = 0 if tvp.type is VDIR else tvp.nlink - 1
        tvp.ctime = now
        if tvp.nlink == 0 and tvp.usecount == 0:
            ops.vop_inactive(tvp)
    fvp.ctime = now
    fdvp.mtime = fdvp.ctime = tdvp.mtime = tdvp.ctime = now


def exchange(fdvp: RumpDir, fname: str, tdvp: RumpDir, tname: str, now: int) -> None:
    """RENAME_EXCHANGE: swap two entries in place (both keep their cookies)."""
    fdvp.check_unpinned(fname)
    tdvp.check_unpinned(tname)
    a = cast(RumpNode, fdvp.entries[fname])      # not pinned: rumpfs nodes
    b = cast(RumpNode, tdvp.entries[tname])
    fdvp.replace(fname, b)
    tdvp.replace(tname, a)
    a.ctime = b.ctime = now
    fdvp.mtime = fdvp.ctime = tdvp.mtime = tdvp.ctime = now
