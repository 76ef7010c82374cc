"""The read-only path: ext2/3/4 images made by mkfs and debugfs, read through the kernel."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from tests.support import ext2img as E
from tests.unit.ext2fs.conftest import make_image, mounted

TARGET_SLOW = "t" * 100 + "/long/target/" + "u" * 80


def test_tree_as_debugfs_made_it(tmp_path: Path, optset: str) -> None:
    img = make_image(tmp_path, optset)
    with mounted(img, read_only=True) as k:
        assert sorted(k.listdir("/mnt")) == sorted(
            ["lost+found", "dir", "empty", "sparse", "fast", "slow", "fifo", "chr", "blk",
             "n" * 255])
        assert sorted(k.listdir("/mnt/dir")) == ["hardlink", "multi", "small", "sub"]
        with k.open_file("/mnt/dir/small", "rb") as f:
            assert f.read() == b"hello from debugfs\n"
        with k.open_file("/mnt/dir/multi", "rb") as f:
            assert f.read() == bytes(range(256)) * 300
        with k.open_file("/mnt/sparse", "rb") as f:
            assert f.read(4) == b"head"
            f.seek(5 << 20)
            assert f.read() == b"tail"
            f.seek(1 << 20)
            assert f.read(4096) == bytes(4096)
        assert k.readlink("/mnt/fast") == "short-target"
        assert k.readlink("/mnt/slow") == TARGET_SLOW
        st = k.lstat("/mnt/dir/small")
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_nlink) == (1000, 100,
                                                                                 0o640, 2)
        assert st.st_ino == k.lstat("/mnt/dir/hardlink").st_ino
        assert st.st_mtime_ns == k.lstat("/mnt/dir/multi").st_mtime_ns
        assert stat.S_ISFIFO(k.lstat("/mnt/fifo").st_mode)
        assert k.lstat("/mnt/chr").st_rdev == os.makedev(1, 3)
        assert k.lstat("/mnt/blk").st_rdev == os.makedev(7, 0)
        assert stat.S_IMODE(k.lstat("/mnt/dir/sub").st_mode) == 0o2775
        assert stat.S_IMODE(k.lstat("/mnt/empty").st_mode) == 0o1777
        assert k.lstat("/mnt/dir").st_nlink == 3
        assert k.lstat("/mnt").st_nlink == 5
        sv = k.statvfs("/mnt")
        assert sv.f_bsize == E.OPTION_SETS_BY_NAME[optset].block_size
        assert 0 < sv.f_bfree < sv.f_blocks
        with pytest.raises(FileNotFoundError):
            k.stat("/mnt/dir/nothing")
        with pytest.raises(OSError) as ei:
            k.mkdir("/mnt/new")
        assert ei.value.errno == 30     # EROFS
    E.e2fsck(img)


def test_same_tree_as_linux(tmp_path: Path, optset: str) -> None:
    img = make_image(tmp_path, optset)
    with mounted(img, read_only=True) as k:
        ours = E.walk_kernel(k, "/mnt")
    with E.loop_mount(img) as mnt:
        linux = E.walk_host(mnt)
    E.assert_same_tree(ours, linux)


def test_htree_directory(tmp_path: Path) -> None:
    """A directory indexed by e2fsck -D is looked up through its index."""
    names = [f"file-{i:04d}-" + "x" * 40 for i in range(400)]
    img = make_image(tmp_path, "ext4-1k-128-nocsum", tree=False,
                     script=["mkdir big", "cd big"] + [f"mknod {n} p" for n in names])
    E.run(["e2fsck", "-fyD", str(img)], check=False)
    out = E.run(["debugfs", "-R", "stat big", str(img)]).stdout
    assert "Flags: 0x81000" in out                          # EXT4_INDEX_FL + extents
    with mounted(img, read_only=True) as k:
        for n in names[::37]:
            assert stat.S_ISFIFO(k.lstat(f"/mnt/big/{n}").st_mode)
        with pytest.raises(FileNotFoundError):
            k.lstat("/mnt/big/file-9999")
        assert sorted(k.listdir("/mnt/big")) == sorted(names)


@pytest.mark.parametrize("args, writable", [
    (["-t", "ext4", "-O", "meta_bg,^resize_inode"], False),
    (["-t", "ext4", "-O", "bigalloc", "-C", "16384"], False),
    (["-t", "ext4", "-b", "4096", "-O", "bigalloc", "-C", "65536"], False),
    (["-t", "ext4", "-O", "orphan_file"], True),
    (["-t", "ext4", "-O", "^flex_bg,^metadata_csum,uninit_bg"], True),
])
def test_more_features(tmp_path: Path, args: list[str], writable: bool) -> None:
    """Images with other features: read like Linux reads them; written only
    when the driver can keep them correct (else the mount is read-only)."""
    img = tmp_path / "x.img"
    with open(img, "wb") as f:
        f.truncate(128 << 20)
    E.run(["mke2fs", "-q", "-F", *args, "-E", "root_owner=0:0", str(img)])
    src = tmp_path / "src"
    src.mkdir()
    E.debugfs(img, E.debugfs_tree(src))
    with mounted(img) as k:
        ours = E.walk_kernel(k, "/mnt")
        if writable:
            k.mkdir("/mnt/new")
            ours = E.walk_kernel(k, "/mnt")
        else:
            with pytest.raises(OSError) as ei:
                k.mkdir("/mnt/new")
            assert ei.value.errno == 30
    E.e2fsck(img)
    with E.loop_mount(img) as mnt:
        E.assert_same_tree(ours, E.walk_host(mnt))
