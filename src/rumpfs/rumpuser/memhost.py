"""An in-memory host with fault injection, for tests: ``Kernel(hypervisor=MemHost())``.

MemHost keeps a small POSIX-like tree (directories, regular files, symbolic
links) and a descriptor table, and answers the :class:`~rumpfs.rumpuser.Hypervisor`
calls over it as a Linux host would for root (no permission checks).

Beyond the interface it offers the test's side of the host: ``mkdir``,
``write_file``, ``read_file``, ``symlink``, ``unlink``/``vanish``, ``names``,
``truncate_file``, ``lstat`` on host paths; ``inject`` to make
the next calls of an operation fail with an errno; ``capacity`` to run out of
space (ENOSPC, short writes) the way a full disk does; ``calls`` counting
every operation, and ``open_fds`` the descriptors still open.
"""

from __future__ import annotations

import os
import stat as st
import time
from collections import Counter
from dataclasses import dataclass

from rumpfs.errors import errno, raise_errno
from rumpfs.rumpuser import HostFileType, check_component

__all__ = ["MemHost"]

_IFMT = {
    HostFileType.DIR: st.S_IFDIR, HostFileType.REG: st.S_IFREG, HostFileType.LNK: st.S_IFLNK,
    HostFileType.FIFO: st.S_IFIFO, HostFileType.SOCK: st.S_IFSOCK,
    HostFileType.BLK: st.S_IFBLK, HostFileType.CHR: st.S_IFCHR,
}
_ACC = os.O_RDONLY | os.O_WRONLY | os.O_RDWR
_SYMLOOP_MAX = 40


class _Inode:
    __slots__ = ("atime", "ctime", "data", "entries", "ft", "gid", "ino", "mode", "mtime",
                 "nlink", "parent", "target", "uid")

    def __init__(self, ino: int, ft: HostFileType, mode: int, now: int) -> None:
        self.ino = ino
        self.ft = ft
        self.mode = mode & 0o7777
        self.uid = 0
        self.gid = 0
        self.nlink = 2 if ft is HostFileType.DIR else 1
        self.data = bytearray()
        self.entries: dict[str, _Inode] = {}
        self.parent: _Inode = self
        self.target = ""
        self.atime = self.mtime = self.ctime = now

    def size(self) -> int:
        if self.ft is HostFileType.REG:
            return len(self.data)
        if self.ft is HostFileType.LNK:
            return len(os.fsencode(self.target))
        if self.ft is HostFileType.DIR:
            return 4096
        return 0


@dataclass(slots=True)
class _Open:
    node: _Inode
    readable: bool
    writable: bool
    append: bool


@dataclass(slots=True)
class _Fault:
    op: str
    err: int
    count: int | None      # None: for ever
    after: int             # calls to let through first


class MemHost:
    """A fake host: an in-memory tree, descriptors, fault injection."""

    def __init__(self, *, capacity: int | None = None, now_ns: int | None = None) -> None:
        self.dev = 0x6D68
        self.capacity = capacity            # total bytes of file data the "disk" holds
        self._now = now_ns
        self.utc_offset = 0           # the host's local time, seconds east of UTC
        self._next_ino = 2
        self.root = self._new(HostFileType.DIR, 0o755)
        self._fds: dict[int, _Open] = {}
        self._next_fd = 100
        self.calls: Counter[str] = Counter()
        self._faults: list[_Fault] = []

    # -- test side: faults and counters ------------------------------------

    def inject(self, op: str, err: int, count: int | None = 1, *, after: int = 0) -> None:
        """Make calls of hypervisor method ``op`` fail with ``err``: ``count``
        times (None: until ``clear_faults``), after letting ``after`` through."""
        self._faults.append(_Fault(op, err, count, after))

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def open_fds(self) -> int:
        return len(self._fds)

    def _enter(self, op: str) -> None:
        self.calls[op] += 1
        for f in self._faults:
            if f.op != op:
                continue
            if f.after > 0:
                f.after -= 1
                continue
            if f.count is not None:
                f.count -= 1
                if f.count <= 0:
                    self._faults.remove(f)
            raise_errno(f.err)

    # -- test side: the host's own file operations ----------------------------

    def mkdir(self, path: str, mode: int = 0o755, *, parents: bool = False) -> None:
        if parents:
            cur = ""
            for comp in [c for c in path.split("/") if c]:
                cur += "/" + comp
                if not self.exists(cur):
                    self.mkdir(cur, mode)
            return
        d, name = self._parent_of(path)
        if name in d.entries:
            raise_errno(errno.EEXIST)
        self._link_new(d, name, self._new(HostFileType.DIR, mode))

    def write_file(self, path: str, data: bytes = b"", mode: int = 0o644) -> None:
        """Create or replace the contents of regular file ``path``."""
        d, name = self._parent_of(path)
        node = d.entries.get(name)
        if node is None:
            node = self._new(HostFileType.REG, mode)
            self._link_new(d, name, node)
        if node.ft is not HostFileType.REG:
            raise_errno(errno.EISDIR)
        node.data = bytearray(data)
        node.mtime = node.ctime = self.now()

    def read_file(self, path: str) -> bytes:
        node = self._resolve(path, True)
        if node.ft is not HostFileType.REG:
            raise_errno(errno.EISDIR)
        return bytes(node.data)

    def symlink(self, target: str, path: str) -> None:
        d, name = self._parent_of(path)
        if name in d.entries:
            raise_errno(errno.EEXIST)
        node = self._new(HostFileType.LNK, 0o777)
        node.target = target
        self._link_new(d, name, node)

    def mknod(self, path: str, ft: HostFileType, mode: int = 0o644) -> None:
        d, name = self._parent_of(path)
        self._link_new(d, name, self._new(ft, mode))

    def unlink(self, path: str) -> None:
        """Remove a name (a file vanishes; open descriptors keep its data, as on POSIX)."""
        d, name = self._parent_of(path)
        node = d.entries.get(name)
        if node is None:
            raise_errno(errno.ENOENT)
        if node.ft is HostFileType.DIR:
            if node.entries:
                raise_errno(errno.ENOTEMPTY)
            d.nlink -= 1
            node.nlink = 0
        else:
            node.nlink -= 1
        del d.entries[name]

    vanish = unlink

    def rename(self, src: str, dst: str) -> None:
        fd_, fname = self._parent_of(src)
        td, tname = self._parent_of(dst)
        self._rename(fd_, fname, td, tname)

    def truncate_file(self, path: str, size: int) -> None:
        node = self._resolve(path, True)
        self._truncate(node, size)

    def chmod(self, path: str, mode: int) -> None:
        self._resolve(path, True).mode = mode & 0o7777

    def exists(self, path: str) -> bool:
        try:
            self._resolve(path, False)
        except OSError:
            return False
        return True

    def lstat(self, path: str) -> os.stat_result:
        return self._stat(self._resolve(path, False))

    def names(self, path: str) -> list[str]:
        node = self._resolve(path, True)
        if node.ft is not HostFileType.DIR:
            raise_errno(errno.ENOTDIR)
        return list(node.entries)

    # -- internals ----------------------------------------------------------

    def now(self) -> int:
        return self._now if self._now is not None else time.time_ns()

    def _new(self, ft: HostFileType, mode: int) -> _Inode:
        node = _Inode(self._next_ino, ft, mode, self.now())
        self._next_ino += 1
        return node

    def _link_new(self, d: _Inode, name: str, node: _Inode) -> None:
        d.entries[name] = node
        if node.ft is HostFileType.DIR:
            node.parent = d
            d.nlink += 1
        d.mtime = d.ctime = self.now()

    def _walk(self, start: _Inode, comps: list[str], follow_last: bool) -> _Inode:
        node = start
        links = 0
        i = 0
        while i < len(comps):
            name = comps[i]
            i += 1
            if node.ft is not HostFileType.DIR:
                raise_errno(errno.ENOTDIR)
            if name in ("", "."):
                continue
            if name == "..":
                node = node.parent
                continue
            child = node.entries.get(name)
            if child is None:
                raise_errno(errno.ENOENT)
            if child.ft is HostFileType.LNK and (i < len(comps) or follow_last):
                links += 1
                if links > _SYMLOOP_MAX:
                    raise_errno(errno.ELOOP)
                target = child.target
                comps = target.split("/") + comps[i:]
                i = 0
                if target.startswith("/"):
                    node = self.root
                continue
            node = child
        return node

    def _resolve(self, path: str, follow: bool) -> _Inode:
        if not path:
            raise_errno(errno.ENOENT)
        return self._walk(self.root, path.split("/"), follow)

    def _parent_of(self, path: str) -> tuple[_Inode, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        d = self._resolve(head or "/", True)
        if d.ft is not HostFileType.DIR:
            raise_errno(errno.ENOTDIR)
        return d, name

    def _stat(self, node: _Inode) -> os.stat_result:
        a, m, c = node.atime, node.mtime, node.ctime
        size = node.size()
        return os.stat_result((
            _IFMT.get(node.ft, 0) | node.mode, node.ino, self.dev, node.nlink, node.uid,
            node.gid, size, a // 10**9, m // 10**9, c // 10**9, a / 1e9, m / 1e9, c / 1e9,
            a, m, c, 4096, (size + 511) // 512, 0,
        ))

    def _of(self, fd: int) -> _Open:
        of = self._fds.get(fd)
        if of is None:
            raise_errno(errno.EBADF)
        return of

    def _dir(self, dirfd: int) -> _Inode:
        node = self._of(dirfd).node
        if node.ft is not HostFileType.DIR:
            raise_errno(errno.ENOTDIR)
        return node

    def _used(self) -> int:
        seen: set[int] = set()
        total = 0
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.ino in seen:
                continue
            seen.add(node.ino)
            total += len(node.data)
            stack.extend(node.entries.values())
        for of in self._fds.values():
            if of.node.ino not in seen:
                seen.add(of.node.ino)
                total += len(of.node.data)
        return total

    def _truncate(self, node: _Inode, size: int) -> None:
        if node.ft is HostFileType.DIR:
            raise_errno(errno.EISDIR)
        if node.ft is not HostFileType.REG or size < 0:
            raise_errno(errno.EINVAL)
        if size < len(node.data):
            del node.data[size:]
        else:
            node.data.extend(bytes(size - len(node.data)))
        node.mtime = node.ctime = self.now()

    def _alloc_fd(self, of: _Open) -> int:
        fd = self._next_fd
        self._next_fd += 1
        self._fds[fd] = of
        return fd

    def _open_node(self, node: _Inode, flags: int) -> int:
        acc = flags & _ACC
        if flags & os.O_DIRECTORY and node.ft is not HostFileType.DIR:
            raise_errno(errno.ENOTDIR)
        if node.ft is HostFileType.DIR and acc != os.O_RDONLY:
            raise_errno(errno.EISDIR)
        if node.ft in (HostFileType.SOCK,):
            raise_errno(errno.ENXIO)
        if flags & os.O_TRUNC and acc != os.O_RDONLY:
            self._truncate(node, 0)
        return self._alloc_fd(_Open(node, acc != os.O_WRONLY, acc != os.O_RDONLY,
                                    bool(flags & os.O_APPEND)))

    def _rename(self, fdir: _Inode, fname: str, tdir: _Inode, tname: str) -> None:
        node = fdir.entries.get(fname)
        if node is None:
            raise_errno(errno.ENOENT)
        old = tdir.entries.get(tname)
        if old is node:
            return
        if node.ft is HostFileType.DIR:
            up = tdir
            while True:
                if up is node:
                    raise_errno(errno.EINVAL)
                if up.parent is up:
                    break
                up = up.parent
        if old is not None:
            if old.ft is HostFileType.DIR:
                if node.ft is not HostFileType.DIR:
                    raise_errno(errno.EISDIR)
                if old.entries:
                    raise_errno(errno.ENOTEMPTY)
                tdir.nlink -= 1
                old.nlink = 0
            else:
                if node.ft is HostFileType.DIR:
                    raise_errno(errno.ENOTDIR)
                old.nlink -= 1
        del fdir.entries[fname]
        if node.ft is HostFileType.DIR:
            fdir.nlink -= 1
            tdir.nlink += 1
            node.parent = tdir
        tdir.entries[tname] = node
        now = self.now()
        node.ctime = fdir.mtime = fdir.ctime = tdir.mtime = tdir.ctime = now

    # -- Hypervisor: the operator's paths -------------------------------------

    def clock_realtime_ns(self) -> int:
        return self.now()

    def clock_utc_offset(self) -> int:
        return self.utc_offset

    def getfileinfo(self, path: str) -> tuple[int, HostFileType]:
        self._enter("getfileinfo")
        node = self._resolve(path, True)
        return node.size(), node.ft

    def stat(self, path: str) -> os.stat_result:
        self._enter("stat")
        return self._stat(self._resolve(path, True))

    def open(self, path: str, flags: int) -> int:
        self._enter("open")
        return self._open_node(self._resolve(path, True), flags)

    # -- Hypervisor: descriptors ------------------------------------------------

    def close(self, fd: int) -> None:
        if self._fds.pop(fd, None) is None:
            raise_errno(errno.EBADF)
        self._enter("close")            # as on POSIX, a failing close still frees fd

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        self._enter("pread")
        of = self._of(fd)
        if not of.readable:
            raise_errno(errno.EBADF)
        if of.node.ft is HostFileType.DIR:
            raise_errno(errno.EISDIR)
        if offset < 0 or size < 0:
            raise_errno(errno.EINVAL)
        return bytes(of.node.data[offset:offset + size])

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        self._enter("pwrite")
        of = self._of(fd)
        if not of.writable:
            raise_errno(errno.EBADF)
        if offset < 0:
            raise_errno(errno.EINVAL)
        node = of.node
        buf = node.data
        n = len(data)
        if self.capacity is not None:
            grow = max(0, offset + n - len(buf))
            room = self.capacity - self._used()
            if grow > room:
                n = max(0, len(buf) + max(room, 0) - offset)
                if n <= 0:
                    raise_errno(errno.ENOSPC)
        if offset > len(buf):
            buf.extend(bytes(offset - len(buf)))
        buf[offset:offset + n] = bytes(data[:n])
        node.mtime = node.ctime = self.now()
        return n

    def fsync(self, fd: int, datasync: bool = False) -> None:
        self._enter("fsync")
        self._of(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        self._enter("ftruncate")
        of = self._of(fd)
        if not of.writable:
            raise_errno(errno.EINVAL)
        self._truncate(of.node, length)

    # no anonymous shared memory here: rumpfs keeps every file in its own store
    def memfd_create(self, name: str) -> int:
        raise_errno(errno.EOPNOTSUPP)

    def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        self._of(fd)
        raise_errno(errno.EOPNOTSUPP)

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        self._of(fd)
        raise_errno(errno.EOPNOTSUPP)

    def raise_nofile_limit(self) -> int:
        return 1024

    def fstat(self, fd: int) -> os.stat_result:
        self._enter("fstat")
        return self._stat(self._of(fd).node)

    def fstatvfs(self, fd: int) -> os.statvfs_result:
        self._enter("fstatvfs")
        self._of(fd)
        total = (self.capacity or 1 << 30) // 4096
        free = max(0, total - self._used() // 4096)
        return os.statvfs_result((4096, 4096, total, free, free, 1 << 20, 1 << 20, 1 << 20,
                                  0, 255))

    def fchmod(self, fd: int, mode: int) -> None:
        self._enter("fchmod")
        node = self._of(fd).node
        node.mode = mode & 0o7777
        node.ctime = self.now()

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        self._enter("fchown")
        node = self._of(fd).node
        if uid != -1:
            node.uid = uid
        if gid != -1:
            node.gid = gid
        node.ctime = self.now()

    def futimens(self, fd: int, atime_ns: int | None, mtime_ns: int | None) -> None:
        self._enter("futimens")
        self._set_times(self._of(fd).node, atime_ns, mtime_ns)

    def _set_times(self, node: _Inode, atime_ns: int | None, mtime_ns: int | None) -> None:
        if atime_ns is not None:
            node.atime = atime_ns
        if mtime_ns is not None:
            node.mtime = mtime_ns
        node.ctime = self.now()

    def listdir(self, dirfd: int) -> list[tuple[str, HostFileType, int]]:
        self._enter("listdir")
        d = self._dir(dirfd)
        return [(name, node.ft, node.ino) for name, node in d.entries.items()]

    # -- Hypervisor: one component below a directory descriptor ---------------

    def _child(self, dirfd: int, name: str) -> tuple[_Inode, _Inode]:
        check_component(name)
        d = self._dir(dirfd)
        node = d.entries.get(name)
        if node is None:
            raise_errno(errno.ENOENT)
        return d, node

    def openat(self, dirfd: int, name: str, flags: int, mode: int = 0o600) -> int:
        self._enter("openat")
        check_component(name)
        d = self._dir(dirfd)
        node = d.entries.get(name)
        if node is None:
            if not flags & os.O_CREAT:
                raise_errno(errno.ENOENT)
            if d.nlink == 0:
                raise_errno(errno.ENOENT)
            node = self._new(HostFileType.REG, mode)
            self._link_new(d, name, node)
            return self._open_node(node, flags & ~os.O_TRUNC)
        if flags & os.O_CREAT and flags & os.O_EXCL:
            raise_errno(errno.EEXIST)
        if node.ft is HostFileType.LNK:
            raise_errno(errno.ELOOP)           # O_NOFOLLOW, always
        return self._open_node(node, flags)

    def fstatat(self, dirfd: int, name: str) -> os.stat_result:
        self._enter("fstatat")
        return self._stat(self._child(dirfd, name)[1])

    def mkdirat(self, dirfd: int, name: str, mode: int) -> None:
        self._enter("mkdirat")
        check_component(name)
        d = self._dir(dirfd)
        if name in d.entries:
            raise_errno(errno.EEXIST)
        if d.nlink == 0:
            raise_errno(errno.ENOENT)
        self._link_new(d, name, self._new(HostFileType.DIR, mode))

    def unlinkat(self, dirfd: int, name: str, isdir: bool) -> None:
        self._enter("unlinkat")
        d, node = self._child(dirfd, name)
        if isdir and node.ft is not HostFileType.DIR:
            raise_errno(errno.ENOTDIR)
        if not isdir and node.ft is HostFileType.DIR:
            raise_errno(errno.EISDIR)
        if isdir and node.entries:
            raise_errno(errno.ENOTEMPTY)
        del d.entries[name]
        if isdir:
            d.nlink -= 1
            node.nlink = 0
        else:
            node.nlink -= 1
            node.ctime = self.now()
        d.mtime = d.ctime = self.now()

    def renameat(self, fdirfd: int, fname: str, tdirfd: int, tname: str) -> None:
        self._enter("renameat")
        check_component(fname)
        check_component(tname)
        self._rename(self._dir(fdirfd), fname, self._dir(tdirfd), tname)

    def linkat(self, fdirfd: int, fname: str, tdirfd: int, tname: str) -> None:
        self._enter("linkat")
        _, node = self._child(fdirfd, fname)
        check_component(tname)
        td = self._dir(tdirfd)
        if tname in td.entries:
            raise_errno(errno.EEXIST)
        if node.ft is HostFileType.DIR:
            raise_errno(errno.EPERM)
        td.entries[tname] = node
        node.nlink += 1
        node.ctime = td.mtime = td.ctime = self.now()

    def symlinkat(self, target: str, dirfd: int, name: str) -> None:
        self._enter("symlinkat")
        check_component(name)
        d = self._dir(dirfd)
        if name in d.entries:
            raise_errno(errno.EEXIST)
        node = self._new(HostFileType.LNK, 0o777)
        node.target = target
        self._link_new(d, name, node)

    def readlinkat(self, dirfd: int, name: str) -> str:
        self._enter("readlinkat")
        _, node = self._child(dirfd, name)
        if node.ft is not HostFileType.LNK:
            raise_errno(errno.EINVAL)
        return node.target

    def fchmodat(self, dirfd: int, name: str, mode: int) -> None:
        self._enter("fchmodat")
        _, node = self._child(dirfd, name)
        if node.ft is HostFileType.LNK:
            raise_errno(errno.EOPNOTSUPP)
        node.mode = mode & 0o7777
        node.ctime = self.now()

    def fchownat(self, dirfd: int, name: str, uid: int, gid: int) -> None:
        self._enter("fchownat")
        _, node = self._child(dirfd, name)
        if uid != -1:
            node.uid = uid
        if gid != -1:
            node.gid = gid
        node.ctime = self.now()

    def utimensat(self, dirfd: int, name: str, atime_ns: int | None,
                  mtime_ns: int | None) -> None:
        self._enter("utimensat")
        self._set_times(self._child(dirfd, name)[1], atime_ns, mtime_ns)

    # A host file system without extended attributes (as some are).

    def fgetxattr(self, fd: int, name: str) -> bytes:
        self._enter("fgetxattr")
        self._of(fd)
        raise_errno(errno.EOPNOTSUPP)

    def fsetxattr(self, fd: int, name: str, value: bytes, flags: int) -> None:
        self._enter("fsetxattr")
        self._of(fd)
        raise_errno(errno.EOPNOTSUPP)

    def flistxattr(self, fd: int) -> list[str]:
        self._enter("flistxattr")
        self._of(fd)
        raise_errno(errno.EOPNOTSUPP)

    def fremovexattr(self, fd: int, name: str) -> None:
        self._enter("fremovexattr")
        self._of(fd)
        raise_errno(errno.EOPNOTSUPP)
