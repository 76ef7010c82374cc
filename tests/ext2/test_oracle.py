"""The ext2 driver against its oracles, reading: images made by mkfs with each
option set and filled by debugfs and by Linux are walked by the kernel and by
Linux (loop mount, read-only) and must agree on every name, type, mode, owner,
size, block count, content hash (data past 2 GiB included), link target, link
count, device number and mtime. (Writing: ``test_oracle_write.py``.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    """mkfs, a debugfs tree under /dbg, then the reference tree by Linux under /linux."""
    img = mkfs(tmp_path / "fs.img", opts, 96 << 20)
    work = tmp_path / "debugfs-files"
    work.mkdir()
    debugfs(img, ["mkdir dbg", "cd dbg", *debugfs_tree(work)])
    with loop_mount(img, read_only=False) as mnt:
        (mnt / "linux").mkdir()
        populate(os, str(mnt / "linux"))
    e2fsck(img)
    return img


@pytest.mark.parametrize("opts", OPTION_SETS, ids=IDS)
def test_kernel_reads_what_mkfs_debugfs_and_linux_wrote(tmp_path: Path, opts: OptionSet) -> None:
    img = _filled_image(tmp_path, opts)
    with loop_mount(img) as mnt:
        linux = walk_host(mnt)
    with kernel_mount(img, read_only=True) as k:
        ours = walk_kernel(k, "/mnt")
    assert_same_tree(ours, linux)
