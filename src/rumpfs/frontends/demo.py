"""``rumpfs demo``: a small kernel tree served to host programs, to show the point.

The demo boots a kernel, builds a tree (directories, files, a symbolic link,
a hard link, a home directory owned by uid 1000, "alice"), maps a host file
into it with etfs, serves it through FUSE and runs ordinary host programs on
it: ``ls``, ``stat``, ``cat``, a shell append, and a write as alice that the
kernel refuses. Without FUSE it lists the same tree in-process.

Ids are printed as numbers (``ls -n``, ``stat -c %u:%g``): the names a host
would print come from its own /etc/passwd and say nothing about the kernel.

Allowed imports: the standard library, ``rumpfs`` and the CLI's helpers
(``rumpfs.frontends.cli``); ``rumpfs.frontends.fuse`` when mounting.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rumpfs import Kernel

__all__ = ["add_demo_parser", "build_demo_tree", "cmd_demo"]

ALICE = 1000
HOST_KEY = "/host/hello.txt"

DEMO_DESCRIPTION = """\
Boot a kernel, build a small tree in it (directories, files, a symbolic link
and a hard link, alice's home), map a host file into it with etfs, serve it
through FUSE at MOUNTPOINT (default: a fresh temporary directory) and show
host programs (ls, stat, cat, sh) working on it, including a write that the
kernel refuses to alice (uid 1000); then unmount. Without FUSE, shows the
same tree listed in-process.
"""


def add_demo_parser(sub: Any) -> None:
    """Add the ``demo`` subcommand to the CLI's subparsers."""
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


def build_demo_tree(k: Kernel) -> None:
    """A small tree: dirs, files, a symbolic link, a hard link, alice's home."""
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
        k.path(path).write_bytes(data)
    k.chown("/home/alice", ALICE, ALICE)
    k.chown("/home/alice/notes.txt", ALICE, ALICE)
    k.symlink("notes.txt", "/home/alice/latest")
    k.link("/home/alice/notes.txt", "/home/alice/notes.bak")


def _fuse_usable() -> str | None:
    """None if a FUSE mount can be tried here, else why not."""
    from rumpfs.frontends.cli import fuse_problem

    if shutil.which("fusermount3") is None and os.geteuid() != 0:
        return "fusermount3 is not installed"
    return fuse_problem(allow_other=False)


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


def _show(title: str, argv: list[str], cwd: str, shown: str | None = None) -> None:
    print(f"$ {shown or ' '.join(argv)}    # {title}")
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    sys.stdout.write(textwrap.indent(res.stdout + res.stderr, "  "))
    sys.stdout.flush()


def _host_name(uid: int) -> str:
    try:
        return repr(pwd.getpwuid(uid).pw_name)
    except KeyError:
        return "no one"


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``rumpfs demo``; returns the exit status."""
    from rumpfs import Kernel
    from rumpfs.frontends.cli import check_mountpoint, err, resolve_mountpoint

    mountpoint: str | None = None
    if args.mountpoint is not None:
        mountpoint = resolve_mountpoint(args.mountpoint)
        problem = check_mountpoint(mountpoint, nonempty=False)
        if problem is not None:
            err(problem)
            return 2
    with tempfile.TemporaryDirectory(prefix="rumpfs-demo-host-") as hostdir, Kernel() as k:
        build_demo_tree(k)
        hostfile = os.path.join(hostdir, "hello.txt")
        with open(hostfile, "w") as f:
            f.write("a host file, mapped into the kernel with etfs\n")
        os.chmod(hostdir, 0o755)
        k.etfs_register(HOST_KEY, hostfile)
        why = _fuse_usable()
        if why is None:
            made = mountpoint is None
            where = mountpoint or tempfile.mkdtemp(prefix="rumpfs-demo-")
            try:
                return _demo_mounted(k, where, hostfile, args.serve)
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
        print("\n/etc/motd: " + k.path("/etc/motd").read_text(), end="")
        print(f"{HOST_KEY} (the host's {hostfile}): " + k.path(HOST_KEY).read_text(), end="")
        _alice_in_process(k)
    return 0


def _alice_in_process(k: Kernel) -> None:
    alice = k.process(uid=ALICE, gid=ALICE)
    try:
        alice.open("/etc/motd", os.O_WRONLY | os.O_APPEND)
    except PermissionError as exc:
        print(f"alice (uid {ALICE}) writing /etc/motd in-process: {exc.strerror}")


def _demo_mounted(k: Kernel, mountpoint: str, hostfile: str, serve_on: bool) -> int:
    from rumpfs.frontends.cli import signals_stop
    from rumpfs.frontends.fuse import FuseServer

    root = os.geteuid() == 0
    server = FuseServer(k.node_handles(), mountpoint, allow_other=root)
    server.start()
    try:
        print(f"rumpfs kernel mounted at {mountpoint}; the host sees:\n")
        print(f"(ids are numbers: uid {ALICE} is alice inside this kernel; "
              f"this host's /etc/passwd calls uid {ALICE} {_host_name(ALICE)})\n")
        _show("the whole tree", ["ls", "-lRn", "."], mountpoint)
        _show("a file's inode", ["stat", "-c", "%A links=%h uid=%u gid=%g size=%s ino=%i %N",
                                 "home/alice/notes.txt", "home/alice/latest"], mountpoint,
              "stat -c '%A links=%h uid=%u gid=%g size=%s ino=%i %N' "
              "home/alice/notes.txt home/alice/latest")
        _show("through the symbolic link", ["cat", "home/alice/latest"], mountpoint)
        _show("a file", ["cat", "etc/motd"], mountpoint)
        k.path("/etc/motd").write_bytes(
            k.path("/etc/motd").read_bytes()
            + b"(this line was appended in-process, while mounted)\n")
        _show("after an in-process change", ["cat", "etc/motd"], mountpoint)

        print(f"\n{HOST_KEY} is the host file {hostfile} (etfs):")
        _show("the host file, in the tree", ["cat", HOST_KEY.lstrip("/")], mountpoint)
        _show("a shell appends through the mount",
              ["sh", "-c", f"echo 'appended by a shell, through the mount' >> "
                           f"{HOST_KEY.lstrip('/')}"], mountpoint,
              f"echo 'appended by a shell, through the mount' >> {HOST_KEY.lstrip('/')}")
        with open(hostfile, "a") as f:
            f.write("appended on the host, to the host file\n")
        _show("the host file itself, after a host-side append too", ["cat", hostfile],
              mountpoint)
        _show("both changes, seen through the mount", ["cat", HOST_KEY.lstrip("/")],
              mountpoint)

        print(f"\nalice (uid {ALICE}) may not write root's 0644 /etc/motd:")
        setpriv = shutil.which("setpriv")
        if root and setpriv is not None:
            _show("as alice, on the host", [setpriv, f"--reuid={ALICE}", f"--regid={ALICE}",
                                            "--clear-groups", "sh", "-c",
                                            "echo hi >> etc/motd"], mountpoint,
                  f"setpriv --reuid={ALICE} --regid={ALICE} --clear-groups "
                  "sh -c 'echo hi >> etc/motd'")
        else:
            _alice_in_process(k)
        if serve_on:
            print(f"\nserving at {mountpoint}; Ctrl-C (or fusermount3 -u) to stop", flush=True)
            with signals_stop() as stopper:
                stopper.serve_until_stopped(server)
    finally:
        server.stop()
    print(f"\nunmounted {mountpoint}")
    return 0
