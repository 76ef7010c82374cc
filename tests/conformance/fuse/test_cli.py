"""The ``rumpfs`` command through the real program: exit codes and the exact lines printed.

Covers argument handling (``--version``, help, subcommand usage, ``--etfs``
parsing and host-side errors), background and foreground serving, the
refusals (a mount point that is already mounted, a stale mount, a non-empty
directory, device keys), two servers on one directory, read-only mappings,
the root directory's owner and mode, non-root mounting and
``--allow-other`` without ``user_allow_other``.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rumpfs import __version__
from rumpfs.frontends.cli import EtfsSpec, build_parser, main, parse_etfs
from tests.conformance.fuse.conftest import (
    ROOT,
    is_mounted,
    make_mountpoint,
    remove_mountpoint,
    require_fuse,
)

SRC = str(Path(__file__).resolve().parents[3] / "src")
WAIT = 30.0  # bound on polling for a mount to appear or a server to exit
UNPRIVILEGED = 4242  # any uid/gid without an entry or a privilege on the host


def rumpfs_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rumpfs", *args]


def cmd_env(**extra: str) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=SRC + (os.pathsep + path if path else ""), **extra)


def run_cli(*args: str, cwd: str = "/") -> subprocess.CompletedProcess[str]:
    """Run ``python -m rumpfs ARGS`` in ``cwd``."""
    return subprocess.run(rumpfs_cmd(*args), capture_output=True, text=True, timeout=120,
                          env=cmd_env(), check=False, cwd=cwd)


def _private_dev_fuse(tmp: str, mode: int) -> None:
    """In a new mount namespace (this process only), put a node for the FUSE
    device with ``mode`` over /dev/fuse (0o666: what a desktop gives every
    user; 0o600: a container's) and a passwd naming UNPRIVILEGED over /etc/passwd. The
    host's own files stay untouched."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ms_bind, ms_rec, ms_private = 0x1000, 0x4000, 0x40000

    def check(rc: int, what: str) -> None:
        if rc != 0:
            raise OSError(ctypes.get_errno(), what)

    check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
    check(libc.mount(b"none", b"/", None, ms_rec | ms_private, None), "make / private")
    check(libc.mount(b"tmpfs", tmp.encode(), b"tmpfs", 0, b"mode=0755"), "tmpfs")
    node = os.path.join(tmp, "fuse")
    os.mknod(node, stat.S_IFCHR | mode, os.makedev(10, 229))
    os.chmod(node, mode)
    check(libc.mount(node.encode(), b"/dev/fuse", None, ms_bind, None), "bind /dev/fuse")
    # fusermount3 wants a user name for the caller: one for UNPRIVILEGED, in a
    # passwd that exists only in this namespace.
    passwd = os.path.join(tmp, "passwd")
    with open("/etc/passwd") as f:
        entries = f.read()
    with open(passwd, "w") as f:
        u = UNPRIVILEGED
        f.write(entries.rstrip("\n") + f"\nrumpfs-test:x:{u}:{u}::/:/bin/sh\n")
    os.chmod(passwd, 0o644)
    check(libc.mount(passwd.encode(), b"/etc/passwd", None, ms_bind, None), "bind passwd")


def run_as(uid: int, *args: str, env: dict[str, str] | None = None,
           private_fuse: str | None = None, fuse_mode: int = 0o666,
           then: Callable[[], None] | None = None) -> tuple[int, str]:
    """``rumpfs ARGS`` in a forked child setuid to ``uid`` (gid ``uid``, no groups):
    (exit status, stderr).

    Forked, not exec'd: the interpreter may live where that uid cannot read
    (a root-only pyenv), so everything the command imports is imported here
    first, and a FUSE session is run once so that its parts are loaded.
    ``private_fuse`` (an empty directory): first give the child its own mount
    namespace with a /dev/fuse of ``fuse_mode`` (see _private_dev_fuse); the
    mount is then visible only there, so ``then`` runs in the child, as
    ``uid``, after the command succeeded (what it prints to stderr is
    returned too).
    """
    import rumpfs.frontends.demo
    import rumpfs.frontends.fuse
    import rumpfs.fuse
    import rumpfs.handles

    with rumpfs.Kernel() as k, tempfile.TemporaryDirectory() as warm, rumpfs.fuse.serve(k, warm):
        os.listdir(warm)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(r)
            os.dup2(w, 2)
            os.close(w)
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            os.chdir("/")
            if private_fuse is not None:
                _private_dev_fuse(private_fuse, fuse_mode)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.environ.update(env or {})
            code = main(list(args))
            if code == 0 and then is not None:
                sys.stderr.flush()
                then()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        err = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


def serving_line(mp: str) -> re.Pattern[str]:
    return re.compile(
        rf"rumpfs: serving at {re.escape(mp)} \(pid (\d+)\); "
        rf"stop with: fusermount3 -u {re.escape(mp)}\n")


def gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie nobody reaped counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + WAIT
    while not gone(pid):  # bounded polling for the server to exit
        assert time.monotonic() < deadline, f"server pid {pid} did not exit"
        time.sleep(0.02)


# -- argument parsing (no FUSE needed) --------------------------------------------------------


def test_parse_etfs() -> None:
    assert parse_etfs("/disk=/srv/d.img") == EtfsSpec("/disk", "/srv/d.img")
    assert parse_etfs("/dev/d0=/srv/d.img,type=blk,begin=1M,size=0x2000") == EtfsSpec(
        "/dev/d0", "/srv/d.img", "blk", 1 << 20, 0x2000)
    assert parse_etfs("/data=/srv/a,b,type=DIR_SUBDIRS") == EtfsSpec(
        "/data", "/srv/a,b", "dir_subdirs")
    assert parse_etfs("/f=/x=y,size=10").hostpath == "/x=y"
    assert parse_etfs("/f=/x,begin=4k").begin == 4096
    assert parse_etfs("/d=/srv/d,type=dir,ro") == EtfsSpec("/d", "/srv/d", "dir", read_only=True)
    assert parse_etfs("/d=/srv/d,ro,type=dir").read_only
    assert not parse_etfs("/d=/srv/d,rw").read_only


@pytest.mark.parametrize("spec, message", [
    ("nokey", "KEY=HOSTPATH"),
    ("rel=/x", "absolute"),
    ("/=/x", "cannot be /"),
    ("/k=", "no host path"),
    ("/k=/x,type=pipe", "type="),
    ("/k=/x,size=lots", "byte count"),
    ("/k=/x,type=dir,size=10", "do not apply"),
    ("/k=/x,type=blk,begin=100", "multiples of 512"),
    ("/k=/x,size=1,size=2", "twice"),
    ("/k=/x,foo=1", r"unknown option 'foo=1' \(known: type=, begin=, size=, ro, rw\)"),
    ("/k=/x,ro=1", "ro takes no value"),
    ("/k=/x,ro,rw", "ro and rw both given"),
])
def test_parse_etfs_rejects(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_etfs(spec)


def test_version() -> None:
    res = run_cli("--version")
    assert (res.returncode, res.stdout, res.stderr) == (0, f"rumpfs {__version__}\n", "")


def test_no_arguments_prints_help() -> None:
    res = run_cli()
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout == build_parser().format_help()
    assert res.stdout.startswith("usage: rumpfs [-h] [--version] COMMAND ...\n")
    assert "rumpfs mount" in res.stdout and "demo" in res.stdout


def test_mount_bogus_option_shows_mounts_usage() -> None:
    res = run_cli("mount", "--bogus", "/tmp")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("usage: rumpfs mount [-h]")
    assert res.stderr.endswith("rumpfs mount: error: unrecognized arguments: --bogus\n")
    res = run_cli("mount")
    assert res.returncode == 2 and res.stderr.startswith("usage: rumpfs mount [-h]")


def test_help_texts() -> None:
    res = run_cli("mount", "--help")
    assert res.returncode == 0
    for word in ("--etfs", "--read-only", "--allow-other", "--debug", "dir_subdirs",
                 "fusermount3 -u", "examples:", "--foreground", "--quiet", "--nonempty",
                 "--owner", "--mode", ",ro]", "nodev"):
        assert word in res.stdout
    res = run_cli("--help")
    assert res.returncode == 0 and "rumpfs mount" in res.stdout


def test_bad_etfs_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["mount", str(tmp_path), "--etfs", "relative=/x"])
    assert ei.value.code == 2
    assert "bad --etfs 'relative=/x'" in capsys.readouterr().err


def test_missing_mountpoint_exits_2(tmp_path: Path) -> None:
    res = run_cli("mount", str(tmp_path / "nope"))
    assert (res.returncode, res.stderr) == (
        2, f"rumpfs: mount point {tmp_path}/nope does not exist "
           f"(create it with: mkdir -p {tmp_path}/nope)\n")
    (tmp_path / "file").write_bytes(b"")
    res = run_cli("mount", str(tmp_path / "file"))
    assert (res.returncode, res.stderr) == (
        2, f"rumpfs: mount point {tmp_path}/file is not a directory\n")


def test_nonempty_mountpoint_refused(tmp_path: Path) -> None:
    (tmp_path / "precious").write_bytes(b"x")
    res = run_cli("mount", str(tmp_path))
    assert (res.returncode, res.stdout, res.stderr) == (
        2, "", f"rumpfs: mount point {tmp_path} is not empty (1 entry would be hidden while "
               "mounted); use --nonempty to mount over it anyway\n")


@pytest.fixture
def host_tree(tmp_path: Path) -> Path:
    (tmp_path / "mp").mkdir()
    (tmp_path / "small.txt").write_bytes(b"0123456789")
    return tmp_path


@pytest.mark.parametrize("etfs, line", [
    ("/x={t}/missing", "--etfs /x={t}/missing: host path {t}/missing: No such file or directory"),
    ("/x={t}/small.txt,begin=11",
     "--etfs /x={t}/small.txt: begin=11 is past the end of {t}/small.txt (10 bytes)"),
    ("/x={t}/small.txt,begin=4,size=7",
     "--etfs /x={t}/small.txt: size=7 from begin=4 runs past the end of {t}/small.txt "
     "(10 bytes; at most size=6 fits)"),
    ("/x={t}/small.txt,type=dir",
     "--etfs /x={t}/small.txt: type=dir needs a host directory; {t}/small.txt is not one"),
    ("/x={t}/mp",
     "--etfs /x={t}/mp: host path {t}/mp is a directory: use type=dir or type=dir_subdirs "
     "to map it"),
])
def test_etfs_errors_name_the_host_side(host_tree: Path, etfs: str, line: str) -> None:
    mp = host_tree / "mp"
    res = run_cli("mount", str(mp), "--etfs", etfs.format(t=host_tree))
    assert (res.returncode, res.stderr) == (2, f"rumpfs: {line.format(t=host_tree)}\n")
    assert not is_mounted(mp)


def test_etfs_unknown_option_is_an_error(host_tree: Path) -> None:
    res = run_cli("mount", str(host_tree / "mp"), "--etfs", f"/x={host_tree}/small.txt,foo=1")
    assert res.returncode == 2
    assert res.stderr.endswith(
        f"rumpfs mount: error: argument --etfs: bad --etfs '/x={host_tree}/small.txt,foo=1': "
        "unknown option 'foo=1' (known: type=, begin=, size=, ro, rw)\n")


def test_allow_other_without_user_allow_other() -> None:
    require_fuse()
    if not ROOT:
        pytest.skip("needs root to run the command as another uid")
    mp = make_mountpoint("rumpfs-cli-user-")
    conf = mp + ".conf"
    try:
        Path(conf).write_text("# user_allow_other\nmount_max = 1000\n")
        os.chown(mp, UNPRIVILEGED, UNPRIVILEGED)
        res = run_as(UNPRIVILEGED, "mount", mp, "--allow-other",
                     env={"RUMPFS_FUSE_CONF": conf})
        assert res == (
            1, f"rumpfs: --allow-other needs a 'user_allow_other' line in {conf} when not "
               "run as root (ask root to add it), or mount without --allow-other\n")
    finally:
        os.unlink(conf)
        remove_mountpoint(mp)


def test_user_allow_other_parsing(tmp_path: Path) -> None:
    from rumpfs.frontends.cli import user_allow_other

    conf = tmp_path / "fuse.conf"
    for text, want in [("user_allow_other\n", True), ("  user_allow_other  # yes\n", True),
                       ("#user_allow_other\n", False), ("mount_max = 5\n", False)]:
        conf.write_text(text)
        assert user_allow_other(str(conf)) is want, text
    assert not user_allow_other(str(tmp_path / "missing"))


# -- mounting ---------------------------------------------------------------------------------


class Servers:
    """Background servers started by a test; teardown unmounts and waits for them."""

    def __init__(self, mp: str) -> None:
        self.mp = mp
        self.pids: list[int] = []

    def mount(self, *extra: str, mp: str | None = None) -> int:
        """``rumpfs mount`` in the background; checks the line it prints; returns the pid."""
        where = mp or self.mp
        res = run_cli("mount", where, *extra)
        assert res.returncode == 0, res.stderr
        m = serving_line(where).fullmatch(res.stderr)
        assert m is not None, res.stderr
        self.pids.append(int(m.group(1)))
        assert is_mounted(where)  # live when the command returns: no waiting
        return self.pids[-1]


@pytest.fixture
def mountpoint() -> Iterator[str]:
    require_fuse()
    mp = make_mountpoint("rumpfs-cli-")
    try:
        yield mp
    finally:
        for _ in range(3):
            if not is_mounted(mp):
                break
            subprocess.run(["fusermount3", "-u", "-z", mp], check=False, timeout=60)
        remove_mountpoint(mp)


@pytest.fixture
def servers(mountpoint: str) -> Iterator[Servers]:
    s = Servers(mountpoint)
    try:
        yield s
    finally:
        for _ in range(3):
            if not is_mounted(mountpoint):
                break
            subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False, timeout=60)
        for pid in s.pids:
            if not gone(pid):
                os.kill(pid, signal.SIGTERM)
            wait_gone(pid)


def test_background_mount_returns_once_live(servers: Servers) -> None:
    mp = servers.mp
    pid = servers.mount()
    Path(mp, "hello").write_text("hi")
    assert os.listdir(mp) == ["hello"]
    subprocess.run(["fusermount3", "-u", mp], check=True, timeout=60)
    wait_gone(pid)
    assert not is_mounted(mp) and os.listdir(mp) == []


def test_background_mount_quiet(servers: Servers) -> None:
    res = run_cli("mount", "-q", servers.mp)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert is_mounted(servers.mp)


def test_sigterm_stops_a_background_server(servers: Servers) -> None:
    pid = servers.mount()
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    assert not is_mounted(servers.mp)


def start_foreground(mp: str, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(rumpfs_cmd("mount", "-f", mp, *extra), env=cmd_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + WAIT
    while not is_mounted(mp):  # bounded polling for the mount to appear
        if proc.poll() is not None:
            pytest.fail(f"rumpfs mount exited {proc.returncode}: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("rumpfs mount did not come up")
        time.sleep(0.02)
    return proc


start_mount = start_foreground  # the name other tests import (test_image.py)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def test_foreground_fusermount_u_exits_0(mountpoint: str) -> None:
    proc = start_foreground(mountpoint)
    Path(mountpoint, "hello").write_text("hi")
    subprocess.run(["fusermount3", "-u", mountpoint], check=True, timeout=60)
    code, err = finish(proc)
    assert code == 0, err
    assert err == (f"rumpfs: serving at {mountpoint} (pid {proc.pid}); stop with: "
                   f"fusermount3 -u {mountpoint}\nrumpfs: unmounted {mountpoint}\n")
    assert not is_mounted(mountpoint)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_foreground_signal_unmounts_and_exits_0(mountpoint: str, sig: signal.Signals) -> None:
    proc = start_foreground(mountpoint, "-q", "--allow-other")
    Path(mountpoint, "f").write_bytes(b"x")
    proc.send_signal(sig)
    code, err = finish(proc)
    assert (code, err) == (0, "")
    assert not is_mounted(mountpoint)


def test_second_mount_on_a_served_directory_is_refused(servers: Servers) -> None:
    mp = servers.mp
    servers.mount()
    Path(mp, "mine").write_text("kept")
    res = run_cli("mount", mp)
    assert (res.returncode, res.stderr) == (
        2, f"rumpfs: {mp} is already a mount point (fuse.rumpfs); unmount it first "
           f"(fusermount3 -u {mp}) or choose another directory\n")
    assert Path(mp, "mine").read_text() == "kept"  # the first server still serves
    res = run_cli("mount", "--nonempty", mp)  # --nonempty is no way around it
    assert res.returncode == 2 and "already a mount point" in res.stderr


def test_stopping_a_stacked_server_leaves_the_other_mount(servers: Servers) -> None:
    """Two servers on one directory: stopping the top one must not unmount the other."""
    import rumpfs
    import rumpfs.fuse

    mp = servers.mp
    servers.mount()
    Path(mp, "first").write_text("first server's file")
    with rumpfs.Kernel() as k:
        k.path("/second").write_text("second")
        server = rumpfs.fuse.FuseServer(k.node_handles(), mp)
        server.start()
        try:
            assert os.listdir(mp) == ["second"]
            subprocess.run(["fusermount3", "-u", mp], check=True, timeout=60)
            assert server.wait(WAIT)
        finally:
            server.stop()
    assert is_mounted(mp)
    assert Path(mp, "first").read_text() == "first server's file"


def test_stale_mount_is_refused_and_named(servers: Servers) -> None:
    mp = servers.mp
    pid = servers.mount()
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    with pytest.raises(OSError) as ei:
        os.statvfs(mp)  # (stat may be answered from the host's attribute cache)
    assert ei.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    res = run_cli("mount", mp)
    assert (res.returncode, res.stderr) == (
        2, f"rumpfs: {mp} is a stale FUSE mount (its server is gone); "
           f"unmount it with: fusermount3 -u {mp}\n")
    subprocess.run(["fusermount3", "-u", mp], check=True, timeout=60)
    servers.mount()  # the advice works


def test_nonempty_flag_mounts_over_files(servers: Servers) -> None:
    mp = servers.mp
    Path(mp, "under").write_text("hidden while mounted")
    servers.mount("--nonempty")
    assert os.listdir(mp) == []
    subprocess.run(["fusermount3", "-u", mp], check=True, timeout=60)
    wait_gone(servers.pids[-1])
    assert Path(mp, "under").read_text() == "hidden while mounted"
    os.unlink(Path(mp, "under"))


def test_read_only_flag(servers: Servers) -> None:
    servers.mount("--read-only")
    with pytest.raises(OSError) as ei:
        os.mkdir(os.path.join(servers.mp, "d"))
    assert ei.value.errno == errno.EROFS


def test_etfs_on_the_command_line(servers: Servers, tmp_path: Path) -> None:
    host_file = tmp_path / "hello.txt"
    host_file.write_bytes(b"hello from the host\n")
    host_dir = tmp_path / "dir"
    (host_dir / "sub").mkdir(parents=True)
    (host_dir / "sub" / "deep.txt").write_bytes(b"deep")
    ro_dir = tmp_path / "ro"
    ro_dir.mkdir()
    (ro_dir / "data.csv").write_bytes(b"a,b\n")
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(range(256)) * 16)  # 4096 bytes
    servers.mount(
        "--etfs", f"/etc/hello.txt={host_file}",
        "--etfs", f"/data={host_dir},type=dir_subdirs",
        "--etfs", f"/window={image},begin=10,size=20",
        "--etfs", f"/ro={ro_dir},type=dir_subdirs,ro",
    )
    mp = Path(servers.mp)
    assert (mp / "etc" / "hello.txt").read_bytes() == b"hello from the host\n"
    assert (mp / "data" / "sub" / "deep.txt").read_bytes() == b"deep"
    (mp / "data" / "new.txt").write_bytes(b"made through FUSE")
    assert (host_dir / "new.txt").read_bytes() == b"made through FUSE"
    assert (mp / "window").read_bytes() == (bytes(range(256)) * 16)[10:30]
    with open(mp / "etc" / "hello.txt", "r+b") as f:
        f.write(b"HELLO")
    assert host_file.read_bytes() == b"HELLO from the host\n"
    assert (mp / "ro" / "data.csv").read_bytes() == b"a,b\n"
    for change in (lambda: (mp / "ro" / "data.csv").write_bytes(b"x"),
                   lambda: (mp / "ro" / "new").write_bytes(b"x"),
                   lambda: (mp / "ro" / "data.csv").unlink()):
        with pytest.raises(OSError) as ei:
            change()
        assert ei.value.errno == errno.EROFS
    assert sorted(os.listdir(ro_dir)) == ["data.csv"]


def test_device_keys_are_regular_files_on_the_host(servers: Servers, tmp_path: Path) -> None:
    """FUSE mounts are nodev: blk/chr keys show as regular files of the window's
    size, and mkfs and fsck work on the window through them."""
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(8 << 20))
    servers.mount("--etfs", f"/dev/disk0={image},type=blk,begin=1M,size=4M",
                  "--etfs", f"/dev/rdisk0={image},type=chr,begin=1M,size=4M")
    blk = os.path.join(servers.mp, "dev", "disk0")
    chr_ = os.path.join(servers.mp, "dev", "rdisk0")
    for dev in (blk, chr_):
        st = os.stat(dev)
        assert stat.S_ISREG(st.st_mode) and st.st_size == 4 << 20
        assert stat.S_IMODE(st.st_mode) == 0o644
    with os.scandir(os.path.join(servers.mp, "dev")) as it:
        assert {(e.name, e.is_file()) for e in it} == {("disk0", True), ("rdisk0", True)}
    subprocess.run(["mkfs.ext4", "-q", "-F", blk], check=True, timeout=120,
                   capture_output=True)
    subprocess.run(["e2fsck", "-fn", chr_], check=True, timeout=120, capture_output=True)
    data = image.read_bytes()
    assert data[: 1 << 20] == bytes(1 << 20) and data[5 << 20:] == bytes(3 << 20)
    assert data[(1 << 20) + 1080:(1 << 20) + 1082] == b"\x53\xef"  # ext2's magic, in the window


def test_relative_host_paths_survive_backgrounding(servers: Servers, tmp_path: Path) -> None:
    """The server runs in / once in the background: relative host paths are
    taken relative to where the command was run."""
    (tmp_path / "notes.txt").write_text("relative")
    res = run_cli("mount", servers.mp, "--etfs", "/notes.txt=notes.txt", cwd=str(tmp_path))
    m = serving_line(servers.mp).fullmatch(res.stderr)
    assert res.returncode == 0 and m is not None, res.stderr
    servers.pids.append(int(m.group(1)))
    assert Path(servers.mp, "notes.txt").read_text() == "relative"
    Path(servers.mp, "notes.txt").write_text("changed through the mount")
    assert (tmp_path / "notes.txt").read_text() == "changed through the mount"


def test_window_as_reg_works_with_dd(servers: Servers, tmp_path: Path) -> None:
    """A reg window: dd writes it, and nothing outside it."""
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(8192))
    servers.mount("--etfs", f"/disk0={image},begin=4096,size=2048")
    target = os.path.join(servers.mp, "disk0")
    assert os.stat(target).st_size == 2048
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=512", "count=4", "conv=notrunc",
                    "status=none"], check=True, timeout=60)
    res = subprocess.run(["dd", "if=/dev/urandom", f"of={target}", "bs=512", "count=5",
                          "conv=notrunc", "status=none"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode != 0 and "No space left on device" in res.stderr
    data = image.read_bytes()
    assert data[:4096] == bytes(4096) and data[6144:] == bytes(2048)


def _df(mp: str) -> tuple[int, int]:
    """(used, available) 1K blocks of ``df`` on ``mp``."""
    out = subprocess.run(["df", "-k", "--output=used,avail", mp], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split("\n")[1].split()
    return int(out[0]), int(out[1])


def test_df_shows_inodes_and_capacity(servers: Servers) -> None:
    servers.mount()
    out = subprocess.run(["df", "--output=iused", servers.mp], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    before = int(out[1])
    os.mkdir(os.path.join(servers.mp, "d"))
    out = subprocess.run(["df", "--output=iused", servers.mp], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    assert int(out[1]) == before + 1
    assert _df(servers.mp)[1] > 0


def test_df_shows_used_space(servers: Servers) -> None:
    servers.mount()
    used0, avail0 = _df(servers.mp)
    Path(servers.mp, "big").write_bytes(b"x" * (4 << 20))
    used1, avail1 = _df(servers.mp)
    assert used1 - used0 >= 4096 and avail0 - avail1 >= 4096  # KiB: the 4 MiB written
    os.unlink(Path(servers.mp, "big"))
    assert _df(servers.mp)[0] == used0


def test_root_owner_and_mode(servers: Servers) -> None:
    if not ROOT:
        pytest.skip("needs root to run a host program as another uid")
    servers.mount("--owner", f"{UNPRIVILEGED}:{UNPRIVILEGED + 1}", "--mode", "0750",
                  "--allow-other")
    st = os.stat(servers.mp)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
        UNPRIVILEGED, UNPRIVILEGED + 1, 0o750)
    subprocess.run(["sh", "-c", f"echo mine > {servers.mp}/file"], check=True, timeout=60,
                   user=UNPRIVILEGED, group=UNPRIVILEGED, extra_groups=[])
    st = os.stat(os.path.join(servers.mp, "file"))
    assert (st.st_uid, st.st_gid) == (UNPRIVILEGED, UNPRIVILEGED)


def test_default_owner_is_the_mounting_user(servers: Servers) -> None:
    servers.mount()
    st = os.stat(servers.mp)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (os.getuid(), os.getgid(), 0o755)


def test_non_root_mount_needs_dev_fuse_access() -> None:
    """Where /dev/fuse is not open to everyone (a container's crw-------),
    the command says so in one line (fusermount3 opens it as the user).
    Run in a private mount namespace with such a /dev/fuse."""
    require_fuse()
    if not ROOT:
        pytest.skip("needs root to set up a user and a mount namespace")
    mp = make_mountpoint("rumpfs-cli-user-")
    dev = tempfile.mkdtemp(prefix="rumpfs-cli-dev-", dir="/tmp")
    try:
        os.chown(mp, UNPRIVILEGED, UNPRIVILEGED)
        assert run_as(UNPRIVILEGED, "mount", mp, private_fuse=dev, fuse_mode=0o600) == (
            1, "rumpfs: cannot open /dev/fuse: Permission denied (it is crw------- here; "
               "FUSE needs read and write access to it)\n")
    finally:
        os.rmdir(dev)
        remove_mountpoint(mp)


def test_non_root_mount() -> None:
    """A non-root user mounts on their own directory and owns the kernel's root
    there. Run in a private mount namespace whose /dev/fuse is 0666 (as on a
    desktop), so it runs whatever the host's /dev/fuse allows."""
    require_fuse()
    if not ROOT:
        pytest.skip("needs root to set up a user and a mount namespace")
    mp = make_mountpoint("rumpfs-cli-user-")
    dev = tempfile.mkdtemp(prefix="rumpfs-cli-dev-", dir="/tmp")
    os.chown(mp, UNPRIVILEGED, UNPRIVILEGED)

    def check() -> None:  # in the child, as the user, inside its namespace
        top = os.stat(mp)
        with open(os.path.join(mp, "mine"), "w") as f:
            f.write("x")
        st = os.stat(os.path.join(mp, "mine"))
        print(f"root {top.st_uid}:{top.st_gid}:{stat.S_IMODE(top.st_mode):o} "
              f"file {st.st_uid}:{st.st_gid}:{stat.S_IMODE(st.st_mode):o}", file=sys.stderr)
        done = subprocess.run(["fusermount3", "-u", mp], capture_output=True, text=True,
                              timeout=60, check=False)
        print(f"fusermount3 -u: {done.returncode} {done.stderr.strip()}", file=sys.stderr)

    try:
        code, err = run_as(UNPRIVILEGED, "mount", mp, private_fuse=dev, then=check)
        assert code == 0, err
        lines = err.splitlines(keepends=True)
        m = serving_line(mp).fullmatch(lines[0])
        assert m is not None, err
        u = UNPRIVILEGED
        assert lines[1:] == [f"root {u}:{u}:755 file {u}:{u}:644\n", "fusermount3 -u: 0 \n"]
        wait_gone(int(m.group(1)))  # unmounted: the server exits, its namespace goes
    finally:
        os.rmdir(dev)
        remove_mountpoint(mp)


# -- the demo ---------------------------------------------------------------------------------


def test_demo_runs() -> None:
    require_fuse()
    res = run_cli("demo")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "Welcome to rumpfs" in out
    assert "latest -> notes.txt" in out
    assert "appended in-process" in out
    assert "uid 1000 is alice inside this kernel" in out
    # the etfs host file, changed from both sides
    assert out.count("appended by a shell, through the mount\n") == 2
    assert out.count("appended on the host, to the host file\n") == 2
    assert "Permission denied" in out.split("may not write root's 0644 /etc/motd")[1]
    assert "unmounted" in out


def test_demo_without_fuse_lists_in_process(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from rumpfs.frontends import demo

    monkeypatch.setattr(demo, "_fuse_usable", lambda: "pretend /dev/fuse is missing")
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "no FUSE mount: pretend /dev/fuse is missing" in out
    assert "latest -> notes.txt" in out
    assert "Welcome to rumpfs" in out
    assert "a host file, mapped into the kernel with etfs" in out
    assert "alice (uid 1000) writing /etc/motd in-process: Permission denied" in out
    # the hard link shows as two names with one inode number
    inos = {line.split("ino=")[1].split()[0] for line in out.splitlines()
            if line.rstrip().endswith(("notes.txt", "notes.bak")) and " -> " not in line}
    assert len(inos) == 1
