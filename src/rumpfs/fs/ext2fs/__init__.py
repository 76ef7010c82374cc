"""ext2fs: ext2, ext3 and ext4 file systems on block devices (NetBSD's sys/ufs/ext2fs)."""

from rumpfs.fs.ext2fs.vfsops import ext2fs_mount

__all__ = ["ext2fs_mount"]
