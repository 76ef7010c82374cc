"""The ``rumpfs`` command (also ``python -m rumpfs``).

``rumpfs mount MOUNTPOINT [--etfs SPEC]...`` boots a kernel, applies the etfs
mappings and serves the kernel through FUSE. By default it returns once the
mount is live and keeps serving from a background process (as ``sshfs``
does); ``-f`` serves in the foreground. It serves until unmounted
(``fusermount3 -u``) or sent SIGTERM (or SIGINT in the foreground).
``rumpfs demo`` (:mod:`rumpfs.frontends.demo`) shows a small tree served to
host programs.

Allowed imports: the standard library, ``rumpfs`` (the public API),
``rumpfs.frontends.demo`` and ``rumpfs.frontends.fuse`` (imported only when a
mount is made, so ``--help`` and argument errors stay fast). As a frontend,
this module uses the host directly for its own job: ``/proc/self/mountinfo``
to find mount points, ``/etc/fuse.conf``, ``fork``.

Exit status: 0 once mounted (background) or after a clean unmount
(foreground); 2 for bad arguments or an unusable mount point (nothing has
been mounted then); 1 when mounting or serving fails. Every refusal is one
line on stderr starting with ``rumpfs:``.

Background serving (the default), as libfuse's ``fuse_daemonize``: the
process checks everything it can (arguments, mount point, etfs mappings)
first, then forks; the child starts a new session, mounts, and reports
through a pipe; the parent waits for that report, prints where the kernel
is served and exits 0 (or prints the child's error and exits 1). The child's
stdin and stdout go to /dev/null; its stderr too unless it is a terminal, so
that a caller capturing the command's output is not held open by the server.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rumpfs import Kernel
    from rumpfs.frontends.fuse import FuseServer

__all__ = ["EtfsSpec", "build_parser", "main", "parse_etfs"]

ETFS_TYPES = ("reg", "blk", "chr", "dir", "dir_subdirs")
_OPTION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$")
_VALUE_OPTIONS = ("type", "begin", "size")
_FLAG_OPTIONS = ("ro", "rw")
_SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# Where fusermount3 reads user_allow_other; RUMPFS_FUSE_CONF overrides it (tests).
FUSE_CONF = "/etc/fuse.conf"


def _version() -> str:
    from rumpfs import __version__

    return __version__


@dataclass(frozen=True, slots=True)
class EtfsSpec:
    """One ``--etfs KEY=HOSTPATH[,type=..][,begin=N][,size=N][,ro]`` mapping."""

    key: str
    hostpath: str
    type: str = "reg"
    begin: int = 0
    size: int | None = None
    read_only: bool = False


def _parse_size(what: str, text: str) -> int:
    m = re.fullmatch(r"\s*(0[xX][0-9a-fA-F]+|\d+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if m is None:
        raise ValueError(f"{what}={text!r} is not a byte count (e.g. 4096, 0x1000, 64K, 1M)")
    return int(m.group(1), 0) * _SUFFIX[m.group(2).lower()]


def parse_etfs(spec: str) -> EtfsSpec:
    """Parse an ``--etfs`` argument; ValueError with a readable reason if it is bad.

    Options are taken from the end: every trailing ``,word`` or ``,word=value``
    part is an option and must be a known one (``type``, ``begin``, ``size``,
    ``ro``, ``rw``). A host path may itself contain commas and ``=`` as long
    as what follows its last comma does not look like an option.
    """
    parts = spec.split(",")
    options: dict[str, str | None] = {}
    while len(parts) > 1 and (m := _OPTION.match(parts[-1])):
        name, value = m.group(1), m.group(2)
        if value is None and name not in _FLAG_OPTIONS:
            break  # a bare word that is no flag: part of the host path
        if name not in _VALUE_OPTIONS + _FLAG_OPTIONS:
            known = ", ".join(f"{o}=" for o in _VALUE_OPTIONS) + ", " + ", ".join(_FLAG_OPTIONS)
            raise ValueError(f"unknown option {parts[-1]!r} (known: {known})")
        if (value is None) != (name in _FLAG_OPTIONS):
            raise ValueError(f"option {name} takes no value" if value is not None
                             else f"option {name}= needs a value")
        if name in options or (name in _FLAG_OPTIONS and options.keys() & set(_FLAG_OPTIONS)):
            raise ValueError(f"{name} given twice" if name in options else "ro and rw both given")
        options[name] = value
        parts.pop()
    head = ",".join(parts)
    key, sep, hostpath = head.partition("=")
    if not sep:
        raise ValueError("expected KEY=HOSTPATH (for example /data=/srv/data,type=dir_subdirs)")
    if not key.startswith("/"):
        raise ValueError(f"key {key!r} must be an absolute path inside the kernel, like /data")
    if key.strip("/") == "":
        raise ValueError("the key cannot be / itself")
    if not hostpath:
        raise ValueError(f"no host path given for {key}")
    ftype = (options.get("type") or "reg").lower()
    if ftype not in ETFS_TYPES:
        raise ValueError(f"type={ftype!r} is not one of {', '.join(ETFS_TYPES)}")
    begin_s, size_s = options.get("begin"), options.get("size")
    begin = _parse_size("begin", begin_s) if begin_s is not None else 0
    size = _parse_size("size", size_s) if size_s is not None else None
    if ftype.startswith("dir") and (begin_s is not None or size_s is not None):
        raise ValueError(f"begin= and size= do not apply to type={ftype}")
    if ftype in ("blk", "chr") and (begin % 512 or (size is not None and size % 512)):
        raise ValueError(f"type={ftype} needs begin= and size= that are multiples of 512")
    return EtfsSpec(key, hostpath, ftype, begin, size, "ro" in options)


def _etfs_arg(text: str) -> EtfsSpec:
    try:
        return parse_etfs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad --etfs {text!r}: {exc}") from None


def _mode_arg(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise argparse.ArgumentTypeError(f"{text!r} is not an octal mode like 755 or 0700")
    return mode


def _owner_arg(text: str) -> tuple[int, int]:
    """``USER[:GROUP]`` (names or numbers) -> (uid, gid); GROUP defaults to USER's group."""
    user, _, group = text.partition(":")
    try:
        if user.isdigit():
            uid = int(user)
            try:
                gid = pwd.getpwuid(uid).pw_gid
            except KeyError:
                gid = uid
        else:
            pw = pwd.getpwnam(user)
            uid, gid = pw.pw_uid, pw.pw_gid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: no such user or group on this host (numbers work too, like 1000:1000)"
        ) from None
    return uid, gid


MAIN_EPILOG = """\
examples:
  mkdir -p /tmp/rump && rumpfs mount /tmp/rump     # returns once mounted
  rumpfs mount /tmp/rump --etfs /data=$HOME/data,type=dir_subdirs,ro
  fusermount3 -u /tmp/rump                         # stop serving
  rumpfs demo                  # show a small tree served to host programs
  rumpfs mount --help
"""

MOUNT_DESCRIPTION = """\
Boot a rump kernel (an in-memory rumpfs as its root "/"), map the --etfs host
files and directories into it, and serve it to the host through FUSE at
MOUNTPOINT. Each host request runs with the caller's uid, gid, groups and
umask, so the kernel's own permission checks decide.

Returns once the mount is live and keeps serving from a background process
(-f: in the foreground), until unmounted (fusermount3 -u MOUNTPOINT) or sent
SIGTERM (Ctrl-C too with -f). It prints where it serves and, in the
foreground, when it unmounts (stderr; -q: quiet). Refuses a MOUNTPOINT that
is already a mount point or is not empty (--nonempty allows that). The
kernel's root directory belongs to the user mounting it (--owner, --mode).
Exit status: 0 mounted (or cleanly unmounted with -f), 2 bad arguments or
mount point (nothing mounted), 1 mounting or serving failed.
"""

MOUNT_EPILOG = """\
--etfs KEY=HOSTPATH[,type=TYPE][,begin=N][,size=N][,ro]
  Map the host file or directory HOSTPATH at the absolute path KEY inside the
  kernel (missing parent directories of KEY are made). TYPE is one of
    reg          a regular file over the host file's bytes (default)
    blk, chr     a block / raw character device over them (begin and size
                 must be multiples of 512); FUSE mounts are nodev, so the
                 host sees them as regular files of the window's size, and
                 dd, mkfs and fsck work on them
    dir          the host directory's files (not its subdirectories)
    dir_subdirs  the host directory with every level below it
  begin= and size= choose a window of a host file (bytes; 0x.., K, M, G
  suffixes accepted); without size= the window runs to the host file's end.
  ro makes the mapping read-only: every change through it fails with EROFS.

examples:
  rumpfs mount /mnt/rump
  rumpfs mount /mnt/rump --etfs /data=/srv/data,type=dir_subdirs,ro
  rumpfs mount /mnt/rump --etfs /dev/disk0=/srv/disk.img,type=blk,begin=1M,size=64M
  rumpfs mount -f /mnt/rump --etfs /notes.txt=$HOME/notes.txt --read-only
  rumpfs mount /mnt/rump --owner 1000:1000 --mode 0700
  rumpfs mount /mnt/disk --image disk.img     # an ext4 image (or its first partition)
  rumpfs mount /mnt/disk --image disk.img --partition 2 --read-only
  sudo rumpfs mount /mnt/rump --allow-other   # let other users in
  fusermount3 -u /mnt/rump                    # stop serving
"""


class _Parser(argparse.ArgumentParser):
    """Errors name the subcommand's usage, not the top-level one (see main)."""


def build_parser() -> argparse.ArgumentParser:
    """The ``rumpfs`` argument parser (exposed for tests and documentation)."""
    from rumpfs.frontends.demo import add_demo_parser

    parser = _Parser(
        prog="rumpfs",
        description="NetBSD's rump-kernel file system stack in Python: boot a kernel "
        "with an in-memory rumpfs and host-file mappings (etfs), and serve it to "
        "the host through FUSE.",
        epilog=MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rumpfs {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    mount = sub.add_parser(
        "mount",
        help="serve a fresh kernel at MOUNTPOINT through FUSE",
        description=MOUNT_DESCRIPTION,
        epilog=MOUNT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mount.add_argument("mountpoint", metavar="MOUNTPOINT", help="an existing, empty directory")
    mount.add_argument(
        "--etfs",
        metavar="KEY=HOSTPATH[,type=T][,begin=N][,size=N][,ro]",
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
    mount.add_argument("-f", "--foreground", action="store_true",
                       help="serve in the foreground until unmounted or interrupted")
    mount.add_argument("-q", "--quiet", action="store_true",
                       help="print nothing but errors")
    mount.add_argument(
        "--read-only", action="store_true", help="mount read-only (writes fail with EROFS)"
    )
    mount.add_argument("--nonempty", action="store_true",
                       help="mount over a non-empty directory (its files are hidden meanwhile)")
    mount.add_argument(
        "--owner", metavar="USER[:GROUP]", type=_owner_arg, default=None,
        help="owner of the kernel's root directory (default: the user mounting)",
    )
    mount.add_argument(
        "--mode", metavar="MODE", type=_mode_arg, default=None,
        help="permissions of the kernel's root directory, octal (default: 755)",
    )
    mount.add_argument(
        "--allow-other",
        action="store_true",
        help="let users other than the one mounting use the mount (FUSE allow_other; "
        "non-root needs user_allow_other in /etc/fuse.conf)",
    )
    mount.add_argument(
        "--debug", action="store_true",
        help="log every FUSE request and reply to stderr (implies -f)",
    )
    add_demo_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rumpfs`` command; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        parser.print_help()
        return 0
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if extra:
        # argparse hands a subcommand's unknown options back to the top-level
        # parser, whose usage would not mention them: answer with the
        # subcommand's own usage instead.
        choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        choices.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "mount":
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        mount_parser = sub.choices["mount"]
        if args.image is None and (args.partition is not None or args.fs is not None):
            mount_parser.error("--partition and --fs go with --image")
        if args.image is not None and args.etfs:
            mount_parser.error("--image serves the image's file system only: no --etfs with it")
        if args.image is not None and (args.owner is not None or args.mode is not None):
            mount_parser.error("--owner and --mode set a fresh tree's root: not with --image")
        return _cmd_mount(args)
    from rumpfs.frontends.demo import cmd_demo

    return cmd_demo(args)


def err(message: str) -> None:
    """One ``rumpfs: ...`` line on stderr."""
    print(f"rumpfs: {message}", file=sys.stderr, flush=True)


# -- the mount point ---------------------------------------------------------------


def _unescape(field: bytes) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    return os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), field))


def mount_at(path: str) -> str | None:
    """The file-system type mounted at ``path`` (per /proc/self/mountinfo), or None."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:  # the last one wins: it is the one on top
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == path:
            try:
                found = os.fsdecode(fields[fields.index(b"-") + 1])
            except (ValueError, IndexError):
                found = "?"
    return found


def resolve_mountpoint(path: str) -> str:
    """The absolute path with its parent's symlinks resolved, without
    touching ``path`` itself (which may be a dead FUSE mount)."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name) if name else path


def check_mountpoint(path: str, nonempty: bool) -> str | None:
    """None if ``path`` (absolute, resolved) can be mounted on, else why not (one line)."""
    fstype = mount_at(path)
    if fstype is not None:
        try:
            # statvfs, not stat: the host may answer stat from its attribute
            # cache, but STATFS always reaches the server (or finds it gone)
            os.statvfs(path)
        except OSError as exc:
            # ENOTCONN once the server is gone; ECONNABORTED for a request
            # that was pending when it died
            if exc.errno in (errno.ENOTCONN, errno.ECONNABORTED):
                return (f"{path} is a stale FUSE mount (its server is gone); "
                        f"unmount it with: fusermount3 -u {path}")
        how = f"fusermount3 -u {path}" if fstype.startswith("fuse") else f"umount {path}"
        return (f"{path} is already a mount point ({fstype}); "
                f"unmount it first ({how}) or choose another directory")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"mount point {path} does not exist (create it with: mkdir -p {path})"
    except OSError as exc:
        return f"mount point {path}: {exc.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"mount point {path} is not a directory"
    if not nonempty:
        try:
            entries = os.listdir(path)
        except OSError as exc:
            return f"mount point {path}: {exc.strerror}"
        if entries:
            what = "1 entry" if len(entries) == 1 else f"{len(entries)} entries"
            return (f"mount point {path} is not empty ({what} would be hidden while mounted); "
                    "use --nonempty to mount over it anyway")
    return None


def user_allow_other(conf: str | None = None) -> bool:
    """Whether fuse.conf has a ``user_allow_other`` line (what fusermount3 checks)."""
    conf = conf or os.environ.get("RUMPFS_FUSE_CONF") or FUSE_CONF
    try:
        with open(conf, encoding="utf-8", errors="replace") as f:
            return any(line.split("#", 1)[0].strip() == "user_allow_other" for line in f)
    except OSError:
        return False


def fuse_problem(allow_other: bool) -> str | None:
    """Why this user cannot make the FUSE mount asked for, or None (one line)."""
    if allow_other and os.geteuid() != 0 and not user_allow_other():
        conf = os.environ.get("RUMPFS_FUSE_CONF") or FUSE_CONF
        return (f"--allow-other needs a 'user_allow_other' line in {conf} when not run as root "
                "(ask root to add it), or mount without --allow-other")
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing: load the fuse module (modprobe fuse) or, in a container, " \
               "pass the device in (--device /dev/fuse)"
    # fusermount3 opens /dev/fuse with the user's own rights, so a non-root
    # user needs read-write access to it as well as the tool.
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        mode = stat.filemode(os.stat("/dev/fuse").st_mode)
        return f"cannot open /dev/fuse: Permission denied (it is {mode} here; " \
               "FUSE needs read and write access to it)"
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        return ("mounting as a non-root user needs fusermount3, which is not installed "
                "(Debian/Ubuntu: apt install fuse3)")
    return None


# -- etfs --------------------------------------------------------------------------


def _host_size(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)  # also right for block devices
    finally:
        os.close(fd)


def etfs_problem(spec: EtfsSpec) -> str | None:
    """What is wrong with ``spec``'s host side, naming the host path, or None."""
    try:
        st = os.stat(spec.hostpath)
    except OSError as exc:
        return f"host path {spec.hostpath}: {exc.strerror}"
    if spec.type.startswith("dir"):
        if not stat.S_ISDIR(st.st_mode):
            return f"type={spec.type} needs a host directory; {spec.hostpath} is not one"
        return None
    if stat.S_ISDIR(st.st_mode):
        return (f"host path {spec.hostpath} is a directory: "
                "use type=dir or type=dir_subdirs to map it")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        return f"host path {spec.hostpath} is neither a regular file nor a block device"
    try:
        size = _host_size(spec.hostpath)
    except OSError as exc:
        return f"host path {spec.hostpath}: {exc.strerror}"
    if spec.begin > size:
        return (f"begin={spec.begin} is past the end of {spec.hostpath} "
                f"({size} bytes)")
    if spec.size is not None and spec.begin + spec.size > size:
        return (f"size={spec.size} from begin={spec.begin} runs past the end of "
                f"{spec.hostpath} ({size} bytes; at most size={size - spec.begin} fits)")
    return None


def apply_etfs(k: Kernel, specs: Sequence[EtfsSpec]) -> str | None:
    """Register ``specs`` in ``k``; None, or the first failure as one line."""
    from rumpfs import EtfsType

    for spec in specs:
        where = f"--etfs {spec.key}={spec.hostpath}"
        problem = etfs_problem(spec)
        if problem is not None:
            return f"{where}: {problem}"
        try:
            k.etfs_register(spec.key, spec.hostpath, EtfsType[spec.type.upper()],
                            begin=spec.begin, size=spec.size, read_only=spec.read_only)
        except OSError as exc:
            why = exc.strerror or str(exc)
            if exc.errno == errno.EEXIST:
                why = (f"key {spec.key} is already taken, or overlaps a directory "
                       "mapping of another --etfs")
            elif exc.errno == errno.ENOTDIR:
                why = f"a parent of key {spec.key} is not a directory in the kernel"
            return f"{where}: {why}"
    return None


# -- serving -----------------------------------------------------------------------


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
def signals_stop() -> Iterator[_Stopper]:
    """SIGINT and SIGTERM stop serving while inside the block."""
    stopper = _Stopper()
    old = {sig: signal.signal(sig, stopper) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopper
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)


def _serving_line(mountpoint: str, pid: int) -> str:
    return f"serving at {mountpoint} (pid {pid}); stop with: fusermount3 -u {mountpoint}"


def _cmd_mount(args: argparse.Namespace) -> int:
    mountpoint = resolve_mountpoint(args.mountpoint)
    problem = check_mountpoint(mountpoint, args.nonempty)
    if problem is not None:
        err(problem)
        return 2
    specs = [EtfsSpec(s.key, os.path.abspath(s.hostpath), s.type, s.begin, s.size, s.read_only)
             for s in args.etfs]  # absolute: the background server runs in /
    problem = fuse_problem(args.allow_other)
    if problem is not None:
        err(problem)
        return 1
    foreground = args.foreground or args.debug
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")

    from rumpfs import Kernel

    k = Kernel()
    try:
        problem = apply_etfs(k, specs)
        if problem is not None:
            err(problem)
            return 2
        root, read_only = None, args.read_only
        if args.image is not None:
            code, root, read_only = _mount_image(k, args)
            if code:
                return code
        else:
            uid, gid = args.owner if args.owner is not None else (os.getuid(), os.getgid())
            k.chown("/", uid, gid)
            k.chmod("/", 0o755 if args.mode is None else args.mode)
        served = _Served(k, mountpoint, root, read_only)
        if foreground:
            return _serve(served, args, None)
        return _daemonize(served, args)
    finally:
        k.shutdown()


def _mount_image(k: Kernel, args: argparse.Namespace) -> tuple[int, str | None, bool]:
    """Mount ``--image`` in ``k``: (exit status if it failed, else 0; the
    kernel path to serve; whether read-only). See docs/blockdev.md."""
    from rumpfs.frontends.image import mount_image

    try:
        im = mount_image(k, os.path.abspath(args.image), partition=args.partition,
                         fstype=args.fs, read_only=args.read_only)
    except ValueError as exc:
        err(f"--image: {exc}")
        return 2, None, False
    except OSError as exc:
        err(f"--image {args.image}: {exc.strerror or exc}")
        missing = exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR)
        return (2 if missing else 1), None, False
    for warning in im.warnings:
        err(f"warning: {warning}")
    return 0, im.mountpoint, im.read_only


@dataclass(frozen=True, slots=True)
class _Served:
    """What a server serves: kernel ``k``'s ``root`` (None: "/") at ``mountpoint``."""

    k: Kernel
    mountpoint: str
    root: str | None
    read_only: bool


def _daemonize(served: _Served, args: argparse.Namespace) -> int:
    mountpoint = served.mountpoint
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the server
        os.close(rfd)
        code = 1
        try:
            os.setsid()
            os.chdir("/")
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            if not os.isatty(2):
                os.dup2(null, 2)
            os.close(null)
            code = _serve(served, args, wfd)
            # The server owns the kernel: a disk image's dirty buffers and its
            # clean state reach the image only through this shutdown.
            served.k.shutdown()
        finally:
            os._exit(code)
    os.close(wfd)
    # The parent's copy of the kernel must not write the image behind the
    # server's back (a stale unmount): it exits without a shutdown.
    served.k.running = False
    report = b""
    try:
        with os.fdopen(rfd, "rb") as r:
            report = r.readline()
    except KeyboardInterrupt:
        # Ctrl-C while the mount comes up: the server is in its own session
        # and would not see it; stop it (it unmounts if it got that far).
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        err(f"interrupted; stopped the server (pid {pid})")
        return 1
    if report == b"ok\n":
        if not args.quiet:
            err(_serving_line(mountpoint, pid))
        return 0
    err(report.decode(errors="replace").strip() or f"the server (pid {pid}) died while mounting")
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    return 1


def _serve(served: _Served, args: argparse.Namespace, ready: int | None) -> int:
    """Mount and serve until unmounted or stopped; ``ready``: the pipe to report on."""
    mountpoint = served.mountpoint

    def report(line: str) -> None:
        if ready is None:
            err(line)
            return
        os.write(ready, line.encode() + b"\n")
        os.close(ready)

    with signals_stop() as stopper:
        try:
            from rumpfs.frontends.fuse import FuseServer

            # Only this mount changes the kernel: let the host cache (long, or
            # 1 s where etfs maps host files that may change behind it).
            server = FuseServer(
                served.k.node_handles(served.root), mountpoint,
                read_only=served.read_only, allow_other=args.allow_other, debug=args.debug,
                exclusive=True, cache_timeout=1.0 if args.etfs else 3600.0,
            )
            server.start()
        except (ImportError, OSError, RuntimeError) as exc:
            report(f"cannot mount at {mountpoint}: {exc}")
            return 1
        try:
            if ready is not None:
                report("ok")
            elif not args.quiet:
                err(_serving_line(mountpoint, os.getpid()))
            stopper.serve_until_stopped(server)
        finally:
            server.stop()
    if not args.quiet:
        err(f"unmounted {mountpoint}")
    return 0
