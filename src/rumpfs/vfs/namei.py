"""Path lookup: path -> vnode, one component at a time.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

Outline of a lookup (Linux's rules, NetBSD's shape):
  1. An absolute path starts at the process's root, a relative one at the
     start directory (cwd or a dir_fd's vnode).
  2. For each component: the current vnode must be a directory (ENOTDIR)
     that the process may search (EACCES); "" (a doubled or trailing slash)
     and "." stay put; ".." goes to the parent, crossing up out of a mount
     and never above the process's root; any other name goes to the file
     system's vop_lookup, then down into whatever is mounted there.
  3. A symbolic link met before the last component, or as the last one when
     following, is replaced by its target's components (absolute targets
     restart at the root); more than 40 links -> ELOOP.
  4. A trailing slash makes the last component follow links and demands a
     directory.

Locking: callers hold the kernel lock; no references are taken (see vnode).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.cred import X_OK
from rumpfs.vfs.vnode import NAME_MAX, SYMLOOP_MAX, VDIR, VLNK, Vnode

if TYPE_CHECKING:
    from rumpfs.vfs.proc import VProc

__all__ = ["check_name", "dotdot", "lookup_last", "namei", "namei_parent", "namei_parent_counted"]

_SHORT_NAME: Final = NAME_MAX // 4      # a str this short is at most NAME_MAX bytes in UTF-8


def check_name(name: str) -> None:
    """ENAMETOOLONG for a component longer than NAME_MAX bytes."""
    if len(name) > _SHORT_NAME and len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise_errno(errno.ENAMETOOLONG)


def dotdot(p: VProc, vp: Vnode) -> Vnode:
    """The parent of directory ``vp``, crossing up out of mounts, never above p.root."""
    root = p.root
    while vp is not root:
        mp = vp.mount
        if vp is not mp.root:
            return vp.ops.vop_lookup(vp, "..")
        if mp.covered is None:
            break
        vp = mp.covered
    return vp


def _walk(p: VProc, vp: Vnode, comps: list[str], follow: bool,
          nlinks: int = 0) -> tuple[Vnode, int]:
    """Resolve ``comps`` from ``vp``; see the module outline. Returns the vnode
    and the links followed so far (``nlinks`` counts those of earlier walks of
    the same system call: Linux allows 40 in all). The loop restarts only when
    a symbolic link splices its target into the components."""
    cred = p.cred
    check_search = cred.uid != 0
    while True:
        last = len(comps) - 1
        for i, name in enumerate(comps):
            if vp.type is not VDIR:
                raise_errno(errno.ENOTDIR)
            if not name:
                continue
            if check_search and not vp.ops.vop_access(vp, X_OK, cred):
                raise_errno(errno.EACCES)
            if name == ".":
                continue
            if name == "..":
                vp = dotdot(p, vp)
                continue
            if len(name) > _SHORT_NAME:
                check_name(name)
            names = vp.names
            if names is not None:           # the file system's own dict: no call
                child = names.get(name)
                if child is None:
                    raise_errno(errno.ENOENT)
            else:
                child = vp.ops.vop_lookup(vp, name)
            while child.mountedhere is not None:
                child = child.mountedhere.root
            if child.type is VLNK and (i < last or follow):
                nlinks += 1
                if nlinks > SYMLOOP_MAX:
                    raise_errno(errno.ELOOP)
                target = child.ops.vop_readlink(child)
                if not target:
                    raise_errno(errno.ENOENT)
                comps = target.split("/") + comps[i + 1:]
                if target[0] == "/":
                    vp = p.root
                break
            vp = child
        else:
            return vp, nlinks


def namei(p: VProc, path: str, start: Vnode, follow: bool = True) -> Vnode:
    """The vnode ``path`` names. ``path`` is non-empty and checked for NUL and length."""
    if path[0] == "/":
        return _walk(p, p.root, path.split("/"), follow)[0]
    return _walk(p, start, path.split("/"), follow)[0]


def namei_parent(p: VProc, path: str, start: Vnode) -> tuple[Vnode, str, bool]:
    """The directory that would hold the last component, that name, and whether
    a trailing slash followed it. The name is "" for "/" itself.

    The directory is checked: a directory (ENOTDIR) that ``p`` may search
    (EACCES). The last name is not looked up (see :func:`lookup_last`).
    """
    dvp, name, trailing, _ = namei_parent_counted(p, path, start, 0)
    return dvp, name, trailing


def namei_parent_counted(p: VProc, path: str, start: Vnode,
                         nlinks: int) -> tuple[Vnode, str, bool, int]:
    """:func:`namei_parent` for a walk that continues an earlier one (open(O_CREAT)
    following a symlink in the last component): ``nlinks`` links were followed
    already; the fourth result is the new total."""
    stripped = path.rstrip("/")
    trailing = len(stripped) != len(path)
    cut = stripped.rfind("/")
    if cut < 0:
        dvp = start
        name = stripped
    elif cut == 0:
        dvp = p.root
        name = stripped[1:]
    else:
        head = stripped[:cut]
        dvp, nlinks = _walk(p, p.root if head[0] == "/" else start, head.split("/"), True,
                            nlinks)
        name = stripped[cut + 1:]
    if not stripped:
        return p.root, "", trailing, nlinks
    if dvp.type is not VDIR:
        raise_errno(errno.ENOTDIR)
    if p.cred.uid != 0 and not dvp.ops.vop_access(dvp, X_OK, p.cred):
        raise_errno(errno.EACCES)
    return dvp, name, trailing, nlinks


def lookup_last(dvp: Vnode, name: str) -> Vnode | None:
    """Look ``name`` up in ``dvp`` without following a symlink or crossing a mount
    (the covered directory is returned); None if absent."""
    if len(name) > _SHORT_NAME:
        check_name(name)
    return dvp.ops.vop_probe(dvp, name)
