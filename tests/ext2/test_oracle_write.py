"""The ext2 driver against its oracles, writing: what the kernel writes (the
reference tree of ``populate``, then renames, unlinks, truncates and
overwrites) on images made by mkfs and by newfs_ext2fs is read back by Linux
(loop mount, read-only) and must match the kernel's own view field for field;
``e2fsck -fn`` is clean after every test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from rumpfs.sbin.newfs_ext2fs import newfs_image
from tests.support.ext2img import (
    OPTION_SETS,
    OptionSet,
    assert_same_tree,
    debugfs,
    debugfs_tree,
    e2fsck,
    kernel_mount,
    loop_mount,
    mkfs,
    populate,
    walk_host,
    walk_kernel,
)

IDS = [o.name for o in OPTION_SETS]


def _filled_image(tmp_path: Path, opts: OptionSet) -> Path:
    img = mkfs(tmp_path / "fs.img", opts, 96 << 20)
    work = tmp_path / "debugfs-files"
    work.mkdir()
    debugfs(img, ["mkdir dbg", "cd dbg", *debugfs_tree(work)])
    with loop_mount(img, read_only=False) as mnt:
        (mnt / "linux").mkdir()
        populate(os, str(mnt / "linux"), far_sparse=False)
    e2fsck(img)
    return img


@pytest.mark.parametrize("opts", OPTION_SETS, ids=IDS)
def test_rw_mount_without_changes_stays_clean(tmp_path: Path, opts: OptionSet) -> None:
    img = _filled_image(tmp_path, opts)
    with kernel_mount(img) as k:
        before = walk_kernel(k, "/mnt")
    e2fsck(img)
    with loop_mount(img) as mnt:
        assert_same_tree(before, walk_host(mnt))


def _write_and_compare(img: Path, *, changes: bool = True) -> None:
    with kernel_mount(img) as k:
        k.mkdir("/mnt/ours", 0o755)
        populate(k, "/mnt/ours")
        if changes:
            _change(k, "/mnt/ours")
        ours = walk_kernel(k, "/mnt")
    e2fsck(img)
    with loop_mount(img) as mnt:
        assert_same_tree(ours, walk_host(mnt))


def _change(p: Any, root: str) -> None:
    """Renames across directories, unlinks, truncates (down and up, into holes),
    rmdir, overwrite in the middle of a sparse file, half the big directory gone,
    times out of the inode's range."""
    p.rename(f"{root}/d/e", f"{root}/moved-e")  # a directory to another parent: '..' and links
    p.rename(f"{root}/small", f"{root}/d/renamed-small")
    p.unlink(f"{root}/d/hardlink")
    p.rmdir(f"{root}/empty")
    p.truncate(f"{root}/moved-e/indirect", 70_000)
    p.truncate(f"{root}/d/multi", 1 << 20)
    fd = p.open(f"{root}/sparse", os.O_RDWR)
    p.pwrite(fd, b"overwritten in a hole" * 100, 5 << 20)
    p.close(fd)
    for i in range(0, 3000, 2):
        p.unlink(f"{root}/big/entry-{i:05d}-{'x' * (i % 40)}")
    p.rename(f"{root}/big/entry-00001-x", f"{root}/big/renamed")
    p.symlink("x" * 300, f"{root}/big/slow-link-in-big")
    # times past what an inode holds are clamped (2038 or 2446, 1901), never wrapped
    p.utime(f"{root}/d/oneblock", ns=(0, 2**40 * 10**9))
    p.utime(f"{root}/sparse", ns=(0, -(2**40) * 10**9))


@pytest.mark.parametrize("opts", OPTION_SETS, ids=IDS)
def test_linux_reads_what_kernel_wrote_on_mkfs_image(tmp_path: Path, opts: OptionSet) -> None:
    _write_and_compare(mkfs(tmp_path / "fs.img", opts, 96 << 20))


@pytest.mark.parametrize(("bs", "isz"), [(1024, 128), (4096, 256)])
def test_linux_reads_what_kernel_wrote_on_newfs_image(tmp_path: Path, bs: int, isz: int) -> None:
    img = tmp_path / "fs.img"
    with open(img, "wb") as f:
        f.truncate(96 << 20)
    newfs_image(img, block_size=bs, inode_size=isz, dir_index=True)
    _write_and_compare(img)
