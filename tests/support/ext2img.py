"""ext2/3/4 test images and their oracles: mkfs, debugfs, Linux (loop mounts), e2fsck.

- :func:`mkfs` makes an image file with ``mkfs.ext2/3/4`` and one of the
  :data:`OPTION_SETS` (block size, inode size, features turned off).
- :func:`debugfs` runs a ``debugfs -w`` script on an image and fails on any
  error line; :func:`debugfs_tree` is a script making a small tree of every
  kind of node.
- :func:`loop_mount` mounts an image with Linux's own driver (root only,
  :func:`require_loop` decides between skip and fail as ``RUMPFS_REQUIRE_LOOP``
  says); :func:`populate` fills a directory (a loop mount, or a kernel through
  :class:`OsLike`) with the reference tree: nested directories, empty, small,
  multi-block, indirect-block and sparse files (one with data past 2 GiB),
  fast and slow symlinks, hard links, device nodes, FIFOs, 255-byte names,
  setgid and sticky directories, owners, modes and nanosecond mtimes, and a
  big directory (htree when ``dir_index`` is on).
- :func:`walk_host` and :func:`walk_kernel` describe a tree the same way
  (:class:`Node` per path) so that :func:`assert_same_tree` can compare Linux's
  view of an image with the kernel's.
- :func:`e2fsck` runs ``e2fsck -fn`` and fails the test with its output.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

import pytest

REQUIRE_LOOP_ENV = "RUMPFS_REQUIRE_LOOP"
CHUNK = 1 << 20
ZERO_CHUNK = bytes(CHUNK)
BIG_DIR_ENTRIES = 3000
SPARSE_FAR = (2 << 30) + 12345  # past 2 GiB: large_file, and triple indirect at 1 KiB blocks


# -- making images ------------------------------------------------------------


@dataclass(frozen=True)
class OptionSet:
    """One mkfs configuration: the tool and its options."""

    name: str
    kind: str  # ext2, ext3, ext4
    block_size: int
    inode_size: int
    features: tuple[str, ...] = ()  # e.g. "^dir_index", "^metadata_csum"

    @property
    def dir_index(self) -> bool:
        return "^dir_index" not in self.features

    @property
    def args(self) -> list[str]:
        args = ["-b", str(self.block_size), "-I", str(self.inode_size)]
        if self.features:
            args += ["-O", ",".join(self.features)]
        return args


OPTION_SETS: tuple[OptionSet, ...] = (
    OptionSet("ext2-1k-128", "ext2", 1024, 128),
    OptionSet("ext2-4k-256-noindex", "ext2", 4096, 256, ("^dir_index",)),
    OptionSet("ext3-1k-256", "ext3", 1024, 256),
    OptionSet("ext4-4k-256", "ext4", 4096, 256),
    OptionSet("ext4-1k-128-nocsum", "ext4", 1024, 128, ("^metadata_csum",)),
    OptionSet("ext4-4k-256-noextent", "ext4", 4096, 256, ("^extent", "^64bit", "^metadata_csum")),
)
OPTION_SETS_BY_NAME = {o.name: o for o in OPTION_SETS}


def run(cmd: Sequence[str], *, check: bool = True, input: str | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a host tool; on failure the test fails with its output."""
    res = subprocess.run(list(cmd), capture_output=True, text=True, input=input,
                         timeout=timeout, env={**os.environ, "LC_ALL": "C"})
    if check and res.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout}{res.stderr}")
    return res


def mkfs(path: str | os.PathLike[str], opts: OptionSet, size: int = 64 << 20, *,
         offset: int = 0, label: str = "") -> Path:
    """A fresh image at ``path`` (a file of ``size`` bytes, sparse) made by mkfs.

    ``offset`` places the file system that far into a larger file (the bytes
    before it are left as they are) — for windows inside a host file.
    """
    p = Path(path)
    if not p.exists() or p.stat().st_size < offset + size:
        with open(p, "ab") as f:
            f.truncate(offset + size)
    args = ["mke2fs", "-q", "-F", "-t", opts.kind, *opts.args, "-E",
            f"root_owner=0:0,offset={offset}"]
    if label:
        args += ["-L", label]
    run([*args, str(p), str(size // opts.block_size)])
    return p


def debugfs(image: str | os.PathLike[str], script: Sequence[str]) -> str:
    """Run ``debugfs -w`` commands on ``image``; any error message fails the test."""
    res = run(["debugfs", "-w", "-f", "-", str(image)], input="\n".join(script) + "\n")
    # debugfs exits 0 after errors: its error lines are those that are neither
    # the banner nor the echo of a command ("debugfs: cmd").
    bad = [ln for ln in res.stderr.splitlines()
           if ln.strip() and not ln.startswith("debugfs ") and not ln.startswith("debugfs:")]
    if bad:
        pytest.fail(f"debugfs on {image} failed:\n{res.stderr}")
    return res.stdout


def debugfs_tree(hostdir: str | os.PathLike[str]) -> list[str]:
    """debugfs commands making a small tree of every node kind; host files they
    copy in are written to ``hostdir``. Times, owners and modes are set explicitly."""
    d = Path(hostdir)
    small = d / "small"
    small.write_bytes(b"hello from debugfs\n")
    multi = d / "multi"
    multi.write_bytes(bytes(range(256)) * 300)  # 76800 bytes: several blocks, indirect at 1K
    sparse = d / "sparse"
    with open(sparse, "wb") as f:
        f.write(b"head")
        f.seek(5 << 20)
        f.write(b"tail")
    cmds = [
        "mkdir dir", "mkdir dir/sub", "mkdir empty",
        f"write {small} dir/small", f"write {multi} dir/multi", f"write {sparse} sparse",
        "symlink fast short-target", "symlink slow " + "t" * 100 + "/long/target/" + "u" * 80,
        "mknod fifo p", "mknod chr c 1 3", "mknod blk b 7 0",
        "ln dir/small dir/hardlink", "sif dir/small links_count 2",
        "sif dir/small uid 1000", "sif dir/small gid 100", "sif dir/small mode 0100640",
        "sif dir/sub mode 042775", "sif empty mode 041777",
        f"write {small} " + "n" * 255,
    ]
    for path in ("dir/small", "dir/multi", "sparse", "dir", "dir/sub", "fast", "fifo"):
        cmds += [f"sif {path} mtime 20200102030405", f"sif {path} atime 20210102030405"]
    return cmds


# -- Linux's driver -----------------------------------------------------------


def loop_unavailable_reason() -> str | None:
    """Why this process cannot loop-mount images, or None when it can."""
    if os.geteuid() != 0:
        return "loop mounts need root"
    if shutil.which("mount") is None or shutil.which("losetup") is None:
        return "no mount/losetup"
    if not Path("/dev/loop-control").exists():
        return "no /dev/loop-control"
    return None


def require_loop() -> None:
    """Skip the test when loop mounts are impossible, unless RUMPFS_REQUIRE_LOOP=1 (CI)."""
    reason = loop_unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_LOOP_ENV) == "1":
        pytest.fail(f"needs loop mounts: {reason} ({REQUIRE_LOOP_ENV}=1)")
    pytest.skip(reason)


@contextlib.contextmanager
def loop_mount(image: str | os.PathLike[str], *, read_only: bool = True,
               offset: int = 0, sizelimit: int | None = None) -> Iterator[Path]:
    """Mount ``image`` with Linux's driver on a fresh directory; always unmounted."""
    require_loop()
    mnt = Path(tempfile.mkdtemp(prefix="rumpfs-loop-"))
    opts = ["loop", "ro" if read_only else "rw", f"offset={offset}"]
    if sizelimit is not None:
        opts.append(f"sizelimit={sizelimit}")
    try:
        run(["mount", "-t", "auto", "-o", ",".join(opts), str(image), str(mnt)])
        try:
            yield mnt
        finally:
            res = run(["umount", str(mnt)], check=False)
            if res.returncode != 0:
                run(["umount", "-l", str(mnt)], check=False)
    finally:
        with contextlib.suppress(OSError):
            mnt.rmdir()


# -- the reference tree -------------------------------------------------------


class OsLike(Protocol):
    """What :func:`populate` and :func:`walk_kernel` need: ``os``'s calls."""

    def open(self, path: str, flags: int, mode: int = ...) -> int: ...
    def close(self, fd: int) -> None: ...
    def pwrite(self, fd: int, data: bytes, offset: int) -> int: ...
    def pread(self, fd: int, n: int, offset: int) -> bytes: ...
    def ftruncate(self, fd: int, length: int) -> None: ...
    def mkdir(self, path: str, mode: int = ...) -> None: ...
    def symlink(self, src: str, dst: str) -> None: ...
    def link(self, src: str, dst: str) -> None: ...
    def mknod(self, path: str, mode: int = ..., device: int = ...) -> None: ...
    def chmod(self, path: str, mode: int) -> None: ...
    def lchown(self, path: str, uid: int, gid: int) -> None: ...
    def utime(self, path: str, *args: Any, **kwargs: Any) -> None: ...
    def lstat(self, path: str) -> os.stat_result: ...
    def listdir(self, path: str) -> list[str]: ...
    def readlink(self, path: str) -> str: ...
    def lseek(self, fd: int, pos: int, how: int) -> int: ...
    def umask(self, mask: int) -> int: ...


def _write(osl: Any, path: str, chunks: Sequence[tuple[int, bytes]], size: int | None = None,
           mode: int = 0o644) -> None:
    fd = osl.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    try:
        for off, data in chunks:
            osl.pwrite(fd, data, off)
        if size is not None:
            osl.ftruncate(fd, size)
    finally:
        osl.close(fd)


def pattern(n: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking bytes (so that misplaced blocks show)."""
    out = bytearray()
    block = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{block}".encode()).digest()
        block += 1
    return bytes(out[:n])


def populate(osl: Any, root: str, *, big_dir: int = BIG_DIR_ENTRIES, far_sparse: bool = True,
             devices: bool = True) -> None:
    """Make the reference tree under directory ``root`` with ``os``-like ``osl``
    (the ``os`` module on a loop mount, or a rumpfs Process)."""
    def p(*parts: str) -> str:
        return "/".join((root.rstrip("/"), *parts))

    old_umask = osl.umask(0o022)  # modes below must not depend on the caller's
    try:
        _populate(osl, p, big_dir, far_sparse, devices)
    finally:
        osl.umask(old_umask)


def _populate(osl: Any, p: Callable[..., str], big_dir: int, far_sparse: bool,
              devices: bool) -> None:
    osl.mkdir(p("d"), 0o755)
    osl.mkdir(p("d", "e"), 0o750)
    osl.mkdir(p("d", "e", "f"), 0o700)
    osl.mkdir(p("empty"), 0o755)
    osl.mkdir(p("setgid"), 0o755)
    osl.chmod(p("setgid"), 0o2775)
    osl.mkdir(p("sticky"), 0o755)
    osl.chmod(p("sticky"), 0o1777)
    _write(osl, p("empty.txt"), [])
    _write(osl, p("small"), [(0, b"small file\n")])
    _write(osl, p("d", "oneblock"), [(0, pattern(1000, 1))])
    _write(osl, p("d", "multi"), [(0, pattern(50_000, 2))], mode=0o600)
    _write(osl, p("d", "e", "indirect"), [(0, pattern(300_000, 3))], mode=0o640)  # 1K: double
    _write(osl, p("sparse"), [(0, b"start"), (1 << 20, b"middle"), (9 << 20, b"end")])
    _write(osl, p("hole-only"), [], size=3 << 20)
    if far_sparse:
        _write(osl, p("far-sparse"), [(4096, b"near"), (SPARSE_FAR, b"beyond 2 GiB")])
    osl.symlink("small", p("fast-link"))
    osl.symlink("d/e/../" * 20 + "small", p("slow-link"))  # > 60 bytes: a data block
    osl.symlink("/no/such/target", p("dangling"))
    osl.link(p("small"), p("d", "hardlink"))
    osl.link(p("small"), p("d", "e", "hardlink2"))
    osl.mknod(p("fifo"), stat.S_IFIFO | 0o644)
    if devices:
        osl.mknod(p("null-chr"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        osl.mknod(p("loop-blk"), stat.S_IFBLK | 0o660, os.makedev(7, 0))
    long = "L" * 255
    _write(osl, p("d", long), [(0, b"long name")])
    osl.mkdir(p("n" * 254 + "D"), 0o755)
    osl.lchown(p("d", "multi"), 1000, 1000)
    osl.lchown(p("d", "e"), 1001, 100)
    osl.lchown(p("fast-link"), 123, 456)
    osl.lchown(p("fifo"), 70000, 70001)  # 32-bit ids
    if big_dir:
        osl.mkdir(p("big"), 0o755)
        for i in range(big_dir):
            _write(osl, p("big", f"entry-{i:05d}-{'x' * (i % 40)}"), [])
    times = 1_600_000_000_123_456_789, 1_500_000_000_987_654_321
    for name in ("small", "d", "d/multi", "sparse", "fifo", "empty"):
        osl.utime(p(name), ns=times)


# -- walking a tree -----------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """What a comparison looks at for one path (None: not meaningful for the type)."""

    type: str
    mode: int
    uid: int
    gid: int
    nlink: int
    size: int | None
    blocks: int
    mtime_ns: int
    sha256: str | None = None
    target: str | None = None
    rdev: int | None = None


def _type(mode: int) -> str:
    for name, test in (("dir", stat.S_ISDIR), ("reg", stat.S_ISREG), ("lnk", stat.S_ISLNK),
                       ("chr", stat.S_ISCHR), ("blk", stat.S_ISBLK), ("fifo", stat.S_ISFIFO),
                       ("sock", stat.S_ISSOCK)):
        if test(mode):
            return name
    raise AssertionError(f"unknown mode {mode:o}")


def _segments(osl: Any, fd: int, size: int) -> list[tuple[int, int]]:
    """The data ranges of an open file, from SEEK_DATA/SEEK_HOLE where the
    implementation knows them (else the whole file): only a speed-up, the
    digest does not depend on it."""
    out: list[tuple[int, int]] = []
    off = 0
    try:
        while off < size:
            try:
                start = osl.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            end = min(osl.lseek(fd, start, os.SEEK_HOLE), size)
            out.append((start, end))
            off = end
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        return [(0, size)]
    return out


def _digest(osl: Any, fd: int, size: int) -> str:
    """sha256 over the file's 1 MiB chunks, each all-zero chunk as a marker:
    the same value whatever the implementation knows about holes, and cheap
    for a file with data past 2 GiB when it knows."""
    h = hashlib.sha256()
    data_chunks: set[int] = set()
    for start, end in _segments(osl, fd, size):
        data_chunks.update(range(start // CHUNK, (end + CHUNK - 1) // CHUNK))
    for c in range((size + CHUNK - 1) // CHUNK):
        n = min(CHUNK, size - c * CHUNK)
        if c not in data_chunks:
            h.update(b"Z%d;" % n)
            continue
        data = b""
        while len(data) < n:
            part = osl.pread(fd, n - len(data), c * CHUNK + len(data))
            if not part:
                raise AssertionError(f"short read at {c * CHUNK + len(data)} of {size}")
            data += part
        if data == ZERO_CHUNK[:n]:
            h.update(b"Z%d;" % n)
        else:
            h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


def _walk(osl: Any, root: str, time_ns: Callable[[os.stat_result], int]) -> dict[str, Node]:
    out: dict[str, Node] = {}
    todo = [""]
    while todo:
        rel = todo.pop()
        path = root.rstrip("/") + ("/" + rel if rel else "/")
        st = osl.lstat(path)
        kind = _type(st.st_mode)
        digest = target = rdev = None
        if kind == "reg":
            fd = osl.open(path, os.O_RDONLY)
            try:
                digest = _digest(osl, fd, st.st_size)
            finally:
                osl.close(fd)
        elif kind == "lnk":
            target = osl.readlink(path)
        elif kind in ("chr", "blk"):
            rdev = st.st_rdev
        if kind == "dir":
            todo.extend(f"{rel}/{n}" if rel else n for n in osl.listdir(path))
        out[rel or "."] = Node(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                               st.st_nlink, st.st_size, st.st_blocks, time_ns(st),
                               digest, target, rdev)
    return out


def walk_host(root: str | os.PathLike[str]) -> dict[str, Node]:
    """The tree under host directory ``root`` (a loop mount), path -> Node."""
    return _walk(os, os.fspath(root), lambda st: st.st_mtime_ns)


def walk_kernel(proc: Any, root: str) -> dict[str, Node]:
    """The tree under ``root`` in a rumpfs kernel (a Process), path -> Node."""
    return _walk(proc, root, lambda st: st.st_mtime_ns)


def assert_same_tree(ours: dict[str, Node], linux: dict[str, Node], *,
                     ignore: dict[str, str] | None = None) -> None:
    """Fail with every difference; ``ignore`` maps a Node field to the reason it
    may differ (e.g. ``{"blocks": "..."}``); ``dir_size``/``dir_blocks`` apply
    to directories only."""
    ignore = ignore or {}
    problems: list[str] = []
    for path in sorted(set(ours) | set(linux)):
        if path not in ours or path not in linux:
            problems.append(f"{path}: only in {'ours' if path in ours else 'linux'}")
            continue
        a, b = ours[path], linux[path]
        for f in fields(Node):
            if f.name in ignore or (a.type == "dir" and f"dir_{f.name}" in ignore):
                continue
            va, vb = getattr(a, f.name), getattr(b, f.name)
            if va != vb:
                problems.append(f"{path}: {f.name} ours={va!r} linux={vb!r}")
    if problems:
        shown = "\n".join(problems[:60])
        more = f"\n... and {len(problems) - 60} more" if len(problems) > 60 else ""
        pytest.fail(f"{len(problems)} differences:\n{shown}{more}")


def without(tree: dict[str, Node], **changes: Any) -> dict[str, Node]:
    """A copy of ``tree`` with the given Node fields replaced everywhere."""
    return {k: replace(v, **changes) for k, v in tree.items()}


# -- e2fsck -------------------------------------------------------------------


def e2fsck(image: str | os.PathLike[str], *, offset: int = 0) -> str:
    """``e2fsck -fn``; the test fails with its output unless the image is clean."""
    target = os.fspath(image)
    if offset:
        target = f"{target}?offset={offset}"  # unix_io's offset syntax
    res = run(["e2fsck", "-fn", target], check=False)
    if res.returncode != 0:
        pytest.fail(f"e2fsck -fn {target} exited {res.returncode}:\n{res.stdout}{res.stderr}")
    return res.stdout


def has_tool(name: str) -> bool:
    return shutil.which(name) is not None or Path("/usr/sbin", name).exists() or Path(
        "/sbin", name).exists()


def errno_name(e: OSError) -> str:
    return errno.errorcode.get(e.errno or 0, str(e.errno))


# -- the kernel's driver ------------------------------------------------------


@contextlib.contextmanager
def kernel_mount(image: str | os.PathLike[str], *, read_only: bool = False, begin: int = 0,
                 size: int | None = None, mountpoint: str = "/mnt",
                 kernel: Any = None) -> Iterator[Any]:
    """A kernel with ``image`` (or its window) as block device ``/dev/img``,
    mounted as ext2 on ``mountpoint``; unmounted (flushing everything) and
    shut down on the way out, so the image is final after the block."""
    from rumpfs import EtfsType, Kernel

    k = kernel if kernel is not None else Kernel()
    try:
        k.etfs_register("/dev/img", image, EtfsType.BLK, begin=begin, size=size)
        k.mkdir(mountpoint, 0o755)
        k.mount("ext2", mountpoint, read_only=read_only, device="/dev/img")
        yield k
        k.unmount(mountpoint)
    finally:
        if kernel is None:
            k.shutdown()


def process_in(k: Any, path: str, *, uid: int = 0, gid: int = 0, groups: Sequence[int] = (),
               umask: int = 0o022) -> Any:
    """A process of kernel ``k`` whose root and cwd are directory ``path`` (as
    after chroot(2)), so that a mounted file system answers absolute paths as
    a fresh namespace would. Test-only: through the kernel's internals, since
    the contract has no chroot."""
    from rumpfs.kern.cred import Cred
    from rumpfs.kernel import Process
    from rumpfs.vfs.namei import namei

    with k.lock:
        vp = namei(k._p, path, k._p.cwd, True)
        return Process(k, k._new_proc(Cred(uid, gid, frozenset(groups)), vp, umask))
