"""Copy a host file or directory tree into a kernel: ``copy_in(k, hostpath, path)``.

The snapshot counterpart of etfs: etfs shows host files *live* (changes
reach the host), ``copy_in`` makes kernel-owned copies that the test may
change freely while the host stays untouched (pyfakefs'
``add_real_directory(..., read_only=False)``). Regular files, directories
and symbolic links are copied with their permission bits and times; other
kinds (devices, FIFOs, sockets) are skipped, as nothing could read them.
Owners are not copied: the copies belong to the process doing the copying.

Allowed imports: the standard library and ``rumpfs.path`` (for the
``OsLike`` protocol). As a frontend, this module reads the host directly.
"""

from __future__ import annotations

import os
import stat

from rumpfs.path import OsLike

__all__ = ["copy_in"]

_CHUNK = 1 << 20


def copy_in(
    k: OsLike,
    hostpath: str | os.PathLike[str],
    path: str,
    *,
    follow_symlinks: bool = False,
) -> None:
    """Copy host file or tree ``hostpath`` to ``path`` in kernel (or process) ``k``.

    ``path``'s missing parents are made (as ``mkdir -p``); ``path`` itself
    must not exist (``FileExistsError``), as with ``shutil.copytree``. Host
    symbolic links are copied as links (their targets then resolve inside
    the kernel) unless ``follow_symlinks``. Host errors are raised as the
    host's ``OSError`` (``filename`` a host path); kernel errors as the
    kernel's (``filename`` a kernel path).
    """
    from rumpfs.path import RumpPath

    src = os.fspath(hostpath)
    parent = RumpPath(k, path).parent
    if parent != RumpPath(k, path):
        parent.mkdir(parents=True, exist_ok=True)
    _copy(k, src, path, follow_symlinks)


def _copy(k: OsLike, src: str, dst: str, follow: bool) -> None:
    st = os.stat(src) if follow else os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        k.symlink(os.readlink(src), dst)
        return
    if stat.S_ISDIR(st.st_mode):
        k.mkdir(dst, 0o700)  # opened up below, once its entries are in
        with os.scandir(src) as it:
            names = sorted(e.name for e in it)
        for name in names:
            _copy(k, os.path.join(src, name), dst.rstrip("/") + "/" + name, follow)
    elif stat.S_ISREG(st.st_mode):
        fd = k.open(dst, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        k.close(fd)
        with open(src, "rb") as fin, k.open_file(dst, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                fout.write(chunk)
    else:
        return  # devices, FIFOs, sockets: nothing to copy
    k.chmod(dst, stat.S_IMODE(st.st_mode))
    k.utime(dst, (st.st_atime, st.st_mtime))
