"""msdosfs: FAT12/16/32 on a block device (NetBSD's sys/fs/msdosfs)."""

from rumpfs.fs.msdosfs.vfsops import msdosfs_mount

__all__ = ["msdosfs_mount"]
