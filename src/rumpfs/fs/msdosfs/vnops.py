"""msdosfs vnode operations: POSIX on a file system without owners, as Linux's vfat.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors`` and this package.

Differences from a POSIX file system, each as ``vfat`` has it:
- every file belongs to the mount's ``uid``/``gid``; the mode is 0777 less
  ``fmask``/``dmask``, less the write bits when the read-only attribute is
  set. chmod can only toggle that attribute: a mode with setuid/setgid/sticky
  bits is EPERM, any other mode the attribute cannot express is ignored
  (success, nothing changes). chown to another owner or group is EPERM;
- symlinks, hard links and device nodes, FIFOs, sockets: EPERM;
- one link per file; a directory's link count is 2 + its subdirectories;
- times: modification to 2 s, creation to 10 ms, access to a day; change
  time lives only in memory; files over 4 GiB - 1: EFBIG.

Locking: the kernel lock is held throughout.
"""

from __future__ import annotations

import os
import stat as st
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.msdosfs.denode import Denode
from rumpfs.fs.msdosfs.direntry import (
    ATTR_ARCHIVE,
    ATTR_DIRECTORY,
    ATTR_READONLY,
    DOT,
    DOTDOT,
    Dirent,
    check_name,
    date_time_to_ns,
    ns_to_date_time,
)
from rumpfs.fs.msdosfs.lookup import (
    Entry,
    add_entry,
    dir_index,
    is_empty,
    remove_entry,
)
from rumpfs.fs.msdosfs.rename import rename
from rumpfs.kern.clock import Clock
from rumpfs.vfs.genfs import GenfsOps
from rumpfs.vfs.vnode import VDIR, VREG, Vattr, Vnode
from rumpfs.vfs.vnode_if import Dirent as VDirent

if TYPE_CHECKING:
    from rumpfs.fs.msdosfs.vfsops import MsdosMount

__all__ = ["MsdosOps"]

_NS = 1_000_000_000


def _dn(vp: Vnode) -> Denode:
    return cast(Denode, vp)


class MsdosOps(GenfsOps):
    """The vnode-operation vector of one FAT mount."""

    def __init__(self, clock: Clock, mp: MsdosMount) -> None:
        self.clock = clock
        self.mp = mp

    # -- names ----------------------------------------------------------------

    def vop_lookup(self, dvp: Vnode, name: str) -> Vnode:
        vp = self.vop_probe(dvp, name)
        if vp is None:
            raise_errno(errno.ENOENT)
        return vp

    def vop_probe(self, dvp: Vnode, name: str) -> Vnode | None:
        d = _dn(dvp)
        if name == "..":
            return d.parent if d.parent is not None else d
        key = name.rstrip(".")
        if not key:
            return None
        e = dir_index(d).find(key)
        if e is None:
            return None
        return self.mp.get_denode(d, e)

    def _new_dirent(self, attr: int, now: int) -> Dirent:
        date, time, cs = self.mp.vol.stamp(now)
        return Dirent(attr=attr, ctime_cs=cs, ctime=time, cdate=date, adate=date,
                      mtime=time, mdate=date)

    def _enter(self, d: Denode, name: str, de: Dirent, now: int) -> Denode:
        e = add_entry(d, name, de, now // 1000, self.mp.winnt)
        self._touch_dir(d, now)
        return self.mp.get_denode(d, e, de)

    def _touch_dir(self, d: Denode, now: int) -> None:
        """A name came or went: the directory's modification time changes
        (the FAT12/16 root has no entry to keep it in)."""
        d.ctime = now
        if d.is_root:
            return
        de = d.dirent
        date, time, _ = self.mp.vol.stamp(now)
        if (date, time) != (de.mdate, de.mtime):     # FAT's 2 s: often nothing to write
            de.mdate, de.mtime = date, time
            self.mp.write_back(d)

    def vop_create(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        if va.type is not VREG:
            raise_errno(errno.EPERM)
        d = _dn(dvp)
        name = check_name(name)
        now = self.clock.now_ns()
        # As vfat: the mode given to creat() is not kept (not even as the
        # read-only attribute); only chmod sets that.
        de = self._new_dirent(ATTR_ARCHIVE, now)
        return self._enter(d, name, de, now)

    def vop_mkdir(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        d = _dn(dvp)
        name = check_name(name)
        vol = self.mp.vol
        now = self.clock.now_ns()
        if dir_index(d).find(name) is not None:
            raise_errno(errno.EEXIST)
        cl = vol.fat.alloc(1)[0]
        try:
            vol.zero_cluster(cl)
            de = self._new_dirent(ATTR_DIRECTORY, now)
            de.set_cluster(cl, vol.fat32)
            dot = Dirent(**{f: getattr(de, f) for f in Dirent.__slots__})
            dot.name = DOT
            dotdot = Dirent(**{f: getattr(de, f) for f in Dirent.__slots__})
            dotdot.name = DOTDOT
            dotdot.set_cluster(0 if d.is_root else d.start, vol.fat32)
            bp = vol.bread_cluster(cl)
            dot.pack_into(bp.data, 0)
            dotdot.pack_into(bp.data, 32)
            vol.bc.bdwrite(bp)
            return self._enter(d, name, de, now)
        except OSError:
            vol.fat.release([cl])
            raise

    def vop_symlink(self, dvp: Vnode, name: str, va: Vattr, target: str) -> Vnode:
        raise_errno(errno.EPERM)

    def vop_link(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        raise_errno(errno.EPERM)

    def _entry_of(self, d: Denode, vp: Denode) -> Entry:
        e = dir_index(d).entries.get(vp.offset)
        if e is None or vp.parent is not d:
            self.mp.vol.corrupt("a name vanished from its directory")
        return e

    def vop_remove(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        d, f = _dn(dvp), _dn(vp)
        now = self.clock.now_ns()
        remove_entry(d, self._entry_of(d, f))
        self.mp.forget(f)
        self._touch_dir(d, now)
        f.ctime = now
        if f.usecount == 0:
            f.release_all()

    def vop_rmdir(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        d, f = _dn(dvp), _dn(vp)
        if not is_empty(f):
            raise_errno(errno.ENOTEMPTY)
        now = self.clock.now_ns()
        remove_entry(d, self._entry_of(d, f))
        self.mp.forget(f)
        self._touch_dir(d, now)
        if f.usecount == 0:
            f.release_all()

    def vop_rename(
        self, fdvp: Vnode, fname: str, fvp: Vnode, tdvp: Vnode, tname: str, tvp: Vnode | None
    ) -> None:
        rename(self, _dn(fdvp), _dn(fvp), _dn(tdvp), check_name(tname),
               None if tvp is None else _dn(tvp), self.clock.now_ns())

    def vop_readdir(self, dvp: Vnode, cookie: int) -> Iterator[VDirent]:
        d = _dn(dvp)
        idx = dir_index(d)
        mp = self.mp
        out: list[VDirent] = []
        for off in sorted(idx.entries):
            slot = off // 32
            if slot < cookie:
                continue
            e = idx.entries[off]
            out.append((e.name, mp.ino_of(d, e), VDIR if e.attr & ATTR_DIRECTORY else VREG,
                        slot + 1))
        return iter(out)

    # -- attributes -----------------------------------------------------------

    def _mode(self, f: Denode) -> int:
        mp = self.mp
        if f.type is VDIR:
            return st.S_IFDIR | (0o777 & ~mp.dmask)
        mode = 0o777 & ~mp.fmask
        if f.dirent.attr & ATTR_READONLY:
            mode &= ~0o222
        return st.S_IFREG | mode

    def vop_perms(self, vp: Vnode) -> tuple[int, int, int]:
        return self._mode(_dn(vp)), self.mp.uid, self.mp.gid

    def vop_getattr(self, vp: Vnode) -> os.stat_result:
        f = _dn(vp)
        mp = self.mp
        vol = mp.vol
        cs = vol.cluster_size
        off = vol.tz_offset
        de = f.dirent
        if f.type is VDIR:
            size = f.dir_bytes()
            nlink = 0 if f.unlinked else 2 + dir_index(f).subdirs
            blocks = size // 512
        else:
            size = de.size
            nlink = 0 if f.unlinked else 1
            blocks = (size + cs - 1) // cs * cs // 512
        if f.is_root:
            m = a = 0
        else:
            m = date_time_to_ns(de.mdate, de.mtime, 0, off)
            a = date_time_to_ns(de.adate, 0, 0, off)
        c = f.ctime
        return os.stat_result((
            self._mode(f), f.ino, mp.dev, nlink, mp.uid, mp.gid, size,
            a // _NS, m // _NS, c // _NS, a / 1e9, m / 1e9, c / 1e9, a, m, c,
            cs, blocks, 0,
        ))

    def vop_setattr(self, vp: Vnode, va: Vattr) -> None:
        f = _dn(vp)
        mp = self.mp
        if (va.uid is not None and va.uid != mp.uid) or (va.gid is not None and va.gid != mp.gid):
            if not mp.quiet:
                raise_errno(errno.EPERM)
            return
        if va.mode is not None:
            if va.mode & 0o7000 and not mp.quiet:
                raise_errno(errno.EPERM)
            self._chmod(f, va.mode & 0o777)
        if va.size is not None:
            if f.type is VDIR:
                raise_errno(errno.EISDIR)
            f.truncate(va.size)
            if not va.mtime_ns:
                now = self.clock.now_ns()
                f.dirent.mdate, f.dirent.mtime, _ = mp.vol.stamp(now)
                f.dirent.attr |= ATTR_ARCHIVE
        off = mp.vol.tz_offset
        if va.atime_ns is not None and not f.is_root:
            f.dirent.adate = ns_to_date_time(va.atime_ns, off)[0]
        if va.mtime_ns is not None and not f.is_root:
            f.dirent.mdate, f.dirent.mtime, _ = ns_to_date_time(va.mtime_ns, off)
        if va.ctime_ns is not None:
            f.ctime = va.ctime_ns
        self.mp.write_back(f)

    def _chmod(self, f: Denode, mode: int) -> None:
        """fat_sanitize_mode: r and x bits must stay as they are; w all
        (under the mask) or none. Anything else is ignored, as vfat does."""
        cur = self._mode(f) & 0o777
        mask = self.mp.dmask if f.type is VDIR else self.mp.fmask
        perm = mode & ~mask
        if perm & 0o555 != cur & 0o555:
            return
        wbits = 0o222 & ~mask
        can_hold_ro = f.type is not VDIR and wbits != 0
        if can_hold_ro:
            if perm & 0o222 and perm & 0o222 != wbits:
                return
            if perm & 0o222:
                f.dirent.attr &= ~ATTR_READONLY
            else:
                f.dirent.attr |= ATTR_READONLY
        # directories: the write bits cannot change (no "rodir"); nothing to do

    # -- data -----------------------------------------------------------------

    def vop_read(self, vp: Vnode, size: int, offset: int) -> bytes:
        f = _dn(vp)
        if f.type is VDIR:
            raise_errno(errno.EISDIR)
        data = f.read(size, offset)
        if not self.mp.read_only and not f.unlinked:
            today = self.mp.vol.stamp(self.clock.now_ns())[0]
            if f.dirent.adate != today:
                f.dirent.adate = today
                self.mp.write_back(f)
        return data

    def vop_write(
        self, vp: Vnode, data: bytes | memoryview, offset: int, append: bool
    ) -> tuple[int, int]:
        f = _dn(vp)
        if f.type is VDIR:
            raise_errno(errno.EISDIR)
        if append:
            offset = f.dirent.size
        now = self.clock.now_ns()
        n = f.write(data, offset, now)
        f.ctime = now
        self.mp.write_back(f)
        return n, offset + n

    def vop_fsync(self, vp: Vnode, datasync: bool) -> None:
        self.mp.vol.sync()

    def vop_pathconf(self, vp: Vnode, name: str) -> int:
        if name == "PC_LINK_MAX":
            return 1
        if name == "PC_FILESIZEBITS":
            return 32
        if name in ("PC_SYMLINK_MAX", "PC_2_SYMLINKS"):
            raise_errno(errno.EINVAL)
        return super().vop_pathconf(vp, name)

    def vop_inactive(self, vp: Vnode) -> None:
        f = _dn(vp)
        if f.unlinked:
            f.release_all()
