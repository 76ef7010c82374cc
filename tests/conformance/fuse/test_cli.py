"""The ``rumpfs`` command: argument handling, mount/unmount, signals, etfs on the command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rumpfs.frontends.cli import EtfsSpec, build_parser, main, parse_etfs
from tests.conformance.fuse.conftest import (
    ROOT,
    is_mounted,
    make_mountpoint,
    remove_mountpoint,
    require_fuse,
)

SRC = str(Path(__file__).resolve().parents[3] / "src")
MOUNT_WAIT = 30.0


def rumpfs_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rumpfs", *args]


def cmd_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=SRC + (os.pathsep + path if path else ""))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(rumpfs_cmd(*args), capture_output=True, text=True, timeout=120,
                          env=cmd_env(), check=False)


# -- argument parsing (no FUSE needed) --------------------------------------------------------


def test_parse_etfs() -> None:
    assert parse_etfs("/disk=/srv/d.img") == EtfsSpec("/disk", "/srv/d.img")
    assert parse_etfs("/dev/d0=/srv/d.img,type=blk,begin=1M,size=0x2000") == EtfsSpec(
        "/dev/d0", "/srv/d.img", "blk", 1 << 20, 0x2000)
    assert parse_etfs("/data=/srv/a,b,type=DIR_SUBDIRS") == EtfsSpec(
        "/data", "/srv/a,b", "dir_subdirs")
    assert parse_etfs("/f=/x=y,size=10").hostpath == "/x=y"
    assert parse_etfs("/f=/x,begin=4k").begin == 4096


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
])
def test_parse_etfs_rejects(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_etfs(spec)


def test_bad_etfs_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["mount", str(tmp_path), "--etfs", "relative=/x"])
    assert ei.value.code == 2
    assert "bad --etfs 'relative=/x'" in capsys.readouterr().err


def test_missing_mountpoint_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["mount", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "file").write_bytes(b"")
    assert main(["mount", str(tmp_path / "file")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_no_arguments_exit_2() -> None:
    with pytest.raises(SystemExit) as ei:
        main([])
    assert ei.value.code == 2
    with pytest.raises(SystemExit) as ei:
        main(["mount"])
    assert ei.value.code == 2


def test_help_texts() -> None:
    top = build_parser().format_help()
    assert "mount" in top and "demo" in top and "examples:" in top
    res = run_cli("mount", "--help")
    assert res.returncode == 0
    for word in ("--etfs", "--read-only", "--allow-other", "--debug", "dir_subdirs",
                 "fusermount3 -u", "examples:"):
        assert word in res.stdout
    res = run_cli("--help")
    assert res.returncode == 0 and "rumpfs mount" in res.stdout


def test_etfs_missing_hostpath_exits_2_unmounted(tmp_path: Path) -> None:
    mp = tmp_path / "mp"
    mp.mkdir()
    res = run_cli("mount", str(mp), "--etfs", f"/x={tmp_path / 'missing'}")
    assert res.returncode == 2, res.stderr
    assert "rumpfs: --etfs" in res.stderr
    assert not is_mounted(mp)


# -- mounting ---------------------------------------------------------------------------------


@pytest.fixture
def mountpoint() -> Iterator[str]:
    require_fuse()
    mp = make_mountpoint("rumpfs-cli-")
    try:
        yield mp
    finally:
        if is_mounted(mp):
            subprocess.run(["fusermount3", "-u", "-z", mp], check=False, timeout=60)
        remove_mountpoint(mp)


def start_mount(mp: str, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(rumpfs_cmd("mount", mp, *extra), env=cmd_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + MOUNT_WAIT
    while not is_mounted(mp):  # bounded polling for the mount to appear
        if proc.poll() is not None:
            pytest.fail(f"rumpfs mount exited {proc.returncode}: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("rumpfs mount did not come up")
        time.sleep(0.02)
    return proc


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def test_mount_then_fusermount_u_exits_0(mountpoint: str) -> None:
    proc = start_mount(mountpoint)
    Path(mountpoint, "hello").write_text("hi")
    assert os.listdir(mountpoint) == ["hello"]
    subprocess.run(["fusermount3", "-u", mountpoint], check=True, timeout=60)
    code, err = finish(proc)
    assert code == 0, err
    assert not is_mounted(mountpoint)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_unmounts_and_exits_0(mountpoint: str, sig: signal.Signals) -> None:
    proc = start_mount(mountpoint, "--allow-other")
    Path(mountpoint, "f").write_bytes(b"x")
    proc.send_signal(sig)
    code, err = finish(proc)
    assert code == 0, err
    assert not is_mounted(mountpoint)


def test_read_only_flag(mountpoint: str) -> None:
    proc = start_mount(mountpoint, "--read-only")
    try:
        with pytest.raises(OSError) as ei:
            os.mkdir(os.path.join(mountpoint, "d"))
        assert ei.value.errno == 30  # EROFS
    finally:
        proc.send_signal(signal.SIGTERM)
        assert finish(proc)[0] == 0


def _etfs_works() -> bool:
    import rumpfs

    with rumpfs.Kernel() as k:
        try:
            k.etfs_register("/probe", "/dev/null", rumpfs.EtfsType.CHR)
        except (NotImplementedError, AttributeError):
            return False
        except OSError:
            return True
    return True


def test_etfs_on_the_command_line(mountpoint: str, tmp_path: Path) -> None:
    if not _etfs_works():
        pytest.skip("etfs is not implemented yet")
    host_file = tmp_path / "hello.txt"
    host_file.write_bytes(b"hello from the host\n")
    host_dir = tmp_path / "dir"
    (host_dir / "sub").mkdir(parents=True)
    (host_dir / "sub" / "deep.txt").write_bytes(b"deep")
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(range(256)) * 16)  # 4096 bytes
    if not ROOT:
        os.chmod(tmp_path, 0o755)
    proc = start_mount(
        mountpoint,
        "--etfs", f"/etc/hello.txt={host_file}",
        "--etfs", f"/data={host_dir},type=dir_subdirs",
        "--etfs", f"/dev/disk0={image},type=blk,begin=512,size=1024",
        "--etfs", f"/window={image},begin=10,size=20",
    )
    try:
        mp = Path(mountpoint)
        assert (mp / "etc" / "hello.txt").read_bytes() == b"hello from the host\n"
        assert (mp / "data" / "sub" / "deep.txt").read_bytes() == b"deep"
        (mp / "data" / "new.txt").write_bytes(b"made through FUSE")
        assert (host_dir / "new.txt").read_bytes() == b"made through FUSE"
        st = os.stat(mp / "dev" / "disk0")
        assert st.st_size == 1024 and (st.st_mode & 0o170000) == 0o060000
        assert (mp / "window").read_bytes() == (bytes(range(256)) * 16)[10:30]
        with open(mp / "etc" / "hello.txt", "r+b") as f:
            f.write(b"HELLO")
        assert host_file.read_bytes() == b"HELLO from the host\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        code, err = finish(proc)
    assert code == 0, err


def test_demo_runs() -> None:
    require_fuse()
    res = run_cli("demo")
    assert res.returncode == 0, res.stderr
    assert "Welcome to rumpfs" in res.stdout
    assert "latest -> notes.txt" in res.stdout
    assert "appended in-process" in res.stdout
    assert "unmounted" in res.stdout


def test_demo_without_fuse_lists_in_process(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from rumpfs.frontends import cli

    monkeypatch.setattr(cli, "_fuse_usable", lambda: "pretend /dev/fuse is missing")
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "no FUSE mount: pretend /dev/fuse is missing" in out
    assert "latest -> notes.txt" in out
    assert "Welcome to rumpfs" in out
    # the hard link shows as two names with one inode number
    inos = {line.split("ino=")[1].split()[0] for line in out.splitlines()
            if line.rstrip().endswith(("notes.txt", "notes.bak")) and " -> " not in line}
    assert len(inos) == 1
