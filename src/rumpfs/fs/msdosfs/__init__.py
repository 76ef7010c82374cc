"""msdosfs: FAT12/16/32 on a block device (NetBSD's sys/fs/msdosfs)."""
