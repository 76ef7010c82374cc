"""msdosfs rename, plugged under genfs' rename driver.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors`` and this package.

The driver (``vfs.genfs.rename``) has checked every rule that depends on
types, permissions and ancestry. Outline, as Linux's ``vfat_rename``: a
target directory must be empty (ENOTEMPTY) -> the target's entry goes (its
clusters when its last reference goes) -> the new entry is written with the
moved file's 8.3 entry (cluster, size, times) under its new name -> the old
slots are freed -> a directory moved to another parent gets its ``..``
pointed at the new parent (0 for the root) -> the denode is re-keyed to its
new place, keeping its inode number -> both directories' times.

A rename that only changes case never reaches here: genfs sees the same vnode
and stops, as Linux's vfs_rename does (vfat needs two renames too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.msdosfs.direntry import Dirent
from rumpfs.fs.msdosfs.lookup import add_entry, dir_index, is_empty, remove_entry, set_dotdot
from rumpfs.vfs.vnode import VDIR

if TYPE_CHECKING:
    from rumpfs.fs.msdosfs.denode import Denode
    from rumpfs.fs.msdosfs.vnops import MsdosOps

__all__ = ["rename"]


def rename(ops: MsdosOps, fdvp: Denode, fvp: Denode, tdvp: Denode, tname: str,
           tvp: Denode | None, now: int) -> None:
    mp = ops.mp
    fidx = dir_index(fdvp)
    fe = fidx.entries.get(fvp.offset)
    if fe is None or fvp.parent is not fdvp:
        mp.vol.corrupt("rename source vanished from its directory")
    if tvp is not None:
        if tvp.type is VDIR and not is_empty(tvp):
            raise_errno(errno.ENOTEMPTY)
        te = dir_index(tdvp).entries.get(tvp.offset)
        if te is None:
            mp.vol.corrupt("rename target vanished from its directory")
        remove_entry(tdvp, te)
        mp.forget(tvp)
        tvp.ctime = now
        if tvp.usecount == 0:
            tvp.release_all()
    moved = Dirent(**{f: getattr(fvp.dirent, f) for f in Dirent.__slots__})
    ne = add_entry(tdvp, tname, moved, now // 1000, mp.winnt)
    # add_entry may have grown the directory or filled holes: the old entry
    # is still where it was.
    remove_entry(fdvp, fe)
    if fvp.type is VDIR and fdvp is not tdvp:
        set_dotdot(fvp, 0 if tdvp.is_root else tdvp.start)
    mp.rekey(fvp, tdvp, ne, moved)
    fvp.ctime = now
    ops._touch_dir(fdvp, now)
    if tdvp is not fdvp:
        ops._touch_dir(tdvp, now)
