"""Name system calls: open, create, remove, rename, look up and change what a
path names, and the cwd (NetBSD's vfs_syscalls.c).

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

Each ``sys_*`` takes the calling process first and follows Linux: the order
of its checks, its errno values, the time stamps it touches. Errors raised
below carry no filename; here they get the caller's own argument
(``filename``/``filename2``) where ``os`` sets it. A path argument that is
a descriptor (``os.stat(fd)``, ``os.chmod(fd, ...)``) goes to the matching
call of ``sys_generic``.

Locking: the caller (``kernel.py``) holds the kernel lock around every call.
Reference counting: open files and the cwd take vnode references
(``vfs_vnops.falloc``, ``sys_chdir``).
"""

from __future__ import annotations

import math
import os
import stat as st

from rumpfs.errors import errno, raise_errno, with_filename
from rumpfs.kern.cred import R_OK, W_OK, X_OK
from rumpfs.vfs import acl, genfs
from rumpfs.vfs.namei import dotdot, lookup_last, namei, namei_parent, namei_parent_counted
from rumpfs.vfs.proc import DirFd, StrOrBytesPath, VProc
from rumpfs.vfs.sys_generic import sys_fchmod, sys_fchown, sys_fstat, sys_ftruncate
from rumpfs.vfs.sysutil import changed, changed_entry, getfile, getvnode, pathstr, startdir
from rumpfs.vfs.vfs_vnops import (
    UTIME_NOW,
    setattr_mode,
    setattr_owner,
    setattr_times,
    vn_open,
    vn_truncate,
)
from rumpfs.vfs.vnode import (
    SYMLOOP_MAX,
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

__all__ = [
    "sys_access", "sys_chdir", "sys_chmod", "sys_chown", "sys_getcwd", "sys_link",
    "sys_listdir", "sys_mkdir", "sys_mknod", "sys_open", "sys_readdir", "sys_readlink",
    "sys_rename", "sys_rmdir", "sys_stat", "sys_statvfs", "sys_symlink", "sys_truncate",
    "sys_unlink", "sys_utime", "vn_link",
]

_MKNOD_TYPES = {
    st.S_IFREG: VREG, st.S_IFCHR: VCHR, st.S_IFBLK: VBLK, st.S_IFIFO: VFIFO, st.S_IFSOCK: VSOCK,
}


def _may_create(p: VProc, dvp: Vnode) -> None:
    if dvp.dead:            # a removed directory takes no entries (Linux: IS_DEADDIR)
        raise_errno(errno.ENOENT)
    if dvp.mount.read_only:
        raise_errno(errno.EROFS)
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


def _open_create(p: VProc, path: str, start: Vnode, flags: int, mode: int) -> tuple[Vnode, bool]:
    """The O_CREAT half of open: find or make the last component (following a
    symlink there unless O_EXCL/O_NOFOLLOW, creating its target if missing).
    Links followed anywhere count together: more than 40 in all is ELOOP."""
    nlinks = 0
    while True:
        dvp, name, trailing, nlinks = namei_parent_counted(p, path, start, nlinks)
        if name in ("", ".", ".."):     # the directory itself: it exists
            raise_errno(errno.EEXIST if flags & os.O_EXCL else errno.EISDIR)
        if trailing:
            raise_errno(errno.EISDIR)
        if dvp.dead:                    # Linux's lookup_open: before EROFS, EACCES
            raise_errno(errno.ENOENT)
        vp = lookup_last(dvp, name)
        if vp is None:
            _may_create(p, dvp)
            cmode, access, _ = acl.create_mode(dvp, mode & 0o7777, p.umask)
            fmode, uid, gid = _new_owner(p, dvp, cmode, False)
            vp = dvp.ops.vop_create(dvp, name, Vattr(VREG, fmode, uid, gid))
            if access is not None:
                acl.inherit(vp, access, None)
            if p.ctx.watchers:
                changed_entry(p, dvp, name)
            return vp, True
        if flags & os.O_EXCL:
            raise_errno(errno.EEXIST)
        while vp.mountedhere is not None:
            vp = vp.mountedhere.root
        if vp.type is not VLNK or flags & os.O_NOFOLLOW:
            return vp, False
        nlinks += 1
        if nlinks > SYMLOOP_MAX:
            raise_errno(errno.ELOOP)
        path = vp.ops.vop_readlink(vp)
        if not path:
            raise_errno(errno.ENOENT)
        start = dvp


def sys_open(p: VProc, path: StrOrBytesPath, flags: int, mode: int = 0o777,
             dir_fd: DirFd = None) -> int:
    try:
        if flags & (os.O_CREAT | os.O_DIRECTORY) == os.O_CREAT | os.O_DIRECTORY:
            raise_errno(errno.EINVAL)       # Linux >= 6.4 refuses the pair outright
        s = pathstr(path)
        start = startdir(p, s, dir_fd)
        if flags & O_TMPFILE == O_TMPFILE:
            return open_tmpfile(p, namei(p, s, start, True), flags, mode)
        if flags & os.O_CREAT:
            vp, created = _open_create(p, s, start, flags, mode)
        else:
            vp = namei(p, s, start, not flags & os.O_NOFOLLOW)
            created = False
        return vn_open(p, vp, flags, created)
    except OSError as e:
        raise with_filename(e, path) from None


def sys_stat(p: VProc, path: StrOrBytesPath | int, dir_fd: DirFd = None,
             follow: bool = True) -> os.stat_result:
    if isinstance(path, int):
        return sys_fstat(p, path)
    try:
        s = pathstr(path)
        # startdir inlined for the common case (no dir_fd: the cwd; an absolute
        # path ignores its start)
        vp = namei(p, s, p.cwd if dir_fd is None else startdir(p, s, dir_fd), follow)
        return vp.ops.vop_getattr(vp)
    except OSError as e:
        raise with_filename(e, path) from None


def sys_access(p: VProc, path: StrOrBytesPath, mode: int, dir_fd: DirFd = None,
               follow: bool = True) -> bool:
    try:
        s = pathstr(path)
        vp = namei(p, s, startdir(p, s, dir_fd), follow)
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
    take new entries (EROFS, EACCES). A removed parent is ENOENT before all
    but "." and "..": Linux's lookup in a dead directory fails first."""
    s = pathstr(path)
    dvp, name, trailing = namei_parent(p, s, startdir(p, s, dir_fd))
    if name in ("", ".", ".."):
        raise_errno(errno.EEXIST)
    if dvp.dead:
        raise_errno(errno.ENOENT)
    if lookup_last(dvp, name) is not None:
        raise_errno(errno.EEXIST)
    if trailing and not isdir:
        raise_errno(errno.ENOENT)
    _may_create(p, dvp)
    return dvp, name


def sys_mkdir(p: VProc, path: StrOrBytesPath, mode: int = 0o777,
              dir_fd: DirFd = None) -> None:
    try:
        dvp, name = _namei_create(p, path, dir_fd, isdir=True)
        cmode, access, default = acl.create_mode(dvp, mode & 0o1777, p.umask)
        dmode, uid, gid = _new_owner(p, dvp, cmode, True)
        vp = dvp.ops.vop_mkdir(dvp, name, Vattr(VDIR, dmode, uid, gid))
        if default is not None:
            acl.inherit(vp, access, default)
        if p.ctx.watchers:
            changed_entry(p, dvp, name)
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
    # Device nodes need privilege, except a whiteout (character device 0:0,
    # what overlayfs makes): Linux >= 5.8 lets anyone create one.
    if device_node and p.cred.uid != 0 and not (vtype is VCHR and device == 0):
        raise_errno(errno.EPERM)
    cmode, access, _ = acl.create_mode(dvp, mode & 0o7777, p.umask)
    nmode, uid, gid = _new_owner(p, dvp, cmode, False)
    rdev = device if device_node else 0
    vp = dvp.ops.vop_create(dvp, name, Vattr(vtype, nmode, uid, gid, rdev=rdev))
    if access is not None:
        acl.inherit(vp, access, None)
    if p.ctx.watchers:
        changed_entry(p, dvp, name)


def sys_symlink(p: VProc, src: StrOrBytesPath, dst: StrOrBytesPath,
                dir_fd: DirFd = None) -> None:
    try:
        target = pathstr(src)
        dvp, name = _namei_create(p, dst, dir_fd)
        _, uid, gid = _new_owner(p, dvp, 0o777, False)
        dvp.ops.vop_symlink(dvp, name, Vattr(VLNK, 0o777, uid, gid), target)
        if p.ctx.watchers:
            changed_entry(p, dvp, name)
    except OSError as e:
        raise with_filename(e, src, dst) from None


def sys_link(p: VProc, src: StrOrBytesPath, dst: StrOrBytesPath,
             src_dir_fd: DirFd = None, dst_dir_fd: DirFd = None,
             follow: bool = True) -> None:
    try:
        s = pathstr(src)
        vp = namei(p, s, startdir(p, s, src_dir_fd), follow)
        d = pathstr(dst)
        dvp, name, trailing = namei_parent(p, d, startdir(p, d, dst_dir_fd))
        vn_link(p, vp, dvp, name, trailing)
    except OSError as e:
        raise with_filename(e, src, dst) from None


O_TMPFILE = getattr(os, "O_TMPFILE", 0o20200000)


def open_tmpfile(p: VProc, dvp: Vnode, flags: int, mode: int) -> int:
    """open(dir, O_TMPFILE): an unnamed regular file on ``dvp``'s file system,
    opened for writing; without O_EXCL it may later get a name (link with
    the descriptor). Linux's do_tmpfile/vfs_tmpfile."""
    acc = flags & 3
    if acc == os.O_RDONLY or acc == 3:
        raise_errno(errno.EINVAL)
    if dvp.type is not VDIR:
        raise_errno(errno.ENOTDIR)
    _may_create(p, dvp)
    cmode, access, _ = acl.create_mode(dvp, mode & 0o7777, p.umask)
    fmode, uid, gid = _new_owner(p, dvp, cmode, False)
    vp = dvp.ops.vop_tmpfile(dvp, Vattr(VREG, fmode, uid, gid))
    if access is not None:
        acl.inherit(vp, access, None)
    fd = vn_open(p, vp, flags & ~O_TMPFILE | os.O_CREAT, True)
    getfile(p, fd).tmpfile_linkable = not flags & os.O_EXCL
    return fd


def sys_link_fd(p: VProc, fd: int, dst: StrOrBytesPath, dst_dir_fd: DirFd = None) -> None:
    """linkat(fd, "", dst_dir_fd, dst, AT_EMPTY_PATH): name the file open at
    ``fd``; an O_TMPFILE file opened without O_EXCL may be named once."""
    try:
        fp = getfile(p, fd)
        d = pathstr(dst)
        dvp, name, trailing = namei_parent(p, d, startdir(p, d, dst_dir_fd))
        linkable = fp.tmpfile_linkable
        vn_link(p, fp.vp, dvp, name, trailing, linkable)
        fp.tmpfile_linkable = False
    except OSError as e:
        raise with_filename(e, fd, dst) from None


def vn_link(p: VProc, vp: Vnode, dvp: Vnode, name: str, trailing: bool = False,
            linkable: bool = False) -> None:
    """link(2) of vnode ``vp`` as ``name`` in ``dvp``, in Linux's order of checks
    (a removed ``dvp`` is ENOENT before EEXIST, EXDEV, EPERM and EACCES);
    ``linkable``: an O_TMPFILE file may get its first name (I_LINKABLE)."""
    if name in ("", ".", ".."):
        raise_errno(errno.EEXIST)
    if dvp.dead:
        raise_errno(errno.ENOENT)
    if lookup_last(dvp, name) is not None:
        raise_errno(errno.EEXIST)
    if trailing:
        raise_errno(errno.ENOENT)
    if dvp.mount.read_only:
        raise_errno(errno.EROFS)
    if dvp.mount is not vp.mount:
        raise_errno(errno.EXDEV)
    cred = p.cred
    if cred.uid != 0 and p.ctx.protected_hardlinks:
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
    if not linkable and vp.ops.vop_getattr(vp).st_nlink == 0:
        raise_errno(errno.ENOENT)
    dvp.ops.vop_link(dvp, name, vp)
    if p.ctx.watchers:
        changed_entry(p, dvp, name)
        changed(p, vp)


def sys_unlink(p: VProc, path: StrOrBytesPath, dir_fd: DirFd = None) -> None:
    try:
        s = pathstr(path)
        dvp, name, trailing = namei_parent(p, s, startdir(p, s, dir_fd))
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
            changed_entry(p, dvp, name)
            changed(p, vp)
    except OSError as e:
        raise with_filename(e, path) from None


def sys_rmdir(p: VProc, path: StrOrBytesPath, dir_fd: DirFd = None) -> None:
    try:
        s = pathstr(path)
        dvp, name, _ = namei_parent(p, s, startdir(p, s, dir_fd))
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
            changed_entry(p, dvp, name)
            changed(p, vp)
    except OSError as e:
        raise with_filename(e, path) from None


def sys_rename(p: VProc, src: StrOrBytesPath, dst: StrOrBytesPath,
               src_dir_fd: DirFd = None, dst_dir_fd: DirFd = None,
               flags: int = 0) -> None:
    try:
        s = pathstr(src)
        fdvp, fname, ftrail = namei_parent(p, s, startdir(p, s, src_dir_fd))
        d = pathstr(dst)
        tdvp, tname, ttrail = namei_parent(p, d, startdir(p, d, dst_dir_fd))
        fvp, tvp = genfs.rename(p, fdvp, fname, ftrail, tdvp, tname, ttrail, flags)
        if tvp is not None and tvp.type is VDIR and not flags & genfs.RENAME_EXCHANGE:
            tvp.dead = True
        if p.ctx.watchers:
            changed_entry(p, fdvp, fname)
            changed_entry(p, tdvp, tname)
            changed(p, fvp, tvp)
    except OSError as e:
        raise with_filename(e, src, dst) from None


def sys_readlink(p: VProc, path: StrOrBytesPath, dir_fd: DirFd = None) -> str:
    try:
        s = pathstr(path)
        vp = namei(p, s, startdir(p, s, dir_fd), False)
        if vp.type is not VLNK:
            raise_errno(errno.EINVAL)
        return vp.ops.vop_readlink(vp)
    except OSError as e:
        raise with_filename(e, path) from None


def _opendir_vnode(p: VProc, path: StrOrBytesPath | int | None) -> Vnode:
    """The directory to list: a descriptor's or a path's (None: ".", whose errors
    carry no filename, as ``os.listdir()``'s); it must be readable."""
    if isinstance(path, int):
        vp = getvnode(p, path)
    else:
        s = "." if path is None else pathstr(path)
        vp = namei(p, s, p.cwd, True)
    if vp.type is not VDIR:
        raise_errno(errno.ENOTDIR)
    if not vp.ops.vop_access(vp, R_OK, p.cred):
        raise_errno(errno.EACCES)
    return vp


def sys_readdir(p: VProc, path: StrOrBytesPath | int | None) -> list[tuple[str, VType, int]]:
    """(name, type, fileid) of every entry but . and .. (listdir and scandir)."""
    try:
        vp = _opendir_vnode(p, path)
        return [(name, vtype, fileid) for name, fileid, vtype, _ in vp.ops.vop_readdir(vp, 0)]
    except OSError as e:
        raise with_filename(e, path) from None


def sys_listdir(p: VProc, path: StrOrBytesPath | int | None) -> list[str]:
    try:
        vp = _opendir_vnode(p, path)
        return vp.ops.vop_listnames(vp)
    except OSError as e:
        raise with_filename(e, path) from None


def _resolve(p: VProc, path: StrOrBytesPath | int, dir_fd: DirFd, follow: bool) -> Vnode:
    if isinstance(path, int):
        return getvnode(p, path)
    s = pathstr(path)
    return namei(p, s, startdir(p, s, dir_fd), follow)


def sys_chmod(p: VProc, path: StrOrBytesPath | int, mode: int, dir_fd: DirFd = None,
              follow: bool = True) -> None:
    if isinstance(path, int):
        sys_fchmod(p, path, mode)
        return
    try:
        vp = _resolve(p, path, dir_fd, follow)
        if vp.type is VLNK:
            raise_errno(errno.EOPNOTSUPP)
        setattr_mode(p, vp, mode)
    except OSError as e:
        raise with_filename(e, path) from None


def sys_chown(p: VProc, path: StrOrBytesPath | int, uid: int, gid: int,
              dir_fd: DirFd = None, follow: bool = True) -> None:
    if isinstance(path, int):
        sys_fchown(p, path, uid, gid)
        return
    try:
        setattr_owner(p, _resolve(p, path, dir_fd, follow), uid, gid)
    except OSError as e:
        raise with_filename(e, path) from None


def _float_ns(t: float) -> int:
    """Seconds as a float -> ns, rounding down as CPython's os.utime does."""
    frac, whole = math.modf(t)
    ns = math.floor(frac * 1e9)
    if ns < 0:
        ns += 1_000_000_000
        whole -= 1
    return int(whole) * 1_000_000_000 + ns


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
