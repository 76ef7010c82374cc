"""Mounting a file system on a block-device node: errors (ENODEV, ENOTBLK,
EBUSY, EACCES), and the flushes of sync, fsync, remount, unmount, shutdown.

The file system is a stub (a rumpfs tree whose vfsops write marker blocks
through the buffer cache), so these tests need no disk driver."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator

import pytest

from rumpfs import EtfsType, Kernel
from rumpfs.fs.rumpfs import rumpfs_mount
from rumpfs.rumpuser.memhost import MemHost
from rumpfs.vfs.bio import BlockDev
from rumpfs.vfs.mount import Mount, MountArgs, Vfs, VfsOps
from rumpfs.vfs.vnode import Vnode

SIZE = 256 * 1024


class StubOps:
    """vfs_sync stamps sector 0 with a count; vfs_unmount marks sector 1
    "CLEAN" as a late buffer (written after everything else)."""

    def __init__(self, inner: VfsOps, vfs: Vfs, dev: BlockDev) -> None:
        self.inner, self.vfs, self.dev = inner, vfs, dev
        self.syncs = 0
        self.unmounted = False

    def vfs_root(self, mp: Mount) -> Vnode:
        return self.inner.vfs_root(mp)

    def vfs_statvfs(self, mp: Mount) -> os.statvfs_result:
        return self.inner.vfs_statvfs(mp)

    def vfs_sync(self, mp: Mount) -> None:
        self.syncs += 1
        if mp.read_only:
            return
        bp = self.vfs.bufcache.bread(self.dev, 0, 512)
        bp.data[:8] = b"SYNC%04d" % self.syncs
        self.vfs.bufcache.bdwrite(bp)

    def vfs_unmount(self, mp: Mount) -> None:
        self.unmounted = True
        if mp.read_only:
            return
        bp = self.vfs.bufcache.bread(self.dev, 1, 512)
        bp.data[:5] = b"CLEAN"
        bp.late = True
        self.vfs.bufcache.bdwrite(bp)


def stub_mount(vfs: Vfs, dev: int, args: MountArgs) -> Mount:
    assert args.device is not None
    if (args.options or {}).get("fail"):
        raise OSError(errno.EINVAL, "bad superblock")
    mp = rumpfs_mount(vfs, dev, args)
    mp.ops = StubOps(mp.ops, vfs, args.device)
    mp.fstype = "stub"
    return mp


def ops_of(k: Kernel) -> StubOps:
    for mp in k.vfs.mounts:
        if mp.fstype == "stub":
            assert isinstance(mp.ops, StubOps)
            return mp.ops
    raise AssertionError("no stub mount")


@pytest.fixture
def host() -> MemHost:
    h = MemHost()
    h.write_file("/disk.img", bytes(SIZE))
    h.write_file("/other.img", bytes(SIZE))
    return h


@pytest.fixture
def k(host: MemHost) -> Iterator[Kernel]:
    kernel = Kernel(hypervisor=host)
    kernel.vfs.register_fstype("stub", stub_mount)
    kernel.etfs_register("/dev/d", "/disk.img", EtfsType.BLK)
    kernel.etfs_register("/dev/ro", "/other.img", EtfsType.BLK, read_only=True)
    kernel.etfs_register("/dev/c", "/other.img", EtfsType.CHR)
    kernel.mkdir("/mnt")
    kernel.mkdir("/mnt2")
    try:
        yield kernel
    finally:
        kernel.shutdown()


def err(exc: pytest.ExceptionInfo[OSError]) -> tuple[int | None, object]:
    return exc.value.errno, exc.value.filename


def test_unknown_type_is_enodev(k: Kernel) -> None:
    with pytest.raises(OSError) as ei:
        k.mount("nosuchfs", "/mnt", device="/dev/d")
    assert ei.value.errno == errno.ENODEV


def test_not_a_block_device_is_enotblk(k: Kernel) -> None:
    k.open_file("/file", "w").close()
    for path in ("/file", "/dev/c", "/mnt2"):
        with pytest.raises(OSError) as ei:
            k.mount("stub", "/mnt", device=path)
        assert err(ei) == (errno.ENOTBLK, path)
    with pytest.raises(OSError) as ei:
        k.mount("stub", "/mnt", device="/dev/missing")
    assert err(ei) == (errno.ENOENT, "/dev/missing")


def test_mounted_device_is_busy(k: Kernel) -> None:
    k.mount("stub", "/mnt", device="/dev/d")
    with pytest.raises(OSError) as ei:
        k.mount("stub", "/mnt2", device="/dev/d")
    assert ei.value.errno == errno.EBUSY
    # the same device through another node
    k.mknod("/dev/d2", stat.S_IFBLK | 0o600, k.stat("/dev/d").st_rdev)
    with pytest.raises(OSError) as ei:
        k.mount("stub", "/mnt2", device="/dev/d2")
    assert ei.value.errno == errno.EBUSY
    # writers are refused, readers are not
    for flags in (os.O_RDWR, os.O_WRONLY):
        with pytest.raises(OSError) as ei:
            k.open("/dev/d", flags)
        assert err(ei) == (errno.EBUSY, "/dev/d")
    k.close(k.open("/dev/d", os.O_RDONLY))
    with pytest.raises(OSError) as ei:
        k.etfs_remove("/dev/d")
    assert ei.value.errno == errno.EBUSY
    k.unmount("/mnt")
    k.close(k.open("/dev/d", os.O_RDWR))
    k.mount("stub", "/mnt2", device="/dev/d2")


def test_device_open_for_writing_is_busy(k: Kernel) -> None:
    fd = k.open("/dev/d", os.O_RDWR)
    fd2 = k.dup(fd)
    with pytest.raises(OSError) as ei:
        k.mount("stub", "/mnt", device="/dev/d")
    assert ei.value.errno == errno.EBUSY
    k.close(fd)
    with pytest.raises(OSError) as ei:
        k.mount("stub", "/mnt", device="/dev/d", read_only=True)
    assert ei.value.errno == errno.EBUSY
    k.close(fd2)
    rfd = k.open("/dev/d", os.O_RDONLY)             # a reader does not stop a mount
    k.mount("stub", "/mnt", device="/dev/d")
    k.close(rfd)


def test_read_only_device(k: Kernel, host: MemHost) -> None:
    with pytest.raises(OSError) as ei:
        k.mount("stub", "/mnt", device="/dev/ro")
    assert err(ei) == (errno.EACCES, "/dev/ro")
    k.mount("stub", "/mnt", device="/dev/ro", read_only=True)
    with pytest.raises(OSError) as ei:
        k.remount("/mnt", read_only=False)
    assert ei.value.errno == errno.EACCES
    k.sync()
    k.unmount("/mnt")
    assert host.read_file("/other.img") == bytes(SIZE)


def test_failed_mount_releases_the_device(k: Kernel) -> None:
    with pytest.raises(OSError) as ei:
        k.mount("stub", "/mnt", device="/dev/d", options={"fail": True})
    assert ei.value.errno == errno.EINVAL
    assert not k.vfs.blk_mounted
    k.mount("stub", "/mnt", device="/dev/d")


def test_unmount_flushes_in_order_and_releases(k: Kernel, host: MemHost) -> None:
    k.mount("stub", "/mnt", device="/dev/d")
    mp = k.vfs.mounts[-1]
    dev = mp.device
    assert dev is not None and dev.size == SIZE
    bc = k.vfs.bufcache
    bp = bc.getblk(dev, 64, 4096)
    bp.data[:] = b"x" * 4096
    bc.bdwrite(bp)
    assert host.read_file("/disk.img")[64 * 512] == 0
    ops = ops_of(k)
    k.unmount("/mnt")
    img = host.read_file("/disk.img")
    assert img[64 * 512:72 * 512] == b"x" * 4096
    assert img[:8] == b"SYNC0001" and img[512:517] == b"CLEAN"
    assert ops.unmounted and mp.device is None and not dev.open
    assert bc.bytes == 0 and not k.vfs.blk_mounted


def test_unmount_write_error_keeps_the_mount(k: Kernel, host: MemHost) -> None:
    k.mount("stub", "/mnt", device="/dev/d")
    host.inject("pwrite", errno.EIO)
    with pytest.raises(OSError) as ei:
        k.unmount("/mnt")
    assert ei.value.errno == errno.EIO
    assert not ops_of(k).unmounted and k.vfs.blk_mounted
    k.unmount("/mnt")
    assert host.read_file("/disk.img")[512:517] == b"CLEAN"


def test_sync_flushes_every_device_mount(k: Kernel, host: MemHost) -> None:
    host.write_file("/third.img", bytes(SIZE))
    k.etfs_register("/dev/e", "/third.img", EtfsType.BLK)
    k.mount("stub", "/mnt", device="/dev/d")
    k.mount("stub", "/mnt2", device="/dev/e")
    k.sync()
    assert host.read_file("/disk.img")[:8] == b"SYNC0001"
    assert host.read_file("/third.img")[:8] == b"SYNC0001"


def test_sync_error_is_raised_and_retried(k: Kernel, host: MemHost) -> None:
    k.mount("stub", "/mnt", device="/dev/d")
    host.inject("pwrite", errno.ENOSPC)
    with pytest.raises(OSError) as ei:
        k.sync()
    assert ei.value.errno == errno.ENOSPC
    k.sync()
    assert host.read_file("/disk.img")[:8] == b"SYNC0002"


def test_fsync_of_a_file_flushes_its_mount(k: Kernel, host: MemHost) -> None:
    k.mount("stub", "/mnt", device="/dev/d")
    fd = k.open("/mnt/f", os.O_CREAT | os.O_RDWR)
    k.fsync(fd)
    assert host.read_file("/disk.img")[:8] == b"SYNC0001"
    k.fdatasync(fd)
    assert host.read_file("/disk.img")[:8] == b"SYNC0002"
    k.close(fd)


def test_remount_read_only_syncs(k: Kernel, host: MemHost) -> None:
    k.mount("stub", "/mnt", device="/dev/d")
    k.remount("/mnt", read_only=True)
    assert host.read_file("/disk.img")[:8] == b"SYNC0001"
    k.remount("/mnt", read_only=False)
    k.unmount("/mnt")
    assert host.read_file("/disk.img")[512:517] == b"CLEAN"


def test_shutdown_flushes_and_unmounts(host: MemHost) -> None:
    k = Kernel(hypervisor=host)
    k.vfs.register_fstype("stub", stub_mount)
    k.etfs_register("/dev/d", "/disk.img", EtfsType.BLK)
    k.mkdir("/mnt")
    k.mount("stub", "/mnt", device="/dev/d")
    fd = k.open("/mnt/f", os.O_CREAT | os.O_RDWR)   # closed by shutdown
    dev = k.vfs.mounts[-1].device
    assert dev is not None
    bp = k.vfs.bufcache.getblk(dev, 8, 512)
    bp.data[:4] = b"data"
    k.vfs.bufcache.bdwrite(bp)
    del fd
    k.shutdown()
    img = host.read_file("/disk.img")
    assert img[:8] == b"SYNC0001" and img[512:517] == b"CLEAN" and img[4096:4100] == b"data"
    assert host.open_fds == 0


def test_shutdown_raises_a_write_error(host: MemHost) -> None:
    k = Kernel(hypervisor=host)
    k.vfs.register_fstype("stub", stub_mount)
    k.etfs_register("/dev/d", "/disk.img", EtfsType.BLK)
    k.mkdir("/mnt")
    k.mount("stub", "/mnt", device="/dev/d")
    host.inject("pwrite", errno.EIO, count=None)
    with pytest.raises(OSError) as ei:
        k.shutdown()
    assert ei.value.errno == errno.EIO
    assert host.open_fds == 0 and not k.running


def test_bufcache_mount_option(k: Kernel) -> None:
    k.mount("stub", "/mnt", device="/dev/d", options={"bufcache": 1 << 20})
    assert k.vfs.bufcache.budget == 1 << 20
    with pytest.raises(OSError) as ei:
        k.mount("stub", "/mnt2", device="/dev/ro", read_only=True, options={"bufcache": "x"})
    assert ei.value.errno == errno.EINVAL
    assert len(k.vfs.blk_mounted) == 1
