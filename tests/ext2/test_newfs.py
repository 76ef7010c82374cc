"""newfs_ext2fs: what it makes is judged by e2fsck -fn, dumpe2fs and Linux's driver."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pytest

from rumpfs import EtfsType, Kernel
from rumpfs.sbin.newfs_ext2fs import newfs, newfs_image, plan
from tests.support.ext2img import e2fsck, loop_mount, populate, run, walk_host

GEOMETRIES = [  # (block size, inode size, image size)
    (1024, 128, 20 << 20),   # three groups, backups in 0 and 1 only
    (1024, 256, 64 << 20),   # eight groups: sparse_super backups in 0, 1, 3, 5, 7
    (2048, 256, 9 << 20),
    (4096, 128, 300 << 20),  # three groups of 128 MiB, a short last one
    (4096, 256, 1 << 20),    # one small group
]


def _image(tmp_path: Path, size: int, name: str = "fs.img") -> Path:
    p = tmp_path / name
    with open(p, "wb") as f:
        f.truncate(size)
    return p


def _dumpe2fs(image: Path) -> dict[str, str]:
    out = run(["dumpe2fs", "-h", str(image)]).stdout
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


@pytest.mark.parametrize(("bs", "isz", "size"), GEOMETRIES,
                         ids=[f"{b}-{i}-{s >> 20}M" for b, i, s in GEOMETRIES])
def test_newfs_image_is_clean_and_mountable(tmp_path: Path, bs: int, isz: int, size: int) -> None:
    img = _image(tmp_path, size)
    geo = newfs_image(img, block_size=bs, inode_size=isz, label="rumpfs-test")
    e2fsck(img)
    sb = _dumpe2fs(img)
    assert sb["Filesystem revision #"] == "1 (dynamic)"
    assert sb["Filesystem features"].split() == ["filetype", "sparse_super", "large_file"]
    assert int(sb["Block size"]) == bs and int(sb["Inode size"]) == isz
    assert int(sb["Block count"]) == geo.blocks_count == size // bs
    assert int(sb["Inode count"]) == geo.inodes_count
    assert sb["Filesystem volume name"] == "rumpfs-test"
    assert sb["Filesystem state"] == "clean"
    with loop_mount(img) as mnt:
        tree = walk_host(mnt)
        assert sorted(tree) == [".", "lost+found"]
        assert (tree["."].mode, tree["."].nlink, tree["."].size) == (0o755, 3, bs)
        assert (tree["lost+found"].mode, tree["lost+found"].nlink) == (0o700, 2)
        assert tree["lost+found"].size == min(12 * bs, 16384)
        st = os.statvfs(mnt)
        assert st.f_bsize == bs and st.f_files == geo.inodes_count
        assert st.f_ffree == geo.inodes_count - 11


@pytest.mark.parametrize(("bs", "isz"), [(1024, 128), (4096, 256)])
def test_linux_writes_into_a_new_fs(tmp_path: Path, bs: int, isz: int) -> None:
    """Linux's driver fills what newfs made (every node kind, a big directory,
    data past 2 GiB at 1 KiB blocks: triple indirect) and e2fsck stays happy."""
    img = _image(tmp_path, 64 << 20)
    newfs_image(img, block_size=bs, inode_size=isz)
    with loop_mount(img, read_only=False) as mnt:
        populate(os, str(mnt), big_dir=500)
        before = walk_host(mnt)
    e2fsck(img)
    with loop_mount(img) as mnt:
        assert walk_host(mnt) == before


@pytest.mark.parametrize("devtype", [EtfsType.BLK, EtfsType.CHR])
def test_newfs_on_a_window_of_a_larger_file(tmp_path: Path, devtype: EtfsType) -> None:
    """On a kernel block device (or a raw one: whole sectors only) over a window:
    bytes outside it stay as they were, and the file system in the window is
    clean and mountable there."""
    begin, size = 3 << 20, 16 << 20
    host = tmp_path / "disk.img"
    fill = bytes(range(256)) * 4096  # 1 MiB of a recognisable pattern
    host.write_bytes(fill * 3 + bytes(size) + fill * 2)
    with Kernel() as k:
        k.etfs_register("/dev/wd0e", host, devtype, begin=begin, size=size)
        geo = newfs(k, "/dev/wd0e", block_size=4096, inode_size=256, root_uid=1000,
                    root_gid=100, now=1_700_000_000)
    assert geo.blocks_count == size // 4096
    data = host.read_bytes()
    assert data[:begin] == fill * 3 and data[begin + size:] == fill * 2
    e2fsck(host, offset=begin)
    with loop_mount(host, offset=begin, sizelimit=size) as mnt:
        st = os.stat(mnt)
        assert (st.st_uid, st.st_gid, int(st.st_mtime)) == (1000, 100, 1_700_000_000)


def test_newfs_overwrites_an_old_file_system(tmp_path: Path) -> None:
    """Whatever was on the device before (here garbage) does not leak in."""
    img = tmp_path / "old.img"
    img.write_bytes(os.urandom(8 << 20))
    fs_uuid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    newfs_image(img, block_size=1024, inode_size=256, fs_uuid=fs_uuid.bytes)
    e2fsck(img)
    assert _dumpe2fs(img)["Filesystem UUID"] == str(fs_uuid)


def test_newfs_on_a_kernel_regular_file(tmp_path: Path) -> None:
    """A regular file of the kernel's namespace works too (here in rumpfs)."""
    with Kernel() as k:
        fd = k.open("/img", os.O_CREAT | os.O_RDWR, 0o644)
        k.ftruncate(fd, 4 << 20)
        k.close(fd)
        newfs(k, "/img", block_size=1024)
        with k.open_file("/img", "rb") as f:
            data = f.read()
    img = tmp_path / "copy.img"
    img.write_bytes(data)
    e2fsck(img)


def test_newfs_errors(tmp_path: Path) -> None:
    with pytest.raises(OSError) as e:
        plan(16 << 10, block_size=1024)
    assert e.value.errno == errno.ENOSPC
    for bad in ({"block_size": 8192}, {"inode_size": 512}, {"bytes_per_inode": 512},
                {"reserved_percent": 60.0}):
        with pytest.raises(OSError) as e:
            plan(8 << 20, **bad)
        assert e.value.errno == errno.EINVAL, bad
    with Kernel() as k:
        k.mkdir("/dir")
        with pytest.raises(OSError) as e:
            newfs(k, "/dir")
        assert e.value.errno == errno.EISDIR
        k.symlink("/dir", "/link")
        with pytest.raises(OSError) as e:
            newfs(k, "/link")
        assert e.value.errno == errno.EISDIR
        with pytest.raises(OSError) as e:
            newfs(k, "/missing")
        assert e.value.errno == errno.ENOENT
        user = k.process(uid=1000, gid=1000)
        img = _image(tmp_path, 4 << 20)
        k.etfs_register("/dev/disk", img, EtfsType.BLK)
        k.chmod("/dev/disk", 0o600)
        with pytest.raises(PermissionError):
            newfs(user, "/dev/disk")
