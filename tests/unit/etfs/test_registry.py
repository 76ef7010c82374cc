"""etfs registration rules: every row of docs/api.md's table, keys, listing, EBUSY, remove."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from rumpfs import EtfsType, Kernel
from rumpfs.rumpuser.memhost import MemHost


def _err(exc: pytest.ExceptionInfo[OSError]) -> int | None:
    return exc.value.errno


@pytest.fixture
def f(host: Path) -> Path:
    p = host / "file"
    p.write_bytes(bytes(range(256)) * 8)       # 2048 bytes
    return p


@pytest.fixture
def d(host: Path) -> Path:
    p = host / "dir"
    p.mkdir()
    (p / "a").write_bytes(b"a")
    return p


class TestTable:
    @pytest.mark.parametrize("key", ["rel", "x/y", "", "./x"])
    def test_key_not_absolute(self, k: Kernel, f: Path, key: str) -> None:
        with pytest.raises(OSError) as e:
            k.etfs_register(key, f)
        assert _err(e) == errno.EINVAL
        assert e.value.filename == key

    @pytest.mark.parametrize("key", ["/", "//", "/./", "/a/.."])
    def test_key_root(self, k: Kernel, f: Path, key: str) -> None:
        with pytest.raises(OSError) as e:
            k.etfs_register(key, f)
        assert _err(e) == errno.EINVAL

    def test_already_registered(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/x", f)
        with pytest.raises(OSError) as e:
            k.etfs_register("/x", f)
        assert _err(e) == errno.EEXIST and e.value.filename == "/x"
        with pytest.raises(OSError) as e:
            k.etfs_register("//x/", f)
        assert _err(e) == errno.EEXIST

    @pytest.mark.parametrize("make", ["file", "dir", "symlink"])
    def test_already_a_name(self, k: Kernel, f: Path, make: str) -> None:
        if make == "file":
            k.close(k.open("/n", os.O_CREAT | os.O_WRONLY))
        elif make == "dir":
            k.mkdir("/n")
        else:
            k.symlink("/nowhere", "/n")
        with pytest.raises(OSError) as e:
            k.etfs_register("/n", f)
        assert _err(e) == errno.EEXIST

    def test_dir_key_above_existing(self, k: Kernel, f: Path, d: Path) -> None:
        k.etfs_register("/m/sub/x", f)
        with pytest.raises(OSError) as e:
            k.etfs_register("/m/sub", d, EtfsType.DIR)
        assert _err(e) == errno.EEXIST
        with pytest.raises(OSError) as e:
            k.etfs_register("/m", d, EtfsType.DIR_SUBDIRS)
        assert _err(e) == errno.EEXIST

    def test_dir_key_below_existing_dir_key(self, k: Kernel, f: Path, d: Path) -> None:
        k.etfs_register("/data", d, EtfsType.DIR_SUBDIRS)
        for key, t in [("/data/x", EtfsType.REG), ("/data/a/b", EtfsType.DIR),
                       ("/data//y", EtfsType.BLK)]:
            with pytest.raises(OSError) as e:
                k.etfs_register(key, f if t is not EtfsType.DIR else d, t)
            assert _err(e) == errno.EEXIST, key

    def test_component_boundary_not_string_prefix(self, k: Kernel, f: Path, d: Path) -> None:
        # NetBSD's strncmp rule made DIR /data block /database; ours is by component.
        k.etfs_register("/data", d, EtfsType.DIR)
        k.etfs_register("/database", f)
        k.etfs_register("/dat", f)
        assert {"data", "database", "dat"} <= set(k.listdir("/"))

    @pytest.mark.parametrize("t", [EtfsType.REG, EtfsType.BLK, EtfsType.CHR])
    @pytest.mark.parametrize("below", ["x", "with/slashes"])
    def test_key_under_non_dir_key_is_enotdir(self, k: Kernel, f: Path, d: Path,
                                              t: EtfsType, below: str) -> None:
        # API.md: a parent that is not a directory gives ENOTDIR (issue 9, item 9)
        k.etfs_register("/r", f, t)
        for sub, st in [(f, EtfsType.REG), (d, EtfsType.DIR)]:
            with pytest.raises(OSError) as e:
                k.etfs_register("/r/" + below, sub, st)
            assert _err(e) == errno.ENOTDIR and e.value.filename == "/r/" + below

    def test_hostpath_missing(self, k: Kernel, host: Path) -> None:
        with pytest.raises(OSError) as e:
            k.etfs_register("/x", host / "missing")
        assert _err(e) == errno.ENOENT
        assert e.value.filename == "/x"            # the key, never the host path
        assert str(host) not in str(e.value)
        assert "x" not in k.listdir("/")

    @pytest.mark.parametrize("t", [EtfsType.REG, EtfsType.BLK, EtfsType.CHR])
    def test_begin_past_end(self, k: Kernel, f: Path, t: EtfsType) -> None:
        with pytest.raises(OSError) as e:
            k.etfs_register("/x", f, t, begin=4096)
        assert _err(e) == errno.EINVAL

    @pytest.mark.parametrize("t", [EtfsType.REG, EtfsType.BLK, EtfsType.CHR])
    def test_window_past_end(self, k: Kernel, f: Path, t: EtfsType) -> None:
        with pytest.raises(OSError) as e:
            k.etfs_register("/x", f, t, begin=1024, size=1536)
        assert _err(e) == errno.EINVAL

    def test_window_exactly_to_end(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/x", f, begin=1000, size=1048)
        assert k.stat("/x").st_size == 1048
        k.etfs_register("/y", f, begin=2048)
        assert k.stat("/y").st_size == 0

    def test_negative(self, k: Kernel, f: Path) -> None:
        for kw in ({"begin": -1}, {"size": -1}):
            with pytest.raises(OSError) as e:
                k.etfs_register("/x", f, **kw)  # type: ignore[arg-type]
            assert _err(e) == errno.EINVAL

    @pytest.mark.parametrize("t", [EtfsType.BLK, EtfsType.CHR])
    @pytest.mark.parametrize("begin,size", [(1, None), (512, 100), (100, 512), (0, 1000)])
    def test_dev_alignment(self, k: Kernel, f: Path, t: EtfsType, begin: int,
                           size: int | None) -> None:
        with pytest.raises(OSError) as e:
            k.etfs_register("/dev/x", f, t, begin=begin, size=size)
        assert _err(e) == errno.EINVAL

    def test_reg_unaligned_ok(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/x", f, begin=3, size=7)
        assert k.stat("/x").st_size == 7

    def test_dev_unaligned_host_tail(self, k: Kernel, host: Path) -> None:
        p = host / "odd"
        p.write_bytes(b"x" * 1000)       # the rest of the file is not a sector multiple
        with pytest.raises(OSError) as e:
            k.etfs_register("/dev/x", p, EtfsType.BLK)
        assert _err(e) == errno.EINVAL
        k.etfs_register("/dev/y", p, EtfsType.BLK, size=512)

    @pytest.mark.parametrize("t", [EtfsType.DIR, EtfsType.DIR_SUBDIRS])
    def test_dir_on_non_dir(self, k: Kernel, f: Path, t: EtfsType) -> None:
        with pytest.raises(OSError) as e:
            k.etfs_register("/x", f, t)
        assert _err(e) == errno.ENOTDIR

    @pytest.mark.parametrize("t", [EtfsType.DIR, EtfsType.DIR_SUBDIRS])
    @pytest.mark.parametrize("kw", [{"begin": 512}, {"size": 0}, {"size": 512}])
    def test_dir_with_window(self, k: Kernel, d: Path, t: EtfsType,
                             kw: dict[str, int]) -> None:
        with pytest.raises(OSError) as e:
            k.etfs_register("/x", d, t, **kw)  # type: ignore[arg-type]
        assert _err(e) == errno.EISDIR

    def test_reg_on_dir(self, k: Kernel, d: Path) -> None:
        with pytest.raises(OSError) as e:
            k.etfs_register("/x", d)
        assert _err(e) == errno.EISDIR

    def test_parent_not_a_directory(self, k: Kernel, f: Path) -> None:
        k.close(k.open("/plain", os.O_CREAT | os.O_WRONLY))
        with pytest.raises(OSError) as e:
            k.etfs_register("/plain/x", f)
        assert _err(e) == errno.ENOTDIR
        with pytest.raises(OSError) as e:
            k.etfs_register("/plain/y/z", f)
        assert _err(e) == errno.ENOTDIR

    def test_bytes_and_pathlike(self, k: Kernel, f: Path) -> None:
        k.etfs_register(b"/b", os.fsencode(f))
        k.etfs_register(Path("/p"), f)
        assert k.stat("/b").st_size == k.stat("/p").st_size == 2048
        k.etfs_remove(b"/b")
        k.etfs_remove(Path("/p"))


class TestKeys:
    def test_slashes_collapse(self, k: Kernel, f: Path) -> None:
        k.etfs_register("//dev//x", f)
        assert k.listdir("/dev") == ["x"]
        assert k.stat("/dev/x").st_size == 2048
        k.etfs_remove("/dev/x/")
        with pytest.raises(FileNotFoundError):
            k.stat("/dev/x")

    def test_dots_normalised(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/a/./b/../c", f)
        assert k.listdir("/a") == ["c"]
        k.etfs_remove("//a/c")

    def test_parents_made_and_kept(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/trip/to/the/moon", f)
        for path in ("/trip", "/trip/to", "/trip/to/the"):
            s = k.stat(path)
            assert stat.S_ISDIR(s.st_mode)
            assert stat.S_IMODE(s.st_mode) == 0o755 and s.st_uid == 0 and s.st_gid == 0
        assert k.listdir("/trip/to/the") == ["moon"]
        k.etfs_remove("/trip/to/the/moon")
        assert k.listdir("/trip/to/the") == []
        assert k.listdir("/trip") == ["to"]

    def test_parent_through_symlink(self, k: Kernel, f: Path) -> None:
        k.mkdir("/real")
        k.symlink("/real", "/link")
        k.etfs_register("/link/x", f)
        assert k.listdir("/real") == ["x"]
        k.etfs_remove("/link/x")
        assert k.listdir("/real") == []

    def test_listing_and_scandir(self, k: Kernel, f: Path, d: Path) -> None:
        k.mkdir("/dev")
        k.etfs_register("/dev/f", f)
        k.etfs_register("/dev/b", f, EtfsType.BLK)
        k.etfs_register("/dev/c", f, EtfsType.CHR)
        k.etfs_register("/dev/d", d, EtfsType.DIR)
        assert sorted(k.listdir("/dev")) == ["b", "c", "d", "f"]
        kinds = {e.name: (e.is_file(), e.is_dir()) for e in k.scandir("/dev")}
        assert kinds == {"f": (True, False), "d": (False, True), "b": (False, False),
                         "c": (False, False)}
        for e in k.scandir("/dev"):
            assert e.inode() == k.lstat(f"/dev/{e.name}").st_ino

    def test_mkdir_over_key(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/x", f)
        with pytest.raises(FileExistsError):
            k.mkdir("/x")
        with pytest.raises(FileExistsError):
            k.open("/x", os.O_CREAT | os.O_EXCL | os.O_WRONLY)

    def test_registries_per_kernel(self, f: Path) -> None:
        with Kernel() as a, Kernel() as b:
            a.etfs_register("/x", f)
            with pytest.raises(FileNotFoundError):
                b.stat("/x")
            b.etfs_register("/x", f, begin=1, size=1)
            assert a.stat("/x").st_size == 2048 and b.stat("/x").st_size == 1
            with pytest.raises(FileNotFoundError):
                b.etfs_remove("/y")

    def test_own_device_number(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/x", f)
        k.etfs_register("/y", f)
        devs = {k.stat("/").st_dev, k.stat("/x").st_dev, k.stat("/y").st_dev}
        assert len(devs) == 3


class TestPinned:
    @pytest.fixture
    def keys(self, k: Kernel, f: Path, d: Path) -> Kernel:
        k.etfs_register("/dev/f", f)
        k.etfs_register("/dev/b", f, EtfsType.BLK)
        k.etfs_register("/dev/d", d, EtfsType.DIR_SUBDIRS)
        return k

    @pytest.mark.parametrize("key", ["/dev/f", "/dev/b"])
    def test_unlink(self, keys: Kernel, key: str) -> None:
        with pytest.raises(OSError) as e:
            keys.unlink(key)
        assert _err(e) == errno.EBUSY and e.value.filename == key

    def test_unlink_dir_key(self, keys: Kernel) -> None:
        with pytest.raises(OSError) as e:
            keys.unlink("/dev/d")
        assert _err(e) in (errno.EISDIR, errno.EBUSY)

    def test_rmdir(self, keys: Kernel) -> None:
        with pytest.raises(OSError) as e:
            keys.rmdir("/dev/d")
        assert _err(e) == errno.EBUSY
        with pytest.raises(OSError) as e:
            keys.rmdir("/dev")
        assert _err(e) == errno.ENOTEMPTY

    @pytest.mark.parametrize("key", ["/dev/f", "/dev/b", "/dev/d"])
    def test_rename_key_away(self, keys: Kernel, key: str) -> None:
        with pytest.raises(OSError) as e:
            keys.rename(key, "/elsewhere")
        assert _err(e) == errno.EBUSY
        assert os.path.basename(key) in keys.listdir("/dev")

    def test_rename_over_key(self, keys: Kernel) -> None:
        keys.close(keys.open("/dev/new", os.O_CREAT | os.O_WRONLY))
        keys.mkdir("/dev/newdir")
        for src, dst in [("/dev/new", "/dev/f"), ("/dev/new", "/dev/b"),
                         ("/dev/newdir", "/dev/d")]:
            with pytest.raises(OSError) as e:
                keys.rename(src, dst)
            assert _err(e) == errno.EBUSY, dst
        keys.close(keys.open("/dev/new", os.O_RDONLY))

    def test_rename_into_and_out_of_mapping_exdev(self, keys: Kernel) -> None:
        keys.close(keys.open("/plain", os.O_CREAT | os.O_WRONLY))
        with pytest.raises(OSError) as e:
            keys.rename("/plain", "/dev/d/plain")
        assert _err(e) == errno.EXDEV
        with pytest.raises(OSError) as e:
            keys.rename("/dev/d/a", "/moved")
        assert _err(e) == errno.EXDEV
        with pytest.raises(OSError) as e:
            keys.link("/dev/d/a", "/hard")
        assert _err(e) == errno.EXDEV

    def test_names_free_after_remove(self, keys: Kernel, f: Path) -> None:
        keys.etfs_remove("/dev/f")
        keys.close(keys.open("/dev/f", os.O_CREAT | os.O_WRONLY))
        keys.unlink("/dev/f")
        keys.etfs_register("/dev/f", f)


class TestRemove:
    def test_not_absolute(self, k: Kernel) -> None:
        with pytest.raises(OSError) as e:
            k.etfs_remove("x")
        assert _err(e) == errno.EINVAL and e.value.filename == "x"

    def test_none(self, k: Kernel, f: Path) -> None:
        k.mkdir("/plain")
        for key in ("/nothing", "/plain"):
            with pytest.raises(OSError) as e:
                k.etfs_remove(key)
            assert _err(e) == errno.ENOENT and e.value.filename == key
        k.etfs_register("/x", f)
        k.etfs_remove("/x")
        with pytest.raises(OSError) as e:
            k.etfs_remove("/x")
        assert _err(e) == errno.ENOENT

    def test_gone(self, k: Kernel, f: Path, d: Path) -> None:
        k.etfs_register("/x", f)
        k.etfs_register("/d", d, EtfsType.DIR)
        k.etfs_remove("/x")
        k.etfs_remove("/d")
        for path in ("/x", "/d", "/d/a"):
            with pytest.raises(FileNotFoundError):
                k.stat(path)
        assert k.listdir("/") == []

    @pytest.mark.parametrize("t", list(EtfsType))
    def test_open_descriptor_eio(self, k: Kernel, f: Path, d: Path, t: EtfsType) -> None:
        if t >= EtfsType.DIR:
            k.etfs_register("/x", d, t)
            fd = k.open("/x/a", os.O_RDWR)
            dfd = k.open("/x", os.O_RDONLY)
        else:
            k.etfs_register("/x", f, t)
            fd = k.open("/x", os.O_RDWR)
            dfd = None
        n = 512
        assert k.pread(fd, n, 0)
        k.etfs_remove("/x")
        for op in (lambda: k.pread(fd, n, 0), lambda: k.read(fd, n),
                   lambda: k.pwrite(fd, b"z" * n, 0), lambda: k.fsync(fd)):
            with pytest.raises(OSError) as e:
                op()
            assert _err(e) == errno.EIO
        if t in (EtfsType.REG,) or t >= EtfsType.DIR:
            with pytest.raises(OSError) as e:
                k.fstat(fd)
            assert _err(e) == errno.EIO
        if dfd is not None:
            with pytest.raises(OSError) as e:
                k.listdir(dfd)
            assert _err(e) == errno.EIO
            k.close(dfd)
        k.close(fd)
        assert f.read_bytes()[:1] == b"\x00" and (d / "a").read_bytes() == b"a"

    def test_cwd_inside_removed_mapping(self, k: Kernel, host: Path) -> None:
        (host / "m" / "s").mkdir(parents=True)
        k.etfs_register("/m", host / "m", EtfsType.DIR_SUBDIRS)
        k.chdir("/m/s")
        k.etfs_remove("/m")
        with pytest.raises(OSError) as e:
            k.listdir(".")
        assert _err(e) == errno.EIO
        k.chdir("/")
        assert k.listdir("/") == []

    def test_host_descriptors_closed(self, f: Path, d: Path) -> None:
        mem = MemHost()
        mem.write_file("/f", b"x" * 1024)
        mem.mkdir("/d/s", parents=True)
        mem.write_file("/d/s/a", b"a")
        with Kernel(hypervisor=mem) as k:
            k.etfs_register("/f", "/f")
            k.etfs_register("/b", "/f", EtfsType.BLK)
            k.etfs_register("/d", "/d", EtfsType.DIR_SUBDIRS)
            fds = [k.open(p, os.O_RDWR) for p in ("/f", "/b", "/d/s/a")]
            fds.append(k.open("/f", os.O_RDONLY))
            assert mem.open_fds > 0
            for key in ("/f", "/b", "/d"):
                k.etfs_remove(key)
            assert mem.open_fds == 0
            for fd in fds:
                k.close(fd)
            assert mem.open_fds == 0

    def test_shutdown_closes_host_descriptors(self) -> None:
        mem = MemHost()
        mem.write_file("/f", b"x" * 1024)
        mem.mkdir("/d/s", parents=True)
        k = Kernel(hypervisor=mem)
        k.etfs_register("/f", "/f")
        k.etfs_register("/b", "/f", EtfsType.CHR)
        k.etfs_register("/d", "/d", EtfsType.DIR_SUBDIRS)
        p = k.process(uid=0)
        p.open("/f", os.O_RDONLY)
        p.chdir("/d/s")
        k.open("/b", os.O_RDONLY)
        assert mem.open_fds > 0
        k.shutdown()
        assert mem.open_fds == 0
