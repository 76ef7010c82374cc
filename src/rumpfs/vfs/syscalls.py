"""The system calls: os-module calls -> namei + vnode operations (NetBSD's vfs_syscalls.c).

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

Each ``sys_*`` takes the calling process first and follows Linux: the
order of its checks, its errno values, the time stamps it touches. Errors
raised below carry no filename; here they get the caller's own argument
(``filename``/``filename2``) where ``os`` sets it.

Locking: the caller (``kernel.py``) holds the kernel lock around every call.
Reference counting: open files, cwd and mounts take vnode references here.
"""

from __future__ import annotations

import math
import os
import stat as st
from typing import TYPE_CHECKING, TypeAlias

from rumpfs.errors import errno, raise_errno, with_filename
from rumpfs.kern.cred import R_OK, W_OK, X_OK
from rumpfs.kern.devsw import BLOCK, CHAR
from rumpfs.kern.proc import Proc
from rumpfs.vfs import genfs
from rumpfs.vfs.file import File
from rumpfs.vfs.mount import Mount, MountArgs, Vfs
from rumpfs.vfs.namei import dotdot, lookup_last, namei, namei_parent
from rumpfs.vfs.vnode import (
    PATH_MAX,
    VBLK,
    VCHR,
    VDIR,
    VFIFO,
    VLNK,
    VREG,
    VSOCK,
    Vattr,
    Vnode,
    VType,
    vref,
    vrele,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer is 3.12+

__all__ = ["DirFd", "StrOrBytesPath", "VProc"]

VProc: TypeAlias = Proc[Vnode, File, Vfs]
StrOrBytesPath: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]
DirFd: TypeAlias = int | Vnode | None    # a descriptor, or a directory vnode (handle API)


_ACCMODE = os.O_RDONLY | os.O_WRONLY | os.O_RDWR
_MAX_FILE = (1 << 63) - 1
UTIME_NOW = -(1 << 100)  # a time meaning "now": below any time a 64-bit time_t can hold
_MKNOD_TYPES = {
    st.S_IFREG: VREG, st.S_IFCHR: VCHR, st.S_IFBLK: VBLK, st.S_IFIFO: VFIFO, st.S_IFSOCK: VSOCK,
}


# --------------------------------------------------------------------------
# argument handling

def pathstr(path: StrOrBytesPath) -> str:
    """The kernel's form of a path argument: str, NUL-free, at most PATH_MAX bytes.
    Empty -> ENOENT; NUL -> ValueError, as ``os`` raises."""
    if isinstance(path, str):
        s = path
    elif isinstance(path, bytes):
        s = os.fsdecode(path)
    else:
        s = os.fsdecode(os.fspath(path))
    if not s:
        raise_errno(errno.ENOENT)
    if "\0" in s:
        raise ValueError("embedded null byte")
    if len(s) >= PATH_MAX // 4 and len(os.fsencode(s)) >= PATH_MAX:
        raise_errno(errno.ENAMETOOLONG)
    return s


def _start(p: VProc, path: str, dir_fd: DirFd) -> Vnode:
    """Where a relative ``path`` starts: the cwd, ``dir_fd``'s directory, or a
    directory vnode given directly (the vnode-handle API's *at calls)."""
    if dir_fd is None or path[0] == "/":
        return p.cwd
    if isinstance(dir_fd, Vnode):
        return dir_fd
    return p.fds.get(dir_fd).vp


def _now(p: VProc) -> int:
    return p.ctx.clock.now_ns()


def _is_owner(p: VProc, attr: os.stat_result) -> bool:
    return p.cred.uid == 0 or p.cred.uid == attr.st_uid


def _check_writable_fs(vp: Vnode) -> None:
    """EROFS for changing a file, directory or symlink on a read-only mount."""
    if vp.mount.read_only and vp.type in (VREG, VDIR, VLNK):
        raise_errno(errno.EROFS)


def _may_create(p: VProc, dvp: Vnode) -> None:
    if dvp.mount.read_only:
        raise_errno(errno.EROFS)
    if dvp.dead:
        raise_errno(errno.ENOENT)
    if p.cred.uid != 0 and not dvp.ops.vop_access(dvp, W_OK | X_OK, p.cred):
        raise_errno(errno.EACCES)


def _new_owner(p: VProc, dvp: Vnode, mode: int, isdir: bool) -> tuple[int, int, int]:
    """(mode, uid, gid) of a new node: a setgid directory passes on its group
    (and, to directories, the setgid bit); Linux's inode_init_owner."""
    gid = p.cred.gid
    dmode, _, dgid = dvp.ops.vop_perms(dvp)
    if dmode & st.S_ISGID:
        gid = dgid
        if isdir:
            mode |= st.S_ISGID
    if (not isdir and mode & (st.S_ISGID | st.S_IXGRP) == (st.S_ISGID | st.S_IXGRP)
            and p.cred.uid != 0 and not p.cred.in_group(gid)):
        mode &= ~st.S_ISGID
    return mode, p.cred.uid, gid


def _kill_suid(p: VProc, vp: Vnode) -> None:
    """Writing or truncating without privilege clears setuid, and setgid if group-executable."""
    if p.cred.uid == 0 or vp.type is not VREG:
        return
    mode, _, gid = vp.ops.vop_perms(vp)
    kill = _suid_bits_to_kill(p, mode, gid)
    if kill:
        vp.ops.vop_setattr(vp, Vattr(mode=st.S_IMODE(mode) & ~kill, ctime_ns=_now(p)))


kill_suid = _kill_suid   # for frontends: FUSE's KILL_SUIDGID asks for exactly this


def _suid_bits_to_kill(p: VProc, mode: int, gid: int) -> int:
    """Linux's should_remove_suid + setattr_should_drop_sgid: setuid always; setgid
    when group-executable, or when the caller is neither in the group nor root."""
    kill = mode & st.S_ISUID
    if mode & st.S_ISGID and (
        mode & st.S_IXGRP or (p.cred.uid != 0 and not p.cred.in_group(gid))
    ):
        kill |= st.S_ISGID
    return kill


def _changed(p: VProc, *vps: Vnode | None) -> None:
    """Notify watchers (the FUSE frontend) of changed vnodes; callers test
    ``p.ctx.watchers`` first, so that the common case costs no call."""
    for vp in vps:
        if vp is not None:
            p.ctx.notify(vp)


# --------------------------------------------------------------------------
# open files

def falloc(p: VProc, vp: Vnode, flags: int) -> int:
    """Open ``vp`` (already permission-checked) and give it a descriptor."""
    fp = File(vp, flags)
    if vp.type is VBLK or vp.type is VCHR:
        kind = BLOCK if vp.type is VBLK else CHAR
        rdev = vp.ops.vop_getattr(vp).st_rdev
        driver, minor = p.ctx.devsw.lookup(kind, rdev)
        if kind is BLOCK and fp.writable and rdev in p.ctx.blk_mounted:
            raise_errno(errno.EBUSY)        # a mounted disk's buffers are the fs's
        driver.d_open(minor, flags)
        fp.dev, fp.minor, fp.rdev = driver, minor, rdev
        if kind is BLOCK and fp.writable:
            blkw = fp.blk_writers = p.ctx.blk_writers
            blkw[rdev] = blkw.get(rdev, 0) + 1
    else:
        vp.ops.vop_open(vp, flags)
    vref(vp)
    if fp.writable:
        vp.mount.writers += 1
    try:
        return p.fds.alloc(fp)
    except OSError:
        frele(fp)
        raise


def frele(fp: File) -> None:
    """Drop one descriptor's hold on ``fp``; the last one closes it."""
    fp.refs -= 1
    if fp.refs:
        return
    vp = fp.vp
    if fp.writable:
        vp.mount.writers -= 1
        blkw = fp.blk_writers
        if blkw is not None:
            if blkw[fp.rdev] == 1:
                del blkw[fp.rdev]
            else:
                blkw[fp.rdev] -= 1
    try:
        if fp.dirstream:
            vp.ops.vop_closedir(vp)
        if fp.dev is not None:
            fp.dev.d_close(fp.minor, fp.flags)
        else:
            vp.ops.vop_close(vp, fp.flags)
    finally:
        vrele(vp)


def open_checks(p: VProc, vp: Vnode, flags: int, created: bool) -> None:
    """Linux's may_open: type rules, then EROFS/EACCES, for an existing node."""
    acc = flags & _ACCMODE
    write = acc != os.O_RDONLY or bool(flags & os.O_TRUNC)
    vtype = vp.type
    if flags & os.O_DIRECTORY and vtype is not VDIR:
        raise_errno(errno.ENOTDIR)
    if vtype is VDIR:
        if write or (flags & os.O_CREAT and not created):
            raise_errno(errno.EISDIR)
    elif vtype is VLNK:
        raise_errno(errno.ELOOP)
    if created:
        return
    if write:
        _check_writable_fs(vp)
    want = (R_OK if acc != os.O_WRONLY else 0) | (W_OK if write else 0)
    if acc == 3:
        raise_errno(errno.EINVAL)
    if want and not vp.ops.vop_access(vp, want, p.cred):
        raise_errno(errno.EACCES)
    if vtype is VSOCK:
        raise_errno(errno.ENXIO)
    if vtype is VFIFO and not (flags & os.O_NONBLOCK and acc == os.O_RDONLY):
        # No pipe engine behind FIFO nodes: only a non-blocking reader may
        # open one (it sees end-of-file); a writer finds no reader (ENXIO).
        raise_errno(errno.ENXIO)


def _open_create(p: VProc, path: str, start: Vnode, flags: int, mode: int) -> tuple[Vnode, bool]:
    """The O_CREAT half of open: find or make the last component (following a
    symlink there unless O_EXCL/O_NOFOLLOW, creating its target if missing)."""
    for _ in range(41):
        dvp, name, trailing = namei_parent(p, path, start)
        if name in ("", ".", ".."):     # the directory itself: it exists
            raise_errno(errno.EEXIST if flags & os.O_EXCL else errno.EISDIR)
        if trailing:
            raise_errno(errno.EISDIR)
        vp = lookup_last(dvp, name)
        if vp is None:
            _may_create(p, dvp)
            fmode, uid, gid = _new_owner(p, dvp, mode & 0o7777 & ~p.umask, False)
            vp = dvp.ops.vop_create(dvp, name, Vattr(VREG, fmode, uid, gid))
            if p.ctx.watchers:
                _changed(p, dvp)
            return vp, True
        if flags & os.O_EXCL:
            raise_errno(errno.EEXIST)
        while vp.mountedhere is not None:
            vp = vp.mountedhere.root
        if vp.type is not VLNK or flags & os.O_NOFOLLOW:
            return vp, False
        path = vp.ops.vop_readlink(vp)
        if not path:
            raise_errno(errno.ENOENT)
        start = dvp
    raise_errno(errno.ELOOP)


def sys_open(p: VProc, path: StrOrBytesPath, flags: int, mode: int = 0o777,
             dir_fd: DirFd = None) -> int:
    try:
        if flags & (os.O_CREAT | os.O_DIRECTORY) == os.O_CREAT | os.O_DIRECTORY:
            raise_errno(errno.EINVAL)       # Linux >= 6.4 refuses the pair outright
        s = pathstr(path)
        start = _start(p, s, dir_fd)
        if flags & os.O_CREAT:
            vp, created = _open_create(p, s, start, flags, mode)
        else:
            vp = namei(p, s, start, not flags & os.O_NOFOLLOW)
            created = False
        return vn_open(p, vp, flags, created)
    except OSError as e:
        raise with_filename(e, path) from None


def vn_open(p: VProc, vp: Vnode, flags: int, created: bool = False) -> int:
    """Open vnode ``vp`` for ``p``: may_open's checks, O_TRUNC, a descriptor."""
    open_checks(p, vp, flags, created)
    if flags & os.O_TRUNC and not created and vp.type is VREG:
        _truncate(p, vp, 0)
    return falloc(p, vp, flags)


def sys_close(p: VProc, fd: int) -> None:
    frele(p.fds.remove(fd))


def sys_dup(p: VProc, fd: int) -> int:
    fp = p.fds.get(fd)
    fp.refs += 1
    try:
        return p.fds.alloc(fp)
    except OSError:
        fp.refs -= 1
        raise


def sys_read(p: VProc, fd: int, size: int) -> bytes:
    if size < 0:                        # os checks the size before the call
        raise_errno(errno.EINVAL)
    fp = p.fds.get(fd)
    if not fp.readable:
        raise_errno(errno.EBADF)
    if fp.dev is not None:
        data = fp.dev.d_read(fp.minor, size, fp.offset)
    else:
        vp = fp.vp
        data = vp.ops.vop_read(vp, size, fp.offset)
    fp.offset += len(data)
    return data


def sys_pread(p: VProc, fd: int, size: int, offset: int) -> bytes:
    if offset < 0 or size < 0:          # checked before the descriptor, as Linux does
        raise_errno(errno.EINVAL)
    fp = p.fds.get(fd)
    if not fp.readable:
        raise_errno(errno.EBADF)
    if fp.dev is not None:
        return fp.dev.d_read(fp.minor, size, offset)
    vp = fp.vp
    if vp.type is VFIFO:
        raise_errno(errno.ESPIPE)
    return vp.ops.vop_read(vp, size, offset)


def _write(p: VProc, fp: File, data: Buffer, offset: int) -> tuple[int, int]:
    if not fp.writable:
        raise_errno(errno.EBADF)
    mv = data if isinstance(data, bytes) else memoryview(data).cast("B")
    if fp.dev is not None:
        n = fp.dev.d_write(fp.minor, mv, offset)
        return n, offset + n
    vp = fp.vp
    if not len(mv):
        return 0, offset
    if p.cred.uid != 0:
        _kill_suid(p, vp)
    result = vp.ops.vop_write(vp, mv, offset, fp.append)
    if p.ctx.watchers:
        _changed(p, vp)
    return result


def sys_write(p: VProc, fd: int, data: Buffer) -> int:
    fp = p.fds.get(fd)
    n, fp.offset = _write(p, fp, data, fp.offset)
    return n


def sys_pwrite(p: VProc, fd: int, data: Buffer, offset: int) -> int:
    if offset < 0:
        raise_errno(errno.EINVAL)
    fp = p.fds.get(fd)
    if fp.vp.type is VFIFO:
        raise_errno(errno.ESPIPE)
    return _write(p, fp, data, offset)[0]


def sys_lseek(p: VProc, fd: int, pos: int, how: int) -> int:
    fp = p.fds.get(fd)
    vp = fp.vp
    if vp.type is VFIFO or vp.type is VSOCK:
        raise_errno(errno.ESPIPE)
    if vp.type is VDIR and how not in (os.SEEK_SET, os.SEEK_CUR):
        raise_errno(errno.EINVAL)       # directories seek only by cookie (tmpfs)
    if how == os.SEEK_SET:
        new = pos
    elif how == os.SEEK_CUR:
        new = fp.offset + pos
    elif how == os.SEEK_END:
        size = fp.dev.d_size(fp.minor) if fp.dev is not None else vp.ops.vop_getattr(vp).st_size
        new = size + pos
    elif how == os.SEEK_DATA or how == os.SEEK_HOLE:
        if pos < 0:
            raise_errno(errno.ENXIO)
        new = vp.ops.vop_seekhole(vp, pos, how == os.SEEK_DATA)
    else:
        raise_errno(errno.EINVAL)
    if new < 0:
        raise_errno(errno.EINVAL)
    if new > _MAX_FILE:
        raise_errno(errno.EOVERFLOW)
    fp.offset = new
    return new


def sys_fstat(p: VProc, fd: int) -> os.stat_result:
    vp = p.fds.get(fd).vp
    return vp.ops.vop_getattr(vp)


def sys_fsync(p: VProc, fd: int, datasync: bool = False) -> None:
    fp = p.fds.get(fd)
    if fp.dev is not None:
        fp.dev.d_fsync(fp.minor)
    else:
        fp.vp.ops.vop_fsync(fp.vp, datasync)
        mp = fp.vp.mount
        if mp.device is not None and not mp.read_only:
            p.ctx.sync_mount(mp)            # the file's buffers are the device's


def sys_ftruncate(p: VProc, fd: int, length: int) -> None:
    fp = p.fds.get(fd)
    if length < 0 or not fp.writable or fp.vp.type is not VREG:
        raise_errno(errno.EINVAL)
    _truncate(p, fp.vp, length)


def _truncate(p: VProc, vp: Vnode, length: int, stamp: bool = True) -> None:
    """Set the size; mtime and ctime change if ``stamp`` (ftruncate, O_TRUNC) or
    the size does (truncate(2) to the same size touches nothing on Linux)."""
    if length > _MAX_FILE:
        raise_errno(errno.EFBIG)
    _kill_suid(p, vp)
    va = Vattr(size=length)
    if stamp or vp.ops.vop_getattr(vp).st_size != length:
        va.mtime_ns = va.ctime_ns = _now(p)
    vp.ops.vop_setattr(vp, va)
    if p.ctx.watchers:
        _changed(p, vp)


# --------------------------------------------------------------------------
# names

def sys_stat(p: VProc, path: StrOrBytesPath | int, dir_fd: DirFd = None,
             follow: bool = True) -> os.stat_result:
    if isinstance(path, int):
        return sys_fstat(p, path)
    try:
        s = pathstr(path)
        vp = namei(p, s, _start(p, s, dir_fd), follow)
        return vp.ops.vop_getattr(vp)
    except OSError as e:
        raise with_filename(e, path) from None


def sys_access(p: VProc, path: StrOrBytesPath, mode: int, dir_fd: DirFd = None,
               follow: bool = True) -> bool:
    try:
        s = pathstr(path)
        vp = namei(p, s, _start(p, s, dir_fd), follow)
    except OSError:
        return False
    if mode & ~(R_OK | W_OK | X_OK):
        return False                # EINVAL, which os.access reports as False
    if mode & W_OK and vp.mount.read_only and vp.type in (VREG, VDIR, VLNK):
        return False
    want = mode & (R_OK | W_OK | X_OK)
    return not want or vp.ops.vop_access(vp, want, p.cred)


def _namei_create(p: VProc, path: StrOrBytesPath, dir_fd: DirFd,
                  isdir: bool = False) -> tuple[Vnode, str]:
    """The parent and name of a node about to be made, checked as Linux's
    filename_create: the name must be free (EEXIST; "." and ".." exist), a
    trailing slash only names a directory (ENOENT otherwise), the parent must
    take new entries (EROFS, ENOENT when removed, EACCES)."""
    s = pathstr(path)
    dvp, name, trailing = namei_parent(p, s, _start(p, s, dir_fd))
    if name in ("", ".", "..") or lookup_last(dvp, name) is not None:
        raise_errno(errno.EEXIST)
    if trailing and not isdir:
        raise_errno(errno.ENOENT)
    _may_create(p, dvp)
    return dvp, name


def sys_mkdir(p: VProc, path: StrOrBytesPath, mode: int = 0o777,
              dir_fd: DirFd = None) -> None:
    try:
        dvp, name = _namei_create(p, path, dir_fd, isdir=True)
        dmode, uid, gid = _new_owner(p, dvp, mode & 0o1777 & ~p.umask, True)
        dvp.ops.vop_mkdir(dvp, name, Vattr(VDIR, dmode, uid, gid))
        if p.ctx.watchers:
            _changed(p, dvp)
    except OSError as e:
        raise with_filename(e, path) from None


def sys_mknod(p: VProc, path: StrOrBytesPath, mode: int = 0o600, device: int = 0,
              dir_fd: DirFd = None) -> None:
    """mknod(2); ``os.mknod`` sets no filename on its errors."""
    ifmt = st.S_IFMT(mode) or st.S_IFREG
    if ifmt == st.S_IFDIR:
        raise_errno(errno.EPERM)
    vtype = _MKNOD_TYPES.get(ifmt)
    if vtype is None:
        raise_errno(errno.EINVAL)
    dvp, name = _namei_create(p, path, dir_fd)
    device_node = vtype is VCHR or vtype is VBLK
    if device_node and p.cred.uid != 0:
        raise_errno(errno.EPERM)
    nmode, uid, gid = _new_owner(p, dvp, mode & 0o7777 & ~p.umask, False)
    rdev = device if device_node else 0
    dvp.ops.vop_create(dvp, name, Vattr(vtype, nmode, uid, gid, rdev=rdev))
    if p.ctx.watchers:
        _changed(p, dvp)


def sys_symlink(p: VProc, src: StrOrBytesPath, dst: StrOrBytesPath,
                dir_fd: DirFd = None) -> None:
    try:
        target = pathstr(src)
        dvp, name = _namei_create(p, dst, dir_fd)
        _, uid, gid = _new_owner(p, dvp, 0o777, False)
        dvp.ops.vop_symlink(dvp, name, Vattr(VLNK, 0o777, uid, gid), target)
        if p.ctx.watchers:
            _changed(p, dvp)
    except OSError as e:
        raise with_filename(e, src, dst) from None


def sys_link(p: VProc, src: StrOrBytesPath, dst: StrOrBytesPath,
             src_dir_fd: DirFd = None, dst_dir_fd: DirFd = None,
             follow: bool = True) -> None:
    try:
        s = pathstr(src)
        vp = namei(p, s, _start(p, s, src_dir_fd), follow)
        d = pathstr(dst)
        dvp, name, trailing = namei_parent(p, d, _start(p, d, dst_dir_fd))
        vn_link(p, vp, dvp, name, trailing)
    except OSError as e:
        raise with_filename(e, src, dst) from None


def vn_link(p: VProc, vp: Vnode, dvp: Vnode, name: str, trailing: bool = False) -> None:
    """link(2) of vnode ``vp`` as ``name`` in ``dvp``, in Linux's order of checks."""
    if name in ("", ".", "..") or lookup_last(dvp, name) is not None:
        raise_errno(errno.EEXIST)
    if trailing:
        raise_errno(errno.ENOENT)
    if dvp.mount.read_only:
        raise_errno(errno.EROFS)
    if dvp.mount is not vp.mount:
        raise_errno(errno.EXDEV)
    cred = p.cred
    if cred.uid != 0:
        attr = vp.ops.vop_getattr(vp)
        # fs.protected_hardlinks: link only what you own or could read and write.
        if cred.uid != attr.st_uid and not (
            vp.type is VREG
            and not attr.st_mode & st.S_ISUID
            and attr.st_mode & (st.S_ISGID | st.S_IXGRP) != (st.S_ISGID | st.S_IXGRP)
            and vp.ops.vop_access(vp, R_OK | W_OK, cred)
        ):
            raise_errno(errno.EPERM)
    _may_create(p, dvp)
    if vp.type is VDIR:
        raise_errno(errno.EPERM)
    if vp.ops.vop_getattr(vp).st_nlink == 0:
        raise_errno(errno.ENOENT)
    dvp.ops.vop_link(dvp, name, vp)
    if p.ctx.watchers:
        _changed(p, dvp, vp)


def sys_unlink(p: VProc, path: StrOrBytesPath, dir_fd: DirFd = None) -> None:
    try:
        s = pathstr(path)
        dvp, name, trailing = namei_parent(p, s, _start(p, s, dir_fd))
        if name in ("", ".", ".."):
            raise_errno(errno.EISDIR)
        if dvp.mount.read_only:
            raise_errno(errno.EROFS)
        vp = lookup_last(dvp, name)
        if vp is None:
            raise_errno(errno.ENOENT)
        if trailing:
            raise_errno(errno.EISDIR if vp.type is VDIR else errno.ENOTDIR)
        genfs.may_delete(p, dvp, vp, False)
        dvp.ops.vop_remove(dvp, name, vp)
        if p.ctx.watchers:
            _changed(p, dvp, vp)
    except OSError as e:
        raise with_filename(e, path) from None


def sys_rmdir(p: VProc, path: StrOrBytesPath, dir_fd: DirFd = None) -> None:
    try:
        s = pathstr(path)
        dvp, name, _ = namei_parent(p, s, _start(p, s, dir_fd))
        if name == "":
            raise_errno(errno.EBUSY)
        if name == ".":
            raise_errno(errno.EINVAL)
        if name == "..":
            raise_errno(errno.ENOTEMPTY)
        if dvp.mount.read_only:
            raise_errno(errno.EROFS)
        vp = lookup_last(dvp, name)
        if vp is None:
            raise_errno(errno.ENOENT)
        genfs.may_delete(p, dvp, vp, True)
        dvp.ops.vop_rmdir(dvp, name, vp)
        vp.dead = True
        if p.ctx.watchers:
            _changed(p, dvp, vp)
    except OSError as e:
        raise with_filename(e, path) from None


def sys_rename(p: VProc, src: StrOrBytesPath, dst: StrOrBytesPath,
               src_dir_fd: DirFd = None, dst_dir_fd: DirFd = None,
               flags: int = 0) -> None:
    try:
        s = pathstr(src)
        fdvp, fname, ftrail = namei_parent(p, s, _start(p, s, src_dir_fd))
        d = pathstr(dst)
        tdvp, tname, ttrail = namei_parent(p, d, _start(p, d, dst_dir_fd))
        fvp, tvp = genfs.rename(p, fdvp, fname, ftrail, tdvp, tname, ttrail, flags)
        if tvp is not None and tvp.type is VDIR and not flags & genfs.RENAME_EXCHANGE:
            tvp.dead = True
        if p.ctx.watchers:
            _changed(p, fdvp, tdvp, fvp, tvp)
    except OSError as e:
        raise with_filename(e, src, dst) from None


def sys_readlink(p: VProc, path: StrOrBytesPath, dir_fd: DirFd = None) -> str:
    try:
        s = pathstr(path)
        vp = namei(p, s, _start(p, s, dir_fd), False)
        if vp.type is not VLNK:
            raise_errno(errno.EINVAL)
        return vp.ops.vop_readlink(vp)
    except OSError as e:
        raise with_filename(e, path) from None


def _opendir_vnode(p: VProc, path: StrOrBytesPath | int) -> Vnode:
    """The directory to list: a descriptor's or a path's; it must be readable."""
    if isinstance(path, int):
        vp = p.fds.get(path).vp
    else:
        s = pathstr(path)
        vp = namei(p, s, p.cwd, True)
    if vp.type is not VDIR:
        raise_errno(errno.ENOTDIR)
    if not vp.ops.vop_access(vp, R_OK, p.cred):
        raise_errno(errno.EACCES)
    return vp


def sys_readdir(p: VProc, path: StrOrBytesPath | int) -> list[tuple[str, VType, int]]:
    """(name, type, fileid) of every entry but . and .. (listdir and scandir)."""
    try:
        vp = _opendir_vnode(p, path)
        return [(name, vtype, fileid) for name, fileid, vtype, _ in vp.ops.vop_readdir(vp, 0)]
    except OSError as e:
        raise with_filename(e, path) from None


def sys_listdir(p: VProc, path: StrOrBytesPath | int) -> list[str]:
    try:
        vp = _opendir_vnode(p, path)
        return vp.ops.vop_listnames(vp)
    except OSError as e:
        raise with_filename(e, path) from None


# --------------------------------------------------------------------------
# attributes

def _resolve(p: VProc, path: StrOrBytesPath | int, dir_fd: DirFd, follow: bool) -> Vnode:
    if isinstance(path, int):
        return p.fds.get(path).vp
    s = pathstr(path)
    return namei(p, s, _start(p, s, dir_fd), follow)


def setattr_mode(p: VProc, vp: Vnode, mode: int) -> None:
    """chmod's rules: owner or root; a non-member loses S_ISGID."""
    _check_writable_fs(vp)
    attr = vp.ops.vop_getattr(vp)
    if not _is_owner(p, attr):
        raise_errno(errno.EPERM)
    mode &= 0o7777
    if p.cred.uid != 0 and not p.cred.in_group(attr.st_gid):
        mode &= ~st.S_ISGID
    vp.ops.vop_setattr(vp, Vattr(mode=mode, ctime_ns=_now(p)))
    if p.ctx.watchers:
        _changed(p, vp)


def sys_chmod(p: VProc, path: StrOrBytesPath | int, mode: int, dir_fd: DirFd = None,
              follow: bool = True) -> None:
    try:
        vp = _resolve(p, path, dir_fd, follow)
        if vp.type is VLNK:
            raise_errno(errno.EOPNOTSUPP)
        setattr_mode(p, vp, mode)
    except OSError as e:
        raise with_filename(e, None if isinstance(path, int) else path) from None


def setattr_owner(p: VProc, vp: Vnode, uid: int, gid: int) -> None:
    """chown's rules (Linux chown_ok/chgrp_ok; -1 leaves an id alone), then the
    clearing of setuid (and group-executable setgid) on non-directories."""
    _check_writable_fs(vp)
    attr = vp.ops.vop_getattr(vp)
    cred = p.cred
    owner = cred.uid == attr.st_uid
    if cred.uid != 0:
        if uid != -1 and not (owner and uid == attr.st_uid):
            raise_errno(errno.EPERM)
        if gid != -1 and not (owner and (gid == attr.st_gid or cred.in_group(gid))):
            raise_errno(errno.EPERM)
    va = Vattr(ctime_ns=_now(p))
    if uid != -1:
        va.uid = uid
    if gid != -1:
        va.gid = gid
    if vp.type is not VDIR:
        kill = _suid_bits_to_kill(p, attr.st_mode, attr.st_gid)
        if kill:
            if not owner and cred.uid != 0:
                raise_errno(errno.EPERM)
            va.mode = st.S_IMODE(attr.st_mode) & ~kill
    vp.ops.vop_setattr(vp, va)
    if p.ctx.watchers:
        _changed(p, vp)


def sys_chown(p: VProc, path: StrOrBytesPath | int, uid: int, gid: int,
              dir_fd: DirFd = None, follow: bool = True) -> None:
    try:
        setattr_owner(p, _resolve(p, path, dir_fd, follow), uid, gid)
    except OSError as e:
        raise with_filename(e, None if isinstance(path, int) else path) from None


def _float_ns(t: float) -> int:
    """Seconds as a float -> ns, rounding down as CPython's os.utime does."""
    frac, whole = math.modf(t)
    ns = math.floor(frac * 1e9)
    if ns < 0:
        ns += 1_000_000_000
        whole -= 1
    return int(whole) * 1_000_000_000 + ns


def setattr_times(p: VProc, vp: Vnode, atime_ns: int | None, mtime_ns: int | None) -> None:
    """utimensat's rules: setting both to now needs ownership or write access
    (EACCES), anything else ownership (EPERM). UTIME_NOW = now, None = omit."""
    _check_writable_fs(vp)
    now = _now(p)
    if atime_ns is None and mtime_ns is None:
        return
    attr = vp.ops.vop_getattr(vp)
    if not _is_owner(p, attr):
        to_now = atime_ns in (None, UTIME_NOW) and mtime_ns in (None, UTIME_NOW)
        if not to_now:
            raise_errno(errno.EPERM)
        if not vp.ops.vop_access(vp, W_OK, p.cred):
            raise_errno(errno.EACCES)
    va = Vattr(ctime_ns=now)
    if atime_ns is not None:
        va.atime_ns = now if atime_ns == UTIME_NOW else atime_ns
    if mtime_ns is not None:
        va.mtime_ns = now if mtime_ns == UTIME_NOW else mtime_ns
    vp.ops.vop_setattr(vp, va)
    if p.ctx.watchers:
        _changed(p, vp)


def sys_utime(p: VProc, path: StrOrBytesPath | int,
              times: tuple[float, float] | None = None,
              ns: tuple[int, int] | None = None,
              dir_fd: DirFd = None, follow: bool = True) -> None:
    if times is not None and ns is not None:
        raise ValueError("utime: you may specify either 'times' or 'ns' but not both")
    if times is not None:
        if not (isinstance(times, tuple) and len(times) == 2):
            raise TypeError("utime: 'times' must be either a tuple of two ints or None")
        atime, mtime = _float_ns(times[0]), _float_ns(times[1])
    elif ns is not None:
        if not (isinstance(ns, tuple) and len(ns) == 2):
            raise TypeError("utime: 'ns' must be a tuple of two ints")
        atime, mtime = int(ns[0]), int(ns[1])
    else:
        atime = mtime = UTIME_NOW
    setattr_times(p, _resolve(p, path, dir_fd, follow), atime, mtime)   # os sets no filename


def sys_truncate(p: VProc, path: StrOrBytesPath | int, length: int) -> None:
    if isinstance(path, int):
        sys_ftruncate(p, path, length)
        return
    try:
        if length < 0:
            raise_errno(errno.EINVAL)
        vn_truncate(p, _resolve(p, path, None, True), length)
    except OSError as e:
        raise with_filename(e, path) from None


def vn_truncate(p: VProc, vp: Vnode, length: int) -> None:
    """truncate(2) on a vnode: a writable regular file."""
    if length < 0:
        raise_errno(errno.EINVAL)
    if vp.type is VDIR:
        raise_errno(errno.EISDIR)
    if vp.type is not VREG:
        raise_errno(errno.EINVAL)
    _check_writable_fs(vp)
    if not vp.ops.vop_access(vp, W_OK, p.cred):
        raise_errno(errno.EACCES)
    _truncate(p, vp, length, stamp=False)


def sys_statvfs(p: VProc, path: StrOrBytesPath | int) -> os.statvfs_result:
    try:
        vp = _resolve(p, path, None, True)
        sv = vp.mount.ops.vfs_statvfs(vp.mount)
        if vp.mount.read_only:
            fields = list(sv)
            fields[8] |= os.ST_RDONLY
            sv = os.statvfs_result(fields)
        return sv
    except OSError as e:
        raise with_filename(e, None if isinstance(path, int) else path) from None


# --------------------------------------------------------------------------
# process state

def sys_chdir(p: VProc, path: StrOrBytesPath | int) -> None:
    try:
        vp = _resolve(p, path, None, True)
        if vp.type is not VDIR:
            raise_errno(errno.ENOTDIR)
        if not vp.ops.vop_access(vp, X_OK, p.cred):
            raise_errno(errno.EACCES)
    except OSError as e:
        raise with_filename(e, None if isinstance(path, int) else path) from None
    old = p.cwd
    p.cwd = vref(vp)
    vrele(old)


def sys_getcwd(p: VProc) -> str:
    """Walk up from the cwd, finding each directory's name in its parent."""
    vp = p.cwd
    if vp.ops.vop_getattr(vp).st_nlink == 0:
        raise_errno(errno.ENOENT)
    parts: list[str] = []
    while vp is not p.root:
        parent = dotdot(p, vp)
        if parent is vp:
            break
        child = vp
        while child is child.mount.root and child.mount.covered is not None:
            child = child.mount.covered
        fileid = child.ops.vop_getattr(child).st_ino
        name = next((n for n, fid, _, _ in parent.ops.vop_readdir(parent, 0)
                     if fid == fileid), None)
        if name is None:
            raise_errno(errno.ENOENT)
        parts.append(name)
        vp = parent
    return "/" + "/".join(reversed(parts))


# --------------------------------------------------------------------------
# mounts

def sys_mount(p: VProc, fstype: str, path: StrOrBytesPath, args: MountArgs,
              device: StrOrBytesPath | None = None) -> Mount:
    """Mount ``fstype`` on directory ``path``; a disk file system on the block
    device node ``device`` (Linux's order: EPERM, the target, ENODEV, then
    the source: ENOENT/ENOTBLK/EBUSY/EACCES, reported with its path)."""
    try:
        if p.cred.uid != 0:
            raise_errno(errno.EPERM)
        vp = namei(p, pathstr(path), p.cwd, True)
        if vp.type is not VDIR:
            raise_errno(errno.ENOTDIR)
        if vp.mountedhere is not None or vp is p.root or vp is vp.mount.root:
            raise_errno(errno.EBUSY)
        if fstype not in p.ctx.fstypes:
            raise_errno(errno.ENODEV)
        if device is not None:
            try:
                dvp = namei(p, pathstr(device), p.cwd, True)
                args.device = p.ctx.open_device(dvp, args.read_only)
            except OSError as e:
                raise with_filename(e, device) from None
        try:
            mp = p.ctx.new_mount(fstype, args)
        except BaseException:
            if args.device is not None:
                p.ctx.bufcache.invalidate(args.device)
                args.device.close()
            raise
        mp.covered = vref(vp)
        vp.mountedhere = mp
        if p.ctx.watchers:
            _changed(p, vp)
        return mp
    except OSError as e:
        raise with_filename(e, path) from None


def sys_sync(p: VProc) -> None:
    """sync(2): every mount's state and buffers to its device; unlike Linux's
    the first write error is raised (after every mount was tried)."""
    p.ctx.sync()


def sys_remount(p: VProc, path: StrOrBytesPath, read_only: bool) -> None:
    """Change a mount between read-write and read-only (MNT_UPDATE); going
    read-only while files are open for writing is EBUSY, as on Linux."""
    try:
        if p.cred.uid != 0:
            raise_errno(errno.EPERM)
        vp = namei(p, pathstr(path), p.cwd, True)
        mp = vp.mount
        if vp is not mp.root:
            raise_errno(errno.EINVAL)
        if read_only and not mp.read_only and mp.writers:
            raise_errno(errno.EBUSY)
        if mp.device is not None and read_only != mp.read_only:
            p.ctx.remount_device(mp, read_only)
        mp.read_only = read_only
    except OSError as e:
        raise with_filename(e, path) from None


def sys_unmount(p: VProc, path: StrOrBytesPath) -> None:
    try:
        if p.cred.uid != 0:
            raise_errno(errno.EPERM)
        vp = namei(p, pathstr(path), p.cwd, True)
        mp = vp.mount
        covered = mp.covered
        if vp is not mp.root or covered is None:
            raise_errno(errno.EINVAL)
        if mp.busy:
            raise_errno(errno.EBUSY)
        if mp.device is not None:
            p.ctx.sync_mount(mp)            # an error here leaves the mount intact
        mp.ops.vfs_unmount(mp)
        covered.mountedhere = None
        mp.covered = None
        p.ctx.mounts.remove(mp)
        vrele(covered)
        if p.ctx.watchers:
            _changed(p, covered)
        p.ctx.release_device(mp)            # flush what vfs_unmount wrote, close
    except OSError as e:
        raise with_filename(e, path) from None
