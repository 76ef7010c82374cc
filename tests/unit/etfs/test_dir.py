"""etfs DIR and DIR_SUBDIRS mappings, and the jail."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from rumpfs import EtfsType, Kernel


@pytest.fixture
def tree(host: Path) -> Path:
    m = host / "m"
    (m / "sub" / "deep").mkdir(parents=True)
    (m / "f").write_bytes(b"file")
    (m / "sub" / "g").write_bytes(b"gee")
    (m / "sub" / "deep" / "h").write_bytes(b"aitch")
    os.symlink("sub/g", m / "rel")
    return m


class TestDir:
    def test_only_files(self, k: Kernel, tree: Path) -> None:
        k.etfs_register("/d", tree, EtfsType.DIR)
        assert sorted(k.listdir("/d")) == ["f", "rel"]
        for path in ("/d/sub", "/d/sub/g"):
            with pytest.raises(OSError) as e:
                k.stat(path)
            assert e.value.errno == errno.ENOENT and e.value.filename == path
        with k.open_file("/d/f", "rb") as fh:
            assert fh.read() == b"file"

    def test_create_write_unlink_on_host(self, k: Kernel, tree: Path) -> None:
        k.etfs_register("/d", tree, EtfsType.DIR)
        fd = k.open("/d/new", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640)
        k.write(fd, b"written")
        k.close(fd)
        assert (tree / "new").read_bytes() == b"written"
        assert stat.S_IMODE(os.stat(tree / "new").st_mode) == 0o640
        k.unlink("/d/new")
        assert not (tree / "new").exists()

    def test_no_mkdir(self, k: Kernel, tree: Path) -> None:
        k.etfs_register("/d", tree, EtfsType.DIR)
        with pytest.raises(OSError) as e:
            k.mkdir("/d/x")
        assert e.value.errno == errno.EPERM
        assert not (tree / "x").exists()


class TestDirSubdirs:
    def test_every_level(self, k: Kernel, tree: Path) -> None:
        k.etfs_register("/d", tree, EtfsType.DIR_SUBDIRS)
        assert sorted(k.listdir("/d")) == ["f", "rel", "sub"]
        assert sorted(k.listdir("/d/sub")) == ["deep", "g"]
        with k.open_file("/d/sub/deep/h", "rb") as fh:
            assert fh.read() == b"aitch"
        assert [p for p, _, _ in k.walk("/d")] == ["/d", "/d/sub", "/d/sub/deep"]

    def test_stat_shows_host(self, k: Kernel, tree: Path) -> None:
        os.chmod(tree / "sub" / "g", 0o604)
        os.utime(tree / "sub" / "g", ns=(3_000_000_001, 4_000_000_002))
        k.etfs_register("/d", tree, EtfsType.DIR_SUBDIRS)
        s, hs = k.stat("/d/sub/g"), os.stat(tree / "sub" / "g")
        assert s.st_mode == hs.st_mode and s.st_size == 3 and s.st_ino == hs.st_ino
        assert (s.st_atime_ns, s.st_mtime_ns) == (3_000_000_001, 4_000_000_002)
        assert (s.st_uid, s.st_gid, s.st_nlink) == (hs.st_uid, hs.st_gid, hs.st_nlink)
        assert stat.S_ISDIR(k.stat("/d/sub").st_mode)
        assert stat.S_ISLNK(k.lstat("/d/rel").st_mode)
        assert k.stat("/d/sub").st_dev == k.stat("/d").st_dev != k.stat("/").st_dev

    def test_changes_act_on_host(self, k: Kernel, tree: Path) -> None:
        k.etfs_register("/d", tree, EtfsType.DIR_SUBDIRS)
        k.mkdir("/d/sub/n", 0o750)
        assert stat.S_IMODE(os.stat(tree / "sub" / "n").st_mode) == 0o750
        with k.open_file("/d/sub/n/x", "w") as fh:
            fh.write("text")
        assert (tree / "sub" / "n" / "x").read_text() == "text"
        k.rename("/d/sub/n/x", "/d/y")
        assert (tree / "y").read_text() == "text"
        k.rename("/d/sub/n", "/d/n2")
        assert (tree / "n2").is_dir()
        k.chmod("/d/y", 0o611)
        assert stat.S_IMODE(os.stat(tree / "y").st_mode) == 0o611
        k.utime("/d/y", ns=(7_000_000_000, 8_000_000_000))
        assert os.stat(tree / "y").st_mtime_ns == 8_000_000_000
        k.truncate("/d/y", 2)
        assert (tree / "y").read_bytes() == b"te"
        k.symlink("y", "/d/ly")
        assert os.readlink(tree / "ly") == "y"
        k.link("/d/y", "/d/hard")
        assert os.stat(tree / "hard").st_ino == os.stat(tree / "y").st_ino
        k.unlink("/d/hard")
        k.unlink("/d/y")
        k.rmdir("/d/n2")
        assert not (tree / "y").exists() and not (tree / "n2").exists()
        with pytest.raises(OSError) as e:
            k.rmdir("/d/sub")
        assert e.value.errno == errno.ENOTEMPTY

    def test_rename_replaces(self, k: Kernel, tree: Path) -> None:
        k.etfs_register("/d", tree, EtfsType.DIR_SUBDIRS)
        k.rename("/d/f", "/d/sub/g")
        assert (tree / "sub" / "g").read_bytes() == b"file"
        with pytest.raises(OSError) as e:
            k.rename("/d/sub", "/d/sub/deep/x")
        assert e.value.errno == errno.EINVAL

    def test_stable_vnodes_and_cwd(self, k: Kernel, tree: Path) -> None:
        k.etfs_register("/d", tree, EtfsType.DIR_SUBDIRS)
        a = k.stat("/d/sub/g").st_ino
        k.rename("/d/sub", "/d/moved")
        assert k.stat("/d/moved/g").st_ino == a
        k.chdir("/d/moved/deep")
        assert k.getcwd() == "/d/moved/deep"
        assert k.listdir(".") == ["h"]
        k.chdir("../..")
        assert k.getcwd() == "/d"
        k.chdir("..")
        assert k.getcwd() == "/"

    def test_unlinked_open_file_stays_readable(self, k: Kernel, tree: Path) -> None:
        k.etfs_register("/d", tree, EtfsType.DIR_SUBDIRS)
        fd = k.open("/d/f", os.O_RDONLY)
        k.unlink("/d/f")
        assert k.read(fd, 10) == b"file"
        k.close(fd)

    def test_no_device_nodes_on_host(self, k: Kernel, tree: Path) -> None:
        k.etfs_register("/d", tree, EtfsType.DIR_SUBDIRS)
        with pytest.raises(OSError) as e:
            k.mknod("/d/blk", stat.S_IFBLK | 0o600, os.makedev(8, 0))
        assert e.value.errno == errno.EPERM
        assert not (tree / "blk").exists()

    def test_host_symlink_resolved_in_kernel(self, k: Kernel, tree: Path) -> None:
        k.etfs_register("/d", tree, EtfsType.DIR_SUBDIRS)
        assert k.readlink("/d/rel") == "sub/g"
        with k.open_file("/d/rel", "rb") as fh:
            assert fh.read() == b"gee"
        os.symlink("/etc/hostname", tree / "abs")
        k.mkdir("/etc")
        with k.open_file("/etc/hostname", "w") as fh:
            fh.write("kernel")
        with k.open_file("/d/abs") as fh:
            assert fh.read() == "kernel"


class TestJail:
    @pytest.fixture
    def jail(self, host: Path) -> tuple[Path, Path]:
        secret = host / "secret"
        secret.write_bytes(b"SECRET")
        m = host / "m"
        (m / "s").mkdir(parents=True)
        os.symlink("../secret", m / "up")
        os.symlink(str(secret), m / "abs")
        os.symlink("../../secret", m / "s" / "up2")
        os.symlink(str(host), m / "hostdir")
        os.symlink("..", m / "dotdot")
        return m, secret

    def _never(self, k: Kernel, secret: Path, path: str) -> None:
        for op in (lambda: k.open(path, os.O_RDONLY), lambda: k.open(path, os.O_RDWR),
                   lambda: k.listdir(path), lambda: k.chmod(path, 0o777),
                   lambda: k.truncate(path, 0), lambda: k.unlink(path + "/x")):
            try:
                fd = op()
            except OSError:
                continue
            if isinstance(fd, int):
                try:
                    data = k.read(fd, 100)
                except OSError:
                    data = b""
                finally:
                    k.close(fd)
                assert data != b"SECRET"
            else:
                assert fd is None or "secret" not in fd

    @pytest.mark.parametrize("t", [EtfsType.DIR, EtfsType.DIR_SUBDIRS])
    def test_never_reaches_secret(self, k: Kernel, jail: tuple[Path, Path],
                                  t: EtfsType) -> None:
        m, secret = jail
        mtime = os.stat(secret).st_mtime_ns
        k.etfs_register("/d", m, t)
        for path in ("/d/up", "/d/abs", "/d/s/up2", "/d/hostdir", "/d/hostdir/secret",
                     "/d/dotdot", "/d/dotdot/secret", "/d/../secret", "/d/s/../../secret",
                     "/d/hostdir/m/up"):
            self._never(k, secret, path)
        assert "secret" not in k.listdir("/")
        subs = ["/d/.."] + (["/d/s/../.."] if t is EtfsType.DIR_SUBDIRS else [])
        for sub in subs:
            assert k.stat(sub).st_ino == k.stat("/").st_ino
        if t is EtfsType.DIR_SUBDIRS:
            # A symlink swapped in after registration for a directory we know.
            (m / "s" / "up2").unlink()
            k.chdir("/d/s")
            os.rename(m / "s", m / "s.old")
            os.symlink(str(secret.parent), m / "s")
            self._never(k, secret, "/d/s/secret")
            self._never(k, secret, "secret")
            k.chdir("/")
        assert secret.read_bytes() == b"SECRET"
        assert os.stat(secret).st_mtime_ns == mtime
        assert stat.S_IMODE(os.stat(secret).st_mode) != 0o777

    def test_swapped_file_symlink(self, k: Kernel, jail: tuple[Path, Path]) -> None:
        m, secret = jail
        (m / "victim").write_bytes(b"ok")
        k.etfs_register("/d", m, EtfsType.DIR_SUBDIRS)
        assert k.stat("/d/victim").st_size == 2
        (m / "victim").unlink()
        os.symlink(str(secret), m / "victim")
        self._never(k, secret, "/d/victim")
        k.utime("/d/victim", ns=(1, 1), follow_symlinks=False)   # the link itself
        assert os.lstat(m / "victim").st_mtime_ns == 1
        assert secret.read_bytes() == b"SECRET"
        assert os.stat(secret).st_mtime_ns != 1

    def test_create_through_symlink_does_not_escape(self, k: Kernel,
                                                    jail: tuple[Path, Path]) -> None:
        m, secret = jail
        os.symlink(str(secret.parent / "planted"), m / "dangling")
        k.etfs_register("/d", m, EtfsType.DIR_SUBDIRS)
        try:
            k.close(k.open("/d/dangling", os.O_CREAT | os.O_WRONLY))
        except OSError:
            pass
        assert not (secret.parent / "planted").exists()

    def test_very_deep(self, k: Kernel, jail: tuple[Path, Path]) -> None:
        m, secret = jail
        depth = 120
        p = m
        for _ in range(depth):
            p = p / "d"
        p.mkdir(parents=True)
        (p / "leaf").write_bytes(b"leaf")
        os.symlink("../" * (depth + 1) + "secret", p / "esc")
        k.etfs_register("/j", m, EtfsType.DIR_SUBDIRS)
        k.chdir("/j")
        for _ in range(depth):
            k.chdir("d")
        with k.open_file("leaf", "rb") as fh:
            assert fh.read() == b"leaf"
        self._never(k, secret, "esc")
        self._never(k, secret, "../" * (depth + 2) + "secret")
        up = "/".join([".."] * (depth + 1))
        assert k.stat(up).st_ino == k.stat("/").st_ino
        k.chdir("/")
        assert secret.read_bytes() == b"SECRET"
