"""POSIX ACLs: Linux's posix_acl xattr format, access evaluation, chmod and inheritance.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``, ``rumpfs.vfs.vnode``.

An :class:`Acl` is an immutable tuple of ``(tag, perm, id)`` entries, as
Linux keeps ``struct posix_acl``: USER_OBJ, USER entries, GROUP_OBJ, GROUP
entries, MASK, OTHER (named entries in the order given). ``id`` is meaningful only for
USER and GROUP entries (the others carry ``UNDEFINED_ID``).

The xattr form (``system.posix_acl_access`` / ``system.posix_acl_default``)
is Linux's: a little-endian u32 version 2, then 8-byte entries
``<u16 tag, u16 perm, u32 id>``. Parsing checks what Linux's
posix_acl_from_xattr checks (size, version -> EOPNOTSUPP, tags -> EINVAL);
:func:`valid` is posix_acl_valid (order, duplicates, required entries).

For a file with an access ACL, the group bits of its mode are the MASK
entry's permissions (or GROUP_OBJ's without a mask), and the owner and
other bits are USER_OBJ's and OTHER's: :func:`chmod` and
:func:`equiv_mode` keep the two in step, as Linux's posix_acl_chmod and
posix_acl_update_mode do.
"""

from __future__ import annotations

import stat as st
import struct

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.cred import X_OK, Cred
from rumpfs.vfs.vnode import VDIR, Vnode

__all__ = [
    "ACCESS",
    "DEFAULT",
    "GROUP",
    "GROUP_OBJ",
    "MASK",
    "OTHER",
    "UNDEFINED_ID",
    "USER",
    "USER_OBJ",
    "XATTR_ACCESS",
    "XATTR_DEFAULT",
    "Acl",
    "chmod",
    "create_masq",
    "equiv_mode",
    "from_mode",
    "from_xattr",
    "may_access",
    "permission",
    "strip_setgid",
    "to_xattr",
    "valid",
]

USER_OBJ = 0x01
USER = 0x02
GROUP_OBJ = 0x04
GROUP = 0x08
MASK = 0x10
OTHER = 0x20
UNDEFINED_ID = 0xFFFFFFFF

ACCESS = 1          # the ACL type of system.posix_acl_access
DEFAULT = 2         # ... and of system.posix_acl_default
XATTR_ACCESS = "system.posix_acl_access"
XATTR_DEFAULT = "system.posix_acl_default"
_VERSION = 2
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")

Acl = tuple[tuple[int, int, int], ...]


def _key(entry: tuple[int, int, int]) -> tuple[int, int]:
    tag, _, ident = entry
    return tag, ident if tag in (USER, GROUP) else 0


def from_xattr(value: bytes) -> Acl | None:
    """Parse an ACL xattr value; None for an empty value or no entries (which
    removes the ACL). Errors: EINVAL (size, tag, id), EOPNOTSUPP (version)."""
    if not value:
        return None
    if len(value) < 4:
        raise_errno(errno.EINVAL)
    if _HEADER.unpack_from(value)[0] != _VERSION:      # the version before the size
        raise_errno(errno.EOPNOTSUPP)
    if (len(value) - 4) % 8:
        raise_errno(errno.EINVAL)
    entries = []
    for tag, perm, ident in _ENTRY.iter_unpack(value[4:]):
        if tag in (USER, GROUP):
            if ident == UNDEFINED_ID:
                raise_errno(errno.EINVAL)
        elif tag in (USER_OBJ, GROUP_OBJ, MASK, OTHER):
            ident = UNDEFINED_ID
        else:
            raise_errno(errno.EINVAL)
        entries.append((tag, perm, ident))
    return tuple(entries) or None


def to_xattr(acl: Acl) -> bytes:
    """The xattr value of ``acl``."""
    return _HEADER.pack(_VERSION) + b"".join(_ENTRY.pack(*e) for e in acl)


def valid(acl: Acl) -> None:
    """Linux's posix_acl_valid: EINVAL unless ``acl``'s tags come in order, with
    exactly one USER_OBJ, GROUP_OBJ and OTHER, one MASK if it has named entries
    (at most one otherwise), and permissions within rwx. Since Linux 4.8 the
    ids of named entries are neither ordered nor unique (user namespaces)."""
    state = USER_OBJ
    needs_mask = False
    for tag, perm, _ in acl:
        if perm & ~7:
            raise_errno(errno.EINVAL)
        if tag == USER_OBJ and state == USER_OBJ:
            state = USER
        elif tag in (USER, GROUP) and state == tag:
            needs_mask = True
        elif tag == GROUP_OBJ and state == USER:
            state = GROUP
        elif tag == MASK and state == GROUP:
            state = OTHER
        elif tag == OTHER and (state == OTHER or (state == GROUP and not needs_mask)):
            state = 0
        else:
            raise_errno(errno.EINVAL)
    if state != 0:
        raise_errno(errno.EINVAL)


def from_mode(mode: int) -> Acl:
    """The minimal ACL equivalent to ``mode``'s permission bits."""
    return ((USER_OBJ, (mode >> 6) & 7, UNDEFINED_ID), (GROUP_OBJ, (mode >> 3) & 7, UNDEFINED_ID),
            (OTHER, mode & 7, UNDEFINED_ID))


def equiv_mode(acl: Acl, mode: int) -> tuple[int, bool]:
    """(``mode`` with its rwx bits taken from ``acl``, whether ``acl`` says more
    than mode bits can) -- posix_acl_equiv_mode."""
    bits = 0
    extended = False
    for tag, perm, _ in acl:
        if tag == USER_OBJ:
            bits |= perm << 6
        elif tag == GROUP_OBJ:
            bits |= perm << 3
        elif tag == OTHER:
            bits |= perm
        elif tag == MASK:
            bits = (bits & ~0o070) | (perm << 3)
            extended = True
        else:
            extended = True
    return (mode & ~0o777) | bits, extended


def chmod(acl: Acl, mode: int) -> Acl:
    """posix_acl_chmod: owner, group class (MASK, else GROUP_OBJ) and other
    entries take ``mode``'s bits; named entries stay."""
    has_mask = any(tag == MASK for tag, _, _ in acl)
    out = []
    for tag, perm, ident in acl:
        if tag == USER_OBJ:
            perm = (mode >> 6) & 7
        elif tag == MASK or (tag == GROUP_OBJ and not has_mask):
            perm = (mode >> 3) & 7
        elif tag == OTHER:
            perm = mode & 7
        out.append((tag, perm, ident))
    return tuple(out)


def create_masq(default: Acl, mode: int) -> tuple[Acl, int, bool]:
    """posix_acl_create_masq: a new node's access ACL from its directory's
    default ACL and the mode the creator asked for (umask not applied): each
    class keeps what both allow. Returns (acl, mode, whether the ACL says
    more than the mode)."""
    has_mask = any(tag == MASK for tag, _, _ in default)
    out = []
    extended = has_mask
    for tag, perm, ident in default:
        if tag == USER_OBJ:
            perm &= mode >> 6
            mode = (mode & ~0o700) | (perm << 6)
        elif tag == OTHER:
            perm &= mode
            mode = (mode & ~0o007) | perm
        elif tag == MASK or (tag == GROUP_OBJ and not has_mask):
            perm &= mode >> 3
            mode = (mode & ~0o070) | (perm << 3)
        elif tag in (USER, GROUP):
            extended = True
        out.append((tag, perm, ident))
    return tuple(out), mode, extended


def permission(acl: Acl, cred: Cred, uid: int, gid: int, want: int) -> bool:
    """posix_acl_permission for a caller who is not the owner... or is: the
    first entry that matches decides, named entries and groups through MASK."""
    mask_perm = next((p for t, p, _ in acl if t == MASK), 7)
    want &= 7
    found = False
    for tag, perm, ident in acl:
        if tag == USER_OBJ:
            if cred.uid == uid:
                return want & ~perm == 0
        elif tag == USER:
            if cred.uid == ident:
                return want & ~(perm & mask_perm) == 0
        elif tag == GROUP_OBJ:
            if cred.in_group(gid):
                found = True
                if want & ~perm == 0:
                    return want & ~mask_perm == 0
        elif tag == GROUP:
            if cred.in_group(ident):
                found = True
                if want & ~perm == 0:
                    return want & ~mask_perm == 0
        elif tag == OTHER:
            return not found and want & ~perm == 0
    return False


def may_access(cred: Cred, mode: int, uid: int, gid: int, want: int, acl: Acl | None,
               *, is_dir: bool = False) -> bool:
    """Linux's generic_permission with ``acl`` (the access ACL, or None): the
    owner's bits for the owner; the ACL for others when the group class has
    any bit; root as in ``kern.cred.may_access``."""
    if cred.uid == 0:
        return not (want & X_OK and not is_dir and not mode & 0o111)
    if cred.uid == uid:
        return want & ~(mode >> 6) & 7 == 0
    if acl is not None and mode & 0o070:
        return permission(acl, cred, uid, gid, want)
    bits = mode >> 3 if cred.in_group(gid) else mode
    return want & ~bits & 7 == 0


def strip_setgid(mode: int, cred: Cred, gid: int) -> int:
    """posix_acl_update_mode's last step: a caller outside the file's group (not
    root) loses S_ISGID."""
    if cred.uid != 0 and not cred.in_group(gid):
        return mode & ~st.S_ISGID
    return mode


# -- at create time (Linux's posix_acl_create) ------------------------------------

def create_mode(dvp: Vnode, mode: int, umask: int) -> tuple[int, Acl | None, Acl | None]:
    """A new node's permission bits under directory ``dvp``, and the ACLs it
    gets: (mode, access ACL or None, default ACL or None). Without a default
    ACL on ``dvp`` the umask applies; with one, the umask does not, and the
    default ACL masks the mode instead (a directory also inherits it)."""
    dacl = dvp.ops.vop_getacl(dvp, DEFAULT)
    if dacl is None:
        return mode & ~umask, None, None
    acl, mode, extended = create_masq(dacl, mode)
    return mode, acl if extended else None, dacl


def inherit(vp: Vnode, access: Acl | None, default: Acl | None) -> None:
    """Give a node just made the ACLs ``create_mode`` chose (a default ACL only
    to a directory)."""
    if access is not None:
        vp.ops.vop_setacl(vp, ACCESS, access)
    if default is not None and vp.type is VDIR:
        vp.ops.vop_setacl(vp, DEFAULT, default)
