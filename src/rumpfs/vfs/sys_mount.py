"""Mount system calls: mount, remount (MNT_UPDATE) and unmount.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

Only root may call them (EPERM). The mount table and fs-type registry live
in ``mount.py``; this module checks the covered directory, links the new
mount into the tree and takes it out again.

Locking: the caller (``kernel.py``) holds the kernel lock around every call.
Reference counting: a mount holds a reference to the directory it covers.
"""

from __future__ import annotations

from rumpfs.errors import errno, raise_errno, with_filename
from rumpfs.vfs.mount import Mount, MountArgs
from rumpfs.vfs.namei import dotdot, lookup_last, namei
from rumpfs.vfs.proc import StrOrBytesPath, VProc
from rumpfs.vfs.sysutil import changed, changed_entry, pathstr
from rumpfs.vfs.vnode import VDIR, Vnode, vref, vrele

__all__ = ["sys_mount", "sys_remount", "sys_sync", "sys_unmount"]


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
        if vp.dead:                     # a removed directory (Linux: ENOENT)
            raise_errno(errno.ENOENT)
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
            _covered_changed(p, vp)
        return mp
    except OSError as e:
        raise with_filename(e, path) from None


def _covered_changed(p: VProc, vp: Vnode) -> None:
    """A mount came or went on ``vp``: what its name leads to changed. Watchers
    are told of the name (found by a scan of the parent: rare, and only while
    something watches) and of ``vp`` itself."""
    parent = dotdot(p, vp)
    if parent is not vp:
        for name, _, _, _ in parent.ops.vop_readdir(parent, 0):
            if lookup_last(parent, name) is vp:
                changed_entry(p, parent, name)
                break
    changed(p, vp)


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
            _covered_changed(p, covered)
        p.ctx.release_device(mp)            # flush what vfs_unmount wrote, close
    except OSError as e:
        raise with_filename(e, path) from None
