"""msdosfs through the kernel: images from mkfs.fat + mcopy read by us, what we
write read back by mtools, fsck.fat -n clean after every test that writes."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import struct
from pathlib import Path

import pytest
from tests.unit.msdosfs.support import fsck, make_image, mounted, mtools

import rumpfs
from rumpfs.fs.msdosfs.bootsect import parse_bpb
from rumpfs.rumpuser.posix import PosixHost

# (relative path, size); directories end with "/". Long, short, mixed-case,
# lower-case, non-ASCII and LFN-boundary names.
TREE = [
    ("README.TXT", 1), ("readme2.txt", 511), ("Makefile", 512), ("A long file name.txt", 513),
    ("x" * 13 + ".dat", 0), ("y" * 26, 4095), ("caf\u00e9 na\u00efve.txt", 4096),
    ("Sub Dir/", 0), ("Sub Dir/nested file.bin", 70000), ("Sub Dir/deeper/", 0),
    ("Sub Dir/deeper/MiXeD.CaSe", 33), ("Sub Dir/deeper/.hidden", 3), ("EMPTYDIR/", 0),
    ("foo.tar.gz", 8193), ("a+b=c [1].txt", 17),
] + [(f"many/file number {i:03d}.txt", i * 37) for i in range(60)]
T0 = 1_600_000_000          # an even second


def _content(path: str, size: int) -> bytes:
    seed = hashlib.sha256(path.encode()).digest()
    return (seed * (size // 32 + 1))[:size]


def _host_tree(root: Path) -> dict[str, tuple[int, str, int]]:
    want = {}
    for i, (rel, size) in enumerate(TREE):
        p = root / rel
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        data = _content(rel, size)
        p.write_bytes(data)
        mtime = T0 + 2 * i
        os.utime(p, (mtime, mtime))
        want[rel] = (size, hashlib.sha256(data).hexdigest(), mtime)
    return want


def _walk_kernel(k, top: str) -> dict[str, tuple[int, str, int]]:  # type: ignore[no-untyped-def]
    got = {}
    for dirpath, _dirs, files in k.walk(top):
        for name in files:
            p = f"{dirpath}/{name}"
            with k.open_file(p, "rb") as f:
                data = f.read()
            st = k.stat(p)
            assert st.st_size == len(data)
            got[p[len(top) + 1:]] = (len(data), hashlib.sha256(data).hexdigest(),
                                     int(st.st_mtime))
    return got


def _walk_host(root: Path) -> dict[str, tuple[int, str, int]]:
    got = {}
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            got[str(p.relative_to(root))] = (len(data), hashlib.sha256(data).hexdigest(),
                                             int(p.stat().st_mtime))
    return got


@pytest.mark.parametrize(("fat", "spc", "mb"), [
    (12, None, 4), (12, 1, 2), (16, None, 32), (16, 8, 64), (32, 1, 40), (32, 8, 300),
])
def test_reads_mkfs_images_filled_by_mcopy(tmp_path: Path, fat: int, spc: int | None,
                                           mb: int) -> None:
    src = tmp_path / "src"
    want = _host_tree(src)
    img = make_image(tmp_path / "f.img", mb << 20, tool="mkfs", fat=fat, spc=spc)
    for entry in sorted(src.iterdir()):
        mtools(img, "mcopy", "-s", "-m", "-i", str(img), str(entry), "::/")
    with mounted(img, read_only=True) as k:
        got = _walk_kernel(k, "/mnt")
        assert got == want
        assert k.listdir("/mnt/EMPTYDIR") == []
        # case-insensitive lookup that preserves case
        assert k.stat("/mnt/sub dir/NESTED FILE.BIN").st_size == 70000
        assert "MiXeD.CaSe" in k.listdir("/mnt/SUB DIR/Deeper")
        assert stat.S_ISDIR(k.stat("/mnt/Sub Dir").st_mode)
        assert k.stat("/mnt/Sub Dir").st_nlink == 3
        with pytest.raises(OSError) as e:
            k.open("/mnt/x", os.O_CREAT | os.O_WRONLY)
        assert e.value.errno == errno.EROFS
    fsck(img)


@pytest.mark.parametrize(("fat", "mb", "tool"), [
    (12, 3, "ours"), (16, 20, "ours"), (32, 40, "ours"), (32, 40, "mkfs"),
])
def test_written_tree_read_back_by_mtools(tmp_path: Path, fat: int, mb: int, tool: str) -> None:
    src = tmp_path / "src"
    want = _host_tree(src)
    img = make_image(tmp_path / "w.img", mb << 20, tool=tool, fat=fat)
    with mounted(img) as k:
        for rel, size in TREE:
            p = f"/mnt/{rel}"
            if rel.endswith("/"):
                k.makedirs(p.rstrip("/"), exist_ok=True)
                continue
            k.makedirs(os.path.dirname(p), exist_ok=True)
            with k.open_file(p, "wb") as f:
                f.write(_content(rel, size))
            k.utime(p, (want[rel][2], want[rel][2] + 1))    # odd second: FAT keeps 2 s
        assert _walk_kernel(k, "/mnt") == want
        boot = img.read_bytes()[:512]
        assert boot[65 if fat == 32 else 37] & 1, "dirty flag set while mounted"
    assert not img.read_bytes()[65 if fat == 32 else 37] & 1, "clean after unmount"
    fsck(img)
    out = tmp_path / "out"
    out.mkdir()
    mtools(img, "mcopy", "-s", "-m", "-i", str(img), "::/*", str(out))
    assert _walk_host(out) == want
    listing = mtools(img, "mdir", "-i", str(img), "::/").stdout.decode()
    assert "README   TXT         1" in listing                     # 8.3 only, no LFN
    assert "README2  TXT" in listing and "readme2.txt" in listing  # lower case: an LFN
    assert "ALONGF~1 TXT" in listing and "A long file name.txt" in listing
    assert "FOOTAR~1 GZ" in listing
    with mounted(img, read_only=True) as k:                         # and we read it again
        assert _walk_kernel(k, "/mnt") == want


def _free(k) -> int:  # type: ignore[no-untyped-def]
    return k.statvfs("/mnt").f_bfree


def test_cluster_accounting(tmp_path: Path) -> None:
    img = make_image(tmp_path / "c.img", 16 << 20, fat=16, spc=4)       # 2 KiB clusters
    with mounted(img) as k:
        cs = k.statvfs("/mnt").f_bsize
        assert cs == 2048
        free0 = _free(k)
        fd = k.open("/mnt/f", os.O_CREAT | os.O_RDWR)
        k.write(fd, b"a" * 5000)                                       # 3 clusters
        assert _free(k) == free0 - 3
        k.ftruncate(fd, 100_000)                                       # up: zeros
        assert _free(k) == free0 - 49
        assert k.pread(fd, 10, 4995) == b"aaaaa" + bytes(5)
        k.pwrite(fd, b"end", 200_000)                                  # sparse: zero-filled
        assert _free(k) == free0 - 98
        assert k.pread(fd, 100_003, 100_000) == bytes(100_000) + b"end"
        k.ftruncate(fd, 4097)                                          # down
        assert _free(k) == free0 - 3
        k.ftruncate(fd, 9000)                  # old bytes past 4097 must read as zeros
        assert k.pread(fd, 10, 4090) == b"aaaaaaa" + bytes(3)
        k.close(fd)
        with k.open_file("/mnt/g", "wb") as f:
            f.write(b"g" * 10_000)                                     # 5 clusters
        assert _free(k) == free0 - 5 - 5
        k.rename("/mnt/g", "/mnt/f")                                   # replaces: f's go
        assert _free(k) == free0 - 5
        assert k.open_file("/mnt/f", "rb").read() == b"g" * 10_000
        fd = k.open("/mnt/f", os.O_RDONLY)
        k.unlink("/mnt/f")                                             # open: kept
        assert _free(k) == free0 - 5
        assert k.fstat(fd).st_nlink == 0 and k.read(fd, 3) == b"ggg"
        assert "f" not in k.listdir("/mnt")
        k.close(fd)
        assert _free(k) == free0
        k.mkdir("/mnt/d")
        assert _free(k) == free0 - 1
        for i in range(70):                                            # the dir grows
            with k.open_file(f"/mnt/d/a fairly long file name {i}", "wb"):
                pass
        assert _free(k) < free0 - 1
        for i in range(70):
            k.unlink(f"/mnt/d/a fairly long file name {i}")
        k.rmdir("/mnt/d")
        assert _free(k) == free0
    fsck(img)


def test_posix_as_vfat(tmp_path: Path) -> None:
    img = make_image(tmp_path / "p.img", 8 << 20, fat=12)
    with mounted(img) as k:
        with k.open_file("/mnt/Hello.TXT", "wb") as f:
            f.write(b"hi")
        assert k.listdir("/mnt") == ["Hello.TXT"]
        assert k.stat("/mnt/HELLO.txt").st_size == 2
        with pytest.raises(FileExistsError):
            k.open("/mnt/hello.txt", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        st = k.stat("/mnt/hello.txt")
        assert stat.S_IMODE(st.st_mode) == 0o755 and (st.st_uid, st.st_gid) == (0, 0)
        assert st.st_mtime % 2 == 0 and st.st_blksize == k.statvfs("/mnt").f_bsize
        k.chmod("/mnt/hello.txt", 0o555)                   # only the read-only attribute
        assert stat.S_IMODE(k.stat("/mnt/hello.txt").st_mode) == 0o555
        k.chmod("/mnt/hello.txt", 0o644)                   # r/x bits differ: ignored
        assert stat.S_IMODE(k.stat("/mnt/hello.txt").st_mode) == 0o555
        k.chmod("/mnt/hello.txt", 0o755)
        assert stat.S_IMODE(k.stat("/mnt/hello.txt").st_mode) == 0o755
        k.chown("/mnt/hello.txt", 0, 0)
        for call, args in [(k.chmod, ("/mnt/hello.txt", 0o4755)),
                           (k.chown, ("/mnt/hello.txt", 1000, -1)),
                           (k.chown, ("/mnt/hello.txt", -1, 1000)),
                           (k.symlink, ("hello.txt", "/mnt/ln")),
                           (k.link, ("/mnt/hello.txt", "/mnt/hard")),
                           (k.mknod, ("/mnt/fifo", 0o644 | stat.S_IFIFO))]:
            with pytest.raises(OSError) as e:
                call(*args)
            assert e.value.errno == errno.EPERM, call
        for name, code in [("a*b", errno.EINVAL), ("a:b", errno.EINVAL), ('q"', errno.EINVAL),
                           ("sp ", errno.EINVAL), ("x" * 255 + "y", errno.ENAMETOOLONG),
                           ("\u00e9" * 200, errno.ENAMETOOLONG)]:
            with pytest.raises(OSError) as e:
                k.open(f"/mnt/{name}", os.O_CREAT | os.O_WRONLY)
            assert e.value.errno == code, name
        k.mkdir("/mnt/" + "l" * 255)
        fd = k.open("/mnt/hello.txt", os.O_RDWR)
        with pytest.raises(OSError) as e:
            k.pwrite(fd, b"x", 0xFFFFFFFF)
        assert e.value.errno == errno.EFBIG
        with pytest.raises(OSError) as e:
            k.ftruncate(fd, 1 << 32)
        assert e.value.errno == errno.EFBIG
        k.close(fd)
        k.utime("/mnt/hello.txt", ns=(1_700_000_000_123_000_000, 1_700_000_001_999_000_000))
        st = k.stat("/mnt/hello.txt")
        assert st.st_mtime_ns == 1_700_000_000 * 10**9           # 2 s
        assert st.st_atime_ns == 1_699_920_000 * 10**9           # the day
        assert k.listdir("/mnt") == ["Hello.TXT", "l" * 255]
    fsck(img)
    with mounted(img, options={"uid": 1000, "gid": 100, "umask": "027"}) as k:
        st = k.stat("/mnt/hello.txt")
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 100, 0o750)
        assert stat.S_IMODE(k.stat("/mnt/" + "l" * 255).st_mode) == 0o750
    with mounted(img, options={"fmask": "133", "dmask": "022", "time_offset": "60"}) as k:
        assert stat.S_IMODE(k.stat("/mnt/hello.txt").st_mode) == 0o644
        assert k.stat("/mnt/hello.txt").st_mtime_ns == (1_700_000_000 - 3600) * 10**9
    with pytest.raises(OSError) as e, mounted(img, options={"nonsense": 1}):
        pass
    assert e.value.errno == errno.EINVAL


def test_rename_across_directories_updates_dotdot(tmp_path: Path) -> None:
    img = make_image(tmp_path / "r.img", 40 << 20, fat=32, spc=1)
    with mounted(img) as k:
        k.makedirs("/mnt/a/b/c")
        k.mkdir("/mnt/x")
        with k.open_file("/mnt/a/b/c/file.txt", "w") as f:
            f.write("content")
        k.rename("/mnt/a/b", "/mnt/x/b moved")
        assert k.open_file("/mnt/x/b moved/c/file.txt").read() == "content"
        k.rename("/mnt/x/b moved/c", "/mnt/c")                 # to the root: '..' = 0
        k.rename("/mnt/c/file.txt", "/mnt/x/renamed.txt")
        with k.open_file("/mnt/x/other", "w") as f:
            f.write("o")
        k.rename("/mnt/x/other", "/mnt/x/renamed.txt")         # replaces
        assert k.listdir("/mnt/x") == ["b moved", "renamed.txt"]
        assert k.open_file("/mnt/x/renamed.txt").read() == "o"
        k.chdir("/mnt/x/b moved")
        assert k.getcwd() == "/mnt/x/b moved"
        k.chdir("/")
        with pytest.raises(OSError) as e:
            k.rename("/mnt/x", "/mnt/x/b moved/inside")
        assert e.value.errno == errno.EINVAL
    fsck(img)
    listing = mtools(img, "mdir", "-/", "-i", str(img), "::/").stdout.decode()
    assert "b moved" in listing and "renamed.txt" in listing


@pytest.mark.parametrize(("fat", "mb", "spc"), [(12, 1, 1), (16, 20, None), (32, 40, 1)])
def test_fsinfo_and_both_fats_in_step(tmp_path: Path, fat: int, mb: int,
                                      spc: int | None) -> None:
    img = make_image(tmp_path / "i.img", mb << 20, fat=fat, spc=spc)
    with mounted(img) as k:
        with k.open_file("/mnt/data", "wb") as f:
            f.write(os.urandom(300_000))
        k.mkdir("/mnt/d")
        k.truncate("/mnt/data", 1000)
        free = k.statvfs("/mnt").f_bfree
    raw = img.read_bytes()
    g = parse_bpb(raw[:512])
    if fat == 32:
        assert struct.unpack_from("<I", raw, 512 + 488)[0] == free
    fat0 = raw[g.fat_start * 512:(g.fat_start + g.fat_sectors) * 512]
    fat1 = raw[(g.fat_start + g.fat_sectors) * 512:(g.fat_start + 2 * g.fat_sectors) * 512]
    assert fat0 == fat1
    fsck(img)


def test_mount_refuses_non_fat(tmp_path: Path) -> None:
    img = tmp_path / "z.img"
    img.write_bytes(bytes(1 << 20))
    with pytest.raises(OSError) as e, mounted(img):
        pass
    assert e.value.errno == errno.EINVAL


def test_fsck_oracle_sees_damage(tmp_path: Path) -> None:
    """The oracle the other tests trust does complain about a wrong free count."""
    img = make_image(tmp_path / "o.img", 40 << 20, fat=32, spc=1)
    raw = bytearray(img.read_bytes())
    struct.pack_into("<I", raw, 512 + 488, 5)
    img.write_bytes(raw)
    with pytest.raises(AssertionError):
        fsck(img)


def test_full_volume_and_full_root(tmp_path: Path) -> None:
    img = make_image(tmp_path / "s.img", 1440 * 1024)          # a 1.44 MB floppy: FAT12
    with mounted(img) as k:
        sv = k.statvfs("/mnt")
        room = sv.f_bfree * sv.f_bsize
        fd = k.open("/mnt/big", os.O_CREAT | os.O_WRONLY)
        assert k.write(fd, b"z" * (room + 5000)) == room        # short at the end
        with pytest.raises(OSError) as e:
            k.write(fd, b"more")
        assert e.value.errno == errno.ENOSPC
        assert k.statvfs("/mnt").f_bfree == 0
        with pytest.raises(OSError) as e:
            k.mkdir("/mnt/nodir")                               # no cluster for it
        assert e.value.errno == errno.ENOSPC
        k.close(fd)
        k.truncate("/mnt/big", 0)
        assert k.statvfs("/mnt").f_bfree == sv.f_bfree
        made = 0
        with pytest.raises(OSError) as e:                       # 224 root entries
            while True:
                k.close(k.open(f"/mnt/F{made}", os.O_CREAT | os.O_WRONLY))
                made += 1
        assert e.value.errno == errno.ENOSPC and made == 224 - 2     # "big": LFN + 8.3
        for i in range(0, made, 2):
            k.unlink(f"/mnt/F{i}")
        with pytest.raises(OSError) as e:                       # 2 slots: none in a row
            k.open("/mnt/again", os.O_CREAT | os.O_WRONLY)
        assert e.value.errno == errno.ENOSPC
        k.close(k.open("/mnt/AGAIN", os.O_CREAT | os.O_WRONLY))  # 1 slot: a freed one
    fsck(img)


class _HostAt(PosixHost):
    """The real host, with its local time an hour east of UTC."""

    def clock_utc_offset(self) -> int:
        return 3600


def test_times_in_host_local_time_by_default(tmp_path: Path) -> None:
    # vfat keeps local time on disk, the kernel's sys_tz unless tz=UTC says so
    img = make_image(tmp_path / "tz.img", 2 << 20, fat=12)
    with rumpfs.Kernel(hypervisor=_HostAt()) as k:
        k.etfs_register("/dev/fat", str(img), rumpfs.EtfsType.BLK)
        k.mkdir("/mnt")
        for options, east in (({}, 3600), ({"tz": "local"}, 3600), ({"tz": "UTC"}, 0)):
            k.mount("msdos", "/mnt", device="/dev/fat", options=options)
            if not options:
                with k.open_file("/mnt/t.txt", "w") as f:
                    f.write("t")
                k.utime("/mnt/t.txt", (T0, T0))         # stored as local time T0 + 3600
                assert k.stat("/mnt/t.txt").st_mtime == T0
            assert k.stat("/mnt/t.txt").st_mtime == T0 + 3600 - east
            k.unmount("/mnt")
        with pytest.raises(OSError) as e:
            k.mount("msdos", "/mnt", device="/dev/fat", options={"tz": "Europe/Paris"})
        assert e.value.errno == errno.EINVAL
    fsck(img)
