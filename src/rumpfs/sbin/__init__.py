"""Programs that run inside a kernel on a device node (NetBSD's userland tools):
``newfs_ext2fs``, ``newfs_msdos``. They work through a :class:`rumpfs.kernel.Process`'s
system calls only."""
