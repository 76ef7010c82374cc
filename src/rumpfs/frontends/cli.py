"""The ``rumpfs`` command (also ``python -m rumpfs``).

``rumpfs mount MOUNTPOINT [--etfs SPEC]...`` boots a kernel, applies the etfs
mappings and serves the kernel through FUSE until it is unmounted
(``fusermount3 -u``) or interrupted (SIGINT/SIGTERM); ``rumpfs demo`` shows a
small tree served to host programs.

Allowed imports: the standard library, ``rumpfs`` (the public API) and
``rumpfs.frontends.fuse`` (imported only when a mount is made, so ``--help``
and argument errors stay fast).

Exit status: 0 after a clean unmount, 2 for bad arguments (nothing has been
mounted then), 1 when mounting or serving fails.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rumpfs import Kernel
    from rumpfs.frontends.fuse import FuseServer

__all__ = ["EtfsSpec", "build_parser", "main", "parse_etfs"]

ETFS_TYPES = ("reg", "blk", "chr", "dir", "dir_subdirs")
_OPTION = re.compile(r"^(type|begin|size)=(.*)$")
_SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True, slots=True)
class EtfsSpec:
    """One ``--etfs KEY=HOSTPATH[,type=..][,begin=N][,size=N]`` mapping."""

    key: str
    hostpath: str
    type: str = "reg"
    begin: int = 0
    size: int | None = None


def _parse_size(what: str, text: str) -> int:
    m = re.fullmatch(r"\s*(0[xX][0-9a-fA-F]+|\d+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if m is None:
        raise ValueError(f"{what}={text!r} is not a byte count (e.g. 4096, 0x1000, 64K, 1M)")
    return int(m.group(1), 0) * _SUFFIX[m.group(2).lower()]


def parse_etfs(spec: str) -> EtfsSpec:
    """Parse an ``--etfs`` argument; ValueError with a readable reason if it is bad.

    Options are taken from the end, so a host path may itself contain commas.
    """
    parts = spec.split(",")
    options: dict[str, str] = {}
    while len(parts) > 1 and (m := _OPTION.match(parts[-1])):
        if m.group(1) in options:
            raise ValueError(f"{m.group(1)}= given twice")
        options[m.group(1)] = m.group(2)
        parts.pop()
    head = ",".join(parts)
    key, sep, hostpath = head.partition("=")
    if not sep:
        raise ValueError("expected KEY=HOSTPATH (for example /dev/disk0=/srv/disk.img)")
    if not key.startswith("/"):
        raise ValueError(f"key {key!r} must be an absolute path inside the kernel, like /data")
    if key.strip("/") == "":
        raise ValueError("the key cannot be / itself")
    if not hostpath:
        raise ValueError(f"no host path given for {key}")
    ftype = options.get("type", "reg").lower()
    if ftype not in ETFS_TYPES:
        raise ValueError(f"type={ftype!r} is not one of {', '.join(ETFS_TYPES)}")
    begin = _parse_size("begin", options["begin"]) if "begin" in options else 0
    size = _parse_size("size", options["size"]) if "size" in options else None
    if ftype.startswith("dir") and ("begin" in options or "size" in options):
        raise ValueError(f"begin= and size= do not apply to type={ftype}")
    if ftype in ("blk", "chr") and (begin % 512 or (size is not None and size % 512)):
        raise ValueError(f"type={ftype} needs begin= and size= that are multiples of 512")
    return EtfsSpec(key, hostpath, ftype, begin, size)


def _etfs_arg(text: str) -> EtfsSpec:
    try:
        return parse_etfs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad --etfs {text!r}: {exc}") from None


MAIN_EPILOG = """\
examples:
  rumpfs mount /mnt/rump
  rumpfs mount /mnt/rump --etfs /disk0=/srv/disk.img,type=blk --allow-other
  rumpfs demo                  # show a small tree served to host programs
  python -m rumpfs mount --help
"""

MOUNT_DESCRIPTION = """\
Boot a rump kernel (an in-memory rumpfs as its root "/"), map the --etfs host
files and directories into it, and serve it to the host through FUSE at
MOUNTPOINT. Each host request runs with the caller's uid, gid, groups and
umask, so the kernel's own permission checks decide. Serves until unmounted
(fusermount3 -u MOUNTPOINT) or interrupted (Ctrl-C, SIGTERM); then unmounts
and exits 0. Bad arguments exit 2 before anything is mounted.
"""

MOUNT_EPILOG = """\
--etfs KEY=HOSTPATH[,type=TYPE][,begin=N][,size=N]
  Map the host file or directory HOSTPATH at the absolute path KEY inside the
  kernel (missing parent directories of KEY are made). TYPE is one of
    reg          a regular file over the host file's bytes (default)
    blk, chr     a block / raw character device over them (begin and size
                 must be multiples of 512)
    dir          the host directory's files (not its subdirectories)
    dir_subdirs  the host directory with every level below it
  begin= and size= choose a window of a host file (bytes; 0x.., K, M, G
  suffixes accepted); without size= the window runs to the host file's end.

examples:
  rumpfs mount /mnt/rump
  rumpfs mount /mnt/rump --etfs /data=/srv/data,type=dir_subdirs
  rumpfs mount /mnt/rump --etfs /dev/disk0=/srv/disk.img,type=blk,begin=1M,size=64M
  rumpfs mount /mnt/rump --etfs /notes.txt=$HOME/notes.txt --read-only
  rumpfs mount /mnt/disk --image disk.img     # an ext4 image (or its first partition)
  rumpfs mount /mnt/disk --image disk.img --partition 2 --read-only
  sudo rumpfs mount /mnt/rump --allow-other   # let other users in
  fusermount3 -u /mnt/rump                    # stop serving
"""

DEMO_DESCRIPTION = """\
Boot a kernel, build a small tree in it (directories, files, a symbolic link
and a hard link), serve it through FUSE at MOUNTPOINT (default: a fresh
temporary directory), and show `ls -lR`, `stat` and `cat` run by the host on
it; then unmount. Without FUSE, shows the same tree listed in-process.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``rumpfs`` argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="rumpfs",
        description="NetBSD's rump-kernel file system stack in Python: boot a kernel "
        "with an in-memory rumpfs and host-file mappings (etfs), and serve it to "
        "the host through FUSE.",
        epilog=MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    mount = sub.add_parser(
        "mount",
        help="serve a fresh kernel at MOUNTPOINT through FUSE",
        description=MOUNT_DESCRIPTION,
        epilog=MOUNT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mount.add_argument("mountpoint", metavar="MOUNTPOINT", help="an existing host directory")
    mount.add_argument(
        "--etfs",
        metavar="KEY=HOSTPATH[,type=T][,begin=N][,size=N]",
        action="append",
        type=_etfs_arg,
        default=[],
        help="map a host file or directory into the kernel (repeatable; see below)",
    )
    mount.add_argument(
        "--image", metavar="IMAGE",
        help="serve the file system on host disk image IMAGE (ext2/3/4; a bare file "
        "system or a partition of its MBR/GPT) instead of a fresh tree; see docs/blockdev.md",
    )
    mount.add_argument(
        "--partition", metavar="N", type=int,
        help="with --image: partition N (as Linux numbers them; 0: the whole disk); "
        "default: the first one holding a file system rumpfs knows",
    )
    mount.add_argument(
        "--fs", metavar="TYPE",
        help="with --image: the file-system type (ext2, msdos); default: from the on-disk magic",
    )
    mount.add_argument(
        "--read-only", action="store_true", help="mount read-only (writes fail with EROFS)"
    )
    mount.add_argument(
        "--allow-other",
        action="store_true",
        help="let users other than the one mounting use the mount (FUSE allow_other; "
        "non-root needs user_allow_other in /etc/fuse.conf)",
    )
    mount.add_argument(
        "--debug", action="store_true", help="log every FUSE request and reply to stderr"
    )

    demo = sub.add_parser(
        "demo",
        help="show a small kernel tree served to host programs",
        description=DEMO_DESCRIPTION,
        epilog="examples:\n  rumpfs demo\n  rumpfs demo /mnt/rump --serve\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "mountpoint", metavar="MOUNTPOINT", nargs="?", default=None,
        help="where to mount (default: a fresh temporary directory)",
    )
    demo.add_argument(
        "--serve", action="store_true", help="stay mounted until Ctrl-C (or SIGTERM)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rumpfs`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "mount":
        return _cmd_mount(parser, args)
    return _cmd_demo(parser, args)


def _err(message: str) -> None:
    print(f"rumpfs: {message}", file=sys.stderr)


def _check_mountpoint(path: str) -> str | None:
    """None if ``path`` is a usable mount point, else why not."""
    if not os.path.lexists(path):
        return f"mount point {path} does not exist"
    if not os.path.isdir(path):
        return f"mount point {path} is not a directory"
    return None


def _apply_etfs(k: Kernel, specs: Sequence[EtfsSpec]) -> None:
    from rumpfs import EtfsType

    for spec in specs:
        k.etfs_register(
            spec.key, spec.hostpath, EtfsType[spec.type.upper()],
            begin=spec.begin, size=spec.size,
        )


class _Stopper:
    """SIGINT/SIGTERM end the serving loop (then the caller unmounts).

    Installed before mounting, so a signal that comes while the mount is
    still coming up is not lost: it ends serving as soon as it has started.
    """

    def __init__(self) -> None:
        self.server: FuseServer | None = None
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.server is not None:
            self.server.request_stop()

    def serve_until_stopped(self, server: FuseServer) -> None:
        self.server = server
        if self.requested:
            return
        server.wait()


@contextlib.contextmanager
def _signals_stop() -> Iterator[_Stopper]:
    stopper = _Stopper()
    old = {sig: signal.signal(sig, stopper) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopper
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)


def _cmd_mount(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    mountpoint = os.path.abspath(args.mountpoint)
    problem = _check_mountpoint(mountpoint)
    if problem is not None:
        _err(problem)
        return 2
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")

    from rumpfs import Kernel

    if args.image is None and (args.partition is not None or args.fs is not None):
        parser.error("--partition and --fs go with --image")
    if args.image is not None and args.etfs:
        parser.error("--image serves the image's file system only: no --etfs with it")

    with Kernel() as k, _signals_stop() as stopper:
        try:
            _apply_etfs(k, args.etfs)
        except OSError as exc:
            _err(f"--etfs: {exc.strerror or exc}"
                 + (f": {exc.filename}" if exc.filename else ""))
            return 2
        root, read_only = None, args.read_only
        if args.image is not None:
            from rumpfs.frontends.image import mount_image
            try:
                im = mount_image(k, args.image, partition=args.partition, fstype=args.fs,
                                 read_only=args.read_only)
            except ValueError as exc:
                _err(f"--image: {exc}")
                return 2
            except OSError as exc:
                _err(f"--image {args.image}: {exc.strerror or exc}")
                missing = exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR)
                return 2 if missing else 1
            for warning in im.warnings:
                _err(f"warning: {warning}")
            root, read_only = im.mountpoint, im.read_only
        try:
            from rumpfs.frontends.fuse import FuseServer

            # Only this mount changes the kernel: let the host cache (long, or
            # 1 s where etfs maps host files that may change behind it).
            server = FuseServer(
                k.node_handles(root), mountpoint,
                read_only=read_only, allow_other=args.allow_other, debug=args.debug,
                exclusive=True, cache_timeout=1.0 if args.etfs else 3600.0,
            )
            server.start()
        except (ImportError, OSError, RuntimeError) as exc:
            _err(f"cannot mount at {mountpoint}: {exc}")
            return 1
        try:
            stopper.serve_until_stopped(server)
        finally:
            server.stop()
    return 0


# -- demo ------------------------------------------------------------------------


def build_demo_tree(k: Kernel) -> None:
    """A small tree: dirs, files, a symbolic link and a hard link."""
    k.mkdir("/etc")
    k.mkdir("/home")
    k.mkdir("/home/alice", 0o750)
    k.mkdir("/tmp", 0o777)
    k.chmod("/tmp", 0o1777)
    files = {
        "/etc/motd": b"Welcome to rumpfs: a NetBSD-style rump kernel, in Python.\n",
        "/etc/hostname": b"rump\n",
        "/home/alice/notes.txt": b"1. boot a kernel\n2. mount it\n3. use it from the host\n",
    }
    for path, data in files.items():
        fd = k.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            k.write(fd, data)
        finally:
            k.close(fd)
    k.chown("/home/alice", 1000, 1000)
    k.chown("/home/alice/notes.txt", 1000, 1000)
    k.symlink("notes.txt", "/home/alice/latest")
    k.link("/home/alice/notes.txt", "/home/alice/notes.bak")


def _fuse_usable() -> str | None:
    """None if a FUSE mount can be tried here, else why not."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None and os.geteuid() != 0:
        return "fusermount3 is not installed"
    return None


def _listing(k: Kernel, path: str = "/", indent: str = "") -> Iterator[str]:
    for name in sorted(k.listdir(path)):
        full = path.rstrip("/") + "/" + name
        st = k.lstat(full)
        line = (f"{indent}{stat.filemode(st.st_mode)} {st.st_nlink:2} {st.st_uid:5} "
                f"{st.st_gid:5} {st.st_size:6}  ino={st.st_ino:<4} {name}")
        if stat.S_ISLNK(st.st_mode):
            line += f" -> {k.readlink(full)}"
        yield line
        if stat.S_ISDIR(st.st_mode):
            yield from _listing(k, full, indent + "    ")


def _show(title: str, argv: list[str], cwd: str) -> None:
    print(f"$ {' '.join(argv)}    # {title}")
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    sys.stdout.write(textwrap.indent(res.stdout + res.stderr, "  "))


def _cmd_demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from rumpfs import Kernel

    mountpoint: str | None = None
    if args.mountpoint is not None:
        mountpoint = os.path.abspath(args.mountpoint)
        problem = _check_mountpoint(mountpoint)
        if problem is not None:
            _err(problem)
            return 2
    with Kernel() as k:
        build_demo_tree(k)
        why = _fuse_usable()
        if why is None:
            made = mountpoint is None
            where = mountpoint or tempfile.mkdtemp(prefix="rumpfs-demo-")
            try:
                return _demo_mounted(k, where, args.serve)
            except (OSError, RuntimeError) as exc:
                why = f"mounting failed: {exc}"
            finally:
                if made:
                    with contextlib.suppress(OSError):
                        os.rmdir(where)
        print(f"(no FUSE mount: {why}; listing the kernel in-process)\n")
        print("/")
        for line in _listing(k):
            print("    " + line)
        with k.open_file("/etc/motd", "r") as f:
            print("\n/etc/motd: " + f.read(), end="")
    return 0


def _demo_mounted(k: Kernel, mountpoint: str, serve_on: bool) -> int:
    from rumpfs.frontends.fuse import FuseServer

    server = FuseServer(k.node_handles(), mountpoint, allow_other=os.geteuid() == 0)
    server.start()
    try:
        print(f"rumpfs kernel mounted at {mountpoint}; the host sees:\n")
        _show("the whole tree", ["ls", "-lRn", "."], mountpoint)
        _show("a file's inode", ["stat", "home/alice/notes.txt"], mountpoint)
        _show("through the symbolic link", ["cat", "home/alice/latest"], mountpoint)
        _show("a file", ["cat", "etc/motd"], mountpoint)
        fd = k.open("/etc/motd", os.O_WRONLY | os.O_APPEND)
        try:
            k.write(fd, b"(this line was appended in-process, while mounted)\n")
        finally:
            k.close(fd)
        _show("after an in-process change", ["cat", "etc/motd"], mountpoint)
        if serve_on:
            print(f"\nserving at {mountpoint}; Ctrl-C (or fusermount3 -u) to stop", flush=True)
            with _signals_stop() as stopper:
                stopper.serve_until_stopped(server)
    finally:
        server.stop()
    print(f"\nunmounted {mountpoint}")
    return 0
