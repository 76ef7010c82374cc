"""The ext2 image factory itself: every option set gives the image it claims,
debugfs and Linux fill it as intended, and the walkers agree with each other.

The oracle tests compare the kernel with Linux through these helpers, so a
helper that quietly made a different image (a feature left on, a debugfs
command that failed without a non-zero exit) would make them meaningless.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rumpfs import EtfsType, Kernel
from tests.support.ext2img import (
    OPTION_SETS,
    SPARSE_FAR,
    OptionSet,
    assert_same_tree,
    debugfs,
    debugfs_tree,
    e2fsck,
    loop_mount,
    mkfs,
    populate,
    run,
    walk_host,
    walk_kernel,
)

T2020 = 1_577_934_245 * 10**9  # debugfs "20200102030405" (UTC)


def _features(image: Path) -> set[str]:
    for line in run(["dumpe2fs", "-h", str(image)]).stdout.splitlines():
        if line.startswith("Filesystem features:"):
            return set(line.split(":", 1)[1].split())
    raise AssertionError("no features line")


@pytest.mark.parametrize("opts", OPTION_SETS, ids=[o.name for o in OPTION_SETS])
def test_option_set_and_debugfs_tree(tmp_path: Path, opts: OptionSet) -> None:
    img = mkfs(tmp_path / "fs.img", opts, 32 << 20)
    feats = _features(img)
    assert ("dir_index" in feats) == opts.dir_index
    assert ("has_journal" in feats) == (opts.kind != "ext2")
    assert ("extent" in feats) == (opts.kind == "ext4" and "^extent" not in opts.features)
    assert ("metadata_csum" in feats) == (opts.kind == "ext4" and not any(
        "metadata_csum" in f for f in opts.features))
    debugfs(img, debugfs_tree(tmp_path))
    e2fsck(img)
    with loop_mount(img) as mnt:
        tree = walk_host(mnt)
        assert os.statvfs(mnt).f_bsize == opts.block_size
    small = tree["dir/small"]
    assert (small.type, small.mode, small.uid, small.gid, small.nlink, small.size) == (
        "reg", 0o640, 1000, 100, 2, 19)
    assert small.mtime_ns == T2020 and tree["dir/hardlink"] == small
    assert tree["dir/sub"].mode == 0o2775 and tree["empty"].mode == 0o1777
    assert tree["fast"].target == "short-target" and tree["fast"].blocks == 0
    assert tree["slow"].target is not None and len(tree["slow"].target) == 193
    assert tree["slow"].blocks > 0
    assert tree["sparse"].size == (5 << 20) + 4
    assert tree["sparse"].blocks * 512 <= 4 * opts.block_size  # holes stay holes
    assert (tree["chr"].type, tree["chr"].rdev) == ("chr", os.makedev(1, 3))
    assert (tree["blk"].type, tree["blk"].rdev) == ("blk", os.makedev(7, 0))
    assert tree["fifo"].type == "fifo" and tree["n" * 255].size == 19


@pytest.mark.parametrize("opts", [OPTION_SETS[0], OPTION_SETS[3]],
                         ids=[OPTION_SETS[0].name, OPTION_SETS[3].name])
def test_linux_populated_tree(tmp_path: Path, opts: OptionSet) -> None:
    """populate() through Linux's driver gives the reference tree, e2fsck-clean,
    and the kernel's walker (over an etfs mapping of the mount) sees what the
    host's sees."""
    img = mkfs(tmp_path / "fs.img", opts, 64 << 20)
    with loop_mount(img, read_only=False) as mnt:
        populate(os, str(mnt), big_dir=1000)
    e2fsck(img)
    with loop_mount(img) as mnt:
        tree = walk_host(mnt)
        with Kernel() as k:
            k.etfs_register("/m", mnt, EtfsType.DIR_SUBDIRS)
            # etfs shows host device nodes without their numbers
            assert_same_tree(walk_kernel(k, "/m"), tree, ignore={"rdev": "etfs"})
    assert sum(p.startswith("big/") for p in tree) == 1000
    assert tree["far-sparse"].size == SPARSE_FAR + len(b"beyond 2 GiB")
    assert tree["far-sparse"].blocks * 512 <= 4 * opts.block_size + 4 * 4096
    assert tree["d/e/hardlink2"].nlink == 3 and tree["fifo"].uid == 70000
    assert tree["slow-link"].blocks > 0 and tree["fast-link"].blocks == 0
    mtime = 1_500_000_000_987_654_321  # 128-byte inodes keep whole seconds
    assert tree["small"].mtime_ns == (mtime if opts.inode_size > 128 else mtime // 10**9 * 10**9)
