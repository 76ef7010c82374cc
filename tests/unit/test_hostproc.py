"""The host-os reference process used by the contract suite."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import stat
import tempfile
from collections.abc import Iterator

import pytest
from tests.support.hostproc import HostProcess


@pytest.fixture
def root() -> Iterator[str]:
    path = tempfile.mkdtemp(dir="/dev/shm")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def test_chroot_makes_absolute_paths_jail_relative(root: str) -> None:
    with HostProcess(root) as hp:
        hp.mkdir("/d")
        fd = hp.open("/d/f", os.O_CREAT | os.O_RDWR, 0o666)
        assert hp.write(fd, b"hello") == 5
        assert hp.pread(fd, 5, 0) == b"hello"
        hp.close(fd)
        assert hp.listdir("/") == ["d"]
        assert hp.getcwd() == "/"
    with open(os.path.join(root, "d", "f"), "rb") as f:
        assert f.read() == b"hello"
    # umask 0o022 by default
    assert stat.S_IMODE(os.stat(os.path.join(root, "d", "f")).st_mode) == 0o644


def test_oserror_is_reraised_with_errno_and_filename(root: str) -> None:
    with HostProcess(root) as hp:
        with pytest.raises(FileNotFoundError) as ei:
            hp.stat("/missing")
        assert ei.value.errno == errno.ENOENT
        assert ei.value.filename == "/missing"
        assert ei.value.strerror == os.strerror(errno.ENOENT)
        hp.mkdir("/a")
        hp.mkdir("/b")
        hp.mkdir("/b/c")
        with pytest.raises(OSError) as ei2:
            hp.rename("/a", "/b")
        assert ei2.value.errno == errno.ENOTEMPTY
        assert (ei2.value.filename, ei2.value.filename2) == ("/a", "/b")
        with pytest.raises(ValueError):
            hp.stat("/a\0b")


def test_credentials_are_dropped(root: str) -> None:
    os.mkdir(os.path.join(root, "private"), 0o700)
    with HostProcess(root, uid=1000, gid=1000, umask=0o077) as hp:
        with pytest.raises(PermissionError) as ei:
            hp.listdir("/private")
        assert ei.value.errno == errno.EACCES
        assert hp.call("getuid") == 1000
        assert hp.call("getgid") == 1000
        assert hp.call("getgroups") == []
    with HostProcess(root, uid=1000, gid=1000, groups=(100, 1000)) as hp:
        assert sorted(hp.call("getgroups")) == [100, 1000]


def test_scandir_records(root: str) -> None:
    with HostProcess(root) as hp:
        hp.mkdir("/d")
        hp.close(hp.open("/f", os.O_CREAT | os.O_WRONLY, 0o600))
        hp.symlink("d", "/ld")
        hp.symlink("nowhere", "/dangling")
        with hp.scandir("/") as it:
            entries = {e.name: e for e in it}
        assert set(entries) == {"d", "f", "ld", "dangling"}
        assert entries["d"].is_dir() and not entries["d"].is_file()
        assert entries["f"].is_file() and entries["f"].path == "/f"
        assert entries["ld"].is_symlink() and entries["ld"].is_dir()
        assert not entries["ld"].is_dir(follow_symlinks=False)
        assert stat.S_ISDIR(entries["ld"].stat().st_mode)
        assert stat.S_ISLNK(entries["ld"].stat(follow_symlinks=False).st_mode)
        with pytest.raises(FileNotFoundError):
            entries["dangling"].stat()
        pickle.dumps(entries["f"])


def test_child_is_reaped_and_closed_proxy_refuses(root: str) -> None:
    hp = HostProcess(root)
    pid = hp.child_pid
    hp.close_proxy()
    hp.close_proxy()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ValueError):
        hp.stat("/")
    with pytest.raises(AttributeError):
        HostProcess.__getattr__(hp, "no_such_os_function")


def test_setup_failure_is_raised(root: str) -> None:
    with pytest.raises(FileNotFoundError):
        HostProcess(os.path.join(root, "missing"))
