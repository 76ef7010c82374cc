"""Copies between descriptors inside the kernel: sendfile(2) and
copy_file_range(2), with Linux's checks.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

Both move data in 1 MiB steps through the ordinary read and write paths
(``sys_generic``), so every rule of those holds (offsets, setuid clearing,
times, watchers, pipes at the output of sendfile). Under the kernel lock a
copy between regular files is atomic to other callers.

- ``sendfile(out_fd, in_fd, offset, count)``: ``in_fd`` a readable regular
  file (EBADF, EINVAL); ``offset`` None reads at and advances ``in_fd``'s
  offset, else leaves it alone; ``out_fd`` writable (EBADF), not O_APPEND
  (EINVAL).
- ``copy_file_range(src, dst, count, offset_src, offset_dst)``: both regular
  files (EISDIR, EINVAL), readable/writable (EBADF), the output not
  O_APPEND (EBADF), both on one mount (EXDEV, as tmpfs has no cross-mount
  copy), no overlap within one file (EINVAL).

Locking: the caller (``kernel.py``) holds the kernel lock around every call.
"""

from __future__ import annotations

from rumpfs.errors import errno, raise_errno
from rumpfs.vfs.proc import VProc
from rumpfs.vfs.sys_generic import sys_pread, sys_pwrite, sys_read, sys_write
from rumpfs.vfs.sysutil import getfile
from rumpfs.vfs.vfs_vnops import MAX_FILE
from rumpfs.vfs.vnode import VBLK, VDIR, VREG

__all__ = ["sys_copy_file_range", "sys_sendfile"]

_STEP = 1 << 20


def sys_sendfile(p: VProc, out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
    fin = getfile(p, in_fd)
    if not fin.readable:
        raise_errno(errno.EBADF)
    if offset is not None and offset < 0:
        raise_errno(errno.EINVAL)
    fout = getfile(p, out_fd)
    if not fout.writable:
        raise_errno(errno.EBADF)
    if fout.append:
        raise_errno(errno.EINVAL)
    if fin.vp.type is not VREG and fin.vp.type is not VBLK:
        raise_errno(errno.EINVAL)
    if count < 0:
        raise_errno(errno.EINVAL)
    done = 0
    pos = offset
    while done < count:
        want = min(_STEP, count - done)
        data = sys_read(p, in_fd, want) if pos is None else sys_pread(p, in_fd, want, pos)
        if not data:
            break
        n = sys_write(p, out_fd, data)
        done += n
        if pos is not None:
            pos += n
        elif n < len(data):             # give back what was read but not written
            fin.offset -= len(data) - n
        if n < len(data):
            break
    return done


def sys_copy_file_range(p: VProc, src: int, dst: int, count: int,
                        offset_src: int | None = None, offset_dst: int | None = None) -> int:
    if count < 0:
        raise_errno(errno.EINVAL)
    fin = getfile(p, src)
    fout = getfile(p, dst)
    vin, vout = fin.vp, fout.vp
    if vin.type is VDIR or vout.type is VDIR:
        raise_errno(errno.EISDIR)
    if vin.type is not VREG or vout.type is not VREG:
        raise_errno(errno.EINVAL)
    if not fin.readable or not fout.writable or fout.append:
        raise_errno(errno.EBADF)
    pos_in = fin.offset if offset_src is None else offset_src
    pos_out = fout.offset if offset_dst is None else offset_dst
    if pos_in < 0 or pos_out < 0:
        raise_errno(errno.EINVAL)
    if pos_in + count > MAX_FILE or pos_out + count > MAX_FILE:
        raise_errno(errno.EOVERFLOW if pos_in + count > MAX_FILE else errno.EFBIG)
    if vin.mount is not vout.mount:
        raise_errno(errno.EXDEV)
    if vin is vout and pos_in < pos_out + count and pos_out < pos_in + count:
        raise_errno(errno.EINVAL)
    size = vin.ops.vop_getattr(vin).st_size
    count = max(min(count, size - pos_in), 0)
    done = 0
    while done < count:
        data = sys_pread(p, src, min(_STEP, count - done), pos_in + done)
        if not data:
            break
        n = sys_pwrite(p, dst, data, pos_out + done)
        done += n
        if n < len(data):
            break
    if offset_src is None:
        fin.offset += done
    if offset_dst is None:
        fout.offset += done
    return done
