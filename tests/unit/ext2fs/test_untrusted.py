"""Untrusted images: each structural fault fails its own call with EUCLEAN (or
EIO), with a logged reason; the kernel and the mount stay usable."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import pytest
from tests.support import ext2img as E
from tests.unit.ext2fs.conftest import make_image, mounted


def blocks_of(img: Path, path: str) -> list[int]:
    return [int(b) for b in E.run(["debugfs", "-R", f"blocks {path}", str(img)]).stdout.split()]


def patch(img: Path, offset: int, data: bytes) -> None:
    with open(img, "r+b") as f:
        f.seek(offset)
        f.write(data)


def inode_offset(img: Path, ino: int) -> int:
    out = E.run(["debugfs", "-R", f"imap <{ino}>", str(img)]).stdout
    # "Inode 12 is part of block group 0\n\tlocated at block 1058, offset 0x0b00"
    words = out.replace(",", " ").split()
    blk = int(words[words.index("located") + 3])
    off = int(words[words.index("offset") + 1], 16)
    bs = int(E.run(["dumpe2fs", "-h", str(img)]).stdout.split("Block size:")[1].split()[0])
    return blk * bs + off


def ino_of(img: Path, path: str) -> int:
    out = E.run(["debugfs", "-R", f"stat {path}", str(img)]).stdout
    return int(out.split("Inode:")[1].split()[0])


def euclean(fn: object, *args: object) -> None:
    with pytest.raises(OSError) as ei:
        fn(*args)  # type: ignore[operator]
    assert ei.value.errno in (errno.EUCLEAN, errno.EIO), ei.value


def still_usable(k: object) -> None:
    assert "lost+found" in k.listdir("/mnt")  # type: ignore[attr-defined]
    k.mkdir("/mnt/after")  # type: ignore[attr-defined]
    k.rmdir("/mnt/after")  # type: ignore[attr-defined]


def test_directory_cycle(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    img = make_image(tmp_path, "ext4-4k-256", script=["ln dir dir/sub/loop"])
    with mounted(img) as k:
        euclean(k.lstat, "/mnt/dir/sub/loop")
        euclean(k.rename, "/mnt/empty", "/mnt/dir/sub/loop/x")
        still_usable(k)
    assert "its .. is" in caplog.text


def test_bad_record_length(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    img = make_image(tmp_path, "ext2-1k-128")
    blk = blocks_of(img, "/dir")[0]
    patch(img, blk * 1024 + 12 + 4, struct.pack("<H", 0))      # '..' rec_len = 0
    with mounted(img) as k:
        euclean(k.listdir, "/mnt/dir")
        euclean(k.lstat, "/mnt/dir/small")
        euclean(k.mknod, "/mnt/dir/new")
        still_usable(k)
    assert "bad record" in caplog.text


def test_inode_number_out_of_range(tmp_path: Path) -> None:
    img = make_image(tmp_path, "ext2-1k-128")
    blk = blocks_of(img, "/dir")[0]
    patch(img, blk * 1024 + 24, struct.pack("<I", 10_000_000))  # first name's inode
    with mounted(img) as k:
        euclean(k.listdir, "/mnt/dir")
        still_usable(k)


def test_block_number_out_of_range(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    img = make_image(tmp_path, "ext2-1k-128", script=["sif dir/multi block[3] 99999999"])
    with mounted(img) as k:
        fd = k.open("/mnt/dir/multi", os.O_RDONLY)
        assert k.pread(fd, 1024, 0) == bytes(range(256)) * 4
        euclean(k.pread, fd, 1024, 3 * 1024)
        k.close(fd)
        k.unlink("/mnt/dir/multi")             # the name goes; the blocks are logged
        still_usable(k)
    assert "out of range" in caplog.text


def test_symlink_sizes(tmp_path: Path) -> None:
    img = make_image(tmp_path, "ext4-4k-256",
                     script=["sif slow size 100000", "sif fast size 3000"])
    with mounted(img, read_only=True) as k:
        euclean(k.readlink, "/mnt/slow")
        euclean(k.readlink, "/mnt/fast")
        euclean(k.stat, "/mnt/slow")


def test_extent_loop_and_depth(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    img = make_image(tmp_path, "ext4-1k-128-nocsum")
    ino = ino_of(img, "/dir/multi")
    node = blocks_of(img, "/dir/small")[0]           # reuse a data block as a tree node
    off = inode_offset(img, ino)
    # root: depth 1, one index entry -> node; node: depth 1 again, pointing to itself
    patch(img, off + 0x28, struct.pack("<HHHHI", 0xF30A, 1, 4, 1, 0)
          + struct.pack("<IIHH", 0, node, 0, 0))
    patch(img, node * 1024, struct.pack("<HHHHI", 0xF30A, 1, 84, 1, 0))
    patch(img, node * 1024 + 12, struct.pack("<IIHH", 0, node, 0, 0))
    with mounted(img) as k:
        fd = k.open("/mnt/dir/multi", os.O_RDONLY)
        euclean(k.pread, fd, 100, 0)
        k.close(fd)
        still_usable(k)
    # a depth over 5
    patch(img, off + 0x28, struct.pack("<HHHHI", 0xF30A, 1, 4, 9, 0))
    with mounted(img) as k:
        fd = k.open("/mnt/dir/multi", os.O_RDONLY)
        euclean(k.pread, fd, 100, 0)
        k.close(fd)
        still_usable(k)
    assert "extent" in caplog.text


def test_bitmap_disagrees_with_a_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    img = make_image(tmp_path, "ext4-4k-256")
    blk = blocks_of(img, "/dir/multi")[0]
    E.run(["debugfs", "-w", "-R", f"freeb {blk}", str(img)])
    with mounted(img) as k:
        k.unlink("/mnt/dir/multi")
        still_usable(k)
    assert "bitmap/count disagree" in caplog.text


def test_superblock_lies_about_size(tmp_path: Path) -> None:
    img = make_image(tmp_path, "ext2-1k-128", tree=False)
    patch(img, 1024 + 4, struct.pack("<I", 1 << 30))           # s_blocks_count
    with pytest.raises(OSError) as ei, mounted(img):
        pass
    assert ei.value.errno in (errno.EUCLEAN, errno.EINVAL)
