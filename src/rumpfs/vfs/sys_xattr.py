"""Extended-attribute system calls: getxattr, setxattr, listxattr, removexattr
(Linux's fs/xattr.c), with POSIX ACLs behind ``system.posix_acl_*``.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

Namespaces and who may use them, as Linux's xattr_permission and the
capability module decide:

- ``user.*``: regular files and directories only (others: EPERM to write,
  ENODATA to read); read/write permission on the file; in a sticky
  directory only its owner or root may write;
- ``trusted.*``: root only (others: EPERM to write, ENODATA to read; not
  listed for them);
- ``security.*``: anyone reads; only root writes (EPERM);
- ``system.posix_acl_access`` / ``_default``: anyone reads; the owner or
  root writes (EPERM); never on symlinks (EOPNOTSUPP, reading too); a default ACL only
  on directories (EACCES; removing one elsewhere succeeds);
- any other name: EOPNOTSUPP (after the permission check, as Linux orders it).

Limits are Linux's: a name of 1..255 bytes (ERANGE), a value of at most
64 KiB (E2BIG), flags XATTR_CREATE/XATTR_REPLACE only (EINVAL). Arguments
are checked before the path is looked up, as Linux copies them in first.

Locking: the caller (``kernel.py``) holds the kernel lock around every call.
"""

from __future__ import annotations

import os
import stat as st

from rumpfs.errors import errno, raise_errno, with_filename
from rumpfs.kern.cred import R_OK, W_OK
from rumpfs.vfs import acl as posix_acl
from rumpfs.vfs.namei import namei
from rumpfs.vfs.proc import StrOrBytesPath, VProc
from rumpfs.vfs.sysutil import changed, getvnode, now, pathstr, startdir
from rumpfs.vfs.vnode import VDIR, VLNK, VREG, Vattr, Vnode

__all__ = [
    "XATTR_CREATE", "XATTR_LIST_MAX", "XATTR_NAME_MAX", "XATTR_REPLACE", "XATTR_SIZE_MAX",
    "check_args", "set_acl", "sys_getxattr", "sys_listxattr", "sys_removexattr", "sys_setxattr",
    "vn_getxattr", "vn_listxattr", "vn_removexattr", "vn_setxattr",
]

XATTR_CREATE = 1
XATTR_REPLACE = 2
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
XATTR_LIST_MAX = 65536

_ACL_KINDS = {posix_acl.XATTR_ACCESS: posix_acl.ACCESS,
              posix_acl.XATTR_DEFAULT: posix_acl.DEFAULT}
_PREFIXES = ("user.", "trusted.", "security.")

XattrName = str | bytes | os.PathLike[str] | os.PathLike[bytes]


def _name(attribute: XattrName) -> str:
    """The attribute name as the kernel keeps it; ERANGE if empty or too long."""
    raw = os.fsencode(attribute)
    if not raw or len(raw) > XATTR_NAME_MAX:
        raise_errno(errno.ERANGE)
    if b"\0" in raw:
        raise ValueError("embedded null byte")
    return os.fsdecode(raw)


def _vnode(p: VProc, path: StrOrBytesPath | int, follow: bool) -> Vnode:
    if isinstance(path, int):
        return getvnode(p, path)
    s = pathstr(path)
    return namei(p, s, startdir(p, s, None), follow)


def _permission(p: VProc, vp: Vnode, name: str, write: bool) -> None:
    """Linux's xattr_permission, then the capability rule for security.*."""
    if name.startswith(("security.", "system.")):
        if write and name.startswith("security.") and p.cred.uid != 0:
            raise_errno(errno.EPERM)
        return
    root = p.cred.uid == 0
    if name.startswith("trusted."):
        if not root:
            raise_errno(errno.EPERM if write else errno.ENODATA)
        return
    if name.startswith("user."):
        if vp.type is not VREG and vp.type is not VDIR:
            raise_errno(errno.EPERM if write else errno.ENODATA)
        if write and vp.type is VDIR and not root:
            mode, uid, _ = vp.ops.vop_perms(vp)
            if mode & st.S_ISVTX and uid != p.cred.uid:
                raise_errno(errno.EPERM)
    if not vp.ops.vop_access(vp, W_OK if write else R_OK, p.cred):
        raise_errno(errno.EACCES)


def _handled(name: str) -> None:
    """EOPNOTSUPP for a namespace no handler takes, EINVAL for a bare prefix."""
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            if len(name) == len(prefix):
                raise_errno(errno.EINVAL)
            return
    raise_errno(errno.EOPNOTSUPP)


def _writable(vp: Vnode) -> None:
    if vp.mount.read_only:
        raise_errno(errno.EROFS)


# -- ACLs ---------------------------------------------------------------------

def _get_acl(vp: Vnode, kind: int) -> bytes:
    if vp.type is VLNK:
        raise_errno(errno.EOPNOTSUPP)       # symlinks have no ACL operations
    acl = vp.ops.vop_getacl(vp, kind)
    if acl is None:
        raise_errno(errno.ENODATA)
    return posix_acl.to_xattr(acl)


def set_acl(p: VProc, vp: Vnode, kind: int, acl: posix_acl.Acl | None) -> None:
    """set_posix_acl: store ``acl`` (None removes) as ``kind`` on ``vp``; an
    access ACL also sets the mode bits it implies (and drops it if the mode
    says it all)."""
    if vp.type is VLNK:
        raise_errno(errno.EOPNOTSUPP)
    if kind == posix_acl.DEFAULT and vp.type is not VDIR:
        if acl is not None:
            raise_errno(errno.EACCES)
        return
    mode, uid, gid = vp.ops.vop_perms(vp)
    if p.cred.uid != 0 and p.cred.uid != uid:
        raise_errno(errno.EPERM)
    if acl is not None:
        posix_acl.valid(acl)
    if kind == posix_acl.DEFAULT:
        vp.ops.vop_setacl(vp, kind, acl)
        return
    new_mode, extended = posix_acl.equiv_mode(acl, mode) if acl is not None else (mode, False)
    new_mode = posix_acl.strip_setgid(new_mode, p.cred, gid)
    vp.ops.vop_setacl(vp, kind, acl if extended else None)
    vp.ops.vop_setattr(vp, Vattr(mode=st.S_IMODE(new_mode), ctime_ns=now(p)))


# -- the system calls ------------------------------------------------------------

def vn_getxattr(p: VProc, vp: Vnode, name: str) -> bytes:
    """getxattr on a vnode (the handle API's entry; names already checked)."""
    kind = _ACL_KINDS.get(name)
    if kind is not None:
        return _get_acl(vp, kind)
    _permission(p, vp, name, False)
    _handled(name)
    return vp.ops.vop_getxattr(vp, name)


def vn_setxattr(p: VProc, vp: Vnode, name: str, data: bytes, flags: int) -> None:
    """setxattr on a vnode, after the argument checks."""
    _writable(vp)
    kind = _ACL_KINDS.get(name)
    if kind is not None:
        set_acl(p, vp, kind, posix_acl.from_xattr(data))
    else:
        _permission(p, vp, name, True)
        _handled(name)
        vp.ops.vop_setxattr(vp, name, data, flags)
    if p.ctx.watchers:
        changed(p, vp)


def vn_removexattr(p: VProc, vp: Vnode, name: str) -> None:
    """removexattr on a vnode."""
    _writable(vp)
    kind = _ACL_KINDS.get(name)
    if kind is not None:
        set_acl(p, vp, kind, None)
    else:
        _permission(p, vp, name, True)
        _handled(name)
        vp.ops.vop_removexattr(vp, name)
    if p.ctx.watchers:
        changed(p, vp)


def vn_listxattr(p: VProc, vp: Vnode) -> list[str]:
    """listxattr on a vnode: trusted.* only for root; E2BIG past 64 KiB of names."""
    names = vp.ops.vop_listxattr(vp)
    if p.cred.uid != 0:
        names = [n for n in names if not n.startswith("trusted.")]
    if sum(len(os.fsencode(n)) + 1 for n in names) > XATTR_LIST_MAX:
        raise_errno(errno.E2BIG)
    return names


def check_args(attribute: XattrName, value: bytes | None = None, flags: int = 0) -> str:
    """The checks Linux makes while copying the arguments in, before any lookup:
    flags (EINVAL), the name (ERANGE), the value's size (E2BIG)."""
    if flags & ~(XATTR_CREATE | XATTR_REPLACE):
        raise_errno(errno.EINVAL)
    name = _name(attribute)
    if value is not None and len(value) > XATTR_SIZE_MAX:
        raise_errno(errno.E2BIG)
    return name


# -- the system calls ------------------------------------------------------------

def sys_getxattr(p: VProc, path: StrOrBytesPath | int, attribute: XattrName,
                 follow: bool = True) -> bytes:
    try:
        name = check_args(attribute)
        return vn_getxattr(p, _vnode(p, path, follow), name)
    except OSError as e:
        raise with_filename(e, path) from None   # os names a descriptor too


def sys_setxattr(p: VProc, path: StrOrBytesPath | int, attribute: XattrName, value: bytes,
                 flags: int = 0, follow: bool = True) -> None:
    try:
        data = bytes(value)
        name = check_args(attribute, data, flags)
        vn_setxattr(p, _vnode(p, path, follow), name, data, flags)
    except OSError as e:
        raise with_filename(e, path) from None   # os names a descriptor too


def sys_removexattr(p: VProc, path: StrOrBytesPath | int, attribute: XattrName,
                    follow: bool = True) -> None:
    try:
        name = check_args(attribute)
        vn_removexattr(p, _vnode(p, path, follow), name)
    except OSError as e:
        raise with_filename(e, path) from None   # os names a descriptor too


def sys_listxattr(p: VProc, path: StrOrBytesPath | int | None, follow: bool = True) -> list[str]:
    try:
        return vn_listxattr(p, _vnode(p, "." if path is None else path, follow))
    except OSError as e:
        raise with_filename(e, path) from None   # os names a descriptor too
