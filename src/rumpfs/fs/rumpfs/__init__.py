"""rumpfs: the in-memory file system (tmpfs-like), NetBSD's rump root file system."""

from rumpfs.fs.rumpfs.vfsops import rumpfs_mount

__all__ = ["rumpfs_mount"]
