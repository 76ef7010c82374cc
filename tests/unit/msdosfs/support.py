"""Test support for msdosfs: a pass-through buffer cache over a host image file,
fresh FAT images (ours and mkfs.fat's), a kernel with an image mounted, and
the mtools/fsck.fat oracles."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import rumpfs
from rumpfs.fs.msdosfs.vfsops import mount_volume
from rumpfs.sbin.newfs_msdos import plan, write_layout
from rumpfs.vfs.mount import MountArgs, Vfs


@dataclass
class FakeBuf:
    blkno: int
    data: bytearray


class FileBufCache:
    """bread/bdwrite straight to a host file (no caching), checking that
    buffers of different sizes never overlap and nothing lands past the end."""

    def __init__(self, path: str | os.PathLike[str], offset: int = 0, size: int | None = None,
                 read_only: bool = False) -> None:
        self.fd = os.open(path, os.O_RDONLY if read_only else os.O_RDWR)
        self.offset = offset
        self.size = os.fstat(self.fd).st_size - offset if size is None else size
        self.sizes: dict[int, int] = {}
        self.writes = 0

    def _check(self, blkno: int, size: int) -> None:
        assert blkno >= 0 and blkno * 512 + size <= self.size, (blkno, size, self.size)
        old = self.sizes.setdefault(blkno, size)
        assert old == size, f"buffer at {blkno} used with sizes {old} and {size}"

    def bread(self, blkno: int, size: int) -> FakeBuf:
        self._check(blkno, size)
        data = os.pread(self.fd, size, self.offset + blkno * 512)
        assert len(data) == size
        return FakeBuf(blkno, bytearray(data))

    def getblk(self, blkno: int, size: int) -> FakeBuf:
        self._check(blkno, size)
        return FakeBuf(blkno, bytearray(size))

    def brelse(self, bp: FakeBuf) -> None:
        pass

    def bwrite(self, bp: FakeBuf) -> None:
        assert bp.blkno * 512 + len(bp.data) <= self.size
        os.pwrite(self.fd, bytes(bp.data), self.offset + bp.blkno * 512)
        self.writes += 1

    bdwrite = bwrite

    def flush(self) -> None:
        pass

    def invalidate(self) -> None:
        pass

    def close(self) -> None:
        os.close(self.fd)


def make_image(path: Path, size: int, *, tool: str = "ours", fat: int | None = None,
               spc: int | None = None, label: str | None = None) -> Path:
    """A fresh FAT image at ``path``: made by our newfs or by mkfs.fat."""
    with open(path, "wb") as f:
        f.truncate(size)
    if tool == "mkfs":
        args = ["mkfs.fat", "-i", "12345678"]
        if fat:
            args += ["-F", str(fat)]
        if spc:
            args += ["-s", str(spc)]
        if label:
            args += ["-n", label]
        subprocess.run([*args, str(path)], check=True, capture_output=True)
    else:
        lay = plan(size, fat_type=fat, sectors_per_cluster=spc, label=label,
                   volume_id=0x12345678)
        fd = os.open(path, os.O_RDWR)
        try:
            write_layout(lay, lambda off, data: os.pwrite(fd, data, off) and None, 0)
        finally:
            os.close(fd)
    return path


@contextmanager
def mounted(image: Path, *, read_only: bool = False,
            options: dict[str, object] | None = None) -> Iterator[rumpfs.Kernel]:
    """A kernel with ``image`` mounted at /mnt (unmounted cleanly on exit)."""
    k = rumpfs.Kernel()
    bc = FileBufCache(image, read_only=read_only)

    def factory(vfs: Vfs, dev: int, args: MountArgs) -> rumpfs.vfs.mount.Mount:
        return mount_volume(vfs, dev, bc, bc.size, args.read_only, options)

    k.vfs.register_fstype("msdos-test", factory)
    k.mkdir("/mnt")
    k.mount("msdos-test", "/mnt", read_only=read_only)
    try:
        yield k
        k.unmount("/mnt")
    finally:
        k.shutdown()
        bc.close()


def fsck(image: Path) -> str:
    """fsck.fat -n; asserts a clean volume and returns its output."""
    r = subprocess.run(["fsck.fat", "-n", str(image)], capture_output=True, text=True)
    assert r.returncode == 0 and "differences" not in r.stdout.lower() and not any(
        w in r.stdout for w in ("Free cluster summary", "Dirty bit", "wrong", "Orphan",
                                "bad", "Bad", "invalid", "Invalid")), r.stdout + r.stderr
    return r.stdout


def mtools_env(image: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MTOOLS_SKIP_CHECK"] = "1"
    env["MTOOLSRC"] = "/dev/null"
    env["TZ"] = "UTC"
    return env


def mtools(image: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(args), capture_output=True, env=mtools_env(image), check=True)
