"""Fixtures for the ext2 driver's tests: images made by mkfs + debugfs, mounted
in a kernel through an etfs block device."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import ext2img as E

from rumpfs import EtfsType, Kernel

SIZE = 32 << 20


def make_image(tmp: Path, name: str, *, tree: bool = True, size: int = SIZE,
               script: list[str] | None = None) -> Path:
    """An image of option set ``name`` with the debugfs reference tree."""
    img = tmp / f"{name}.img"
    E.mkfs(img, E.OPTION_SETS_BY_NAME[name], size)
    cmds: list[str] = []
    if tree:
        host = tmp / f"{name}-src"
        host.mkdir(exist_ok=True)
        cmds += E.debugfs_tree(host)
    cmds += script or []
    if cmds:
        E.debugfs(img, cmds)
    return img


@contextlib.contextmanager
def mounted(img: Path, *, read_only: bool = False) -> Iterator[Kernel]:
    """A kernel with ``img`` mounted on /mnt; unmounted (and shut down) after."""
    k = Kernel()
    try:
        k.etfs_register("/dev/d", str(img), EtfsType.BLK)
        k.mkdir("/mnt")
        k.mount("ext2", "/mnt", device="/dev/d", read_only=read_only)
        yield k
        k.unmount("/mnt")
    finally:
        k.shutdown()


@pytest.fixture(params=[o.name for o in E.OPTION_SETS])
def optset(request: pytest.FixtureRequest) -> str:
    return str(request.param)
