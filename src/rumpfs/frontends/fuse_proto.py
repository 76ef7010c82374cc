"""The kernel's FUSE wire protocol (``linux/fuse.h``, 7.40) as ``struct`` layouts.

Allowed imports: the standard library only. Pure data: no I/O, no state.

Every message the host kernel writes to ``/dev/fuse`` starts with
:data:`IN_HEADER`; every reply starts with :data:`OUT_HEADER` (``unique``
copied from the request, ``error`` a negative errno or 0). Notifications
are replies with ``unique`` 0 and the notify code in ``error``. Layouts are
little-endian with the C structs' natural padding made explicit, so the
format strings below are the structs field by field (read from the header,
written here, not copied). Sizes are those of protocol minor 23 and later;
the frontend refuses older kernels.
"""

from __future__ import annotations

import struct

# -- versions -----------------------------------------------------------------

KERNEL_VERSION = 7
KERNEL_MINOR_VERSION = 40     # passthrough (Linux 6.9) is 7.40
MIN_MINOR = 23                # full-size structs from here on
ROOT_ID = 1

# -- opcodes --------------------------------------------------------------------

LOOKUP = 1
FORGET = 2
GETATTR = 3
SETATTR = 4
READLINK = 5
SYMLINK = 6
MKNOD = 8
MKDIR = 9
UNLINK = 10
RMDIR = 11
RENAME = 12
LINK = 13
OPEN = 14
READ = 15
WRITE = 16
STATFS = 17
RELEASE = 18
FSYNC = 20
SETXATTR = 21
GETXATTR = 22
LISTXATTR = 23
REMOVEXATTR = 24
FLUSH = 25
INIT = 26
OPENDIR = 27
READDIR = 28
RELEASEDIR = 29
FSYNCDIR = 30
GETLK = 31
SETLK = 32
SETLKW = 33
ACCESS = 34
CREATE = 35
INTERRUPT = 36
BMAP = 37
DESTROY = 38
IOCTL = 39
POLL = 40
NOTIFY_REPLY = 41
BATCH_FORGET = 42
FALLOCATE = 43
READDIRPLUS = 44
RENAME2 = 45
LSEEK = 46
COPY_FILE_RANGE = 47
SETUPMAPPING = 48
REMOVEMAPPING = 49
SYNCFS = 50
TMPFILE = 51
STATX = 52

# -- notify codes -----------------------------------------------------------------

NOTIFY_INVAL_INODE = 2
NOTIFY_INVAL_ENTRY = 3
NOTIFY_DELETE = 6

# -- INIT flags (flags | flags2 << 32) ---------------------------------------------

ASYNC_READ = 1 << 0
POSIX_LOCKS = 1 << 1
ATOMIC_O_TRUNC = 1 << 3
EXPORT_SUPPORT = 1 << 4
BIG_WRITES = 1 << 5
DONT_MASK = 1 << 6
SPLICE_WRITE = 1 << 7
SPLICE_MOVE = 1 << 8
SPLICE_READ = 1 << 9
FLOCK_LOCKS = 1 << 10
AUTO_INVAL_DATA = 1 << 12
DO_READDIRPLUS = 1 << 13
READDIRPLUS_AUTO = 1 << 14
ASYNC_DIO = 1 << 15
WRITEBACK_CACHE = 1 << 16
NO_OPEN_SUPPORT = 1 << 17
PARALLEL_DIROPS = 1 << 18
HANDLE_KILLPRIV = 1 << 19
POSIX_ACL = 1 << 20
ABORT_ERROR = 1 << 21
MAX_PAGES = 1 << 22
CACHE_SYMLINKS = 1 << 23
NO_OPENDIR_SUPPORT = 1 << 24
EXPLICIT_INVAL_DATA = 1 << 25
HANDLE_KILLPRIV_V2 = 1 << 28
SETXATTR_EXT = 1 << 29
INIT_EXT = 1 << 30
PASSTHROUGH = 1 << 37

# -- request flags -------------------------------------------------------------------

FATTR_MODE = 1 << 0
FATTR_UID = 1 << 1
FATTR_GID = 1 << 2
FATTR_SIZE = 1 << 3
FATTR_ATIME = 1 << 4
FATTR_MTIME = 1 << 5
FATTR_FH = 1 << 6
FATTR_ATIME_NOW = 1 << 7
FATTR_MTIME_NOW = 1 << 8
FATTR_LOCKOWNER = 1 << 9
FATTR_CTIME = 1 << 10
FATTR_KILL_SUIDGID = 1 << 11

FOPEN_DIRECT_IO = 1 << 0
FOPEN_KEEP_CACHE = 1 << 1
FOPEN_NONSEEKABLE = 1 << 2
FOPEN_CACHE_DIR = 1 << 3
FOPEN_NOFLUSH = 1 << 5
FOPEN_PASSTHROUGH = 1 << 7

OPEN_KILL_SUIDGID = 1 << 0          # fuse_open_in/fuse_create_in open_flags
WRITE_KILL_SUIDGID = 1 << 2         # fuse_write_in write_flags
GETATTR_FH = 1 << 0
FSYNC_FDATASYNC = 1 << 0

# -- structs ---------------------------------------------------------------------------

IN_HEADER = struct.Struct("<IIQQIIIHH")      # len opcode unique nodeid uid gid pid extlen pad
OUT_HEADER = struct.Struct("<IiQ")           # len error unique
ATTR_FMT = "QQQQQQIIIIIIIIII"                # ino size blocks a/m/ctime a/m/ctimensec mode
#                                              nlink uid gid rdev blksize flags
ENTRY_OUT = struct.Struct("<QQQQII" + ATTR_FMT)   # nodeid gen entry_valid attr_valid nsecs
ATTR_OUT = struct.Struct("<QII" + ATTR_FMT)       # attr_valid nsec dummy
INIT_IN = struct.Struct("<IIII")                  # major minor max_readahead flags
INIT_IN_FLAGS2 = struct.Struct("<I")              # at offset 16
INIT_OUT = struct.Struct("<IIIIHHIIHHII24x")
# ^ major minor max_readahead flags max_background congestion max_write time_gran
#   max_pages map_alignment flags2 max_stack_depth unused[6]
OPEN_IN = struct.Struct("<II")                    # flags open_flags
OPEN_OUT = struct.Struct("<QIi")                  # fh open_flags backing_id
CREATE_IN = struct.Struct("<IIII")                # flags mode umask open_flags
MKNOD_IN = struct.Struct("<IIII")                 # mode rdev umask padding
MKDIR_IN = struct.Struct("<II")                   # mode umask
RENAME_IN = struct.Struct("<Q")                   # newdir
RENAME2_IN = struct.Struct("<QII")                # newdir flags padding
LINK_IN = struct.Struct("<Q")                     # oldnodeid
SETATTR_IN = struct.Struct("<IIQQQQQQIIIIIIII")
# ^ valid padding fh size lock_owner atime mtime ctime atimensec mtimensec ctimensec
#   mode unused4 uid gid unused5
GETATTR_IN = struct.Struct("<IIQ")                # getattr_flags dummy fh
RELEASE_IN = struct.Struct("<QIIQ")               # fh flags release_flags lock_owner
READ_IN = struct.Struct("<QQIIQII")               # fh offset size read_flags lock_owner flags pad
WRITE_IN = READ_IN                                # fh offset size write_flags lock_owner flags pad
WRITE_OUT = struct.Struct("<II")                  # size padding
FSYNC_IN = struct.Struct("<QII")                  # fh fsync_flags padding
STATFS_OUT = struct.Struct("<QQQQQIIII24x")       # blocks bfree bavail files ffree bsize
#                                                   namelen frsize padding spare[6]
GETXATTR_IN = struct.Struct("<II")                # size padding
SETXATTR_IN = struct.Struct("<II")                # size flags (without SETXATTR_EXT)
GETXATTR_OUT = struct.Struct("<II")               # size padding
ACCESS_IN = struct.Struct("<II")                  # mask padding
FORGET_IN = struct.Struct("<Q")                   # nlookup
BATCH_FORGET_IN = struct.Struct("<II")            # count dummy
FORGET_ONE = struct.Struct("<QQ")                 # nodeid nlookup
FALLOCATE_IN = struct.Struct("<QQQII")            # fh offset length mode padding
LSEEK_IN = struct.Struct("<QQII")                 # fh offset whence padding
LSEEK_OUT = struct.Struct("<Q")                   # offset
COPY_FILE_RANGE_IN = struct.Struct("<QQQQQQQ")
# ^ fh_in off_in nodeid_out fh_out off_out len flags
DIRENT = struct.Struct("<QQII")                   # ino off namelen type, then the name
NOTIFY_INVAL_INODE_OUT = struct.Struct("<Qqq")    # ino off len
NOTIFY_INVAL_ENTRY_OUT = struct.Struct("<QII")    # parent namelen flags
NOTIFY_DELETE_OUT = struct.Struct("<QQII")        # parent child namelen padding
BACKING_MAP = struct.Struct("<iIQ")               # fd flags padding

# Device ioctls: _IOR/_IOW(229, nr, type) with the asm-generic encoding.
_IOC_WRITE, _IOC_READ = 1, 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (229 << 8) | nr


DEV_IOC_CLONE = _ioc(_IOC_READ, 0, 4)
DEV_IOC_BACKING_OPEN = _ioc(_IOC_WRITE, 1, BACKING_MAP.size)
DEV_IOC_BACKING_CLOSE = _ioc(_IOC_WRITE, 2, 4)

MIN_READ_BUFFER = 8192


def dirent_size(namelen: int, plus: bool = False) -> int:
    """Bytes one (plus) directory record takes, aligned to 8."""
    base = DIRENT.size + namelen + (ENTRY_OUT.size if plus else 0)
    return (base + 7) & ~7
