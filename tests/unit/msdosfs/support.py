"""Test support for msdosfs: fresh FAT images (ours and mkfs.fat's), a kernel
with an image mounted, and the mtools/fsck.fat oracles."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import rumpfs
from rumpfs.sbin.newfs_msdos import plan, write_layout


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
    """A kernel with ``image`` (a bare FAT volume) mounted at /mnt through
    /dev/fat; unmounted cleanly when the block ends without an exception."""
    k = rumpfs.Kernel()
    try:
        k.etfs_register("/dev/fat", str(image), rumpfs.EtfsType.BLK, read_only=read_only)
        k.mkdir("/mnt")
        k.mount("msdos", "/mnt", read_only=read_only, device="/dev/fat", options=options)
        yield k
        k.unmount("/mnt")
    finally:
        k.shutdown()


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
